"""The export's verification results: the test results the server ran (verify_run's
test_results.json) and every sandboxed validation of a draft, each citing its ledger entry, in
the signed document and on the PDF; an agent's own evidence is not among them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pypdfium2
from server_kit import cli

from enforcer.export.check import verify_export
from enforcer.ledger.keys import Verifier


def test_the_export_lists_the_servers_test_results_and_the_draft_validations(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cli("demo", "--state-dir", str(state))
    cli("export", "--out", str(tmp_path / "bundle"), "--state-dir", str(state))
    envelope = json.loads((tmp_path / "bundle" / "export.dsse.json").read_text())
    doc = json.loads(base64.b64decode(envelope["payload"]))

    rows = doc["facts"]["verifications"]
    kinds = [(r["type"], r["data"].get("name")) for r in rows]
    assert kinds == [("draft.validated", None), ("evidence.recorded", "test_results.json")]
    results = rows[1]["data"]
    assert results["producer"] == "server" and results["valid"] is True
    assert rows[0]["data"]["isolation"] == "bubblewrap" and rows[0]["data"]["exit_code"] == 0
    cited = {e["seq"]: e for e in doc["entries"]}
    assert all(r["seq"] in cited for r in rows)  # each fact cites an entry of the range
    assert verify_export(tmp_path / "bundle", Verifier.from_dir(state / "keys")) == []

    pdf = pypdfium2.PdfDocument(str(tmp_path / "bundle" / "report.pdf"))
    text = "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert "Verification results (2)" in text, text
    assert 'name="test_results.json"' in text and 'isolation="bubblewrap"' in text
