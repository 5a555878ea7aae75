"""Anyone, signed in or not, starting "Sign in with Microsoft" must not be able to fill the database.

Each ``GET /dashboard/login/entra`` stores a new OpenID Connect flow (state, nonce, PKCE verifier, the whole
msal flow as JSON) in ``dashboard_tokens`` before the browser has proved anything. They used to be purged only
a day after they were made, with no cap: an anonymous client could write rows as fast as it sent GETs, growing
the database every replica shares. Now a flow is forgotten once its ten minutes are over, and at most
``OPEN_FLOWS`` are kept (the oldest go first), so a flood costs a bounded number of rows while a real person's
sign-in, started before or during it, still completes.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from handlers.dashboard.signin import FLOW_TTL, OPEN_FLOWS, new_secret, store_flow, take_flow
from store.dashboard import SqlDashboardSource, dashboard_tokens
from tests.web.test_entra import entra, start  # noqa: F401  (the fixture: the login stand-in over HTTPS)

STARTS = 300


async def open_flows(h) -> int:
    async with h.app.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(dashboard_tokens)
                                       .where(dashboard_tokens.c.kind == "oidc"))).scalar() or 0)


async def test_anonymous_sign_in_starts_are_forgotten_when_they_expire(entra) -> None:  # noqa: F811
    """A flood of anonymous starts leaves at most ``OPEN_FLOWS`` rows, and none of them outlives its ten
    minutes: the next start after that finds only itself. A sign-in begun before the flood still completes."""
    h, _login, context = entra
    callback, cookie = await start(h, context)  # a real person, on their way through the identity platform

    async def anonymous() -> int:
        async with h.http.get(f"{h.url}/dashboard/login/entra", allow_redirects=False) as resp:
            return resp.status

    statuses = []
    for _ in range(STARTS // 30):
        statuses += await asyncio.gather(*(anonymous() for _ in range(30)))
    assert set(statuses) == {303}
    assert await open_flows(h) <= OPEN_FLOWS

    done = await h.get(callback, cookie=cookie)  # the real person comes back: signed in
    assert done.status == 200 and done.cookies["accessbot_session"].value, done.text

    h.clock.advance(seconds=FLOW_TTL.total_seconds())
    assert await anonymous() == 303
    assert await open_flows(h) == 1, "flows past their ten minutes are kept"


async def test_the_open_flows_are_capped_and_the_newest_kept(web_any_db) -> None:
    """Past the cap the oldest flows go first: the store never holds more than ``keep``, and the flows started
    last can still be taken. (A small ``keep`` stands for ``OPEN_FLOWS``, which a test cannot flood in time.)"""
    h = web_any_db
    deps, board_source = h.app.deps, SqlDashboardSource(h.app.store)
    states = [new_secret() for _ in range(60)]
    for i, state in enumerate(states):
        h.clock.advance(seconds=1)
        await store_flow(deps, board_source, state, {"n": i}, keep=25)
        assert await open_flows(h) <= 25
    assert await open_flows(h) == 25
    assert await take_flow(deps, board_source, states[-1]) == {"n": 59}
    assert await take_flow(deps, board_source, states[0]) is None  # the oldest went first
