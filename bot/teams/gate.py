"""Who may use ``POST /api/messages``: the channel's mode, proxies, service URLs and tenants.

Three modes, from the settings (SPEC §2.3):

``secured``   ``MicrosoftAppId`` set: every activity carries a Bot Framework token (checked by the
              SDK) and comes from one of the served tenants; anything else is refused.
``emulator``  ``ACCESSBOT_TEAMS_EMULATOR=1`` and no app id: activities are not authenticated, so
              they are taken only from this machine, never through a proxy, and the bot calls
              back only a ``serviceUrl`` on this machine.
``off``       neither: the route accepts nothing.

Framework-free: it reads the activity as the JSON the channel posted.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.settings import Settings

SECURED, EMULATOR, OFF = "secured", "emulator", "off"
# Headers a reverse proxy, tunnel or load balancer adds; a local emulator sends none of them.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP", "Via",
                 "X-Client-IP", "True-Client-IP", "CF-Connecting-IP")


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


@functools.lru_cache(maxsize=256)
def is_loopback_host(host: str | None) -> bool:
    host = (host or "").strip().strip("[]").split("%", 1)[0].lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url.strip())
        return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)
    except ValueError:
        return False


def activity_tenants(activity: Mapping[str, Any]) -> list[str]:
    """Every tenant id the activity names (``channelData.tenant.id``, ``conversation.tenantId``), lower case."""
    found: list[str] = []
    channel_data = activity.get("channelData")
    tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
    conversation = activity.get("conversation")
    for value in (tenant.get("id") if isinstance(tenant, dict) else None,
                  conversation.get("tenantId") if isinstance(conversation, dict) else None):
        if value is not None:
            found.append(str(value).strip().lower())
    return found


@dataclass(frozen=True)
class Gate:
    mode: str
    tenants: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        if settings.app_id:
            tenants = settings.teams_tenant_ids
            if not tenants:
                raise SystemExit("Teams: no tenant to serve. Set ACCESSBOT_TEAMS_TENANTS (or MicrosoftAppTenantId, "
                                 "or ACCESSBOT_ENTRA_TENANT_ID): a multi-tenant app would otherwise answer anyone "
                                 "in any tenant")
            return cls(SECURED, tenants)
        if settings.teams_emulator_on:
            return cls(EMULATOR, settings.teams_tenant_ids)
        return cls(OFF, frozenset())

    def door(self, peer: str | None, headers: Mapping[str, str]) -> Refusal | None:
        """Before anything is read: the mode, and in emulator mode the caller's place."""
        if self.mode == OFF:
            return Refusal(401, "Teams is off: set MicrosoftAppId (or ACCESSBOT_TEAMS_EMULATOR=1 for a Bot "
                                "Framework Emulator on this machine)")
        if self.mode == EMULATOR and (not is_loopback_host(peer) or any(h in headers for h in PROXY_HEADERS)):
            return Refusal(401, "emulator mode answers this machine only, never through a proxy: "
                                "set MicrosoftAppId")
        return None

    def admit(self, activity: Mapping[str, Any]) -> Refusal | None:
        """After authentication: the service URL (emulator mode) and the tenant."""
        if self.mode == EMULATOR and not is_loopback_url(activity.get("serviceUrl")):
            return Refusal(403, "emulator mode only answers a serviceUrl on this machine")
        channel = activity.get("channelId")
        if channel != "msteams" and not (self.mode == EMULATOR and channel == "emulator"):
            # Web Chat, Direct Line …: their client writes `from` and `channelData`, which only Teams vouches for
            return Refusal(403, "this route answers Microsoft Teams only (channelId msteams)")
        named = activity_tenants(activity)
        if self.mode == SECURED and len(named) < 2:  # Teams names it twice; only channelData is client-written
            return Refusal(403, "the activity does not name its tenant in both its conversation and channelData")
        if len(set(named)) > 1:  # Teams names one tenant twice; two are a forged or broken activity
            return Refusal(403, "the activity names two different tenants in its conversation and channelData")
        if self.tenants and any(t not in self.tenants for t in named):
            return Refusal(403, "this bot does not serve your tenant")
        return None

    def may_call(self, service_url: str) -> bool:
        """Whether the bot may send to this service URL (emulator mode: this machine only)."""
        return self.mode != EMULATOR or is_loopback_url(service_url)
