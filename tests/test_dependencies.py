"""What ``pip install accessbot`` pulls: the installed closure of the package's own requirements.

Teams runs on the Microsoft 365 Agents SDK; the archived Bot Framework SDK (``botbuilder-*``) must
not come back through any requirement, direct or transitive. The closure is walked over the
installed distributions' metadata, so the check needs no network.
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement

ARCHIVED = ("botbuilder", "botframework")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def closure(root: str) -> dict[str, str]:
    """Every distribution the root needs when installed without extras, each with who pulled it in."""
    environment = default_environment()
    seen: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...], str]] = [(_name(root), (), "")]
    while todo:
        name, extras, parent = todo.pop()
        if name in seen and not extras:
            continue
        seen.setdefault(name, parent)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional platform package not installed here
        for raw in requirements:
            requirement = Requirement(raw)
            if requirement.marker is not None:
                wanted = [requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras or ("",)]
                if not any(wanted):
                    continue
            todo.append((_name(requirement.name), tuple(sorted(requirement.extras)), name))
    return seen


def test_the_install_pulls_no_bot_framework_package():
    pulled = closure("accessbot")
    assert "microsoft-agents-hosting-core" in pulled
    archived = {name: parent for name, parent in pulled.items() if name.startswith(ARCHIVED)}
    assert archived == {}, f"archived Bot Framework packages pulled in (package: required by): {archived}"


def test_the_walk_sees_transitive_requirements():
    pulled = closure("accessbot")
    assert pulled["msal"]  # named directly, and again by the SDK's authentication package
    assert "microsoft-agents-activity" in pulled
    assert "pydantic" in pulled  # only through the SDK: the walk follows more than one level
