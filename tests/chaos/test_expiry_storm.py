"""Chaos (b): an expiry storm. 1,000 approval requests and policy exceptions all end in the same
second (the ManualClock of the policy tests, an enforcer over a real state directory, drafts
validated by the real sandbox). One second before the instant every request is PENDING and
every exception ACTIVE, and the decisions that lean on them say so; at the instant none of them
is usable any more: approving a request or revoking an exception is CONFLICT (EXPIRED), a
promotion that leaned on a request or an ``approval`` exception is APPROVAL_REQUIRED, an
install that leaned on an ``install_windows`` exception is POLICY_DENIED. The figures (counts,
the time to decide all 1,000 after the instant) are printed; pytest -s shows them."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from modules_kit import make_module_dir
from policy_kit import ALICE, ROOT, policy_world, refusal

from enforcer.clock import rfc3339

REQUESTS = 200  # real drafts, each validated in the sandbox: the slow part
MODULES = 4  # each with EXCEPTIONS_PER_RULE exceptions of each of two rules
EXCEPTIONS_PER_RULE = 100
EXPIRY_S = 60

# Nothing is auto-approved and installs are closed all week but for a Sunday hour (the clock
# is a Thursday noon): only the requests and the exceptions open anything.
POLICY = (
    f"[policy]\nauto_approve = []\napproval_expiry_s = {EXPIRY_S}\n"
    "max_promotions_per_day = 100000\n"
    + "".join(
        f'[policy.modules.m{k}]\ninstall_windows = ["Sun 03:00-04:00"]\n' for k in range(MODULES)
    )
)


@pytest.mark.timeout(240)
async def test_a_thousand_requests_and_exceptions_ending_in_one_second_are_all_unusable(
    tmp_path: Path,
) -> None:
    figures: dict[str, object] = {}
    async with policy_world(tmp_path, POLICY) as w:
        m, e = w.e.modules, w.e
        started = time.monotonic()
        for k in range(MODULES):  # a cheap validator: the module only has to exist
            src = make_module_dir(tmp_path / f"src-m{k}", {"a.md": "# a\n"})
            await m.module_add(ROOT, f"m{k}", src, tmp_path / "live" / f"m{k}", ["/bin/true"])
        src = make_module_dir(tmp_path / "src-tiny", {"a.md": "# a\n"})
        await m.module_add(ROOT, "tiny", src, tmp_path / "live" / "tiny", ["/bin/true"])

        # The requests: opened within one second of the clock, so they expire in the same one.
        t0 = w.clock.now()
        waiting: dict[str, str] = {}  # draft -> request
        for i in range(REQUESTS):
            draft = await w.draft({f"n{i}.md": f"# note {i}\n"}, module="tiny")
            ask = await refusal(m.draft_promote(ALICE, draft))
            assert ask.code == "APPROVAL_REQUIRED", ask
            waiting[draft] = ask.details["approval"]["id"]
        instant = t0 + timedelta(seconds=EXPIRY_S)
        assert w.clock.now() == t0  # the clock did not move: one second for every request

        # The exceptions, all ending at that same instant; one draft per module leans on them.
        until = rfc3339(instant)
        exceptions: list[str] = []
        leaning: dict[str, str] = {}  # module -> draft promoted only thanks to `approval`
        for k in range(MODULES):
            for rule in ("approval", "install_windows"):
                for _ in range(EXCEPTIONS_PER_RULE):
                    granted = await e.exceptions.grant(ROOT, f"m{k}", rule, until, "storm")
                    exceptions.append(granted["id"])
            leaning[f"m{k}"] = await w.draft({"b.md": "# b\n"}, module=f"m{k}")
        figures["set_up_s"] = round(time.monotonic() - started, 2)
        figures["requests"] = len(waiting)
        figures["exceptions"] = len(exceptions)
        assert len(waiting) + len(exceptions) == 1000

        # One second before the instant: all of them are usable.
        w.clock.advance((instant - w.clock.now()).total_seconds() - 1)
        pending = {a["id"] for a in await e.approvals.listing(1000) if a["status"] == "PENDING"}
        assert set(waiting.values()) <= pending
        active = {x["id"] for x in await e.exceptions.listing() if x["status"] == "ACTIVE"}
        assert set(exceptions) <= active, len(active)
        for draft, request in waiting.items():
            check = await m.policy_check(draft, ALICE)
            assert check["decision"] == "needs_approval", check
            assert check["approval"]["id"] == request and check["approval"]["status"] == "PENDING"
        for draft in leaning.values():
            check = await m.policy_check(draft, ALICE)
            assert check["decision"] == "allow", check
            assert check["install"]["decision"] == "allow", check["install"]
        figures["usable_before"] = len(waiting) + len(exceptions)

        # The instant: nothing is usable any more.
        w.clock.advance(1)
        await e.lease_acquire(ALICE, "T1")
        codes: dict[str, int] = {}

        def count(code: str) -> None:
            codes[code] = codes.get(code, 0) + 1

        decided = time.monotonic()
        for request in waiting.values():
            err = await refusal(e.approvals.approve(ROOT, request, "too late"))
            assert err.code == "CONFLICT" and err.details.get("status") == "EXPIRED", err
            count(err.code)
        for exception in exceptions:
            err = await refusal(e.exceptions.revoke(ROOT, exception, "too late"))
            assert err.code == "CONFLICT" and err.details["status"] == "EXPIRED", err
            count(err.code)
        decide_1000_s = time.monotonic() - decided
        for draft, request in waiting.items():
            err = await refusal(m.draft_promote(ALICE, draft))
            assert err.code == "APPROVAL_REQUIRED", err
            assert err.details["approval"]["id"] != request  # a new request, not the old one
            count(err.code)
        for module, draft in leaning.items():
            err = await refusal(m.draft_promote(ALICE, draft))
            assert err.code == "APPROVAL_REQUIRED" and not err.details.get("exceptions"), err
            count(err.code)
            err = await refusal(m.module_install(ALICE, module, 1, task="T1"))
            assert err.code == "POLICY_DENIED", err
            count(err.code)
        dependents_s = time.monotonic() - decided - decide_1000_s
        assert await e.replay_equals_store()
        promoted = len(await w.ledger("promotion.promoted"))
        figures.update(
            {
                "decide_1000_after_expiry_s": round(decide_1000_s, 3),
                "dependents_refused": sum(codes.values()) - 1000,
                "dependents_s": round(dependents_s, 3),
                "refusals_by_code": codes,
                "promoted": promoted,
            }
        )
    figures["per_decision_ms"] = round(decide_1000_s * 1000 / 1000, 4)  # 1,000 decisions
    print(json.dumps(figures, indent=2))
    assert codes["CONFLICT"] == 1000
    assert codes["APPROVAL_REQUIRED"] == REQUESTS + MODULES
    assert codes["POLICY_DENIED"] == MODULES
    assert promoted == 0
