"""`phasegate module add|list|versions|install|rollback` as a supervisor runs them (real
subprocesses): JSON on reads, one-line refusals with exit codes, no traceback; tampering after
promotion makes install refuse and `phasegate verify` name the fault."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from module_kit import MODULE, make_module_dir, promoted_v2, tree_files
from server_kit import REPO, cli

from enforcer.ledger import canonical


def _add(state: Path, tmp: Path, source: Path, *extra: str) -> object:
    return cli(
        "module", "add", MODULE, "--state-dir", str(state), "--from", str(source),
        "--install-to", str(tmp / "live" / MODULE), *extra, "--", sys.executable, "check.py",
        check=False,
    )  # fmt: skip


def test_add_list_versions_install_and_rollback_read_and_act_as_a_supervisor(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"  # module add may create the state directory
    source = make_module_dir(tmp_path / "src")
    done = _add(state, tmp_path, source, "--timeout-s", "30", "--actor", "sue")
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    assert "skills v1 registered" in done.stdout  # type: ignore[attr-defined]
    listed = json.loads(cli("module", "list", "--state-dir", str(state), "--json").stdout)
    assert [(m["module"], m["active"], m["consistent"]) for m in listed] == [(MODULE, 1, True)]
    assert listed[0]["validator"] == [sys.executable, "check.py"] and listed[0]["timeout_s"] == 30
    text = cli("module", "versions", MODULE, "--state-dir", str(state)).stdout
    assert "active v1" in text and "imported" in text
    again = cli("module", "install", MODULE, "1", "--state-dir", str(state), "--json").stdout
    assert json.loads(again)["version"] == 1
    refused = cli("module", "rollback", MODULE, "--reason", "r", "--state-dir", str(state),
                  check=False)  # fmt: skip
    assert refused.returncode == 1 and "no earlier active version" in refused.stderr
    rows = sqlite3.connect(state / "phasegate.db").execute("SELECT entry FROM ledger").fetchall()
    actors = {json.loads(r[0])["actor"] for r in rows if b"module." in r[0]}
    assert actors == {"sue", os.environ.get("USER") or "supervisor"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["module", "versions", "nope"], "no module 'nope'"),
        (["module", "install", MODULE, "9"], "has no version 9"),
        (["module", "versions", "../x"], "module name must match"),
    ],
)
def test_refusals_are_one_line_with_a_hint_and_no_traceback(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    state = tmp_path / "state"
    _add(state, tmp_path, make_module_dir(tmp_path / "src"))
    done = cli(*argv, "--state-dir", str(state), check=False)
    assert done.returncode in (1, 2) and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "hint:" in done.stderr
    assert "module_list" not in done.stderr  # hints name commands at the terminal, not tools


def test_a_symlink_out_of_the_directory_refuses_registration_and_creates_nothing(
    tmp_path: Path,
) -> None:
    source = make_module_dir(tmp_path / "src")
    (source / "passwd").symlink_to("/etc/passwd")
    done = _add(tmp_path / "state", tmp_path, source)
    assert done.returncode == 2  # type: ignore[attr-defined]
    assert "a symlink leaving the directory" in done.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "live").exists()


def test_an_existing_install_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "live" / MODULE).mkdir(parents=True)
    done = _add(tmp_path / "state", tmp_path, make_module_dir(tmp_path / "src"))
    assert done.returncode == 2 and "exists" in done.stderr  # type: ignore[attr-defined]


async def test_a_tampered_signature_makes_install_refuse_and_verify_name_the_fault(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    install, v1, _ = await promoted_v2(state, tmp_path)
    assert "OK ledger" in cli("verify", "--state-dir", str(state)).stdout
    db = sqlite3.connect(state / "phasegate.db")
    (sha,) = db.execute(
        "SELECT attestation_sha256 FROM module_versions WHERE version = 2"
    ).fetchone()
    db.close()
    blob = state / "blobs" / "sha256" / sha[:2] / sha
    envelope = json.loads(blob.read_bytes())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 0xFF
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    blob.write_bytes(canonical.encode(envelope))

    done = cli("module", "install", MODULE, "2", "--state-dir", str(state), "--json", check=False)
    assert done.returncode == 1
    body = json.loads(done.stderr)["error"]
    assert (body["code"], body["details"]["fault"]) == ("ATTESTATION_INVALID", "signature")
    assert tree_files(install) == v1  # nothing moved
    verify = cli("verify", "--state-dir", str(state), "--json", check=False)
    assert verify.returncode == 1
    fault = json.loads(verify.stdout)
    assert fault["fault"] == "attestation" and "signature" in fault["message"]
    assert "v2" in fault["message"]
    script = [sys.executable, "scripts/integrity.py", "--state-dir", str(state)]
    ci = subprocess.run(script, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ci.returncode == 1 and "signature" in ci.stdout
