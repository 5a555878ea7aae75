"""Headers, the session cookie and the checks every dashboard request goes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from bot.web import DASHBOARD_KEY, PREFIX, Dashboard
from handlers.dashboard.signin import SESSION_TTL, Viewer, viewer_for
from handlers.ports import ProviderError

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a sign-in link in the address bar never travels in a Referer
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
COOKIE = "accessbot_session"
SECURE_COOKIE = "__Host-accessbot_session"  # on https: Secure, Path=/, no Domain (a sibling host cannot set it)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("accessbot.dashboard")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every dashboard answer carries :data:`HEADERS`, a failure too: an unexpected exception is logged and
    answered with a plain 500 page (unless the answer had begun: then the connection just ends)."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        harden(request, exc.headers)
        raise
    except ProviderError as exc:  # the identity source or a provider could not answer: nobody is judged by it
        if request.writer.output_size > 0:
            raise
        log.warning("dashboard request waits for a provider", method=request.method, path=request.path,
                    error=str(exc)[:200], status=exc.status)
        response = failure_page(request, status=503, title="Try again shortly",
                                text="The identity source could not be reached, so the dashboard cannot say who you "
                                     "are or what they hold right now. Nothing was changed; try again in a minute.")
        response.headers["Retry-After"] = str(max(1, min(300, round(exc.retry_after or 30))))
    except Exception:
        if request.writer.output_size > 0:  # part of the answer is on its way: too late for another (as aiohttp)
            raise
        log.exception("dashboard request failed", method=request.method, path=request.path)
        response = failure_page(request)
    harden(request, response.headers)
    return response


def failure_page(request: web.Request, *, status: int = 500, title: str = "Something went wrong",
                 text: str = "The dashboard could not answer this request. The error is logged; try again later."
                 ) -> web.Response:
    try:
        body = board(request).render("error.html", viewer=None, entra=False, title=title, message=text)
    except Exception:  # the page itself fails: plain words, the same headers
        log.exception("dashboard error page failed")
        return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


def harden(request: web.Request, headers: Any) -> None:
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    if secure(request):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def board(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD_KEY]


def secure(request: web.Request) -> bool:
    """Behind https (the public URL says so, or the connection is TLS itself)."""
    return board(request).app.settings.public_base.startswith("https://") or request.secure


def cookie_name(request: web.Request) -> str:
    return SECURE_COOKIE if secure(request) else COOKIE


def session_secret(request: web.Request) -> str | None:
    return request.cookies.get(cookie_name(request))


def set_session(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    response.set_cookie(cookie_name(request), secret, max_age=int(SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="Strict", secure=secure(request))


def clear_session(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(cookie_name(request), path="/", samesite="Strict", secure=secure(request), httponly=True)


async def current_viewer(request: web.Request) -> Viewer | None:
    b = board(request)
    return await viewer_for(b.app.deps, b.source, session_secret(request))


def same_origin(request: web.Request) -> bool:
    """A form POST comes from our own pages. Browsers say so in ``Sec-Fetch-Site``; where that header is
    missing, the ``Origin`` must be ours (with ``Referrer-Policy: no-referrer`` a browser's Origin is
    ``null``, which is refused then). A client that sends neither is no browser: no cookie to ride."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    ours = {f"{request.scheme}://{request.host}"}
    public = urlsplit(board(request).app.settings.public_base)
    ours.add(f"{public.scheme}://{public.netloc}")
    return origin in ours
