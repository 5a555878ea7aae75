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
# The official Teams app manifest schema, v1.19, as Microsoft publishes it (npm package
# @microsoft/app-manifest 1.1.2, MIT licence, build/json-schemas/teams/v1.19).
MANIFEST_SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "teams" / "MicrosoftTeams.v1.19.schema.json").read_text())


def _errors(manifest: dict) -> list[str]:
    validator = jsonschema.Draft4Validator(MANIFEST_SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


def _check(manifest: dict) -> None:
    assert manifest["$schema"].endswith("/teams/v1.19/MicrosoftTeams.schema.json")
    assert manifest["manifestVersion"] == "1.19"
    assert _errors(manifest) == []


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
    # a command list holds at most 10 commands (the personal one is full): these are typed, not picked
    assert grammar_words - titles <= {"evidence", "report", "who", "dashboard"}
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


def test_template_is_valid_once_its_placeholders_are_filled() -> None:
    text = (MANIFEST_DIR / "manifest.json").read_text()
    filled = json.loads(text.replace("{{TEAMS_APP_ID}}", APP_ID).replace("{{MICROSOFT_APP_ID}}", APP_ID)
                        .replace("{{BOT_DOMAIN}}", "bot.contoso.com"))
    _check(filled)


def test_the_official_schema_catches_what_teams_would_refuse() -> None:
    manifest = json.loads((MANIFEST_DIR / "manifest.json").read_text().replace("{{TEAMS_APP_ID}}", APP_ID)
                          .replace("{{MICROSOFT_APP_ID}}", APP_ID).replace("{{BOT_DOMAIN}}", "bot.contoso.com"))
    bad = json.loads(json.dumps(manifest))
    bad["name"]["short"] = "x" * 31
    bad["bots"][0]["commandLists"][0]["commands"] *= 4
    bad["bots"][0]["botId"] = "not-a-guid"
    errors = "\n".join(_errors(bad))
    assert "name/short" in errors and "botId" in errors and "commands" in errors, errors
