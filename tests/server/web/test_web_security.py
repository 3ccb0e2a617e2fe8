"""The page's security over real HTTP against `phasegate ui` (a subprocess): sign-in, the session
cookie, CSRF on every form, viewers see and admins act, a strict CSP, hostile text escaped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from server_kit import cli, ledger_rows, make_sample_project, toml_text
from web_kit import TOKENS, Site, actors_toml, csrf_of, signed_in, site

from enforcer.config import load_config
from enforcer.model import Caller
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

HOSTILE = (
    "# Problem\n<script>window.pwned = 1</script>\n\n"
    '# Objectives\n- <img src=x onerror="window.pwned = 2"> [x](javascript:alert(1))\n'
)


async def _seed(state_dir: Path) -> None:
    config = load_config(None, state_dir=state_dir)
    async with open_runtime(state_dir, config=config) as rt:
        e = Enforcer(rt)
        me = Caller("bot", "operator", "seed")
        await e.task_start(me, "Title <b>bold</b> & <script>x</script>", "T1")
        await e.evidence_put(me, "T1", "strategy.md", HOSTILE)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("ui")
    sample = make_sample_project(tmp / "sample")
    (tmp / "state").mkdir()
    (tmp / "state" / "phasegate.toml").write_text(toml_text(sample, actors_toml()))
    asyncio.run(_seed(tmp / "state"))
    with site(tmp, sample, "ui") as s:
        yield s


def test_without_a_cookie_every_page_sends_the_browser_to_sign_in(ui: Site) -> None:
    with httpx2.Client(base_url=ui.base) as anon:
        for path in ("/", "/tasks/T1", "/ledger", "/controls"):
            r = anon.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/signin?next="), path
        page = anon.get("/", follow_redirects=True)
        assert page.status_code == 200 and 'name="token"' in page.text
        assert anon.get("/?format=json").status_code == 401
        assert anon.get("/events").status_code == 401
    with httpx2.Client(base_url=ui.base, cookies={"phasegate_session": "e30.AAAA"}) as forged:
        assert forged.get("/").status_code == 303


def test_sign_in_sets_an_httponly_samesite_strict_cookie_with_an_expiry(ui: Site) -> None:
    with httpx2.Client(base_url=ui.base) as client:
        form = client.get("/signin")
        wrong = client.post("/signin", data={"csrf": csrf_of(form.text), "token": "nope"})
        assert wrong.status_code == 401 and "not one this server knows" in wrong.text
        no_csrf = client.post("/signin", data={"token": TOKENS["alice"]})
        assert no_csrf.status_code == 403
        done = client.post("/signin", data={"csrf": csrf_of(form.text), "token": TOKENS["alice"]})
        assert done.status_code == 303
    cookie = next(
        v for k, v in done.headers.multi_items() if k == "set-cookie" and "_session=" in v
    ).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie


def test_every_response_carries_a_strict_content_security_policy(ui: Site) -> None:
    with signed_in(ui.base, "vic") as (client, _):
        for path in ("/", "/tasks/T1", "/signin", "/static/app.css"):
            csp = client.get(path).headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_a_viewer_sees_but_a_viewers_post_is_403_and_nothing_is_ledgered(ui: Site) -> None:
    with signed_in(ui.base, "vic") as (client, csrf):
        assert "T1" in client.get("/").text
        before = len(ledger_rows(ui.state_dir))
        for path in ("/controls/freeze/on", "/controls/pause/on", "/tasks/T1/lease/break"):
            r = client.post(path, data={"csrf": csrf, "reason": "viewer tries"})
            assert r.status_code == 403, path
        assert len(ledger_rows(ui.state_dir)) == before


def test_a_post_without_or_with_a_wrong_csrf_token_is_403(ui: Site) -> None:
    with signed_in(ui.base, "alice") as (admin, csrf), signed_in(ui.base, "alice") as (_, other):
        before = len(ledger_rows(ui.state_dir))
        for data in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": other}):
            r = admin.post("/controls/pause/on", data={**data, "reason": "r"})
            assert r.status_code == 403, data
        assert len(ledger_rows(ui.state_dir)) == before
    with httpx2.Client(base_url=ui.base) as anon:
        r = anon.post("/controls/pause/on", data={"csrf": csrf, "reason": "r"})
        assert r.status_code == 403
    assert len(ledger_rows(ui.state_dir)) == before


def test_an_admins_action_goes_through_the_enforcer_and_is_ledgered_with_the_actor(
    ui: Site,
) -> None:
    with signed_in(ui.base, "alice") as (admin, csrf):
        data = {"csrf": csrf, "reason": "audit", "back": "/x"}
        r = admin.post("/controls/pause/on", data=data)
        assert r.status_code == 303 and r.headers["location"] == "/x"
        entry = ledger_rows(ui.state_dir)[-1]
        assert entry["type"] == "control.pause_changed" and entry["actor"] == "alice"
        assert entry["data"] == {"control": "promotions_paused", "active": True, "reason": "audit"}
        status = cli("status", "--json", "--state-dir", str(ui.state_dir)).stdout
        assert '"promotions_paused": true' in status
        off = admin.post("/controls/pause/off?format=json", data={"csrf": csrf, "reason": "ok"})
        assert off.status_code == 200 and off.json()["promotions_paused"] is False
        refused = admin.post("/controls/pause/on", data={"csrf": csrf, "reason": ""})
        assert refused.status_code == 400  # the enforcer's INVALID_ARGUMENT, as in the CLI


def test_agent_written_html_in_titles_and_evidence_is_shown_as_text(ui: Site) -> None:
    with signed_in(ui.base, "vic") as (client, _):
        html = client.get("/tasks/T1").text
        board = client.get("/").text
    assert "<script>window.pwned" not in html and "<script>x</script>" not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
    assert "<img" not in html and 'href="javascript:' not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in board


def test_each_page_has_a_json_twin(ui: Site) -> None:
    with signed_in(ui.base, "vic") as (client, _):
        board = client.get("/?format=json").json()
        timeline = client.get("/tasks/T1?format=json").json()
        ledger = client.get("/ledger?format=json").json()
        controls = client.get("/controls?format=json").json()
        missing = client.get("/tasks/NOPE?format=json")
    (task,) = board["tasks"]
    assert task["task"] == "T1" and task["phase"] == "STRATEGIZE"
    assert task["holder"] == "bot/seed" and task["last_type"] == "evidence.recorded"
    assert {"drift", "lease_expires_at", "last_activity"} <= set(task)
    assert [e["type"] for e in timeline["ledger"]][:2] == ["task.started", "lease.acquired"]
    assert timeline["evidence"][0]["content"]["kind"] == "markdown"
    assert ledger["verification"]["ok"] is True and ledger["checkpoint"]["size"] >= 1
    assert controls["controls"]["frozen"] is False
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_ui_refuses_a_directory_without_state(tmp_path: Path) -> None:
    done = cli("ui", "--state-dir", str(tmp_path / "none"), check=False)
    assert done.returncode == 2 and "no phasegate state" in done.stderr
    assert not (tmp_path / "none").exists()


def test_an_admin_breaks_a_lease_and_signs_out(ui: Site) -> None:
    with signed_in(ui.base, "alice") as (admin, csrf):
        r = admin.post("/tasks/T1/lease/break", data={"csrf": csrf, "reason": "agent gone"})
        assert r.status_code == 303
        entry = ledger_rows(ui.state_dir)[-1]
        assert (entry["type"], entry["actor"], entry["data"]["reason"]) == (
            "lease.broken",
            "alice",
            "agent gone",
        )
        assert admin.post("/signout", data={"csrf": csrf}).status_code == 303
        assert admin.get("/").status_code == 303  # the cookie is gone: sign in again
