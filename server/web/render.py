"""Rendering for the supervisor page: the template environment, safe markdown, JSON twins.

Everything shown comes from agents (titles, evidence, diffs, reasons) and is treated as hostile:
templates autoescape, and markdown is rendered by markdown-it-py with raw HTML off (so ``<script>``
stays text), images off (nothing is fetched from elsewhere) and only http(s), mailto and
relative link targets. The Content-Security-Policy (``app.SECURITY_HEADERS``) is the second wall.

    html = markdown_html("# Problem\\n<script>alert(1)</script>")   # the tag shown as text
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

__all__ = ["TEMPLATES", "json_text", "markdown_html", "page", "wants_json", "when"]

_HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# "js-default": CommonMark with raw HTML off; images off too (they would be fetched).
_MD = MarkdownIt("js-default", {"html": False, "linkify": False}).disable("image")
_SAFE_SCHEMES = ("http:", "https:", "mailto:")


def _validate_link(url: str) -> bool:
    lowered = url.strip().lower()
    if ":" not in lowered.split("/", 1)[0]:
        return True  # relative
    return lowered.startswith(_SAFE_SCHEMES)


_MD.validateLink = _validate_link  # type: ignore[method-assign]


def markdown_html(text: str) -> Markup:
    """`text` as HTML: raw HTML escaped, no images, only safe link schemes."""
    return Markup(_MD.render(text))


def json_text(value: Any) -> str:
    """JSON for a person to read (escaped by the template like any text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _short(value: str | None, n: int = 12) -> str:
    return "-" if not value else value[:n]


def when(ts: str | None) -> str:
    """An RFC 3339 time to the second, as supervisors scan it."""
    return "-" if not ts else ts[:19].replace("T", " ")


TEMPLATES.filters["short"] = _short
TEMPLATES.filters["when"] = when
TEMPLATES.filters["json_text"] = json_text
TEMPLATES.filters["compact"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
TEMPLATES.filters["markdown"] = markdown_html


def wants_json(request: Request) -> bool:
    return request.query_params.get("format") == "json"


def page(
    request: Request,
    template: str,
    data: dict[str, Any],
    *,
    status: int = 200,
    view: dict[str, Any] | None = None,
) -> Response:
    """The HTML page, or its JSON twin (`data` alone) with ``?format=json``.

    `view` holds what only the HTML needs (the signed-in actor, the CSRF token)."""
    if wants_json(request):
        return JSONResponse(data, status_code=status)
    context = {**data, **(view or {}), "request_path": request.url.path}
    if request.query_params.get("fragment") == "live":
        template = template.replace(".html", "_live.html")
    body = TEMPLATES.get_template(template).render(context)
    return HTMLResponse(body, status_code=status)
