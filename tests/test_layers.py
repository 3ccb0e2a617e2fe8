"""The house's arrows point down only (DESIGN.md, Layout; README, "How it is built").

`server/` → the enforcer's facades (service, runtime, integrity, the package surface) →
`policy/` → `modules/` → `process/` → `ledger/` → `store/` → the leaves. A module may import its
own layer and any layer below; nothing in `enforcer/` imports `server/` or MCP. The test reads
each file's imports with `ast`, resolving relative ones, so a violation names file and import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENFORCER = ROOT / "enforcer"

# Lower number = lower layer. Top-level modules not listed as facades are leaves.
PACKAGE_LAYER = {"store": 1, "ledger": 2, "process": 3, "modules": 4, "policy": 5}
FACADES = {"service", "runtime", "integrity", "export", "__init__"}
LEAF, FACADE = 0, 6
FOREIGN_FORBIDDEN = ("mcp", "mcp_types", "server", "starlette", "uvicorn")


def layer_of(module: str) -> int:
    """The layer of `enforcer.x.y` (a dotted name inside the enforcer)."""
    parts = module.split(".")
    assert parts[0] == "enforcer", module
    if len(parts) == 1:
        return FACADE
    head = parts[1]
    if head in PACKAGE_LAYER:
        return PACKAGE_LAYER[head]
    return FACADE if head in FACADES else LEAF


def module_name(path: Path, repo: Path = ROOT) -> str:
    rel = path.relative_to(repo).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
        if parts == ["enforcer", "__init__"]:
            parts = ["enforcer"]
    return ".".join(parts)


def imports_of(path: Path, repo: Path = ROOT) -> list[str]:
    """Absolute dotted names of everything `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, repo).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base)
                if node.module:
                    out.append(f"{prefix}.{node.module}")
                else:
                    out.extend(f"{prefix}.{alias.name}" for alias in node.names)
            elif node.module:
                out.append(node.module)
    return out


def violations(repo: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((repo / "enforcer").rglob("*.py")):
        own = layer_of(module_name(path, repo))
        where = path.relative_to(repo)
        for name in imports_of(path, repo):
            top = name.split(".")[0]
            if top in FOREIGN_FORBIDDEN:
                found.append(f"{where} imports {name}")
            elif top == "enforcer" and len(name.split(".")) > 1:
                target = layer_of(name)
                if target > own:
                    found.append(f"{where} (layer {own}) imports {name} (layer {target})")
    return found


def test_every_arrow_in_the_enforcer_points_down() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("where", "source", "needle"),
    [
        ("ledger/x.py", "from ..process import leases\n", "enforcer.process"),
        ("store/x.py", "from ..ledger.entries import LedgerEntry\n", "enforcer.ledger"),
        ("store/x.py", "from ..process.work import Work\n", "enforcer.process"),
        ("x.py", "from .process.tasks import Tasks\n", "enforcer.process"),  # a leaf
        ("process/x.py", "from ..service import Enforcer\n", "enforcer.service"),
        ("ledger/x.py", "import mcp\n", "mcp"),
        ("process/x.py", "from server.router import Router\n", "server"),
        ("process/x.py", "from mcp_types import CallToolResult\n", "mcp_types"),
    ],
)
def test_an_upward_import_is_named(tmp_path: Path, where: str, source: str, needle: str) -> None:
    """The checker itself: plant one upward import in a copy of the tree and see it caught."""
    fake = tmp_path / "enforcer"
    for sub in ("store", "ledger", "process"):
        (fake / sub).mkdir(parents=True)
        (fake / sub / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / where).write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and needle in found[0], found


def test_the_server_packages_import_no_circle() -> None:
    """`server/` modules form no import cycle (catalogue and router once imported each other)."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "server").glob("*.py"):
        name = module_name(path)
        graph[name] = {i for i in imports_of(path) if i.startswith("server.")}
    seen: set[str] = set()

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, " -> ".join((*stack, node))
        if node in seen:
            return
        for nxt in graph.get(node, ()):
            visit(nxt, (*stack, node))
        seen.add(node)

    for node in graph:
        visit(node, ())
