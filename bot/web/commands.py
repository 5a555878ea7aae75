"""The chat word ``dashboard``: a one-time sign-in link for the person who asked (SPEC §8)."""

from __future__ import annotations

from bot.settings import Settings
from bot.web import PREFIX
from handlers.dashboard.signin import LINK_TTL, issue_link
from handlers.grammar import Dashboard
from handlers.ports import Person
from handlers.service import AccessService
from handlers.views import Reply
from store.dashboard import SqlDashboardSource


def install(service: AccessService, settings: Settings) -> None:
    source = SqlDashboardSource(service.deps.store)  # type: ignore[arg-type]

    async def dashboard(actor: Person, cmd: Dashboard) -> Reply:
        secret = await issue_link(service.deps, source, actor.email)
        url = f"{settings.public_base}{PREFIX}/link/{secret}"
        minutes = int(LINK_TTL.total_seconds() // 60)
        return Reply(text=f"Your dashboard sign-in link (for you alone, once, within {minutes} minutes): {url}",
                     kind="message", data={"url": url}, private=True)

    service.extra[Dashboard] = dashboard
