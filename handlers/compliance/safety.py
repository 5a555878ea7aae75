"""The ``safety:`` block of the policy (SPEC §3.6), checked with line numbers like the rest of it."""

from __future__ import annotations

from typing import Any

from handlers.policy import Safety


def check_safety(c: Any, data: Any) -> Safety:
    """Read ``safety: {max_removals, unknown_grace, drift_sla}``; every key optional, defaults as in ``Safety``.

    ``c`` is the policy checker (``handlers.policy_check._Checker``): errors land there with their line.
    """
    raw = data.get("safety")
    base = Safety()
    if raw is None:
        return base
    if not isinstance(raw, dict):
        c.err(c.line_of(data, "safety"), "safety", "must be {max_removals: 25, unknown_grace: 1h, drift_sla: 24h}")
        return base
    c.unknown_keys(raw, {"max_removals", "unknown_grace", "drift_sla"}, "safety.")
    limit = raw.get("max_removals", base.max_removals)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        c.err(c.line_of(raw, "max_removals"), "safety.max_removals", "must be a whole number, 0 or more")
        limit = base.max_removals
    grace = c.duration(raw, "unknown_grace", "safety.unknown_grace", required=False)
    sla = c.duration(raw, "drift_sla", "safety.drift_sla", required=False)
    return Safety(max_removals=limit, unknown_grace=base.unknown_grace if grace is None else grace,
                  drift_sla=sla or base.drift_sla)
