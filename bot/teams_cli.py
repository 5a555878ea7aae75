"""``accessbot teams package``: the sideloadable Teams app package (manifest.json and the two icons)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.errors import output_file
from bot.settings import PACKAGE_ROOT

MANIFEST_DIR = PACKAGE_ROOT / "manifest" / "teams"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$")
ICONS = {"color.png": (192, 192), "outline.png": (32, 32)}


class PackageError(Exception):
    pass


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        for key, value in values.items():
            node = node.replace("{{" + key + "}}", value)
        return node
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    return node


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise PackageError("not a PNG file")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def build_manifest(app_id: str, domain: str, *, teams_app_id: str | None = None, version: str | None = None,
                   source: Path = MANIFEST_DIR) -> dict[str, Any]:
    if not GUID.match(app_id):
        raise PackageError(f"--app-id must be the bot's Microsoft App ID (a GUID), not {app_id!r}")
    if teams_app_id and not GUID.match(teams_app_id):
        raise PackageError(f"--teams-app-id must be a GUID, not {teams_app_id!r}")
    if not DOMAIN.match(domain):
        raise PackageError(f"--domain must be a host name like bot.example.com, not {domain!r}")
    template = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest = _fill(template, {"MICROSOFT_APP_ID": app_id.lower(), "TEAMS_APP_ID": (teams_app_id or app_id).lower(),
                                "BOT_DOMAIN": domain.lower()})
    if version:
        manifest["version"] = version
    left = re.findall(r"\{\{[A-Z_]+\}\}", json.dumps(manifest))
    if left:
        raise PackageError(f"manifest template has unfilled placeholders: {', '.join(sorted(set(left)))}")
    return manifest


def write_package(out: Path, manifest: dict[str, Any], *, source: Path = MANIFEST_DIR) -> None:
    icons: dict[str, bytes] = {}
    for name, size in ICONS.items():
        data = (source / name).read_bytes()
        if png_size(data) != size:
            raise PackageError(f"{name} must be {size[0]}x{size[1]} pixels, is {png_size(data)}")
        icons[name] = data
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for name, data in icons.items():
            zf.writestr(name, data)


def cmd_package(args: argparse.Namespace) -> int:
    try:
        manifest = build_manifest(args.app_id, args.domain, teams_app_id=args.teams_app_id, version=args.version)
        write_package(output_file(args.out), manifest)
    except PackageError as exc:
        print(f"accessbot: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: Teams app package for bot {manifest['bots'][0]['botId']} "
          f"(app {manifest['id']}, version {manifest['version']}, domain {args.domain})")
    return 0


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("teams", help="Microsoft Teams app")
    tsub = p.add_subparsers(dest="teams_command", required=True)
    pk = tsub.add_parser("package", help="build the sideloadable app package (manifest.json + icons)")
    common(pk)
    pk.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (MicrosoftAppId)")
    pk.add_argument("--out", default="app.zip", help="zip file to write (default app.zip)")
    pk.add_argument("--domain", default="accessbot.example.com",
                    help="host name that serves /api/messages (validDomains and the developer URLs)")
    pk.add_argument("--teams-app-id", help="the Teams app id (a GUID; default: the bot's app id)")
    pk.add_argument("--version", help="app version in the manifest (semver)")
    pk.set_defaults(func=cmd_package)
