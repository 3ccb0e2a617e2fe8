"""The phase graph: every edge is data, validated once when the module loads.

>>> Phase.SPEC.next
<Phase.PLAN: 'PLAN'>
>>> classify(Phase.SPEC, Phase.THINK)
<Move.SKIP: 'skip'>
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ORDER", "Move", "Phase", "classify"]


class Phase(StrEnum):
    STRATEGIZE = "STRATEGIZE"  # the problem and objectives are being framed
    SPEC = "SPEC"  # acceptance criteria are being written
    PLAN = "PLAN"  # the steps are being laid out
    THINK = "THINK"  # edge cases are being considered
    IMPLEMENT = "IMPLEMENT"  # the change is being made; its diff is the subject of VERIFY
    VERIFY = "VERIFY"  # the server runs the tests against the current diff
    REVIEW = "REVIEW"  # the change is scored against the rubric
    PR = "PR"  # the change is summarised with risks and rollback
    MONITOR = "MONITOR"  # the change is watched after landing
    DONE = "DONE"  # terminal: nothing moves out of DONE

    @property
    def position(self) -> int:
        return ORDER.index(self)

    @property
    def next(self) -> Phase | None:
        i = self.position
        return ORDER[i + 1] if i + 1 < len(ORDER) else None


ORDER: tuple[Phase, ...] = tuple(Phase)


class Move(StrEnum):
    FORWARD = "forward"  # exactly one step on
    SKIP = "skip"  # more than one step on: refused
    BACKTRACK = "backtrack"  # to any earlier phase, with a reason
    STAY = "stay"  # to the same phase: refused as a conflict
    TERMINAL = "terminal"  # out of DONE: refused


def classify(current: Phase, target: Phase) -> Move:
    if current is Phase.DONE:
        return Move.TERMINAL
    if target is current:
        return Move.STAY
    if target.position < current.position:
        return Move.BACKTRACK
    return Move.FORWARD if target.position == current.position + 1 else Move.SKIP


def _validate() -> None:
    """One start, every phase reachable by forward steps, DONE has no exits."""
    if ORDER[0] is not Phase.STRATEGIZE or ORDER[-1] is not Phase.DONE:
        raise RuntimeError("phase graph must start at STRATEGIZE and end at DONE")
    seen: set[Phase] = {ORDER[0]}
    phase: Phase | None = ORDER[0]
    while phase is not None and phase.next is not None:
        phase = phase.next
        seen.add(phase)
    if seen != set(Phase):
        raise RuntimeError("phase graph has unreachable phases")
    if any(classify(Phase.DONE, p) is not Move.TERMINAL for p in Phase):
        raise RuntimeError("DONE must have no exits")


_validate()
