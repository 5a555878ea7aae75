"""What other areas ask of closed reviews: is a standing membership certified (kept) by its latest review?"""

from __future__ import annotations

from handlers.repository import Repository
from handlers.reviews.campaign import repo_of


async def kept_by_review(repo: Repository) -> set[tuple[str, str, str]]:
    """Every (provider, group, email) kept (or restored by an undo) by the latest closed review to have
    reviewed it."""
    return await repo_of(repo).kept_memberships()


async def is_kept_by_review(repo: Repository, provider: str, group: str, email: str) -> bool:
    """Whether (provider, group, email) was kept by the latest closed review that reviewed it (or removed by it,
    then restored by an approved undo)."""
    return await repo_of(repo).latest_closed_item_state(provider, group, email) in ("kept", "restored")
