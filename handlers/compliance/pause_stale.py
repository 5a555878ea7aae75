"""When the safety brake's pause notice, waiting in the outbox (handlers/outbox.py), no longer holds: the pause it
announces was resumed, ended or replaced by another before it was sent, so it is dropped, unsent, rather than ask
the security team to resume what is not paused any more (the resume card refuses an outdated pause all the
same)."""

from __future__ import annotations

from typing import Any

from handlers.compliance.views import PauseView


def pause_key(reason: str) -> str:
    """Where the brake keeps the pause of ``reason`` (``terminated``, ``ineligible``, ``review RV-n``)."""
    return f"safety_brake:{reason}"


async def pause_moved_on(repo: Any, view: PauseView) -> str | None:
    """Why a pause notice no longer holds (None: the pause it announces is in force and not resumed)."""
    state = await repo.get_state(pause_key(view.reason)) or {}
    said = f"the pause of {view.count} {view.reason} removals"
    if not state.get("paused"):
        return f"{said} has ended"
    count = int(state.get("count") or 0)
    if count != view.count or (view.pause and state.get("pause") and view.pause != state.get("pause")):
        return f"{said} was replaced: {count} {view.reason} removals are paused now"
    if state.get("resumed_count") is not None:
        return f"{said} was resumed by {state.get('resumed_by')}"
    return None
