"""The control rows as a write transaction reads them: each control refuses exactly while it is
on, and only its own refusal (the freeze does not pause promotions, nor the pause freeze)."""

from __future__ import annotations

from pathlib import Path

import pytest
from phasegate_testkit import ROOT, enforcer_at

from enforcer.errors import FrozenError, PromotionPausedError
from enforcer.process.control_rows import control_active, require_unfrozen, require_unpaused
from enforcer.service import Enforcer
from enforcer.store import Tx


async def _check(e: Enforcer) -> tuple[str | None, str | None, bool, bool]:
    """(the freeze check's code, the pause check's code, freeze on, pause on), in one read."""

    def read(tx: Tx) -> tuple[str | None, str | None, bool, bool]:
        codes: list[str | None] = []
        for check in (require_unfrozen, require_unpaused):
            try:
                check(tx)
                codes.append(None)
            except (FrozenError, PromotionPausedError) as error:
                codes.append(error.code)
        on = (control_active(tx, "freeze"), control_active(tx, "promotions_paused"))
        return codes[0], codes[1], *on

    return await e.store.read(read)


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        ("freeze", ("FROZEN", None, True, False)),
        ("promotions_paused", (None, "PROMOTION_PAUSED", False, True)),
    ],
)
async def test_each_control_refuses_while_on_and_not_after(
    tmp_path: Path, control: str, expected: tuple[str | None, str | None, bool, bool]
) -> None:
    async with enforcer_at(tmp_path) as e:
        assert await _check(e) == (None, None, False, False)  # no row yet: off
        await e.set_control(ROOT, control, True, "incident")
        assert await _check(e) == expected
        await e.set_control(ROOT, control, False, "over")
        assert await _check(e) == (None, None, False, False)  # a row that says off
