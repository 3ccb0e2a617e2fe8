"""A throwaway PostgreSQL cluster from the installed server binaries, for tests and benchmarks.

`initdb` refuses to run as root, so as root every server command runs as the ``postgres`` user
(``runuser -u postgres --``) in a temporary directory that user owns; as anyone else it runs as
that user. The server listens on a unix socket in that directory only (or, with ``tcp=True``,
on 127.0.0.1 too), and `Cluster.stop` stops it and removes the directory.

No port is looked up for the socket: the directory is the cluster's own, so the port only names
the socket file in it (``.s.PGSQL.5432``) and nothing else can take it. PostgreSQL cannot bind
TCP port 0 and report it, so with ``tcp=True`` a candidate port is tried and, if another process
took it first (the server log says "Address already in use"), another, a bounded number of
times.

    with running_cluster() as cluster:
        url = cluster.url()          # postgresql://postgres@/postgres?host=/tmp/...&port=...

`PHASEGATE_TEST_PG_URL` names an existing server instead; tests then use it as it is.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["Cluster", "PgUnavailable", "find_bindir", "running_cluster", "schema_url"]

URL_ENV = "PHASEGATE_TEST_PG_URL"


class PgUnavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def find_bindir() -> Path | None:
    """The newest installed server's bin directory (Debian's layout, then pg_config)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


# The unix socket's port: only a file name inside the cluster's private directory.
SOCKET_PORT = 5432
# TCP ports tried before giving up, when each was taken between the look-up and the bind.
TCP_ATTEMPTS = 5


def _candidate_port() -> int:
    """A TCP port that was free a moment ago (another process may take it before the server
    binds it: `Cluster.start` retries then)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    data: Path
    bindir: Path
    port: int
    tcp: bool
    as_postgres: bool

    def url(self, dbname: str = "postgres") -> str:
        if self.tcp:
            return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql://postgres@/{dbname}?host={quote(str(self.root))}&port={self.port}"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        return subprocess.run(
            [*prefix, *argv],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )

    def start(self, settings: dict[str, str] | None = None) -> None:
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if done.returncode != 0:
            raise PgUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        for attempt in range(1, TCP_ATTEMPTS + 1):
            if self.tcp:
                self.port = _candidate_port()
            failure = self._start_server(settings)
            if failure is None:
                return
            if not (self.tcp and "Address already in use" in failure) or attempt == TCP_ATTEMPTS:
                raise PgUnavailable(f"pg_ctl start failed: {failure}")

    def _start_server(self, settings: dict[str, str] | None) -> str | None:
        """Start the server on `self.port`; None, or why it did not start (with the log)."""
        log = self.root / "server.log"
        log.unlink(missing_ok=True)  # a failed attempt's lines must not explain the next one
        options = {
            "listen_addresses": "'127.0.0.1'" if self.tcp else "''",
            "unix_socket_directories": f"'{self.root}'",
            "port": str(self.port),
            "max_connections": "200",
            **(settings or {}),
        }
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(log),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        if done.returncode == 0:
            return None
        tail = log.read_text()[-2000:] if log.exists() else ""
        return f"{done.stderr.strip()} {tail}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(
    *, tcp: bool = False, settings: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """Start a fresh cluster; raises PgUnavailable (with the reason) when it cannot start."""
    bindir = find_bindir()
    if bindir is None:
        raise PgUnavailable(
            "no PostgreSQL server binaries (initdb) found; apt-get install -y postgresql"
        )
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="phasegate-pg-"))
    try:
        if as_postgres:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as e:
                raise PgUnavailable("running as root and there is no postgres user") from e
            os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o755)
        cluster = Cluster(root, root / "data", bindir, SOCKET_PORT, tcp, as_postgres)
        cluster.start(settings)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def schema_url(url: str, schema: str | None = None) -> tuple[str, str]:
    """A new, empty schema in the database at `url`, and a URL whose connections use it.

    Tests share one server: a schema each keeps them apart (and cheaper than a database)."""
    import psycopg

    schema = schema or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}", schema
