"""The export's readable report: the same facts as the signed document, as a PDF (fpdf2, pure
Python). Agent-written text is printed as text (a PDF has no markup to inject), reduced to the
core fonts' Latin-1 with replacements, and cut to fit its cell."""

from __future__ import annotations

import json
from typing import Any

from fpdf import FPDF

__all__ = ["render_report"]

_WIDTH = 190  # mm of an A4 page inside the margins


def _latin1(text: object, limit: int = 160) -> str:
    shown = str(text)
    shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "~"
    return shown.encode("latin-1", "replace").decode("latin-1")


def _summary(fact: dict[str, Any]) -> str:
    subject = " ".join(f"{k}={v}" for k, v in sorted(fact.get("subject", {}).items()))
    data = fact.get("data", {})
    keys = (
        *("reason", "note", "active", "version", "from_version", "to_version", "risk", "state"),
        *("name", "valid", "exit_code", "isolation", "stopped_by"),
    )
    detail = " ".join(f"{k}={json.dumps(data[k])}" for k in keys if k in data)
    return f"{subject} {detail}".strip()


def render_report(document: dict[str, Any], titles: dict[str, str]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(_WIDTH, 10, "phasegate compliance export", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    rng, cp, ver = document["range"], document["checkpoint"], document["verification"]
    for line in (
        f"Generated: {document['generated_at']}",
        f"Range: since {rng['since'] or '-'} until {rng['until'] or '-'};"
        f" seq {rng['first_seq']} to {rng['last_seq']} ({rng['count']} entries)",
        f"Signed checkpoint: size {cp['size']}, root {cp['root']}",
        f"Signing key: {document['public_key'][:60]}",
        "Verification at export: "
        + ("OK" if ver.get("ok") else f"FAILED ({ver.get('fault')}: {ver.get('message')})"),
    ):
        pdf.cell(_WIDTH, 5, _latin1(line, 200), new_x="LMARGIN", new_y="NEXT")
    _section(pdf, "Policies in force", [
        f"{p['policy_set_hash'][:16]}  seq {p['first_seq']}-{p.get('last_seq')}"
        f"  ({p['decisions']} decisions)"
        for p in document["policy_hashes"]
    ])  # fmt: skip
    for name, title in titles.items():
        rows = [
            f"#{f['seq']}  {f['ts'][:19]}  {f['actor']}  {f['type']}  {_summary(f)}"
            for f in document["facts"].get(name, [])
        ]
        _section(pdf, title, rows)
    return bytes(pdf.output())


def _section(pdf: FPDF, title: str, rows: list[str]) -> None:
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(_WIDTH, 7, _latin1(f"{title} ({len(rows)})"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 8)
    for row in rows or ["none in this range"]:
        pdf.multi_cell(_WIDTH, 4, _latin1(row, 300), new_x="LMARGIN", new_y="NEXT")
