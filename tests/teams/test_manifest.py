"""The Teams app manifest, its icons and ``accessbot teams package``."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jsonschema
from PIL import Image

from handlers.queries import HELP_ANYONE, HELP_SECURITY
from tests.support import ROOT, cli

MANIFEST_DIR = ROOT / "manifest" / "teams"
APP_ID = "6a3c1f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
GUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
HTTPS = {"type": "string", "pattern": "^https://"}
SCOPES = {"type": "array", "items": {"enum": ["team", "personal", "groupchat"]}, "maxItems": 3}

# The rules of the Teams app manifest schema (v1.19) that apply to a bot-only app: required
# members, string limits, GUIDs, https URLs, one bot, at most 10 commands per command list.
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor"],
    "properties": {
        "$schema": {"type": "string", "pattern": "^https://developer.microsoft.com/.*/teams/v1\\.19/"},
        "manifestVersion": {"const": "1.19"},
        "version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$", "maxLength": 256},
        "id": {"type": "string", "pattern": GUID},
        "developer": {"type": "object", "additionalProperties": False,
                      "required": ["name", "websiteUrl", "privacyUrl", "termsOfUseUrl"],
                      "properties": {"name": {"type": "string", "maxLength": 32}, "websiteUrl": HTTPS,
                                     "privacyUrl": HTTPS, "termsOfUseUrl": HTTPS}},
        "name": {"type": "object", "additionalProperties": False, "required": ["short"],
                 "properties": {"short": {"type": "string", "maxLength": 30}, "full": {"type": "string",
                                                                                      "maxLength": 100}}},
        "description": {"type": "object", "additionalProperties": False, "required": ["short", "full"],
                        "properties": {"short": {"type": "string", "maxLength": 80},
                                       "full": {"type": "string", "maxLength": 4000}}},
        "icons": {"type": "object", "additionalProperties": False, "required": ["outline", "color"],
                  "properties": {"outline": {"type": "string"}, "color": {"type": "string"}}},
        "accentColor": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        "bots": {"type": "array", "maxItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["botId", "scopes"],
            "properties": {
                "botId": {"type": "string", "pattern": GUID}, "scopes": SCOPES,
                "supportsFiles": {"type": "boolean"}, "isNotificationOnly": {"type": "boolean"},
                "commandLists": {"type": "array", "maxItems": 3, "items": {
                    "type": "object", "additionalProperties": False, "required": ["scopes", "commands"],
                    "properties": {"scopes": SCOPES, "commands": {"type": "array", "maxItems": 10, "items": {
                        "type": "object", "additionalProperties": False, "required": ["title", "description"],
                        "properties": {"title": {"type": "string", "maxLength": 32},
                                       "description": {"type": "string", "maxLength": 128}}}}}}}}}},
        "validDomains": {"type": "array", "maxItems": 16, "uniqueItems": True,
                         "items": {"type": "string", "maxLength": 2048, "pattern": "^[^/:]+$"}},
    },
    "additionalProperties": False,
}


def _check(manifest: dict) -> None:
    jsonschema.Draft7Validator(MANIFEST_SCHEMA).validate(manifest)


def _check_icons(color: bytes, outline: bytes) -> None:
    c = Image.open(io.BytesIO(color))
    assert (c.format, c.size) == ("PNG", (192, 192))
    o = Image.open(io.BytesIO(outline)).convert("RGBA")
    assert o.size == (32, 32)
    pixels = [o.getpixel((x, y)) for y in range(32) for x in range(32)]
    assert pixels[0][3] == 0, "the outline icon's background must be transparent"
    assert all(a == 0 or (r, g, b) == (255, 255, 255) for r, g, b, a in pixels), "outline: white on transparent"


def test_template_has_the_grammar_and_both_scopes() -> None:
    manifest = json.loads((MANIFEST_DIR / "manifest.json").read_text())
    bot = manifest["bots"][0]
    assert set(bot["scopes"]) == {"personal", "team"}
    grammar_words = {c.split()[0] for c, _ in HELP_ANYONE + HELP_SECURITY} | {"who has"}
    titles = {c["title"] for lst in bot["commandLists"] for c in lst["commands"]}
    assert titles <= grammar_words
    assert grammar_words - titles <= {"evidence", "report", "who"}
    _check_icons((MANIFEST_DIR / "color.png").read_bytes(), (MANIFEST_DIR / "outline.png").read_bytes())


def test_package_command_builds_a_sideloadable_zip(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    result = cli("teams", "package", "--app-id", APP_ID, "--out", str(out), "--domain", "bot.contoso.com")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        _check(manifest)
        _check_icons(zf.read("color.png"), zf.read("outline.png"))
    assert manifest["bots"][0]["botId"] == APP_ID and manifest["id"] == APP_ID
    assert manifest["validDomains"] == ["bot.contoso.com"]
    assert "{{" not in json.dumps(manifest)


def test_package_command_refuses_bad_ids(tmp_path: Path) -> None:
    result = cli("teams", "package", "--app-id", "not-a-guid", "--out", str(tmp_path / "x.zip"))
    assert result.returncode == 2 and "GUID" in result.stderr
    assert not (tmp_path / "x.zip").exists()
