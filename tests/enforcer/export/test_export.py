"""The compliance export: the demo's state (with an approved promotion and the demo's
rollback) exports, verifies offline with only the public key, and every alteration is named;
the PDF opens and shows the sections an auditor asks for, with their rows."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from phasegate_testkit import NO_GATES
from server_kit import cli

from enforcer.config import Config
from enforcer.errors import ApprovalRequiredError
from enforcer.export.check import verify_export
from enforcer.ledger.keys import Signer, Verifier
from enforcer.model import Caller
from enforcer.policy_config import PolicyConfig
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer
from server.demo_modules import MODULE

ENVELOPE = "export.dsse.json"


AGENT = Caller("audit-agent", instance="export-test")


async def _awaiting_approval(state: Path) -> str:
    """A promotion of the demo's module that waits for a person (nothing is auto-approved
    here): the approval request's id. The demo itself promotes a LOW change without one."""
    config = Config(gates=NO_GATES, policy=PolicyConfig(auto_approve=[]))
    async with open_runtime(state, config=config) as rt:
        m = Enforcer(rt).modules
        await Enforcer(rt).task_start(AGENT, "an approved change", "T-audit")
        draft = (await m.draft_create(AGENT, "T-audit", MODULE, await _newest(m)))["draft"]
        await m.draft_write(AGENT, draft, "review.md", "# Review\n\nRead it twice.\n")
        assert (await m.draft_validate(AGENT, draft))["state"] == "VALIDATED"
        with pytest.raises(ApprovalRequiredError) as asked:
            await m.draft_promote(AGENT, draft)
        return str(asked.value.details["approval"]["id"])


