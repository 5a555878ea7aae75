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
