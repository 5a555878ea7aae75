"""Settings from the environment (and a ``.env`` file), each with a working default (SPEC §2.3)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _default_file(relative: str) -> str:
    """``examples/…`` relative to the working directory, else the copy beside the installed code."""
    if Path(relative).exists():
        return relative
    shipped = PACKAGE_ROOT / relative
    return str(shipped) if shipped.exists() else relative


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///accessbot.db"
    policy: str = field(default_factory=lambda: _default_file("examples/policy.yaml"))
    directory: str = field(default_factory=lambda: _default_file("examples/directory.yaml"))
    port: int = 3978
    host: str = "0.0.0.0"
    app_id: str = ""
    app_password: str = ""
    app_tenant_id: str = ""
    app_type: str = ""
    teams_emulator: str = ""  # "1": /api/messages unauthenticated, for an emulator on this machine only
    teams_tenants: str = ""  # comma-separated Entra tenant ids served in Teams (default: see teams_tenant_ids)
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_api_url: str = "https://slack.com/api/"
    entra_tenant_id: str = ""
    entra_client_id: str = ""
    entra_client_secret: str = ""
    entra_certificate: str = ""
    entra_certificate_thumbprint: str = ""
    graph_url: str = "https://graph.microsoft.com/v1.0"
    authority_url: str = "https://login.microsoftonline.com"
    identity: str = ""
    okta_url: str = ""
    okta_token: str = ""
    okta_client_id: str = ""
    okta_private_key: str = ""
    okta_key_id: str = ""
    okta_scopes: str = ""  # empty: provisioning.okta_auth.DEFAULT_SCOPES
    public_url: str = ""  # empty: http://localhost:<port>
    sharepoint_drive_id: str = ""
    metrics_token: str = ""  # set: GET /metrics wants "Authorization: Bearer <token>"
    db_pool_size: int = 30  # PostgreSQL connections a process may hold at once (store.db.POOL_SIZE)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def entra_configured(self) -> bool:
        return bool(self.entra_tenant_id and self.entra_client_id
                    and (self.entra_client_secret or self.entra_certificate))

    @property
    def okta_configured(self) -> bool:
        return bool(self.okta_url and (self.okta_token or (self.okta_client_id and self.okta_private_key)))

    @property
    def teams_emulator_on(self) -> bool:
        return self.teams_emulator.strip().lower() in {"1", "true", "yes", "on"}

    @property
    def teams_tenant_ids(self) -> frozenset[str]:
        """The tenants whose users Teams serves: the setting, else the app's tenant, else Entra's."""
        raw = self.teams_tenants or self.app_tenant_id or self.entra_tenant_id
        return frozenset(t.strip().lower() for t in raw.split(",") if t.strip())

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    @property
    def public_base(self) -> str:
        """Where people reach ``accessbot serve`` (SPEC §8), without a trailing slash."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def identity_source(self) -> str:
        if self.identity:
            return self.identity
        if self.entra_configured:
            return "entra"
        if self.okta_configured:
            return "okta"
        return "directory"

    def with_overrides(self, **kw: object) -> Settings:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


_ENV = {
    "database_url": "ACCESSBOT_DATABASE_URL", "policy": "ACCESSBOT_POLICY", "directory": "ACCESSBOT_DIRECTORY",
    "port": "ACCESSBOT_PORT", "host": "ACCESSBOT_HOST",
    "app_id": "MicrosoftAppId", "app_password": "MicrosoftAppPassword",
    "app_tenant_id": "MicrosoftAppTenantId", "app_type": "MicrosoftAppType",
    "teams_emulator": "ACCESSBOT_TEAMS_EMULATOR", "teams_tenants": "ACCESSBOT_TEAMS_TENANTS",
    "slack_bot_token": "SLACK_BOT_TOKEN", "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_api_url": "SLACK_API_URL",
    "entra_tenant_id": "ACCESSBOT_ENTRA_TENANT_ID", "entra_client_id": "ACCESSBOT_ENTRA_CLIENT_ID",
    "entra_client_secret": "ACCESSBOT_ENTRA_CLIENT_SECRET",
    "entra_certificate": "ACCESSBOT_ENTRA_CERTIFICATE",
    "entra_certificate_thumbprint": "ACCESSBOT_ENTRA_CERTIFICATE_THUMBPRINT",
    "graph_url": "ACCESSBOT_GRAPH_URL", "authority_url": "ACCESSBOT_AUTHORITY_URL",
    "identity": "ACCESSBOT_IDENTITY", "okta_url": "ACCESSBOT_OKTA_URL", "okta_token": "ACCESSBOT_OKTA_TOKEN",
    "okta_client_id": "ACCESSBOT_OKTA_CLIENT_ID", "okta_private_key": "ACCESSBOT_OKTA_PRIVATE_KEY",
    "okta_key_id": "ACCESSBOT_OKTA_KEY_ID", "okta_scopes": "ACCESSBOT_OKTA_SCOPES",
    "public_url": "ACCESSBOT_PUBLIC_URL", "sharepoint_drive_id": "ACCESSBOT_SHAREPOINT_DRIVE_ID",
    "metrics_token": "ACCESSBOT_METRICS_TOKEN", "db_pool_size": "ACCESSBOT_DB_POOL_SIZE",
}


def load_settings(environ: Mapping[str, str] | None = None, dotenv: str | None = ".env") -> Settings:
    """Environment variables win over the ``.env`` file; unset means the default."""
    merged: dict[str, str] = {}
    if dotenv and Path(dotenv).is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for attr, var in _ENV.items():
        raw = merged.get(var)
        if raw is None or raw == "":
            continue
        if attr == "port":
            try:
                values[attr] = int(raw)
            except ValueError:
                raise SystemExit(f"{var} must be a port number, not {raw!r}") from None
        elif attr == "db_pool_size":
            # two at least: a write holds its connection while it reads on another (the policy of a round, the
            # safety brake's state): with one, every write waited for the pool until it gave up
            if not (raw.strip().isascii() and raw.strip().isdigit()) or not 2 <= int(raw) <= 1000:
                raise SystemExit(f"{var} must be a number of connections from 2 to 1000, not {raw!r}")
            values[attr] = int(raw)
        else:
            values[attr] = raw
    if "slack_api_url" in values and not str(values["slack_api_url"]).endswith("/"):
        values["slack_api_url"] = str(values["slack_api_url"]) + "/"
    return Settings(env=dict(merged), **values)  # type: ignore[arg-type]
