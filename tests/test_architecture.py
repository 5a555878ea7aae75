"""Imports point inward: bot → handlers ← provisioning, store; cards know only handler view-models."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = {"slack_bolt", "slack_sdk", "botbuilder", "botframework", "microsoft_agents", "aiohttp", "sqlalchemy",
              "alembic", "msal", "apscheduler", "asyncpg", "psycopg", "aiosqlite"}
RULES = {
    "handlers": FRAMEWORKS | {"bot", "store", "provisioning", "cards"},
    "cards": {"bot", "store", "provisioning", "sqlalchemy", "aiohttp", "slack_bolt", "botbuilder", "microsoft_agents"},
    "store": {"bot", "provisioning", "cards", "aiohttp", "slack_bolt", "botbuilder", "microsoft_agents"},
    "provisioning": {"bot", "cards", "slack_bolt", "botbuilder", "microsoft_agents", "sqlalchemy"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_imports_point_inward(package):
    bad = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        wrong = imports(path) & RULES[package]
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert not bad, bad


def _private_members(path: Path, class_name: str) -> set[str]:
    """Names of a class's private members: its ``_methods`` and the ``self._attributes`` it sets."""
    tree = ast.parse(path.read_text(), str(path))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    names = {n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_nothing_outside_the_entra_provider_touches_its_private_members():
    """The dashboard's sign-in and SharePoint delivery use the provider's public methods (its msal client,
    token and HTTP session stay the provider's own)."""
    home = ROOT / "provisioning" / "entra.py"
    private = _private_members(home, "EntraProvider")
    assert {"_client_app", "_token", "_http", "_app"} <= private
    bad = []
    for package in ("bot", "handlers", "store", "cards", "provisioning"):
        for path in (ROOT / package).rglob("*.py"):
            if path == home or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in private and not (
                        isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not bad, bad
