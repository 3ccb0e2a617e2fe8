"""The synchronous PostgreSQL pieces under the store: the domain's SQL in PostgreSQL's words, a
`Tx` over one psycopg connection, connecting, lock keys, migrations, and running a batch of
units of work in one transaction.

The domain writes portable SQL with ``?`` placeholders; `translate` turns it into psycopg's
``%s`` form once per statement text (cached), rewrites ``INSERT OR IGNORE`` into ``ON CONFLICT
DO NOTHING``, and refuses what has no faithful PostgreSQL form (``PRAGMA``, ``INSERT OR
REPLACE``) with a StoreError, so a SQLite-only statement fails loudly in the contract tests
rather than differently in production.

    translate("SELECT phase FROM tasks WHERE task = ?")  # '... WHERE task = %s'
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ..errors import StoreError
from .migrations import MigrationLike, pending
from .protocol import CHAIN_APPEND_SQL, CHAIN_HEAD_SQL, Row, Tx

__all__ = ["PgTx", "connect", "lock_key", "migrate_postgres", "redact", "translate"]

_CACHE: dict[str, str] = {}
_CACHE_LIMIT = 4096
_PRAGMA = re.compile(r"^\s*PRAGMA\b", re.IGNORECASE)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_OR_OTHER = re.compile(r"^\s*INSERT\s+OR\s+\w+", re.IGNORECASE)


def translate(sql: str) -> str:
    """`sql` (portable, ``?`` placeholders) as psycopg runs it on PostgreSQL."""
    found = _CACHE.get(sql)
    if found is not None:
        return found
    if _PRAGMA.match(sql):
        raise StoreError(f"SQLite-only statement on PostgreSQL: {sql.strip()[:60]!r}")
    text, suffix = sql, ""
    if _OR_IGNORE.match(text):
        text, suffix = _OR_IGNORE.sub("INSERT INTO", text, count=1), " ON CONFLICT DO NOTHING"
    elif _OR_OTHER.match(text):
        raise StoreError(
            f"no PostgreSQL form for {sql.strip()[:60]!r}: write INSERT ... ON CONFLICT instead"
        )
    out: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    result = "".join(out).rstrip().rstrip(";") + suffix
    if len(_CACHE) < _CACHE_LIMIT:
        _CACHE[sql] = result
    return result


UNKNOWN: Any = object()  # the chain head is not known: read it


class PgTx:
    """A `Tx` over one psycopg connection (inside a transaction the store opened).

    `head` is the chain head as this transaction knows it — read with the chain lock, then
    moved by each append — or UNKNOWN; the ledger's head read is answered from it. With a
    `pipeline` (the writer's), `run` only queues its statement: the next statement that needs
    a result, or `flush`, sends them all in one round trip."""

    __slots__ = ("_cur", "_pipeline", "head", "queued")

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        head: Any = UNKNOWN,
        pipeline: psycopg.Pipeline | None = None,
    ) -> None:
        self._cur = conn.cursor()
        self._pipeline = pipeline
        self.head = head
        self.queued = False  # statements sent whose outcome is not known yet

    def _track(self, sql: str, params: Sequence[Any]) -> None:
        if sql == CHAIN_APPEND_SQL:
            self.head = (params[0], params[2])
        elif self.head is not UNKNOWN and _touches_ledger(sql):
            self.head = UNKNOWN

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(translate(sql), params)
        self.queued = self._pipeline is not None
        self._track(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(translate(sql), params)
        self.flush()
        self._track(sql, params)
        return int(self._cur.rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        if sql == CHAIN_HEAD_SQL and self.head is not UNKNOWN:
            return self.head  # type: ignore[no-any-return]
        self._cur.execute(translate(sql), params)
        row = self._cur.fetchone()
        self.queued = False
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cur.execute(translate(sql), params)
        rows = [tuple(r) for r in self._cur.fetchall()]
        self.queued = False
        return rows

    def flush(self) -> None:
        """Wait for every statement sent so far; raises the first one's error."""
        if self._pipeline is not None:
            self._pipeline.sync()
        self.queued = False


def _touches_ledger(sql: str) -> bool:
    """A statement other than the ledger's own append that may change the ledger."""
    head = sql.lstrip()[:6].upper()
    return head in ("INSERT", "UPDATE", "DELETE") and "ledger" in sql


def redact(url: str) -> str:
    """`url` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def connect(url: str, *, synchronous_commit: bool = True) -> psycopg.Connection[Any]:
    """An autocommit connection (the store issues BEGIN and COMMIT itself)."""
    try:
        conn = psycopg.connect(
            url, autocommit=True, connect_timeout=10, application_name="phasegate"
        )
        if not synchronous_commit:
            conn.execute("SET synchronous_commit = off")
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to PostgreSQL at {redact(url)}: {e}") from e
    return conn


def lock_key(schema: str, name: str) -> int:
    """The advisory-lock key of lock `name` for the phasegate tables in `schema` (a signed
    64-bit integer), so deployments in different schemas never wait for each other."""
    digest = hashlib.sha256(f"phasegate:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def current_schema(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise StoreError("the PostgreSQL search_path names no existing schema")
    return str(row[0])


def migrate_postgres(
    conn: psycopg.Connection[Any], migrations: Sequence[MigrationLike], key: int
) -> int:
    """Apply pending migrations under an advisory lock, so servers starting together on a
    fresh database apply each one once."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int((row[0] if row else None) or 0)
        for version, sql in pending(current, migrations, "postgres"):
            for statement in sql:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        conn.execute("COMMIT")
        return len(migrations)
    except BaseException:
        if not conn.closed:
            conn.execute("ROLLBACK")
        raise


def wrap(error: BaseException) -> BaseException:
    """A psycopg error as the StoreError the domain knows; anything else unchanged."""
    if isinstance(error, psycopg.Error):
        wrapped = StoreError(f"database error: {error}")
        wrapped.__cause__ = error
        return wrapped
    return error


def commit_batch(
    conn: psycopg.Connection[Any], chain_lock: int, units: list[Callable[[Tx], Any]]
) -> list[tuple[bool, Any]]:
    """Run `units` in one transaction that first takes the chain lock; (True, result) or
    (False, error) per unit. Several units each run in a savepoint, so one that raises is
    rolled back alone; a batch of one needs none. The lock is an advisory transaction lock:
    PostgreSQL releases it at COMMIT or ROLLBACK, whatever happens to this process.

    The lock comes before the first read, so every read of every unit sees all that any server
    committed before it, and nothing commits in between: writes are serialised across servers
    as SQLite serialises them across processes (BEGIN IMMEDIATE). The units run in pipeline
    mode: statements whose outcome they do not read (`Tx.run`: the ledger append, the
    projection's writes, savepoints) travel with the next one that needs an answer."""
    alone = len(units) == 1
    # One round trip: BEGIN, the lock, (the first savepoint,) and the chain head read under the
    # lock. The literal key is ours (an int); the rest is fixed text.
    statements = ["BEGIN", f"SELECT pg_advisory_xact_lock({int(chain_lock)})"]
    statements += [] if alone else ["SAVEPOINT unit"]
    outcomes: list[tuple[bool, Any]] = []
    try:
        cur = conn.execute("; ".join([*statements, CHAIN_HEAD_SQL]))
        for _ in statements:
            cur.nextset()
        head = cur.fetchone()
        with conn.pipeline() as pipeline:
            tx = PgTx(conn, None if head is None else tuple(head), pipeline)
            for index, unit in enumerate(units):
                if index:
                    tx.run("RELEASE SAVEPOINT unit")
                    tx.run("SAVEPOINT unit")
                before = tx.head
                try:
                    value = unit(tx)
                    if not alone and tx.queued:
                        tx.flush()  # its statements' errors are its own, not the next unit's
                    outcomes.append((True, value))
                except Exception as e:
                    if alone:
                        raise
                    _settle(pipeline)
                    tx.run("ROLLBACK TO SAVEPOINT unit")
                    tx.head = before  # the unit's appends are undone with it
                    outcomes.append((False, wrap(e)))
            tx.run("COMMIT")  # sent with whatever is queued when the pipeline closes
    except Exception as e:
        _roll_back(conn)
        if alone and not isinstance(e, psycopg.OperationalError):
            return [(False, wrap(e))]  # the unit's own refusal or error: nothing committed
        raise
    except BaseException:
        _roll_back(conn)
        raise
    return outcomes


def _settle(pipeline: psycopg.Pipeline) -> None:
    """Let a pipeline that a failed statement aborted take statements again (the error was
    raised already, to the unit that sent it)."""
    with contextlib.suppress(psycopg.Error):
        pipeline.sync()


def _roll_back(conn: psycopg.Connection[Any]) -> None:
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        conn.close()  # the writer reconnects before its next batch
