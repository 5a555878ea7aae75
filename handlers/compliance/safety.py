"""The ``safety:`` block of the policy (SPEC §3.6), checked with line numbers like the rest of it."""

from __future__ import annotations

from typing import Any

from handlers.policy import Safety


def check_safety(c: Any, data: Any) -> Safety:
    """Read ``safety: {max_removals, max_reroutes, unknown_grace, drift_sla}``; every key optional, defaults as in
    ``Safety``.

    ``c`` is the policy checker (``handlers.policy_check._Checker``): errors land there with their line.
    """
    raw = data.get("safety")
    base = Safety()
    if raw is None:
        return base
    if not isinstance(raw, dict):
        c.err(c.line_of(data, "safety"), "safety", "must be {max_removals: 25, max_reroutes: 25, unknown_grace: 1h, "
              "drift_sla: 24h}")
        return base
    c.unknown_keys(raw, {"max_removals", "max_reroutes", "unknown_grace", "drift_sla"}, "safety.")
    limit = _whole(c, raw, "max_removals", base.max_removals)
    reroutes = _whole(c, raw, "max_reroutes", base.max_reroutes)
    grace = c.duration(raw, "unknown_grace", "safety.unknown_grace", required=False)
    sla = c.duration(raw, "drift_sla", "safety.drift_sla", required=False)
    return Safety(max_removals=limit, max_reroutes=reroutes,
                  unknown_grace=base.unknown_grace if grace is None else grace, drift_sla=sla or base.drift_sla)


def _whole(c: Any, raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        c.err(c.line_of(raw, key), f"safety.{key}", "must be a whole number, 0 or more")
        return default
    return value
