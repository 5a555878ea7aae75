"""Optional parts of the bot (channels, extra commands) found by module name."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from types import ModuleType


def optional_modules(names: Iterable[str]) -> Iterator[ModuleType]:
    """Each module that exists; a module that is absent is skipped, one that fails to import raises."""
    for name in names:
        try:
            yield importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise
