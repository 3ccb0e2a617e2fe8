"""phasegate's process core: phases, gates, leases, attestation and the ledger. No MCP here.

async with open_runtime(Path("state")) as rt:
    enforcer = Enforcer(rt)
    status = await enforcer.task_start(Caller("alice"), "Fix the parser")
"""

from .config import Config, load_config
from .errors import PhasegateError
from .integrity import IntegrityReport, check_integrity
from .ledger.entries import LedgerEntry
from .ledger.log import Ledger
from .ledger.verify import VerifyReport, verify_state
from .model import Caller
from .phases import Phase
from .runtime import Runtime, open_runtime
from .service import Enforcer, StatusReport

__all__ = [
    "Caller",
    "Config",
    "Enforcer",
    "IntegrityReport",
    "Ledger",
    "LedgerEntry",
    "Phase",
    "PhasegateError",
    "Runtime",
    "StatusReport",
    "VerifyReport",
    "check_integrity",
    "load_config",
    "open_runtime",
    "verify_state",
]
