"""Adaptive Card elements as plain dicts, in exactly the shape the ``adaptive_cards`` models serialise to.

Building and validating a pydantic model per element, then serialising the card to JSON and back,
was most of what a card click cost the bot. :func:`element` writes the same dict directly: the
fields in the model's order under their JSON names, ``None`` left out, enums as their values,
defaults (``type``, ``$schema``, an action's ``mode``) filled in, all read once per model class.
Inside :func:`validating` (tests), :func:`element` builds the model itself instead and
:func:`card_dict` serialises through it, so the two paths can be compared byte for byte, and
every card is still checked against the official schema in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel

_VALIDATING: ContextVar[bool] = ContextVar("adaptive_validating", default=False)


@contextmanager
def validating() -> Iterator[None]:
    """Build cards through the validated models inside this block (the reference the tests compare with)."""
    token = _VALIDATING.set(True)
    try:
        yield
    finally:
        _VALIDATING.reset(token)


@cache
def _spec(model: type[BaseModel]) -> tuple[dict[str, tuple[int, str]], tuple[tuple[str, int, str, Any], ...]]:
    """Each field's position and JSON name, and the fields with a default other than None, read once per model."""
    where: dict[str, tuple[int, str]] = {}
    defaults = []
    for pos, (name, info) in enumerate(model.model_fields.items()):
        key = info.serialization_alias or info.alias or name
        where[name] = (pos, key)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if default is not None:
            defaults.append((name, pos, key, default.value if isinstance(default, Enum) else default))
    return where, tuple(defaults)


def element(model: type[BaseModel], **values: Any) -> Any:
    """The element ``model(**values)`` would serialise to (``exclude_none``, by alias), or the model itself
    while :func:`validating`. A name the model does not have is a ``KeyError``, not silently dropped."""
    if _VALIDATING.get():
        return model(**values)
    return _builder(model, tuple(values))(values)


@cache
def _plan(model: type[BaseModel], names: tuple[str, ...]) -> tuple[tuple[str, str | None, Any], ...]:
    """In the model's field order: each JSON key with the argument it comes from, or (None) its default.
    One plan per model and set of argument names (a call site), made once."""
    where, defaults = _spec(model)
    items = [(*where[name], name, None) for name in names]
    items += [(pos, key, None, default) for name, pos, key, default in defaults if name not in names]
    items.sort(key=_first)
    return tuple((key, name, default) for _, key, name, default in items)


@cache
def _builder(model: type[BaseModel], names: tuple[str, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The plan of a call site as one straight-line function, made once (as ``dataclasses`` writes an
    ``__init__``): each key in the model's order, an argument left out when None, an enum as its value, a dict
    copied, a default as it is. Looping over the plan on every element cost more than the rest of a card."""
    lines = ["def build(values):", "    out = {}"]
    consts: dict[str, Any] = {"Enum": Enum}
    for i, (key, name, default) in enumerate(_plan(model, names)):
        if name is None:
            consts[f"d{i}"] = default
            lines.append(f"    out[{key!r}] = dict(d{i})" if isinstance(default, dict) else f"    out[{key!r}] = d{i}")
            continue
        lines += [f"    v = values[{name!r}]",
                  "    if type(v) is str:",
                  f"        out[{key!r}] = v",
                  "    elif v is not None:",
                  f"        out[{key!r}] = v.value if isinstance(v, Enum) else dict(v) if isinstance(v, dict) else v"]
    lines.append("    return out")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<element {model.__name__}>", "exec"), consts, namespace)
    return namespace["build"]  # type: ignore[no-any-return]


def _first(item: tuple[Any, ...]) -> int:
    return int(item[0])


def card_dict(card: Any) -> dict[str, Any]:
    """The card as a JSON-ready dict: already one on the fast path; serialised through the model while validating."""
    if isinstance(card, dict):
        return card
    result: dict[str, Any] = json.loads(card.to_json())
    return result
