"""The compliance export: a ledger range with inclusion proofs against a signed checkpoint, the
facts an auditor asks for (policies in force, approvals, exceptions, freeze and pause history,
promotions, installs, rollbacks, verification), signed as one DSSE envelope, plus a readable PDF
of the same facts; and the offline verifier that needs only the public key.

A facade-level package: it reads through the runtime and may use every layer below."""

from .bundle import EXPORT_PAYLOAD_TYPE, build_export
from .check import ExportFault, verify_export

__all__ = ["EXPORT_PAYLOAD_TYPE", "ExportFault", "build_export", "verify_export"]
