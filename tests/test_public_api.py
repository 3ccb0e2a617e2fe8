"""The packages' public surface is declared once and importable; the domain never imports MCP."""

from __future__ import annotations

import ast
from pathlib import Path

import enforcer

ROOT = Path(__file__).resolve().parents[1]


def test_every_name_in_the_enforcer_surface_is_importable() -> None:
    for name in enforcer.__all__:
        assert getattr(enforcer, name) is not None, name
    assert sorted(enforcer.__all__) == enforcer.__all__


def test_the_enforcer_package_never_imports_mcp() -> None:
    for path in (ROOT / "enforcer").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("mcp", "mcp_types", "server"), (path, name)
