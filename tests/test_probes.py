"""The fault probes (scripts/probe_faults.py) run bounded, over real `phasegate serve` processes:
SIGKILLs mid-stream lose no acknowledged call and every verify passes; servers contending for
one task commit no write outside the lease that was current (0 fencing violations)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def probe(*args: str, tmp: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "probe_faults.py"), *args, "--dir", str(tmp)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_sigkills_mid_stream_lose_no_acknowledged_call_and_verify_passes(tmp_path: Path) -> None:
    out = probe("kill", "--kills", "4", "--window", "1.0", tmp=tmp_path)
    assert " 0 lost;" in out and "4/4 verify runs passed" in out, out


def test_servers_contending_for_one_task_commit_no_write_outside_the_current_lease(
    tmp_path: Path,
) -> None:
    out = probe("contend", "--agents", "4", "--seconds", "3", tmp=tmp_path)
    assert "0 fencing violations" in out and "verify ok" in out, out


def test_the_fencing_check_finds_a_write_under_a_lease_that_had_ended() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from probe_faults import fencing_violations

    subject = {"task": "C1", "phase": "STRATEGIZE"}

    def acquired(seq: int, token: int, actor: str) -> dict[str, object]:
        data = {"token": token, "holder_actor": actor, "expires_at": "2026-01-01T00:01:00Z"}
        return {"seq": seq, "type": "lease.acquired", "subject": subject, "data": data}

    def written(seq: int, token: int, actor: str) -> dict[str, object]:
        return {
            "seq": seq,
            "type": "evidence.recorded",
            "subject": subject,
            "data": {},
            "refs": {"lease_token": token},
            "actor": actor,
            "ts": "2026-01-01T00:00:30Z",
        }

    released = {"seq": 2, "type": "lease.released", "subject": subject, "data": {"token": 1}}
    sound = [acquired(0, 1, "a"), written(1, 1, "a"), released, acquired(3, 2, "b")]
    assert fencing_violations(sound) == []
    assert len(fencing_violations([*sound, written(4, 1, "a")])) == 1  # a's lease had ended
    assert len(fencing_violations([*sound, acquired(5, 2, "c")])) == 1  # a token did not grow
