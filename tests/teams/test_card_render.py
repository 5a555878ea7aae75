"""Every Teams card, rendered by Microsoft's Adaptive Cards renderer (the ``adaptivecards`` npm package)
in headless Chromium, as a 1.5 host with Teams' host config, with Markdown processed (markdown-it).

Each card must parse and validate without a single event (unknown or too-new elements and
properties, missing ids, bad values), render to a non-empty element with its buttons and inputs,
show every piece of user text literally and contain no link. The npm packages are installed from
``tests/teams/render/package-lock.json`` into ``tests/teams/render/node_modules`` when missing. The
test skips only when Chromium or Node.js is not installed (and fails in CI, which has both).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cards import adaptive, compliance_adaptive, reviews_adaptive
from handlers.compliance.views import DriftView, PauseView
from handlers.views import FormRequest, ProfileView, Reply
from tests.teams.cardcheck import check_card
from tests.teams.test_card_text import NASTY, PAYLOADS, review_view, view

RENDER = Path(__file__).resolve().parent / "render"
SCRIPTS = ("node_modules/adaptivecards/dist/adaptivecards.min.js",
           "node_modules/markdown-it/dist/browser/markdown-it.umd.min.js")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run")


def _colours() -> dict[str, Any]:
    shades = {"default": ("#ff252424", "#bf252424"), "dark": ("#252424", "#bf252424"),
              "light": ("#ffffff", "#fff3f2f1"), "accent": ("#6264a7", "#8b8cc7"),
              "good": ("#92c353", "#e592c353"), "warning": ("#f8d22a", "#e5f8d22a"),
              "attention": ("#c4314b", "#e5c4314b")}
    return {name: {"default": d, "subtle": s} for name, (d, s) in shades.items()}


def teams_host_config() -> dict[str, Any]:
    """The values of Microsoft Teams' (light theme) host config that decide layout and what is allowed."""
    fonts = {"fontSizes": {"small": 12, "default": 14, "medium": 14, "large": 18, "extraLarge": 24},
             "fontWeights": {"lighter": 200, "default": 400, "bolder": 600}}
    backgrounds = {"default": "#ffffff", "emphasis": "#fff9f8f7", "accent": "#C7DEF9", "good": "#CCFFCC",
                   "attention": "#FFC5B2", "warning": "#FFE2B2"}
    return {
        "supportsInteractivity": True, "choiceSetInputValueSeparator": ",",
        "spacing": {"small": 8, "default": 12, "medium": 16, "large": 20, "extraLarge": 24, "padding": 16},
        "separator": {"lineThickness": 1, "lineColor": "#EEEEEE"},
        "imageSizes": {"small": 32, "medium": 52, "large": 100},
        "fontStyles": {"default": {"fontFamily": "'Segoe UI', Tahoma, Geneva, Verdana, sans-serif", **fonts},
                       "monospace": {"fontFamily": "'Courier New', Courier, monospace", **fonts}},
        "containerStyles": {name: {"backgroundColor": bg, "foregroundColors": _colours()}
                            for name, bg in backgrounds.items()},
        "actions": {"maxActions": 6, "spacing": "Default", "buttonSpacing": 8, "actionsOrientation": "Horizontal",
                    "actionAlignment": "Left", "showCard": {"actionMode": "Inline", "inlineTopMargin": 16,
                                                            "style": "emphasis"}},
        "adaptiveCard": {"allowCustomStyle": False},
        "factSet": {"title": {"weight": "Bolder", "wrap": True}, "value": {"wrap": True}, "spacing": 16},
    }


