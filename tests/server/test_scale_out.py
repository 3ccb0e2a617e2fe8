"""Scale-out (DESIGN.md, Scale-out; issue 17's "Must show"): four `phasegate serve --http`
processes over one PostgreSQL database and one state directory, 32 agents — MCP SDK
streamable-HTTP clients, each with its own bearer token — four on every task, one on each
server. One server is SIGKILLed mid-run. Afterwards, from the ledger alone: it verifies
(`phasegate verify --store`), seq is contiguous, no (task, phase) was ever leased to two holders
at once, no write landed under a stale or expired lease, every acknowledged call is there, the
killed server's agents' leases were taken over once their TTL passed, and the other servers
kept serving."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scale_checks import check_acks, check_ledger, read_entries
from scale_kit import Agent, Deadline, http_servers, run_agent, scale_toml
from server_kit import REPO

SERVERS, AGENTS, GROUPS = 4, 32, 8
TTL_S = 2
RUN_S = 8.0  # at least this long before the kill; then until the dead agents' TTL is long past
WAIT_S = 90.0  # bound on waiting for server 0's agents to be at work (a loaded host is slow)


async def wait_for(predicate: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


# The MCP SDK's HTTP client, when its server is killed mid-call, leaves coroutines of its own
# transport never awaited; Python reports them as unraisable warnings, which are not ours.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <coroutine object StreamableHTTPTransport._run_request_post"
    ":pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <coroutine object connect_tcp.<locals>.try_connect"
    ":pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <coroutine object StreamableHTTPTransport.post_writer"
    ":pytest.PytestUnraisableExceptionWarning",
)
@pytest.mark.timeout(300)
async def test_four_servers_and_32_agents_keep_one_ledger_and_one_holder_through_a_kill(
    tmp_path: Path, pg_url: str
) -> None:
    names = [f"agent{k:02d}" for k in range(AGENTS)]
    state = tmp_path / "state"
    state.mkdir()
    (state / "phasegate.toml").write_text(scale_toml(names, ttl_s=TTL_S))
    with http_servers(state, pg_url, SERVERS, tmp_path) as fleet:
        # Agent k works group k % 8 on server k // 8: the four agents of a task sit on four
        # different servers. Those on servers 1-3 hand the task on after every move; those on
        # server 0 (killed) keep it, so they hold leases when it dies.
        agents = [
            Agent(name, fleet.urls[k // GROUPS], release_after_advance=k >= GROUPS)
            for k, name in enumerate(names)
        ]
        tasks = {
            a.name: [f"G{k % GROUPS}-{n:03d}" for n in range(200)] for k, a in enumerate(agents)
        }
        started = time.monotonic()
        deadline = Deadline(started + WAIT_S + RUN_S)
        running = [asyncio.ensure_future(run_agent(a, tasks[a.name], deadline)) for a in agents]
        doomed = [a for a in agents if a.url == fleet.urls[0]]
        # Kill server 0 after RUN_S, once two of its agents have moved a task on (each then
        # holds the lease of the phase it moved to).
        await wait_for(
            lambda: (
                (
                    time.monotonic() - started >= RUN_S
                    and sum(any(k.tool == "phase_advance" for k in a.acks) for a in doomed) >= 2
                )
                or any(t.done() for t in running)
            ),
            "server 0's agents to be working",
            WAIT_S,
        )
        await asyncio.to_thread(fleet.kill, 0)
        killed_at = time.monotonic()
        # The others work on until well past the dead agents' TTL, however loaded the host.
        deadline.at = killed_at + 3 * TTL_S + 4
        await asyncio.wait_for(asyncio.gather(*running), 3 * TTL_S + 64)
    # Every server but the killed one has shut down in order (a final checkpoint each).

    verify = subprocess.run(
        [sys.executable, "-m", "server.cli", "verify", "--state-dir", str(state)]
        + ["--store", pg_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    entries = read_entries(state, pg_url)
    report = check_ledger(entries)
    checked = check_acks(entries, agents)

    survivors = [a for a in agents if a not in doomed]
    assert all(a.lost_at is not None for a in doomed)
    assert all(a.lost_at is None for a in survivors), [a.name for a in survivors if a.lost_at]
    served_after = sum(
        1 for a in survivors for k in a.acks if k.tool == "phase_advance" and k.at > killed_at
    )
    assert served_after >= 5, served_after
    dead = {a.name for a in doomed}
    assert any(old in dead for _, old, _ in report.takeovers), report.takeovers
    refusals = {code for a in agents for code in a.refusals}
    assert refusals <= {"LEASE_HELD", "STALE_TOKEN", "LEASE_EXPIRED", "CONFLICT"}, refusals
    assert sum(a.refusals.get("STALE_TOKEN", 0) for a in agents) > 0
    assert report.transitions >= 30 and checked >= 100, (report, checked)
    print(
        f"\n{report.entries} entries, {report.transitions} transitions, {report.grants} grants,"
        f" {len(report.takeovers)} takeovers after expiry, {checked} acknowledged calls checked,"
        f" {served_after} advances served after the kill"
    )
