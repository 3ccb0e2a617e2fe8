"""The validator sandbox against hostile validators: real subprocesses, one containment case each.

Each test asserts what stopped the validator and that the host (the caller's tree, the test's
files, its memory, its event loop, its ability to fork) is unaffected. Cases that only a namespace
can contain are skipped where the host offers none; the isolation a run got is in its report.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.errors import InvalidArgumentError
from enforcer.modules.sandbox import (
    SAFE_PATH,
    Limits,
    SandboxReport,
    best_isolation,
    run_sandboxed,
)

MiB = 1 << 20


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


async def run(
    code: str,
    workdir: Path,
    limits: Limits | None = None,
    isolation: str = "auto",
    timeout: float = 60,
) -> SandboxReport:
    """Every run is bounded twice: by its own limits and here."""
    job = run_sandboxed(py(code), workdir, limits or Limits(), isolation=isolation)
    return await asyncio.wait_for(job, timeout)


def pids_with(token: str) -> list[int]:
    """Host processes whose command line carries `token` (every one of a run's processes does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def no_floats(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and no_floats(v) for k, v in value.items())
    if isinstance(value, list):
        return all(no_floats(v) for v in value)
    return value is None or isinstance(value, str | int | bool)


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    tree = tmp_path / "draft"
    tree.mkdir()
    (tree / "module.txt").write_text("v1\n")
    return tree


@pytest.fixture
async def level() -> str:
    return await best_isolation()


@pytest.fixture
def namespaced(level: str) -> str:
    if level == "none":
        pytest.skip("no namespaces on this host: the case needs a pid or network namespace")
    return level


@pytest.fixture
def bubblewrap(level: str) -> str:
    if level != "bubblewrap":
        pytest.skip("bubblewrap does not work on this host")
    return level


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory anyone may write to, outside /tmp: only a read-only mount keeps a write out."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="phasegate-test-"))
    path.chmod(0o777)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


async def test_a_passing_validator_runs_over_a_copy_and_reports_exit_zero(
    draft: Path, level: str
) -> None:
    (draft / "check.py").write_text(
        "import pathlib\n"
        "print(pathlib.Path('module.txt').read_text(), end='')\n"
        "pathlib.Path('module.txt').write_text('changed by the validator')\n"
        "pathlib.Path('new.txt').write_text('new')\n"
    )
    job = run_sandboxed([sys.executable, "check.py"], draft)  # a script of the module itself
    report = await asyncio.wait_for(job, 60)
    assert report.passed
    assert (report.exit_code, report.signal, report.stopped_by) == (0, None, None)
    assert (report.stdout_tail, report.stdout_bytes, report.stderr_bytes) == ("v1\n", 3, 0)
    assert report.isolation == level and report.sandboxed == (level != "none")
    assert report.argv == (sys.executable, "check.py")
    assert (draft / "module.txt").read_text() == "v1\n"
    assert not (draft / "new.txt").exists()
    body = report.as_dict()
    assert no_floats(body) and json.loads(json.dumps(body)) == body
    assert body["passed"] is True and isinstance(body["duration_ms"], int)
    assert body["limits"]["timeout_ms"] == 60_000


async def test_a_failing_validator_reports_its_exit_code_and_stderr(draft: Path) -> None:
    report = await run("import sys; sys.stderr.write('3 checks failed\\n'); sys.exit(3)", draft)
    assert not report.passed
    assert (report.exit_code, report.signal, report.stopped_by) == (3, None, None)
    assert report.stderr_tail == "3 checks failed\n" and report.stderr_bytes == 16


async def test_a_validator_past_its_wall_time_is_killed_with_the_child_it_left(
    draft: Path, namespaced: str
) -> None:
    token = f"phasegate-orphan-{uuid.uuid4().hex}"
    report = await run(
        f"""
        import subprocess, sys, time
        child = [sys.executable, "-c", "import time; print(1, flush=True); time.sleep(600)"]
        # A new session, so killing the validator's process group alone would miss it.
        out = subprocess.PIPE
        orphan = subprocess.Popen(child + ["{token}"], stdout=out, start_new_session=True)
        orphan.stdout.readline()
        print("child ready", flush=True)
        time.sleep(600)
        """,
        draft,
        Limits(timeout_s=1.5),
    )
    assert report.stopped_by == "timeout" and not report.passed
    assert report.exit_code is None and report.signal == signal.SIGKILL
    assert "child ready" in report.stdout_tail
    assert 1.5 <= report.duration_s < 4.5
    assert pids_with(token) == []


async def test_a_cancelled_run_leaves_no_process_and_no_copy(draft: Path, namespaced: str) -> None:
    token = f"phasegate-cancelled-{uuid.uuid4().hex}"
    copies = set(Path(tempfile.gettempdir()).glob("phasegate-sandbox-*"))
    with pytest.raises(TimeoutError):  # wait_for cancels the run when its time is up
        await run(f"import time; time.sleep(600)  # {token}", draft, timeout=1.0)
    assert pids_with(token) == []
    assert set(Path(tempfile.gettempdir()).glob("phasegate-sandbox-*")) == copies


async def test_a_validator_past_its_memory_limit_fails_with_memory_error(draft: Path) -> None:
    report = await run("block = bytearray(1 << 30)", draft, Limits(memory_bytes=256 * MiB))
    assert not report.passed
    assert (report.exit_code, report.stopped_by) == (1, "memory")
    assert "MemoryError" in report.stderr_tail


async def test_a_fork_bomb_is_stopped_by_the_process_limit_and_the_host_still_forks(
    draft: Path, bubblewrap: str
) -> None:
    token = f"phasegate-forkbomb-{uuid.uuid4().hex}"
    started = time.monotonic()
    report = await run(
        f"import os\nwhile True:  # {token}\n    os.fork()\n",
        draft,
        Limits(processes=64, timeout_s=20),
    )
    assert report.stopped_by == "processes" and not report.passed
    assert report.exit_code == 1
    assert time.monotonic() - started < 10
    assert pids_with(token) == []
    assert subprocess.run(["true"], timeout=10).returncode == 0


async def test_writes_outside_the_copy_do_not_land(
    draft: Path, tmp_path: Path, shared_dir: Path, bubblewrap: str
) -> None:
    targets = {
        "caller": draft / "module.txt",
        "test_tmp": tmp_path / "outside.txt",
        "etc": Path("/etc") / f"phasegate-{uuid.uuid4().hex}",
        "shared": shared_dir / "written.txt",
    }
    report = await run(
        f"""
        import errno, json, sys
        results = {{}}
        for name, path in {json.dumps({k: str(v) for k, v in targets.items()})}.items():
            try:
                with open(path, "w") as f:
                    f.write("escaped")
                results[name] = "written"
            except OSError as e:
                results[name] = errno.errorcode[e.errno]
        print(json.dumps(results))
        sys.exit(9 if "written" in results.values() else 0)
        """,
        draft,
    )
    results = json.loads(report.stdout_tail)
    assert report.exit_code == 0, results
    assert results["shared"] == "EROFS"  # world-writable, yet the view is read-only
    assert (draft / "module.txt").read_text() == "v1\n"
    assert not any(path.exists() for name, path in targets.items() if name != "caller")
    assert report.filesystem == "read-only"


async def test_a_validator_running_for_root_cannot_read_the_servers_private_files(
    draft: Path, shared_dir: Path, bubblewrap: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the server is not root: the validator runs as the server's own user")
    secret = shared_dir / "signing.key"
    secret.write_text("private")
    secret.chmod(0o600)
    report = await run(f"print(open({str(secret)!r}).read())", draft)
    assert report.exit_code == 1 and "PermissionError" in report.stderr_tail
    assert "private" not in report.stdout_tail


@pytest.mark.parametrize("isolation", ["auto", "none"])
async def test_a_connection_to_a_host_listener_is_refused_unless_isolation_is_none(
    draft: Path, namespaced: str, isolation: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        report = await run(
            f"""
            import socket, sys
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
            except OSError as e:
                print(type(e).__name__)
                sys.exit(7)
            """,
            draft,
            isolation=isolation,
        )
        if isolation == "none":
            assert (report.network, report.exit_code) == ("host", 0)
            listener.accept()[0].close()  # the control: without isolation it got through
        else:
            assert (report.network, report.exit_code) == ("none", 7)
            assert report.stdout_tail.strip() in ("ConnectionRefusedError", "OSError")
            with pytest.raises(BlockingIOError):
                listener.accept()


async def test_a_hundred_megabytes_of_output_are_counted_and_only_the_tail_is_kept(
    draft: Path,
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
    report = await run(
        """
        import sys
        chunk = b"x" * 65536
        for _ in range(1600):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.write(b"END\\n")
        """,
        draft,
    )
    assert report.passed
    assert report.stdout_bytes == 100 * MiB + 4
    assert len(report.stdout_tail.encode()) == report.limits.output_bytes
    assert report.stdout_tail.endswith("xEND\n")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024


async def test_endless_output_is_stopped_at_the_output_limit(draft: Path) -> None:
    report = await run(
        "import sys\nwhile True:\n    sys.stdout.buffer.write(b'y' * 65536)\n",
        draft,
        Limits(output_limit_bytes=4 * MiB, timeout_s=20),
    )
    assert report.stopped_by == "output" and not report.passed
    assert report.stdout_bytes > 4 * MiB and report.duration_s < 10
    assert len(report.stdout_tail) <= report.limits.output_bytes


@pytest.mark.parametrize("isolation", ["auto", "none"])
async def test_the_environment_is_scrubbed(
    draft: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("PHASEGATE_TEST_SECRET", "hunter2")
    report = await run(
        "import json, os; print(json.dumps([dict(os.environ), os.getcwd()]))",
        draft,
        None,
        isolation,
    )
    env, cwd = json.loads(report.stdout_tail)
    assert env == {"PATH": SAFE_PATH, "HOME": cwd, "LANG": "C.UTF-8", "PHASEGATE_MODULE_DIR": cwd}
    assert cwd != str(draft) and not Path(cwd).exists()  # a copy, removed after the run
    assert "hunter2" not in report.stdout_tail


async def test_the_event_loop_keeps_ticking_while_a_long_validator_runs(draft: Path) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    report = await run(
        """
        import sys, time
        for _ in range(800):  # 50 MiB for the loop to read, then a quiet spell
            sys.stdout.buffer.write(b"z" * 65536)
        sys.stdout.flush()
        time.sleep(0.7)
        """,
        draft,
    )
    done.set()
    await asyncio.wait_for(ticker, 5)
    assert report.passed and report.duration_s > 0.7
    assert len(gaps) > 30 and max(gaps) < 0.5


async def test_isolation_none_reports_no_sandbox(draft: Path) -> None:
    report = await run("pass", draft, isolation="none")
    assert report.passed
    assert (report.isolation, report.sandboxed) == ("none", False)
    assert (report.network, report.filesystem) == ("host", "host")
    assert report.unenforced == (("processes",) if os.geteuid() == 0 else ())


async def test_a_validator_past_its_cpu_limit_is_stopped_by_sigxcpu(draft: Path) -> None:
    report = await run("while True:\n    pass\n", draft, Limits(cpu_s=1, timeout_s=20))
    assert (report.stopped_by, report.signal, report.exit_code) == ("cpu", signal.SIGXCPU, None)
    assert report.duration_s < 10


async def test_a_file_past_the_file_size_limit_stops_the_validator(draft: Path) -> None:
    # Python ignores SIGXFSZ, so a Python validator gets EFBIG where other programs die of it.
    report = await run(
        "open('big.bin', 'wb').write(b'0' * (2 << 20))", draft, Limits(file_bytes=1 * MiB)
    )
    assert (report.stopped_by, report.exit_code) == ("file_size", 1)
    assert "File too large" in report.stderr_tail
    dd = ["dd", "if=/dev/zero", "of=big.bin", "bs=1M", "count=2"]  # the launcher reset SIGXFSZ
    report = await asyncio.wait_for(run_sandboxed(dd, draft, Limits(file_bytes=1 * MiB)), 60)
    assert (report.stopped_by, report.signal) == ("file_size", signal.SIGXFSZ)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: run_sandboxed("python -c pass", d),
        lambda d: run_sandboxed([], d),
        lambda d: run_sandboxed(["no-such-validator-program"], d),
        lambda d: run_sandboxed(["true"], d / "missing"),
        lambda d: run_sandboxed(["true"], d, isolation="chroot"),
        lambda d: run_sandboxed(["true"], d, Limits(timeout_s=0)),
    ],
    ids=["shell string", "empty argv", "unknown program", "no tree", "unknown level", "limit"],
)
async def test_a_bad_request_is_refused_as_invalid_argument(draft: Path, call: Any) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await asyncio.wait_for(call(draft), 30)
    assert caught.value.code == "INVALID_ARGUMENT"


def test_an_interpreter_under_tmp_is_bound_back_in_below_the_private_tmp() -> None:
    """A server whose venv lives in `mktemp -d` (as CI's does) keeps its interpreter reachable:
    the sandbox's own tmpfs over /tmp would hide it otherwise (this failed the suite once)."""
    from enforcer.modules.sandbox import _rebind_under_tmpfs

    flags = _rebind_under_tmpfs(["/tmp/tmp.abc/venv", "/tmp/tmp.abc/venv/bin/x", "/usr/bin/env"])
    assert flags == [
        *("--perms", "0755", "--dir", "/tmp/tmp.abc"),
        *("--ro-bind", "/tmp/tmp.abc/venv", "/tmp/tmp.abc/venv"),
    ]
