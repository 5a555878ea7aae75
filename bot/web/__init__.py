"""The web dashboard: read-only pages under ``/dashboard`` on ``accessbot serve`` (SPEC §8).

A channel like Teams and Slack: it authenticates the person (a one-time link from chat, or
"Sign in with Microsoft"), then renders what the handlers' queries return. Nothing is writable
from the web; actions stay in chat.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
PREFIX = "/dashboard"

if TYPE_CHECKING:
    from bot.web.site import DASHBOARD_KEY, Dashboard, build, templates  # noqa: F401

_SITE = ("DASHBOARD_KEY", "Dashboard", "build", "templates")


def __getattr__(name: str) -> Any:
    """The application parts live in :mod:`bot.web.site` (aiohttp, Jinja2, the pages): imported on first use."""
    if name in _SITE:
        from bot.web import site

        return getattr(site, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def mount(web_app: Any, app: Any, notifier: Any = None) -> bool:
    """Serve the dashboard on the shared application (always on: without a session it shows only sign-in)."""
    from bot.web.site import mount as mount_site

    return mount_site(web_app, app, notifier)