PAGE_SCRIPT = """
const results = [];
AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
  result.outputHtml = markdownit().render(text);
  result.didProcess = true;
};
for (const [name, payload] of Object.entries(CARDS)) {
  const events = [];
  let rendered = null;
  try {
    const card = new AdaptiveCards.AdaptiveCard();
    card.hostConfig = new AdaptiveCards.HostConfig(HOST_CONFIG);
    const context = new AdaptiveCards.SerializationContext(AdaptiveCards.Versions.v1_5);
    card.parse(payload, context);
    for (let i = 0; i < context.eventCount; i++) {
      const e = context.getEventAt(i);
      events.push(`parse ${e.event}: ${e.message}`);
    }
    for (const e of card.validateProperties().validationEvents) {
      events.push(`validate ${e.event}: ${e.message}`);
    }
    const element = card.render();
    if (element) {
      const box = document.createElement("section");
      box.appendChild(element);
      document.body.appendChild(box);
      rendered = {
        text: element.innerText,
        links: element.querySelectorAll("a").length,
        buttons: Array.from(element.querySelectorAll("button")).map(b => b.innerText.trim()).filter(t => t),
        inputs: element.querySelectorAll("input, textarea, select").length,
        height: element.getBoundingClientRect().height,
      };
    }
  } catch (err) {
    events.push(`exception: ${err}`);
  }
  results.push({name, events, rendered});
}
document.getElementById("out").textContent = JSON.stringify(results);
"""


def _tool(name: str, *alternatives: str) -> str:
    found = next((p for p in (shutil.which(n) for n in (name, *alternatives)) if p), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="module")
def renderer() -> Callable[[dict[str, dict[str, Any]], Path], list[dict[str, Any]]]:
    browser = _tool("chromium", "chromium-browser")
    _tool("node")
    if not all((RENDER / s).is_file() for s in SCRIPTS):
        npm = _tool("npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=RENDER, check=True,
                       capture_output=True, timeout=300)
    scripts = "".join(f"<script>{(RENDER / s).read_text()}</script>" for s in SCRIPTS)

    def render(cards: dict[str, dict[str, Any]], where: Path) -> list[dict[str, Any]]:
        page = where / "cards.html"
        cards_json = json.dumps(cards).replace("</", "<\\/")  # user text must not close the script
        data = f"<script>const CARDS = {cards_json};\nconst HOST_CONFIG = {json.dumps(teams_host_config())};</script>"
        page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{scripts}</head><body>"
                        f"<pre id='out'></pre>{data}<script>{PAGE_SCRIPT}</script></body></html>")
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={where / 'profile'}", "--virtual-time-budget=10000",
                               "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        found = re.search(r"<pre id=\"out\">(.*?)</pre>", done.stdout, flags=re.S)
        assert found and found.group(1), (done.returncode, done.stderr[-2000:])
        results: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
        return results

    return render


def every_card() -> dict[str, dict[str, Any]]:
    """One of each card the Teams channel sends, filled with the nastiest user text."""
    v = view()
    profile = ProfileView(id="prod-db-read", title=PAYLOADS[0], risk="high", eligible=False, reason=PAYLOADS[1],
                          default_duration="1h", max_duration="8h", justification_required=True,
                          ticket_required=True, exception_allowed=True)
    form = FormRequest(profile="prod-db-read", duration="2h", justification=NASTY, ticket="x", missing=("ticket",),
                       errors={"ticket": "JIRA-1 " + PAYLOADS[0] + " does not match"}, profiles=(profile,))
    return {
        "approval": adaptive.approval_card(v, viewer="mark.mgr@example.com", note=NASTY,
                                           refresh_user_ids=["29:1mark"]),
        "approval, asking for a reason": adaptive.approval_card(v, viewer="mark.mgr@example.com", ask_reason=True,
                                                                note="Say why."),
        "approval, decided": adaptive.approval_card(view(state="denied", waiting_on=()), viewer="mark.mgr@example.com"),
        "outcome": adaptive.outcome_card(view(state="revoked", end_reason=PAYLOADS[0])),
        "status": adaptive.status_card(v, note=NASTY),
        "expiring": adaptive.expiring_card(view(state="active", expires_at="2026-11-23T10:00:00Z"), note=NASTY),
        "requests": adaptive.requests_card("Pending", [view(requester=PAYLOADS[1])] * 30, extra=[NASTY]),
        "profiles": adaptive.profiles_card([profile]),
        "form": adaptive.form_card(form),
        "text": adaptive.text_card(NASTY, title=PAYLOADS[1], attention=True),
        "help": adaptive.help_card(Reply(text="Commands:\n  request <profile>  " + PAYLOADS[0], kind="help")),
        "review, 1 item": reviews_adaptive.review_card(review_view(1), refresh_user_ids=["29:1mark"], note=NASTY),
        "review, 20 items": reviews_adaptive.review_card(review_view(20), refresh_user_ids=["29:1mark"]),
        "review, last card of 200": reviews_adaptive.review_card(review_view(200), page=9, comment=NASTY,
                                                                 ask_reason=True, note="Say why.", attention=True),
        "review, closed": reviews_adaptive.review_card(review_view(20, state="signoff")),
        "drift finding": compliance_adaptive.drift_card(DriftView(
            id="D-3", provider="entra", group=PAYLOADS[0], user="pat@example.com", member=True,
            first_seen="2026-11-23T08:00:00Z", escalated=True)),
        "removals paused": compliance_adaptive.pause_card(PauseView(reason="terminated", count=30, limit=25,
                                                                    sample=tuple(PAYLOADS[:3]))),
    }


