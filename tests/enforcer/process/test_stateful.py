"""Two agents work one task at random; a model predicts every outcome.

Hypothesis drives a RuleBasedStateMachine over a real Enforcer (SQLite in a fresh temporary
directory, one event loop per machine): advances to random targets (so skips happen),
backtracks, valid and invalid evidence, lease acquire/renew/release, an admin's lease breaks and
re-baselines, prompt attestations and clock jumps past the lease TTL. After every step:

- the call succeeded or failed exactly as the model says (code included);
- no out-of-sequence transition ever happened: every `phase.advanced` entry moves one step
  forward, every `phase.backtracked` entry moves back, and the task sits where the model says;
- a refused call appended nothing but its refusal record, so an agent that does not hold the
  lease (and could not take it) never changes the task;
- the projection rebuilt from the ledger alone equals the store.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from phasegate_testkit import ALICE, BOB, INVALID, ROOT, VALID

from enforcer.clock import ManualClock, rfc3339
from enforcer.config import Config, GateConfig, LeaseConfig, LedgerConfig
from enforcer.errors import PhasegateError
from enforcer.ledger.entries import LedgerEntry
from enforcer.ledger.verify import verify_state
from enforcer.model import Caller
from enforcer.phases import ORDER, Move, Phase, classify
from enforcer.process.attestation import prompt_sha256
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

AGENTS: tuple[Caller, Caller] = (ALICE, BOB)
TTL = 60
START = datetime(2026, 1, 1, tzinfo=UTC)
ERROR_PHASES = {Phase.VERIFY, Phase.REVIEW, Phase.MONITOR}
# VERIFY's gate is an ordinary artifact here, so the machine can reach DONE without test runs.
# Every refusal is its own entry (no coalescing window): the machine models entries per step;
# coalescing has its own tests (test_refusals.py).
CONFIG = Config(
    leases=LeaseConfig(ttl_s=TTL),
    ledger=LedgerConfig(refusal_window_s=0),
    gates={"VERIFY": GateConfig(artifacts=["verify_notes.md"], require_server_results=False)},
)
REQUIRED: dict[Phase, str] = {p: name for p, (name, _) in VALID.items()}
REQUIRED[Phase.VERIFY] = "verify_notes.md"
CONTENT: dict[str, tuple[str, str]] = {name: (text, INVALID[name]) for name, text in VALID.values()}
CONTENT["verify_notes.md"] = ("ran the suite by hand\n", " \n")
NAMES = sorted(CONTENT)
PROMPTS = ["header A\nbe careful\n", "header B\nbe quick\n", "header A  \r\nbe careful\r\n\r\n"]
REFUSALS = {
    "lease.contended",
    "lease.expired",
    "phase.skip_blocked",
    "evidence.gate_failed",
    "phase.advance_blocked",
}
RECORD_OF = {
    "LEASE_HELD": ["lease.contended"],
    "LEASE_EXPIRED": ["lease.expired"],
    "PHASE_SKIP": ["phase.skip_blocked"],
    "EVIDENCE_MISSING": ["evidence.gate_failed"],
    "EVIDENCE_INVALID": ["evidence.gate_failed"],
    "PROMPT_DRIFT": ["phase.advance_blocked"],
}

agents = st.sampled_from([0, 0, 1])  # alice does most of the work; bob interferes
targets = st.sampled_from(ORDER)


@dataclass
class LeaseModel:
    holder: int | None
    token: int
    expires: datetime | None


class GRANT:
    """Marker: the guard takes a free lease for the caller."""


class TaskMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="phasegate-stateful-"))
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock(START)
        self.cm = open_runtime(self.dir, config=CONFIG, clock=self.clock)
        self.e = Enforcer(self.loop.run_until_complete(self.cm.__aenter__()))
        self.closed = False
        self.seen = 0
        # The model.
        self.phase = Phase.STRATEGIZE
        self.epoch = 0
        self.leases: dict[Phase, LeaseModel] = {}
        self.evidence: dict[tuple[Phase, str], tuple[int, bool]] = {}
        self.baseline: dict[Phase, tuple[str, int]] = {}  # phase -> (sha, version)
        self.last_sha: dict[Phase, str] = {}
        self.drift: dict[Phase, str | None] = {}
        self.known_token: dict[int, int] = {}
        self.run(self.e.task_start(ALICE, "stateful", "T1"))
        self._grant(0)
        self.expect(None, None, ["task.started", "lease.acquired"])

    def teardown(self) -> None:
        try:
            if not self.closed:
                self.loop.run_until_complete(self.cm.__aexit__(None, None, None))
                self.closed = True
                assert verify_state(self.dir).entries >= self.seen  # the ledger verifies
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ plumbing

    def run(self, coro: Coroutine[Any, Any, Any]) -> tuple[Any, str | None]:
        try:
            return self.loop.run_until_complete(coro), None
        except PhasegateError as err:
            return None, err.code

    def new_entries(self) -> list[LedgerEntry]:
        rows = self.loop.run_until_complete(
            self.e.store.read(
                lambda tx: tx.all(
                    "SELECT seq, prev, leaf_hash, entry FROM ledger WHERE seq >= ? ORDER BY seq",
                    (self.seen,),
                )
            )
        )
        found = [LedgerEntry.from_row(*r) for r in rows]
        self.seen += len(found)
        return found

    def expect(self, got: str | None, want: str | None, types: list[str]) -> None:
        """The call ended with code `want` (None: success) and appended exactly `types`."""
        assert got == want, f"expected {want}, got {got}"
        event(f"outcome: {want or 'ok'}")
        event(f"reached: {self.phase.value}")
        new = self.new_entries()
        assert [x.type for x in new] == types
        if want is not None:
            assert all(x.type in REFUSALS for x in new), "a refused call changed the task"
        for x in new:
            if x.type == "phase.advanced":
                src, dst = Phase(x.data["from"]), Phase(x.data["to"])
                assert dst.position == src.position + 1, f"out of sequence: {src} -> {dst}"
            elif x.type == "phase.backtracked":
                src, dst = Phase(x.data["from"]), Phase(x.data["to"])
                assert dst.position < src.position, f"not a backtrack: {src} -> {dst}"

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def active(self, lease: LeaseModel | None) -> bool:
        return (
            lease is not None
            and lease.holder is not None
            and lease.expires is not None
            and lease.expires > self.now
        )

    def _grant(self, agent: int, phase: Phase | None = None) -> None:
        phase = phase or self.phase
        prev = self.leases.get(phase)
        token = (prev.token if prev else 0) + 1
        self.leases[phase] = LeaseModel(agent, token, self.now + timedelta(seconds=TTL))
        self.known_token[agent] = token

    def guard(self, agent: int, token: int | None) -> str | type[GRANT] | None:
        """The lease check of a mutating call: an error code, GRANT, or None (already held)."""
        row = self.leases.get(self.phase)
        if token is not None and (row is None or row.token != token or row.holder is None):
            if row is not None and row.token == token:
                event("a token whose lease ended is refused")
            return "STALE_TOKEN"
        if row is not None and row.holder is not None:
            if row.holder == agent:
                return None if self.active(row) else "LEASE_EXPIRED"
            if self.active(row):
                return "LEASE_HELD"
        return GRANT

    def token_for(self, agent: int, use_token: bool) -> int | None:
        return self.known_token.get(agent) if use_token else None

    def hand_over(self, agent: int, new: Phase) -> None:
        old = self.leases[self.phase]
        assert old.holder == agent
        old.holder, old.expires = None, None
        if new is not Phase.DONE and not self.active(self.leases.get(new)):
            self._grant(agent, new)

    def gate_error(self) -> str | None:
        name = REQUIRED[self.phase]
        rec = self.evidence.get((self.phase, name))
        if rec is None or rec[0] != self.epoch:
            return "EVIDENCE_MISSING"
        return None if rec[1] else "EVIDENCE_INVALID"

    # ------------------------------------------------------------ rules

    @initialize(start=targets)
    def alice_brings_the_task_to(self, start: Phase) -> None:
        """Begin anywhere in the graph (every step on the way checked like any other)."""
        while self.phase.position < start.position:
            self.work(0)

    @rule(agent=agents, to=st.none() | targets, use_token=st.booleans())
    def advance(self, agent: int, to: Phase | None, use_token: bool) -> None:
        token = self.token_for(agent, use_token)
        to_arg = None if to is None else to.value
        report, code = self.run(self.e.phase_advance(AGENTS[agent], "T1", to_arg, token=token))
        self.answer_is_what_status_reads(report, code)
        if self.phase is Phase.DONE:
            return self.expect(code, "OUT_OF_PHASE", [])
        target = self.phase.next if to is None else to
        assert target is not None
        move = classify(self.phase, target)
        if move in (Move.BACKTRACK, Move.STAY):
            return self.expect(code, "INVALID_ARGUMENT", [])
        g = self.guard(agent, token)
        if isinstance(g, str):
            return self.expect(code, g, RECORD_OF.get(g, []))
        if move is Move.SKIP:
            return self.expect(code, "PHASE_SKIP", RECORD_OF["PHASE_SKIP"])
        gate = self.gate_error()
        if gate is not None:
            return self.expect(code, gate, RECORD_OF[gate])
        if self.drift.get(self.phase) == "ERROR":
            return self.expect(code, "PROMPT_DRIFT", RECORD_OF["PROMPT_DRIFT"])
        types = ["lease.acquired"] if g is GRANT else []
        if g is GRANT:
            self._grant(agent)
        self.hand_over(agent, target)
        self.phase = target
        self.expect(code, None, [*types, "phase.advanced"])

    @rule(agent=agents, to=targets, use_token=st.booleans())
    def backtrack(self, agent: int, to: Phase, use_token: bool) -> None:
        token = self.token_for(agent, use_token)
        report, code = self.run(
            self.e.phase_backtrack(AGENTS[agent], "T1", to.value, "try again", token=token)
        )
        self.answer_is_what_status_reads(report, code)
        if classify(self.phase, to) is not Move.BACKTRACK:
            return self.expect(code, "INVALID_ARGUMENT", [])
        g = self.guard(agent, token)
        if isinstance(g, str):
            return self.expect(code, g, RECORD_OF.get(g, []))
        types = ["lease.acquired"] if g is GRANT else []
        if g is GRANT:
            self._grant(agent)
        self.hand_over(agent, to)
        self.phase, self.epoch = to, self.epoch + 1
        self.expect(code, None, [*types, "phase.backtracked"])

    def answer_is_what_status_reads(self, report: Any, code: str | None) -> None:
        """A move answers with the status it built in its transaction, without reading it back:
        it must be exactly what task_status reads afterwards."""
        if code is None:
            after, _ = self.run(self.e.task_status("T1"))
            assert report.as_dict() == after.as_dict()

    def lease_answer_is_what_is_stored(self, lease: Any, code: str | None) -> None:
        """A lease answer is built from the entry just appended, not read back: it must be
        exactly the lease row the projection holds."""
        if code is None:
            now = rfc3339(self.now)
            stored, _ = self.run(
                self.e.store.peek(lambda tx: self.e.leases.row(tx, "T1", lease.phase))
            )
            assert stored is not None and lease.as_dict() == stored.view(now).as_dict()

    def _put(self, agent: int, name: str, valid: bool, use_token: bool) -> None:
        token = self.token_for(agent, use_token)
        content = CONTENT[name][0 if valid else 1]
        rec, code = self.run(self.e.evidence_put(AGENTS[agent], "T1", name, content, token=token))
        if self.phase is Phase.DONE:
            return self.expect(code, "OUT_OF_PHASE", [])
        g = self.guard(agent, token)
        if isinstance(g, str):
            return self.expect(code, g, RECORD_OF.get(g, []))
        types = ["lease.acquired"] if g is GRANT else []
        if g is GRANT:
            self._grant(agent)
        self.evidence[(self.phase, name)] = (self.epoch, valid)
        self.expect(code, None, [*types, "evidence.recorded"])
        assert rec.valid is valid and rec.epoch == self.epoch

    @rule(agent=agents, valid=st.booleans(), use_token=st.booleans())
    def put_required(self, agent: int, valid: bool, use_token: bool) -> None:
        name = REQUIRED.get(self.phase, "verify_notes.md")
        self._put(agent, name, valid, use_token)

    @rule(agent=agents, name=st.sampled_from(NAMES), valid=st.booleans())
    def put_any(self, agent: int, name: str, valid: bool) -> None:
        self._put(agent, name, valid, False)

    @rule(agent=agents)
    def work(self, agent: int) -> None:
        """What a diligent agent does: record the phase's artifact, valid, then advance."""
        self.put_required(agent, True, False)
        self.advance(agent, None, False)

    @rule(agent=agents)
    def change_prompt_then_work(self, agent: int) -> None:
        """An agent whose prompt changed mid-phase tries to move on (drift WARN or ERROR)."""
        self.attest(agent, PROMPTS[0], False)
        self.attest(agent, PROMPTS[1], False)
        self.work(agent)

    @rule(agent=agents, prompt=st.sampled_from(PROMPTS), use_token=st.booleans())
    def attest(self, agent: int, prompt: str, use_token: bool) -> None:
        token = self.token_for(agent, use_token)
        result, code = self.run(self.e.prompt_attest(AGENTS[agent], "T1", prompt, token=token))
        g = self.guard(agent, token)
        if isinstance(g, str):
            return self.expect(code, g, RECORD_OF.get(g, []))
        types = ["lease.acquired"] if g is GRANT else []
        if g is GRANT:
            self._grant(agent)
        sha = prompt_sha256(prompt)
        base = self.baseline.get(self.phase)
        if base is None:
            self.baseline[self.phase] = (sha, 1)
            self.last_sha[self.phase] = sha
            self.drift[self.phase] = None
            types.append("prompt.baseline_set")
            status = "baseline"
        elif base[0] == sha:
            status = "match"
        else:
            self.last_sha[self.phase] = sha
            self.drift[self.phase] = "ERROR" if self.phase in ERROR_PHASES else "WARN"
            types.append("prompt.drift")
            status = "drift"
        self.expect(code, None, types)
        assert result.status == status

    @rule(agent=agents, ttl=st.none() | st.sampled_from([1, TTL, 5 * TTL]))
    def acquire(self, agent: int, ttl: int | None) -> None:
        lease, code = self.run(self.e.lease_acquire(AGENTS[agent], "T1", ttl))
        self.lease_answer_is_what_is_stored(lease, code)
        row = self.leases.get(self.phase)
        if row is not None and row.holder is not None and self.active(row):
            if row.holder == agent:
                self.expect(code, None, [])
                assert lease.fencing_token == row.token
                return
            return self.expect(code, "LEASE_HELD", RECORD_OF["LEASE_HELD"])
        self._grant(agent)
        self.leases[self.phase].expires = self.now + timedelta(seconds=ttl or TTL)
        self.expect(code, None, ["lease.acquired"])
        assert lease.fencing_token == self.leases[self.phase].token

    @rule(agent=agents)
    def renew(self, agent: int) -> None:
        lease, code = self.run(self.e.lease_renew(AGENTS[agent], "T1"))
        self.lease_answer_is_what_is_stored(lease, code)
        row = self.leases.get(self.phase)
        if row is None or row.holder is None:
            return self.expect(code, "LEASE_REQUIRED", [])
        if row.holder != agent:
            if self.active(row):
                return self.expect(code, "LEASE_HELD", RECORD_OF["LEASE_HELD"])
            return self.expect(code, "LEASE_REQUIRED", [])
        if not self.active(row):
            return self.expect(code, "LEASE_EXPIRED", RECORD_OF["LEASE_EXPIRED"])
        row.expires = self.now + timedelta(seconds=TTL)
        self.expect(code, None, ["lease.renewed"])

    @rule(agent=agents)
    def release(self, agent: int) -> None:
        result, code = self.run(self.e.lease_release(AGENTS[agent], "T1"))
        row = self.leases.get(self.phase)
        mine = row is not None and row.holder == agent
        if mine:
            assert row is not None
            row.holder, row.expires = None, None
        self.expect(code, None, ["lease.released"] if mine else [])
        assert result["released"] is mine

    @rule()
    def admin_breaks_the_lease(self) -> None:
        result, code = self.run(self.e.lease_break(ROOT, "T1", "supervisor"))
        row = self.leases.get(self.phase)
        held = row is not None and row.holder is not None
        if held:
            assert row is not None
            row.holder, row.expires = None, None
        self.expect(code, None, ["lease.broken"] if held else [])
        assert result["broken"] is held

    @rule(agent=agents)
    def a_broken_holder_comes_back_with_its_old_token(self, agent: int) -> None:
        self.admin_breaks_the_lease()
        self.put_required(agent, True, True)

    @rule()
    def admin_rebaselines(self) -> None:
        _, code = self.run(self.e.prompt_rebaseline(ROOT, "T1", "accepted"))
        sha = self.last_sha.get(self.phase)
        if sha is None:
            return self.expect(code, "NOT_FOUND", [])
        version = self.baseline[self.phase][1] + 1
        self.baseline[self.phase] = (sha, version)
        self.drift[self.phase] = None
        self.expect(code, None, ["prompt.rebaselined"])

    @rule(seconds=st.sampled_from([1, TTL // 2, TTL + 1, 5 * TTL]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # ------------------------------------------------------------ invariants

    @invariant()
    def the_store_is_what_the_model_and_the_ledger_say(self) -> None:
        status = self.loop.run_until_complete(self.e.task_status("T1"))
        assert (status.task.phase, status.task.epoch) == (self.phase, self.epoch)
        assert status.drift == self.drift.get(self.phase)
        rows = self.loop.run_until_complete(
            self.e.store.read(
                lambda tx: tx.all("SELECT phase, actor, token, expires_at FROM leases")
            )
        )
        stored = {Phase(r[0]): (r[1], r[2], r[3]) for r in rows}
        modelled = {
            phase: (
                None if m.holder is None else AGENTS[m.holder].actor,
                m.token,
                None if m.expires is None else rfc3339(m.expires),
            )
            for phase, m in self.leases.items()
        }
        assert stored == modelled
        evidence = self.loop.run_until_complete(
            self.e.store.read(lambda tx: tx.all("SELECT phase, name, epoch, valid FROM evidence"))
        )
        assert {(Phase(r[0]), r[1]): (r[2], bool(r[3])) for r in evidence} == self.evidence
        assert self.loop.run_until_complete(self.e.replay_equals_store())


TaskMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTwoAgentsOnOneTask = TaskMachine.TestCase


def test_the_model_knows_the_gate_of_every_phase_but_done() -> None:
    assert set(REQUIRED) == set(ORDER) - {Phase.DONE}
