"""The dashboard's application parts: the pages' shared state, the templates, and the mounting on
``accessbot serve`` (imported when the server starts, not by the chat commands that only make links)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.bootstrap import App
from bot.web import HERE, PREFIX, charts
from handlers.dashboard.chain import ChainWatch
from handlers.dashboard.pages import moment
from store.anchors import AnchorFileReader
from store.dashboard import SqlDashboardSource
from store.evidence_queries import SqlReportSource


@dataclass
class Dashboard:
    app: App
    source: SqlDashboardSource
    reports: SqlReportSource
    chain: ChainWatch
    templates: Environment
    oidc: Any = None  # bot.web.oidc.EntraSignIn when Entra is configured

    def render(self, name: str, **context: Any) -> str:
        return self.templates.get_template(name).render(**context)


DASHBOARD_KEY = web.AppKey("accessbot_dashboard", Dashboard)


def path_segment(value: object) -> str:
    """``value`` as one segment of a URL path: every character that means something in a URL (``/ ? # %``,
    and ``+ ' &`` …) percent-encoded, so that an address links to its own page; the route decodes it back."""
    return quote(str(value), safe="@")


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(bars=charts.bars, meter=charts.meter, percent=charts.percent, hours=charts.hours,
                       moment=moment, prefix=PREFIX)
    env.filters["segment"] = path_segment
    return env


def build(app: App) -> Dashboard:
    source = SqlDashboardSource(app.store)
    anchor_file = app.settings.env.get("ACCESSBOT_ANCHOR_FILE")
    anchors = AnchorFileReader(app.store, anchor_file) if anchor_file else None
    board = Dashboard(app=app, source=source, reports=SqlReportSource(app.store),
                      chain=ChainWatch(source, anchors), templates=templates())
    if app.settings.entra_configured:
        from bot.web.oidc import EntraSignIn

        board.oidc = EntraSignIn(app.settings)
    return board


def mount(web_app: web.Application, app: App, notifier: Any = None) -> bool:
    """Serve the dashboard on the shared application (always on: without a session it shows only sign-in)."""
    from bot.web.routes import add_routes
    from bot.web.session import security_headers

    board = build(app)
    web_app[DASHBOARD_KEY] = board
    web_app.middlewares.append(security_headers)
    add_routes(web_app)
    if board.oidc is not None:
        web_app.on_cleanup.append(lambda _: board.oidc.close())
    return True
