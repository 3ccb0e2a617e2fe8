"""The VERIFY gate's checks one at a time: a real task in VERIFY with the server's own results
for the current diff, then one column of one evidence row changed in the real SQLite projection,
so that exactly one check can refuse. Each refusal is asserted by artifact, code and reason, at
the gate and through `phase_advance` (which must leave the task in VERIFY and ledger only the
failed gate)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from phasegate_testkit import ALICE, advance_to, enforcer_at, types, verify_config
from phasegate_testkit import write_sample_project as sample

from enforcer.config import Config, GateConfig
from enforcer.errors import EvidenceInvalidError
from enforcer.model import EvidenceRecord, GateProblem, GateReport
from enforcer.phases import Phase
from enforcer.process.gates import RESERVED_SERVER_ARTIFACTS
from enforcer.process.phase_gate import read_evidence
from enforcer.process.work import task_row
from enforcer.service import Enforcer

PRODUCER_REASON = "written by the agent; only results produced by verify_run count"
SUBJECT_REASON = (
    "produced for a different diff than the current IMPLEMENT git_diff.patch: call verify_run again"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # a fast sample run
    return sample(tmp_path / "project")


def _config(project: Path, require_server: bool = True) -> Config:
    gates = (
        {}
        if require_server
        else {
            "VERIFY": GateConfig(
                artifacts=sorted(RESERVED_SERVER_ARTIFACTS), require_server_results=False
            )
        }
    )
    return Config(verify=verify_config(project), gates=gates)


@pytest.fixture
async def verified(tmp_path: Path, project: Path) -> AsyncIterator[Enforcer]:
    """A task T1 in VERIFY whose server-run results pass the gate as they stand."""
    async with enforcer_at(tmp_path / "state", _config(project)) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)
        run = await e.verify_run(ALICE, "T1")
        assert run["passed"] is True, run
        yield e


def _set(e: Enforcer, name: str, column: str, value: object) -> None:
    """Change one column of one VERIFY evidence row, through a separate connection."""
    assert column in ("producer", "subject_sha256", "epoch", "valid")
    conn = sqlite3.connect(e.store.path, isolation_level=None)
    try:
        changed = conn.execute(
            f"UPDATE evidence SET {column} = ? WHERE task = 'T1' AND phase = 'VERIFY' AND name = ?",
            (value, name),
        ).rowcount
    finally:
        conn.close()
    assert changed == 1


async def _gate(e: Enforcer) -> GateReport:
    return await e.store.read(lambda tx: e.gate.check(tx, task_row(tx, "T1")))


async def test_the_untouched_server_results_pass_the_gate(verified: Enforcer) -> None:
    report = await _gate(verified)
    assert report.passed and report.problems == ()
    assert set(report.required) == RESERVED_SERVER_ARTIFACTS


@pytest.mark.parametrize("name", sorted(RESERVED_SERVER_ARTIFACTS))
async def test_results_whose_only_fault_is_the_producer_fail_the_gate_naming_the_producer(
    verified: Enforcer, name: str
) -> None:
    e = verified
    _set(e, name, "producer", "agent")  # subject, epoch, validity and digest all still hold
    report = await _gate(e)
    assert report.problems == (GateProblem(name, "EVIDENCE_INVALID", PRODUCER_REASON),)
    before = await types(e)
    with pytest.raises(EvidenceInvalidError) as raised:
        await e.phase_advance(ALICE, "T1")
    assert raised.value.code == "EVIDENCE_INVALID"
    assert raised.value.details["gate"]["problems"] == [
        {"artifact": name, "code": "EVIDENCE_INVALID", "reason": PRODUCER_REASON}
    ]
    assert "(call verify_run)" in raised.value.hint
    assert (await e.task_status("T1")).task.phase is Phase.VERIFY
    assert (await types(e))[len(before) :] == ["evidence.gate_failed"]


@pytest.mark.parametrize("name", sorted(RESERVED_SERVER_ARTIFACTS))
async def test_results_whose_only_fault_is_the_subject_fail_the_gate_naming_the_diff(
    verified: Enforcer, name: str
) -> None:
    e = verified
    _set(e, name, "subject_sha256", "0" * 64)
    report = await _gate(e)
    assert report.problems == (GateProblem(name, "EVIDENCE_INVALID", SUBJECT_REASON),)
    with pytest.raises(EvidenceInvalidError) as raised:
        await e.phase_advance(ALICE, "T1")
    assert raised.value.details["gate"]["problems"][0]["reason"] == SUBJECT_REASON


async def test_results_with_no_subject_fail_the_gate_naming_the_diff(verified: Enforcer) -> None:
    _set(verified, "test_results.json", "subject_sha256", None)
    report = await _gate(verified)
    assert report.problems == (
        GateProblem("test_results.json", "EVIDENCE_INVALID", SUBJECT_REASON),
    )


async def test_agent_results_pass_when_the_gate_does_not_require_the_servers(
    tmp_path: Path, project: Path
) -> None:
    # The same tampered row, with `require_server_results = false` for VERIFY: only then do
    # agent-written results count, and the subject check goes with the producer check.
    async with enforcer_at(tmp_path / "state", _config(project, require_server=False)) as e:
        await e.task_start(ALICE, "t", "T1")
        await advance_to(e, ALICE, "T1", Phase.VERIFY)
        await e.verify_run(ALICE, "T1")
        for name in RESERVED_SERVER_ARTIFACTS:
            _set(e, name, "producer", "agent")
        _set(e, "test_results.json", "subject_sha256", None)
        report = await _gate(e)
        assert report.passed, report.problems
        await e.phase_advance(ALICE, "T1")
        assert (await e.task_status("T1")).task.phase is Phase.REVIEW


async def test_every_result_written_by_the_agent_is_named_not_only_the_first(
    verified: Enforcer,
) -> None:
    for name in RESERVED_SERVER_ARTIFACTS:
        _set(verified, name, "producer", "agent")
    report = await _gate(verified)
    assert report.problems == tuple(
        GateProblem(name, "EVIDENCE_INVALID", PRODUCER_REASON) for name in report.required
    )
    assert set(report.required) == RESERVED_SERVER_ARTIFACTS and len(report.required) > 1


@pytest.mark.parametrize("offset", [-1, 1], ids=["older", "later"])
async def test_a_record_from_any_other_epoch_counts_as_missing(
    verified: Enforcer, offset: int
) -> None:
    """Only the task's current epoch counts, and every stale record is named: older ones (a
    backtrack made them stale) and a later one (no move makes one; a damaged projection could)."""
    epoch = (await verified.task_status("T1")).task.epoch
    for name in RESERVED_SERVER_ARTIFACTS:
        _set(verified, name, "epoch", epoch + offset)
    report = await _gate(verified)
    reason = (
        f"recorded in epoch {epoch + offset}; the task is at epoch {epoch} after a backtrack:"
        " record it again"
    )
    assert report.problems == tuple(
        GateProblem(name, "EVIDENCE_MISSING", reason) for name in report.required
    )


async def test_every_missing_artifact_is_named_not_only_the_first(tmp_path: Path) -> None:
    gates = {"STRATEGIZE": GateConfig(artifacts=["strategy.md", "notes.md", "risks.md"])}
    async with enforcer_at(tmp_path / "state", Config(gates=gates)) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.evidence_put(ALICE, "T1", "notes.md", "- one note\n")
        report = await _gate(e)
    assert report.problems == (
        GateProblem("strategy.md", "EVIDENCE_MISSING", "not recorded"),
        GateProblem("risks.md", "EVIDENCE_MISSING", "not recorded"),
    )


async def test_read_evidence_returns_each_column_in_its_field(verified: Enforcer) -> None:
    """Every field of the record read is the column of that name, read by name through a
    separate connection (a server-run result: every column differs from its neighbours)."""
    e = verified
    _set(e, "test_results.json", "valid", 0)  # a false verdict beside a non-empty problems column
    rec = await e.store.read(lambda tx: read_evidence(tx, "T1", "VERIFY", "test_results.json"))
    missing = await e.store.read(lambda tx: read_evidence(tx, "T1", "VERIFY", "x.md"))
    conn = sqlite3.connect(e.store.path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute(
            "SELECT * FROM evidence WHERE task = 'T1' AND phase = 'VERIFY'"
            " AND name = 'test_results.json'"
        ).fetchone()
    finally:
        conn.close()
    assert rec is not None and missing is None
    assert dataclasses.asdict(rec) == {
        f.name: row[f.name] for f in dataclasses.fields(EvidenceRecord)
    } | {"valid": bool(row["valid"]), "problems": tuple(json.loads(row["problems"]))}
    assert (rec.producer, rec.valid, rec.phase) == ("server", False, "VERIFY")
    assert rec.subject_sha256 is not None and rec.subject_sha256 != rec.sha256


async def test_a_result_of_any_producer_but_the_server_fails_the_gate(verified: Enforcer) -> None:
    _set(verified, "test_results.json", "producer", "tool")  # sorts after "server"
    report = await _gate(verified)
    assert report.problems == (
        GateProblem("test_results.json", "EVIDENCE_INVALID", PRODUCER_REASON),
    )


async def test_every_invalid_artifact_is_named_not_only_the_first(verified: Enforcer) -> None:
    for name in RESERVED_SERVER_ARTIFACTS:
        _set(verified, name, "valid", 0)
    report = await _gate(verified)
    assert [(p.artifact, p.code) for p in report.problems] == [
        (name, "EVIDENCE_INVALID") for name in report.required
    ]


async def test_only_verify_demands_server_results_of_the_reserved_names(tmp_path: Path) -> None:
    """Outside VERIFY a reserved name is an artifact like any other: the agent's own counts."""
    gates = {"STRATEGIZE": GateConfig(artifacts=["build_output.log"])}
    async with enforcer_at(tmp_path / "state", Config(gates=gates)) as e:
        await e.task_start(ALICE, "t", "T1")
        rec = await e.evidence_put(ALICE, "T1", "build_output.log", "built\n")
        assert (rec.producer, rec.valid) == ("agent", True)
        report = await _gate(e)
    assert report.passed and report.problems == ()
