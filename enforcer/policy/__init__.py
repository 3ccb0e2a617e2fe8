"""The policy: risk classes, forbidden and locked paths, approvals, limits, windows, exceptions.

It implements the governed modules' hook (`modules.policy_hook.PolicyHook`) over the
``[policy]`` section of ``phasegate.toml`` (DESIGN.md, Policy and approvals), re-read on every
decision. It may use `modules/`, `process/`, `ledger/`, `store/` and the leaves.

    policy = Policy(PolicySource(config.policy, config_file), clock)
    approvals = Approvals(work, policy)        # the admin's queue: approve, reject
    exceptions = Exceptions(work, policy)      # time-bound lifts of one rule for one module
"""

from .approving import Approvals
from .engine import Policy
from .excepting import Exceptions
from .rules import PolicySet
from .source import PolicySource

__all__ = ["Approvals", "Exceptions", "Policy", "PolicySet", "PolicySource"]