async def _newest(m: Any) -> int:
    return int((await m.module_versions(MODULE))["newest"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's state (it rolls its module back), a promotion a supervisor approved, and a
    pause and resume."""
    state = tmp_path_factory.mktemp("export") / "state"
    cli("demo", "--state-dir", str(state))
    request = asyncio.run(_awaiting_approval(state))
    cli(
        "approve",
        request,
        "--note",
        "read the diff",
        "--actor",
        "auditor",
        "--state-dir",
        str(state),
    )
    cli("pause", "--reason", "audit window", "--state-dir", str(state))
    cli("resume", "--reason", "audit over", "--state-dir", str(state))
    return state


def _export(state: Path, out: Path, *extra: str) -> dict[str, object]:
    done = cli("export", "--out", str(out), "--state-dir", str(state), "--json", *extra)
    return dict(json.loads(done.stdout))


def _server_key(state: Path) -> Verifier:
    return Verifier.from_dir(state / "keys")


def _payload(bundle: Path) -> tuple[dict[str, object], dict[str, object]]:
    envelope = json.loads((bundle / ENVELOPE).read_text())
    return envelope, json.loads(base64.b64decode(envelope["payload"]))


def _rewrite(bundle: Path, envelope: dict[str, object], doc: dict[str, object]) -> None:
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    envelope["payload"] = base64.b64encode(raw).decode()
    (bundle / ENVELOPE).write_text(json.dumps(envelope))


def test_the_demos_export_verifies_offline_with_only_the_public_key(
    demo: Path, tmp_path: Path
) -> None:
    result = _export(demo, tmp_path / "bundle")
    assert result["first_seq"] == 0 and result["entries"] == int(result["last_seq"]) + 1  # type: ignore[call-overload]
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "bundle", moved)  # nothing but the bundle and the key travel
    assert verify_export(moved, _server_key(demo)) == []
    done = cli("export", "verify", str(moved), "--public-key", str(demo / "keys" / "ed25519.pub"))
    assert done.stdout.startswith("OK: the bundle verifies against the given key")


def test_one_changed_byte_of_the_payload_or_the_report_is_named(demo: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    _export(demo, bundle)
    key = _server_key(demo)
    pdf = (bundle / "report.pdf").read_bytes()
    flipped = bytearray(pdf)
    flipped[len(pdf) // 2] ^= 0x01
    (bundle / "report.pdf").write_bytes(bytes(flipped))
    assert [f.kind for f in verify_export(bundle, key)] == ["report"]
    (bundle / "report.pdf").write_bytes(pdf)

    envelope = json.loads((bundle / ENVELOPE).read_text())
    raw = bytearray(base64.b64decode(envelope["payload"]))
    at = raw.index(b"demo-agent") + 1  # the first is inside the first entry's bytes
    raw[at] ^= 0x01  # demo-agent -> ddmo-agent
    envelope["payload"] = base64.b64encode(bytes(raw)).decode()
    (bundle / ENVELOPE).write_text(json.dumps(envelope))
    kinds = {f.kind for f in verify_export(bundle, key)}
    assert {"signature", "hash"} <= kinds, kinds
    done = cli("export", "verify", str(bundle), check=False)
    assert done.returncode == 1 and "FAIL signature" in done.stdout, done.stdout


def test_an_entry_removed_from_the_range_is_named_even_when_re_signed(
    demo: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    _export(demo, bundle)
    envelope, doc = _payload(bundle)
    entries = doc["entries"]
    assert isinstance(entries, list)
    removed = entries.pop(5)
    doc["range"]["count"] -= 1  # type: ignore[index]
    _rewrite(bundle, envelope, doc)
    faults = verify_export(bundle, _server_key(demo))
    assert ("signature", None) in {(f.kind, f.seq) for f in faults}
    assert ("gap", removed["seq"]) in {(f.kind, f.seq) for f in faults}
    assert ("link", removed["seq"] + 1) in {(f.kind, f.seq) for f in faults}

    from enforcer.export.bundle import EXPORT_PAYLOAD_TYPE
    from enforcer.ledger.dsse import sign_envelope

    forger = Signer.generate("phasegate")  # a re-signed bundle does not verify under the real key
    forged = sign_envelope(forger, base64.b64decode(envelope["payload"]), EXPORT_PAYLOAD_TYPE)
    (bundle / ENVELOPE).write_text(json.dumps(forged))
    assert "signature" in {f.kind for f in verify_export(bundle, _server_key(demo))}


def test_a_range_by_time_still_proves_each_entry_against_the_signed_root(
    demo: Path, tmp_path: Path
) -> None:
    rows = json.loads(
        cli("ledger", "tail", "--limit", "4", "--state-dir", str(demo), "--json").stdout
    )
    since = rows[0]["ts"]
    result = _export(demo, tmp_path / "bundle", "--since", since)
    assert int(result["first_seq"]) > 0  # type: ignore[call-overload]
    assert verify_export(tmp_path / "bundle", _server_key(demo)) == []


def test_the_pdf_opens_and_shows_the_sections_an_auditor_asks_for(
    demo: Path, tmp_path: Path
) -> None:
    _export(demo, tmp_path / "bundle")
    pdf = pypdfium2.PdfDocument(str(tmp_path / "bundle" / "report.pdf"))
    page = pdf[0]
    image = page.render(scale=1).to_pil()
    image.save(tmp_path / "page1.png")
    assert image.size[0] > 500 and image.getbbox() is not None  # rendered, not blank
    text = "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    for heading in ("Approvals", "Rollbacks", "Promotions", "Freeze and pause history"):
        assert heading in text, text
    # The sections have rows, not only their headings: the approval and the demo's rollback.
    lines = text.splitlines()
    for heading, row in (("Approvals (1)", "approval.approved"), ("Rollbacks (1)", "rolled_back")):
        first = lines[lines.index(heading) + 1]
        assert row in first and first.startswith("#"), (heading, first)
    assert "auditor approval.approved" in text and 'note="read the diff"' in text
    assert 'reason="audit window"' in text and "Verification at export: OK" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--out", "{tmp}/b", "--state-dir", "{tmp}/none"],
        ["export", "verify", "{tmp}/missing"],
        ["export", "--since", "yesterday", "--out", "{tmp}/b", "--state-dir", "{tmp}/none"],
    ],
)
def test_bad_export_input_is_refused_with_exit_2(tmp_path: Path, argv: list[str]) -> None:
    done = cli(*[a.format(tmp=tmp_path) for a in argv], check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_exporting_into_a_directory_that_is_not_empty_is_refused(
    demo: Path, tmp_path: Path
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = cli("export", "--out", str(tmp_path / "full"), "--state-dir", str(demo), check=False)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
