"""The dashboard's routes: sign-in and sign-out, and the read-only pages.

Without a session every page answers 401 with the sign-in page; a page the viewer may not see
answers 403, and so does a request id that does not exist (the same answer, so that ids cannot be
probed). Handlers only translate: the figures come from ``handlers.dashboard``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.web import HERE, PREFIX
from bot.web.session import board, clear_session, current_viewer, same_origin, session_secret, set_session
from handlers.context import one_lookup_per_person
from handlers.dashboard import pages, posture
from handlers.dashboard.signin import Viewer, link_person, peek_link, redeem_link, sign_out
from handlers.text import has_control

Page = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
REFUSALS = {
    "unknown": "This sign-in link is not valid.",
    "used": "This sign-in link has been used already: each link signs in once.",
    "expired": "This sign-in link has expired: links are valid for five minutes.",
    "inactive": "Your account is not active; the dashboard is not available to you.",
}


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def html(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    b = board(request)
    body = b.render(name, entra=b.oidc is not None, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def signin_page(request: web.Request, status: int = 401, message: str = "") -> web.Response:
    return html(request, "signin.html", status=status, message=message, viewer=None)


def forbidden(request: web.Request, viewer: Viewer, what: str = "this page") -> web.Response:
    return html(request, "error.html", status=403, viewer=viewer, title="Not for you",
                message=f"You may not see {what}.")


def page(*, security: bool = False) -> Callable[[Page], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    def wrap(fn: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            with one_lookup_per_person():
                viewer = await current_viewer(request)
                if viewer is None:
                    return signin_page(request)
                if security and not viewer.security:
                    return forbidden(request, viewer)
                async with board(request).source.reading():
                    return await fn(request, viewer)

        return handler

    return wrap


# -- sign-in --------------------------------------------------------------------------------------
async def signin(request: web.Request) -> web.StreamResponse:
    if await current_viewer(request) is not None:
        return see_other(PREFIX)
    return signin_page(request, status=200)


async def link_page(request: web.Request) -> web.StreamResponse:
    """The link from chat: a page with one button, so that a link preview or a mail scanner that
    fetches the URL cannot use it up."""
    b = board(request)
    with one_lookup_per_person():
        result = await peek_link(b.app.deps, b.source, request.match_info["token"])
        if not result.ok:
            if await _signed_in_as_its_person(request, result.reason):
                return see_other(PREFIX)
            return signin_page(request, status=403, message=REFUSALS[result.reason])
    return html(request, "link.html", viewer=None, email=result.email, action=request.path)


async def _signed_in_as_its_person(request: web.Request, reason: str) -> bool:
    """A link used already or expired, opened (or its button pressed again) in a browser whose live session is
    the person the link was made for: they are where the link would take them, so they are sent on to the
    dashboard rather than refused. Anyone else, or no session, is refused as before."""
    if reason not in ("used", "expired"):
        return False
    viewer = await current_viewer(request)
    if viewer is None:
        return False
    return await link_person(board(request).source, request.match_info["token"]) == viewer.email


async def _someone_else_signed_in(request: web.Request) -> web.Response | None:
    """A browser signed in as one person does not silently become another through someone else's link (a link
    passed on, or planted): the link is refused and stays usable by the person it was made for."""
    viewer = await current_viewer(request)
    if viewer is None:
        return None
    b = board(request)
    peek = await peek_link(b.app.deps, b.source, request.match_info["token"])
    if not peek.ok or peek.email == viewer.email:
        return None
    return signin_page(request, status=403, message=f"This browser is signed in as {viewer.email}, and this "
                       "link signs in someone else: it was not made for you. Sign out first if you mean to switch.")


async def link_redeem(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return signin_page(request, status=403, message="Sign in from the link's own page.")
    b = board(request)
    with one_lookup_per_person():
        refused = await _someone_else_signed_in(request)
        if refused is not None:
            return refused
        result = await redeem_link(b.app.deps, b.source, request.match_info["token"])
        if not result.ok and await _signed_in_as_its_person(request, result.reason):
            return see_other(PREFIX)
    if not result.ok or result.session is None:
        return signin_page(request, status=403, message=REFUSALS.get(result.reason, REFUSALS["unknown"]))
    response = see_other(PREFIX)
    set_session(request, response, result.session)
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return web.Response(status=403, text="Sign out from the dashboard's own page.")
    b = board(request)
    await sign_out(b.app.deps, b.source, session_secret(request))
    response = see_other(f"{PREFIX}/signin")
    clear_session(request, response)
    return response


# -- pages ----------------------------------------------------------------------------------------
@page()
async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    b = board(request)
    view = await pages.overview(b.app.deps, b.source, viewer, b.chain)
    return html(request, "overview.html", viewer=viewer, view=view, nav="overview")


@page()
async def request_list(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    b = board(request)
    flt = pages.Filter.parse(dict(request.query), [p.id for p in b.app.deps.policy.profiles])
    view = await pages.request_list(b.app.deps, b.source, viewer, flt)

    def link(**override: Any) -> str:
        return f"{PREFIX}/requests?" + urlencode(flt.query(**override))

    return html(request, "requests.html", status=400 if flt.malformed else 200, viewer=viewer, view=view, link=link,
                nav="requests")


@page()
async def request_detail(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    b = board(request)
    m = re.fullmatch(r"REQ-([0-9]{1,9})", request.match_info["ref"], re.IGNORECASE)
    view = await pages.request_page(b.app.deps, b.source, viewer, int(m.group(1))) if m else None
    if view is None:
        return forbidden(request, viewer, f"request {request.match_info['ref'][:20]}")
    return html(request, "request.html", viewer=viewer, view=view, nav="requests")


def no_such_address(request: web.Request, viewer: Viewer) -> web.Response:
    return html(request, "error.html", status=400, viewer=viewer, title="Not an address",
                message="An email address has no control characters.")


@page()
async def people(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    email = (request.query.get("email") or "").strip().lower()
    if has_control(email):
        return no_such_address(request, viewer)
    if not viewer.security or not email:
        if viewer.security:
            return html(request, "people.html", viewer=viewer, nav="people")
        email = viewer.email
    return see_other(f"{PREFIX}/people/{quote(email[:320], safe='@')}")


@page()
async def person(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    b = board(request)
    if has_control(request.match_info["email"]):
        return no_such_address(request, viewer)
    view = await pages.person_page(b.app.deps, b.source, viewer, request.match_info["email"][:320])
    if view is None:
        return forbidden(request, viewer, "another person's page")
    return html(request, "person.html", viewer=viewer, view=view, nav="people")


@page()
async def reviews(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    b = board(request)
    view = await posture.reviews(b.app.deps, b.source, viewer)
    return html(request, "reviews.html", viewer=viewer, view=view, nav="reviews")


@page(security=True)
async def posture_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    b = board(request)
    view = await posture.posture(b.app.deps, b.source, b.reports, viewer)
    return html(request, "posture.html", viewer=viewer, view=view, nav="posture")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name != "dashboard.css":
        raise web.HTTPNotFound()
    return web.FileResponse(HERE / "static" / name, headers={"Content-Type": "text/css; charset=utf-8",
                                                            "Cache-Control": "public, max-age=3600"})


async def no_head(request: web.Request) -> web.StreamResponse:
    """HEAD on an address whose GET builds or records something (an evidence pack and its ``evidence.exported``,
    a Microsoft sign-in's flow, a sign-in): refused, so that nothing is built or recorded for an answer nobody
    receives. aiohttp would otherwise answer HEAD with the GET handler, side effects and all."""
    return web.Response(status=405, headers={"Allow": "GET"},
                        text="HEAD is not answered here: this address builds or records something. Use GET.")


def add_routes(web_app: web.Application) -> None:
    from bot.web.evidence import evidence_form, evidence_pack
    from bot.web.oidc import entra_callback, entra_start

    r = web_app.router
    r.add_get(PREFIX, overview)
    r.add_get(f"{PREFIX}/", overview)
    r.add_get(f"{PREFIX}/signin", signin)
    r.add_get(f"{PREFIX}/link/{{token}}", link_page)
    r.add_post(f"{PREFIX}/link/{{token}}", link_redeem)
    r.add_post(f"{PREFIX}/signout", signout)
    # GETs that build or record something: HEAD gets 405 instead of the GET handler (read-only pages answer HEAD)
    for path, handler in ((f"{PREFIX}/login/entra", entra_start), (f"{PREFIX}/login/entra/callback", entra_callback),
                          (f"{PREFIX}/evidence/pack", evidence_pack)):
        r.add_get(path, handler, allow_head=False)
        r.add_route("HEAD", path, no_head)
    r.add_get(f"{PREFIX}/requests", request_list)
    r.add_get(f"{PREFIX}/requests/{{ref}}", request_detail)
    r.add_get(f"{PREFIX}/people", people)
    r.add_get(f"{PREFIX}/people/{{email}}", person)
    r.add_get(f"{PREFIX}/reviews", reviews)
    r.add_get(f"{PREFIX}/posture", posture_page)
    r.add_get(f"{PREFIX}/evidence", evidence_form)
    r.add_get(f"{PREFIX}/static/{{name}}", static)
