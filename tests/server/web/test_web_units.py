"""The page's small parts on their own: signed sessions and CSRF tokens, the diff parser, the
markdown renderer's refusals."""

from __future__ import annotations

import stat
from pathlib import Path

from server.web.diffs import parse_unified
from server.web.render import markdown_html
from server.web.session import Sessions


def test_the_session_secret_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    a = Sessions.from_keys(tmp_path / "keys")
    b = Sessions.from_keys(tmp_path / "keys")
    key = tmp_path / "keys" / "web-session.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    cookie, _ = a.issue("alice", now=1000)
    assert b.read(cookie, now=1001) is not None  # the same secret after a restart


def test_a_forged_tampered_or_expired_cookie_is_no_session(tmp_path: Path) -> None:
    sessions = Sessions.from_keys(tmp_path)
    cookie, session = sessions.issue("alice", now=1000, ttl_s=60)
    assert sessions.read(cookie, now=1059) == session
    assert sessions.read(cookie, now=1060) is None  # expired
    body, mac = cookie.split(".")
    assert sessions.read(body[:-2] + "AA." + mac, now=1001) is None
    assert sessions.read(body + "." + mac[:-2] + "AA", now=1001) is None
    other, _ = Sessions(b"x" * 32).issue("alice", now=1000)
    assert sessions.read(other, now=1001) is None  # another server's secret
    for junk in ("", ".", "a.b.c", "!!.??", "é.é", "x" * 5000):
        assert sessions.read(junk, now=1001) is None


def test_a_csrf_token_is_bound_to_one_session(tmp_path: Path) -> None:
    sessions = Sessions.from_keys(tmp_path)
    _, one = sessions.issue("alice", now=0)
    _, two = sessions.issue("alice", now=0)
    token = sessions.csrf(one.sid)
    assert sessions.csrf_ok(one.sid, token)
    assert not sessions.csrf_ok(two.sid, token)
    assert not sessions.csrf_ok(one.sid, None) and not sessions.csrf_ok(one.sid, "é")


def test_markdown_keeps_raw_html_images_and_script_links_as_text() -> None:
    html = markdown_html(
        "# Problem\n<script>alert(1)</script>\n\n![t](http://elsewhere/t.png)"
        " [bad](javascript:alert(1)) [ok](https://example.org) [rel](/tasks/T1)\n"
    )
    assert "<h1>Problem</h1>" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and 'href="javascript:' not in html
    assert 'href="https://example.org"' in html and 'href="/tasks/T1"' in html


DIFF = """diff --git a/calc.py b/calc.py
index 1..2 100644
--- a/calc.py
+++ b/calc.py
@@ -1,3 +1,3 @@
 def add(a, b):
-    return a - b
+    return a + b

\\ No newline at end of file
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1 @@
+<script>x</script>
"""


def test_a_unified_diff_becomes_files_of_numbered_lines() -> None:
    view = parse_unified(DIFF)
    calc, new = view["files"]
    assert (calc["path"], calc["added"], calc["removed"]) == ("calc.py", 1, 1)
    assert calc["lines"][0] == ["@", 0, 0, "@@ -1,3 +1,3 @@"]
    assert calc["lines"][1:4] == [
        [" ", 1, 1, "def add(a, b):"],
        ["-", 2, 0, "    return a - b"],
        ["+", 0, 2, "    return a + b"],
    ]
    assert calc["lines"][-1][0] == "\\"
    assert (new["path"], new["old"], new["lines"][-1]) == (
        "new.txt",
        "/dev/null",
        ["+", 0, 1, "<script>x</script>"],
    )
    assert (view["added"], view["removed"], view["cut"]) == (2, 1, False)


def test_a_diff_past_the_limit_is_cut_and_junk_is_kept_as_notes() -> None:
    assert parse_unified("+x\n" * 50, max_lines=10)["cut"] is True
    junk = parse_unified("not a diff\n@@ -1 +1 @@\nnonsense\n")
    (only,) = junk["files"]
    assert only["meta"] == ["not a diff"] and [x[0] for x in only["lines"]] == ["@", "\\"]
