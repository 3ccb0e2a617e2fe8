"""The supervisor's web page: server-rendered pages over the enforcer, with JSON twins.

Served at ``/`` by ``phasegate serve --http`` (beside ``/mcp``) and alone by ``phasegate ui``.
Pages: the board (``/``), a task's timeline (``/tasks/ID``), a patch in the diff viewer, the
ledger with its verification and newest checkpoint (``/ledger``), traces, the controls
(``/controls``); live updates over server-sent events (``/events``).

    from server.web import web_app
    app = web_app(lambda: enforcer)
"""

from .app import web_app

__all__ = ["web_app"]
