"""Mutation testing of the rules that matter, with cosmic-ray: does the suite notice each bug?

For every target module the script copies the working tree (tracked and new files) to a scratch
directory, asks cosmic-ray for every mutant of that one module (a flipped comparison, a changed
constant, a dropped `not`, ...), and runs the module's own test selection against each mutant
in the copy (cosmic-ray mutates the file on disk, so the working tree is never touched). It
prints, per module: mutants run, killed, timed out, survived, equivalent (survivors listed in
``scripts/mutation_equivalents.toml`` with a reason each), and skipped (operators left out, or
code outside the module's checked scope). It exits 1 when a mutant that is not listed as
equivalent survives in a strict module, or when the unmutated selection fails.

    python scripts/mutation.py                   # every target on this branch (about an hour)
    python scripts/mutation.py --set ci          # the CI-sized subset
    python scripts/mutation.py names verify      # targets whose path contains a word
    python scripts/mutation.py --list            # the targets, their tests and mutant counts

Timeouts count apart from kills (cosmic-ray itself calls a timeout a kill). Targets whose module
is not on this branch yet (the install guard, the sandbox, approvals, policy) are reported as
pending. Needs ``pip install cosmic-ray`` (in the ``mutation`` extra).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EQUIVALENTS = REPO / "scripts" / "mutation_equivalents.toml"

# Mutations that only repeat another one of the same site: an arithmetic operator swapped for a
# bitwise or exotic one (`+` → `<<`, `**`, `%`, ...) fails exactly where `+` → `-` fails, and `==`
# → `is` is either `==` again (small ints, interned strings) or a TypeError nowhere. Kept: every
# swap among + - * /, every comparison swap, every constant, boolean and keyword mutation.
EXCLUDED_OPERATORS = (
    r"core/ReplaceBinaryOperator_\w+_(Pow|LShift|RShift|BitOr|BitAnd|BitXor|FloorDiv|Mod)$",
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
)


_IDENTITY_OPS = (
    "core/ReplaceComparisonOperator_Is_Eq",
    "core/ReplaceComparisonOperator_IsNot_NotEq",
)


@dataclass(frozen=True)
class Target:
    """One module, the tests that must notice its mutants, and how strict the verdict is."""

    module: str
    tests: tuple[str, ...]
    strict: bool = True  # a surviving non-equivalent mutant fails the run
    scope: tuple[str, ...] = ()  # only these functions are mutated (empty: the whole module)
    why_scope: str = ""
    sets: frozenset[str] = field(default_factory=lambda: frozenset({"all"}))
    # Tests left out of the selection (pytest node ids), each slow and repeating a faster one.
    deselect: tuple[str, ...] = ()


# CI runs the targets whose mutants run in about a second of tests each (names and paths, the
# freeze rows, task ids and roles: about 100 mutants, a few minutes on two cores); the rest is
# the weekly run (about an hour and a half on two quiet cores).
CI = frozenset({"all", "ci"})
# 16 processes racing for one lease: 20 s a run, where the 16 in-process acquirers of the test
# beside it check the same rule in a third of a second.
_RACE = (
    "tests/enforcer/process/test_leases.py"
    "::test_sixteen_processes_racing_for_one_lease_get_exactly_one_winner"
)
TARGETS: tuple[Target, ...] = (
    # Strict targets first: they must end with no surviving non-equivalent mutant.
    # evidence names and module paths (path validation)
    Target(
        "enforcer/names.py",
        (
            "tests/enforcer/test_names_mutants.py",
            "tests/enforcer/test_paths_mutants.py",
            "tests/enforcer/test_names.py",
            "tests/enforcer/modules/test_manifest.py",
        ),
        sets=CI,
    ),
    # the install guard
    Target(
        "enforcer/modules/guard.py",
        ("tests/enforcer/modules/test_guard_mutants.py", "tests/enforcer/modules/test_guard.py"),
    ),
    Target(
        "enforcer/modules/attestation.py",
        ("tests/enforcer/modules/test_guard_mutants.py", "tests/enforcer/modules/test_guard.py"),
    ),
    # the ledger verifier and checkpoints
    Target(
        "enforcer/ledger/checkpoint.py",
        (
            "tests/enforcer/ledger/test_checkpoint_mutants.py",
            "tests/enforcer/ledger/test_checkpoint.py",
            "tests/enforcer/ledger/test_verify.py",
        ),
    ),
    Target(
        "enforcer/ledger/verify.py",
        ("tests/enforcer/ledger/test_verify_mutants.py", "tests/enforcer/ledger/test_verify.py"),
    ),
    # leases and fencing
    Target(
        "enforcer/process/leasing.py",
        ("tests/enforcer/process/test_leases_mutants.py", "tests/enforcer/process/test_leases.py"),
        deselect=(_RACE,),
    ),
    Target(
        "enforcer/process/leases.py",
        ("tests/enforcer/process/test_leases_mutants.py", "tests/enforcer/process/test_leases.py"),
        deselect=(_RACE,),
    ),
    # the router's role, phase, freeze and argument checks; the freeze inside every write
    Target(
        "server/router.py",
        (
            "tests/server/test_router_fail_closed.py",
            "tests/server/test_router.py",
            "tests/server/test_router_mutants.py",
            "tests/server/test_journal.py",
        ),
        # The same rules over a real stdio server (test_wire_errors.py) take 85 s a run: the
        # in-memory client reaches the same router.
        deselect=(
            "tests/server/test_journal.py"
            "::test_two_server_processes_journal_the_same_task_side_by_side",
        ),
        scope=("call", "_facts", "allowed_now", "_validation_error", "__init__"),
        why_scope="the checks; telemetry, the result cache and the metric buckets are not rules",
    ),
    Target(
        "enforcer/process/control_rows.py",
        (
            "tests/enforcer/process/test_control_rows.py",
            "tests/server/test_freeze_everywhere.py",
            "tests/server/test_router_fail_closed.py",
        ),
        sets=CI,
    ),
    Target(
        "enforcer/model.py",
        (
            "tests/enforcer/test_model_mutants.py",
            "tests/enforcer/test_names.py",
            "tests/server/test_router.py",
        ),
        scope=("check_task_id", "at_least"),
        why_scope="task ids and the role order; the rest are plain records",
        sets=CI,
    ),
    Target(
        "enforcer/ledger/log.py",
        (
            "tests/enforcer/ledger/test_log_mutants.py",
            "tests/enforcer/ledger/test_ledger.py",
            "tests/enforcer/ledger/test_checkpoint.py",
        ),
    ),
    # the gates
    Target(
        "enforcer/process/phase_gate.py",
        ("tests/enforcer/process/test_phase_gate.py", "tests/enforcer/process/test_gates.py"),
    ),
    Target(
        "enforcer/process/gates.py",
        ("tests/enforcer/process/test_gates.py", "tests/enforcer/process/test_gates_mutants.py"),
    ),
    # the sandbox, approvals and policy: reported, not yet strict
    Target(
        "enforcer/modules/sandbox.py", ("tests/enforcer/modules/test_sandbox.py",), strict=False
    ),
    Target(
        "enforcer/policy/approvals.py",
        (
            "tests/enforcer/policy/test_approvals_mutants.py",
            "tests/enforcer/policy/test_approvals.py",
        ),
        strict=False,
    ),
    Target(
        "enforcer/policy/engine.py",
        # Every decision point goes through the engine: the path rules, the daily limit, the
        # exceptions, the approvals, the install windows and the rollback window (reloading).
        (
            "tests/enforcer/policy/test_path_rules.py",
            "tests/enforcer/policy/test_dry_run.py",
            "tests/enforcer/policy/test_limits.py",
            "tests/enforcer/policy/test_exceptions.py",
            "tests/enforcer/policy/test_approvals.py",
            "tests/enforcer/policy/test_reload.py",
            "tests/enforcer/policy/test_engine_mutants.py",
        ),
        strict=False,
    ),
    Target("enforcer/policy/paths.py", ("tests/enforcer/policy/test_paths.py",), strict=False),
)


@dataclass
class Figures:
    target: Target
    mutants: int = 0
    killed: int = 0
    timeout: int = 0
    survived: list[dict[str, Any]] = field(default_factory=list)
    equivalent: list[dict[str, Any]] = field(default_factory=list)
    incompetent: int = 0
    skipped: int = 0
    stale: list[dict[str, str]] = field(default_factory=list)  # listed, but killed now
    seconds: float = 0.0
    error: str = ""
    pending: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.error) or (self.target.strict and bool(self.survived))


# ---------------------------------------------------------------- equivalents


def load_equivalents(path: Path = EQUIVALENTS) -> list[dict[str, str]]:
    """Entries {module, operator, line, mutant, reason}: `line` is the source line as written
    (stripped), `mutant` the same line mutated, so an entry survives edits elsewhere."""
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("equivalent", [])
    for e in entries:
        missing = {"module", "operator", "line", "mutant", "reason"} - set(e)
        if missing or not str(e["reason"]).strip():
            raise SystemExit(f"{path}: an entry lacks {sorted(missing) or ['a reason']}: {e}")
    return list(entries)


def _changed_lines(diff: str) -> tuple[str, str]:
    old = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and ln[:3] != "---"]
    new = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and ln[:3] != "+++"]
    return " ".join(old), " ".join(new)


def _matches(entry: dict[str, str], survivor: dict[str, Any]) -> bool:
    if entry["module"] not in ("*", survivor["module"]):  # "*": the same in every module
        return False
    return all(entry[k] == survivor[k] for k in ("operator", "line", "mutant"))


# ---------------------------------------------------------------- running one target


def _scratch_copy(dest: Path) -> None:
    """The working tree as it is (tracked and untracked, not ignored files) copied to `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if not src.is_file():
            continue  # deleted in the working tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    # cosmic-ray runs tests with PYTHONDONTWRITEBYTECODE: compile the unmutated tree once.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest)], check=False)


def _test_command(tests: Sequence[str], deselect: Sequence[str] = ()) -> list[str]:
    skip = [arg for node in deselect for arg in ("--deselect", node)]
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *skip, *tests]


def _config(target: Target, tests: Sequence[str], timeout: float) -> str:
    command = shlex.join(_test_command(tests, target.deselect))
    return (
        "[cosmic-ray]\n"
        f"module-path = {target.module!r}\n"
        f"timeout = {timeout:.1f}\n"
        "excluded-modules = []\n"
        f"test-command = {command!r}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )


def _cosmic(args: list[str], cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.cli", *args], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cosmic-ray {args[0]} failed: {done.stderr.strip()[-2000:]}")


def _annotations(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The (start, end) positions of every annotation in `source`. Every module here starts
    with ``from __future__ import annotations``: annotations are never evaluated, so a
    mutation inside one (``Checkpoint | None`` -> ``Checkpoint - None``) cannot change
    behaviour and is not run."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        found: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        for a in found:
            if a is not None and a.end_lineno is not None and a.end_col_offset is not None:
                spans.append(((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)))
    return spans


def _skip(db: Path, target: Target, source: str) -> int:
    """Mark excluded operators, annotations and out-of-scope code skipped before anything
    runs."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    excluded = re.compile("|".join(f"(?:{e})" for e in EXCLUDED_OPERATORS))
    postponed = "from __future__ import annotations" in source
    spans = _annotations(source) if postponed else []
    lines = source.splitlines()
    skipped = 0
    with use_db(str(db), WorkDB.Mode.open) as work_db:
        for item in list(work_db.pending_work_items):
            why = ""
            for m in item.mutations:
                at = (m.start_pos[0], m.start_pos[1])
                if excluded.match(m.operator_name):
                    why = "operator left out (repeats another mutation of the same site)"
                elif any(start <= at < end for start, end in spans):
                    why = "inside an annotation (never evaluated)"
                elif m.operator_name in _IDENTITY_OPS and "type(" in lines[at[0] - 1]:
                    why = "type(x) is T and type(x) == T are one test (types compare by identity)"
                elif target.scope and m.definition_name not in target.scope:
                    why = f"outside the checked scope ({m.definition_name or 'module level'})"
            if why:
                work_db.set_result(
                    item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=why)
                )
                skipped += 1
    return skipped


def run_target(target: Target, equivalents: list[dict[str, str]], keep: bool) -> Figures:
    fig = Figures(target)
    if not (REPO / target.module).exists():
        fig.pending = True
        return fig
    tests = [t for t in target.tests if (REPO / t).exists()]
    if not tests:
        fig.error = "none of its tests exist"
        return fig
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="phasegate-mutation-"))
    try:
        tree = work / "tree"
        _scratch_copy(tree)
        baseline = time.monotonic()
        command = _test_command(tests, target.deselect)
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
        took = time.monotonic() - baseline
        if done.returncode != 0:
            fig.error = "the unmutated tests fail:\n" + done.stdout[-3000:]
            return fig
        # A mutant that makes the selection hang is stopped at a generous multiple of the
        # unmutated run (which includes pytest's own start-up).
        timeout = max(60.0, 5 * took)
        cfg, db = work / "cosmic-ray.toml", work / "session.sqlite"
        cfg.write_text(_config(target, tests, timeout))
        _cosmic(["init", str(cfg), str(db)], tree)
        fig.skipped = _skip(db, target, (tree / target.module).read_text())
        _cosmic(["exec", str(cfg), str(db)], tree)
        _collect(db, fig, equivalents)
    except Exception as e:  # a broken run must fail loudly, not count as clean
        fig.error = f"{type(e).__name__}: {e}"
    finally:
        fig.seconds = time.monotonic() - started
        if keep:
            print(f"   (kept {work})", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return fig


def _collect(db: Path, fig: Figures, equivalents: list[dict[str, str]]) -> None:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    mine = [e for e in equivalents if e["module"] in ("*", fig.target.module)]
    used: set[int] = set()
    with use_db(str(db), WorkDB.Mode.open) as work_db:
        for item, result in work_db.completed_work_items:
            if result.worker_outcome is WorkerOutcome.SKIPPED:
                continue
            fig.mutants += 1
            m = item.mutations[0]
            line, mutant = _changed_lines(result.diff or "")
            found = {
                "module": fig.target.module,
                "operator": m.operator_name,
                "line": line,
                "mutant": mutant,
                "at": m.start_pos[0],
                "definition": m.definition_name,
            }
            if result.worker_outcome is not WorkerOutcome.NORMAL:
                fig.incompetent += 1  # the mutant could not even be applied or imported
            elif result.test_outcome is TestOutcome.INCOMPETENT:
                fig.incompetent += 1
            elif result.test_outcome is TestOutcome.SURVIVED:
                hit = next((i for i, e in enumerate(mine) if _matches(e, found)), None)
                if hit is None:
                    fig.survived.append(found)
                else:
                    used.add(hit)
                    fig.equivalent.append(found | {"reason": mine[hit]["reason"]})
            elif (result.output or "").strip() == "timeout":
                fig.timeout += 1
            else:
                fig.killed += 1
                for i, e in enumerate(mine):
                    if _matches(e, found):
                        fig.stale.append(e)
                        used.add(i)
    # An entry of this module that matched no mutant at all no longer describes the code.
    fig.stale += [e for i, e in enumerate(mine) if i not in used and e["module"] != "*"]


# ---------------------------------------------------------------- reporting


def _row(cells: Iterable[object]) -> str:
    widths = (34, 8, 7, 8, 9, 11, 8, 8, 7)
    return " ".join(
        str(c).rjust(w) if i else str(c).ljust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def report(figures: list[Figures]) -> int:
    print()
    print(
        _row(
            [
                "module",
                "mutants",
                "killed",
                "timeout",
                "survived",
                "equivalent",
                "skipped",
                "strict",
                "time",
            ]
        )
    )
    total = [0, 0, 0, 0, 0, 0]
    for f in figures:
        if f.pending:
            print(_row([f.target.module, "-", "-", "-", "-", "-", "-", "-", "pending"]))
            continue
        cells = [f.mutants, f.killed, f.timeout, len(f.survived), len(f.equivalent), f.skipped]
        total = [a + b for a, b in zip(total, cells, strict=True)]
        strict = "yes" if f.target.strict else "no"
        print(_row([f.target.module, *cells, strict, f"{f.seconds:.0f}s"]))
    print(_row(["total", *total, "", ""]))
    code = 0
    for f in figures:
        if f.error:
            print(f"\n!! {f.target.module}: {f.error}")
        if f.incompetent:
            print(
                f"\n.. {f.target.module}: {f.incompetent} mutants could not run"
                " (counted in mutants)"
            )
        for s in f.survived:
            kind = "SURVIVED" if f.target.strict else "survived (not strict)"
            print(
                f"\n{kind}: {s['module']}:{s['at']} in {s['definition'] or 'module level'}"
                f" [{s['operator']}]\n  - {s['line']}\n  + {s['mutant']}"
            )
        for e in f.stale:
            print(f"\nstale equivalent entry (killed now, or no such mutant): {e}")
        if f.failed:
            code = 1
    pending = [f.target.module for f in figures if f.pending]
    if pending:
        print(f"\npending (not on this branch yet): {', '.join(pending)}")
    print("\n== mutation:", "FAILED" if code else "no surviving mutant in the strict modules")
    return code


def list_targets(targets: Sequence[Target]) -> int:
    for t in targets:
        state = "" if (REPO / t.module).exists() else "  (pending: not on this branch)"
        scope = f"  scope: {', '.join(t.scope)}" if t.scope else ""
        print(f"{t.module}{state}{scope}\n    tests: {' '.join(t.tests)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("words", nargs="*", help="run only targets whose path contains a word")
    parser.add_argument("--set", default="all", choices=("all", "ci"), help="which targets")
    parser.add_argument("--jobs", type=int, default=2, help="targets run at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the targets and stop")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args(argv)
    targets = [
        t
        for t in TARGETS
        if args.set in t.sets and (not args.words or any(w in t.module for w in args.words))
    ]
    if not targets:
        parser.error("no target matches")
    if args.list:
        return list_targets(targets)
    try:
        import cosmic_ray  # noqa: F401
    except ImportError:
        print("cosmic-ray is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    equivalents = load_equivalents()
    os.environ.pop("COVERAGE_PROCESS_START", None)  # never measure coverage of mutants
    print(f"== mutation: {len(targets)} targets, {args.jobs} at once", flush=True)
    figures: dict[str, Figures] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_target, t, equivalents, args.keep): t for t in targets}
        for future in concurrent.futures.as_completed(futures):
            f = future.result()
            figures[f.target.module] = f
            state = "pending" if f.pending else f"{f.mutants} mutants, {len(f.survived)} survived"
            print(f"   {f.target.module}: {state} ({f.seconds:.0f}s)", flush=True)
            for s in f.survived:  # at once, so work on them can start before the run ends
                print(f"     {s['at']}: {s['line']}  =>  {s['mutant']}", flush=True)
    return report([figures[t.module] for t in targets])


if __name__ == "__main__":
    sys.exit(main())