def test_every_card_renders_in_microsofts_renderer_with_teams_host_config(renderer: Any, tmp_path: Path) -> None:
    cards = every_card()
    for card in cards.values():
        check_card(card)  # the official 1.5 schema and the 28 KB limit
    results = {r["name"]: r for r in renderer(cards, tmp_path)}
    assert set(results) == set(cards)
    for name, result in results.items():
        assert result["events"] == [], (name, result["events"])
        shown = result["rendered"]
        assert shown and shown["height"] > 0 and shown["text"].strip(), name
        assert shown["links"] == 0, (name, "user text became a link")
    assert results["approval"]["rendered"]["buttons"] == ["Approve", "Deny"]
    assert results["approval"]["rendered"]["inputs"] == 1
    assert results["approval, decided"]["rendered"]["buttons"] == []
    assert results["expiring"]["rendered"]["buttons"] == ["Extend"]
    assert results["form"]["rendered"]["buttons"] == ["Submit"] and results["form"]["rendered"]["inputs"] >= 4
    one, twenty = results["review, 1 item"]["rendered"], results["review, 20 items"]["rendered"]
    assert one["buttons"] == ["Save", "Keep all", "Remove all"] and one["inputs"] == 2 + 1  # keep, remove, comment
    assert twenty["inputs"] == 19 * 2 + 1  # item 2 is gone: nothing to choose
    assert results["review, last card of 200"]["rendered"]["buttons"] == ["Save", "Keep all on this card",
                                                                         "Remove all on this card"]
    closed = results["review, closed"]["rendered"]
    assert closed["buttons"] == [] and closed["inputs"] == 0
    for name in ("approval", "status", "text", "review, 1 item"):  # what people typed is shown as typed
        for payload in PAYLOADS:
            for line in payload.splitlines():
                assert line.strip() in results[name]["rendered"]["text"], (name, line)


def test_the_renderer_reports_what_teams_would_refuse(renderer: Any, tmp_path: Path) -> None:
    """The check can fail: an element newer than 1.5, two inputs with one id, Markdown that makes a link."""
    text = {"type": "TextBlock", "text": "x"}
    bad = {"too new": {"type": "AdaptiveCard", "version": "1.5",
                       "body": [{"type": "Carousel", "pages": [{"type": "CarouselPage", "items": [text]}]}]},
           "one id twice": {"type": "AdaptiveCard", "version": "1.5",
                            "body": [{"type": "Input.Text", "id": "comment"}, {"type": "Input.Text", "id": "comment"}]},
           "link": {"type": "AdaptiveCard", "version": "1.5",
                    "body": [{"type": "TextBlock", "text": "[Approve now](https://evil.example/x)"}]}}
    results = {r["name"]: r for r in renderer(bad, tmp_path)}
    assert any("Carousel" in e for e in results["too new"]["events"]), results["too new"]
    assert any("Duplicate Id" in e for e in results["one id twice"]["events"]), results["one id twice"]
    assert results["link"]["rendered"]["links"] == 1
