"""phasegate's process core: phases, gates, leases, attestation and the ledger. No MCP here."""

from .errors import PhasegateError
from .ledger import Ledger, LedgerEntry
from .phases import Phase
from .runtime import Runtime, open_runtime
from .verify import VerifyReport, verify_state

__all__ = [
    "Ledger",
    "LedgerEntry",
    "Phase",
    "PhasegateError",
    "Runtime",
    "VerifyReport",
    "open_runtime",
    "verify_state",
]
