"""report.html in a real headless Chromium: it renders the figures from the store and asks the
network for nothing. Every request the browser makes goes to a recording proxy on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from bot.evidence_commands import write_pack
from handlers.evidence import Period
from tests.support import harness

# Chromium's own housekeeping, which the launch flags do not fully silence; a page asset is never one of these
BROWSER_OWN = ("clients2.google.com", "update.googleapis.com", "accounts.google.com", "redirector.gvt1.com",
               "optimizationguide-pa.googleapis.com", "safebrowsing.googleapis.com", "edgedl.me.gvt1.com",
               "content-autofill.googleapis.com", "android.clients.google.com")


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install chromium)")
        pytest.skip("Chromium is not installed")
    return found


class RecordingProxy:
    """Accepts every connection, remembers the request line, answers nothing useful."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    line = "?"
                self.requests.append(line)

    def page_requests(self) -> list[str]:
        return [r for r in self.requests if not any(host in r for host in BROWSER_OWN)]


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    p = RecordingProxy()
    yield p
    p.sock.close()


def _chromium(browser: str, proxy: RecordingProxy, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
            f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_the_recording_proxy_sees_a_page_asset(tmp_path, proxy) -> None:
    """The detector works: a page with one remote image is caught."""
    browser = _browser()
    page = tmp_path / "leaky.html"
    page.write_text("<!doctype html><p>x</p><img src='http://assets.example.invalid/logo.png'>")
    _chromium(browser, proxy, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert any("assets.example.invalid" in r for r in proxy.page_requests()), proxy.requests


async def test_report_renders_offline(sqlite_url, tmp_path, proxy) -> None:
    browser = _browser()
    now = datetime.now(UTC).replace(microsecond=0)
    async with harness(sqlite_url, tmp_path) as h:
        h.clock.at = now
        await h.say("bob@example.com", "request analytics-read for 1d")
        await h.say("carol@example.com", "exception prod-db-read for 2d because INC-9 migration")
        await h.say("sam.sec@example.com", "approve REQ-2")
        await h.say("dana.dba@example.com", "approve REQ-2")
        await h.say("alice@example.com", "request staging-admin for 1h")
        await h.say("mark.mgr@example.com", "deny REQ-3 because not now")
        period = Period.parse(str((now - timedelta(days=1)).date()), str((now + timedelta(days=1)).date()))
        out = tmp_path / "pack.zip"
        await write_pack(h.app.store, period, out, sla_hours=24)
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as zf:
        zf.extract("report.html", folder)
    page = (folder / "report.html").as_uri()

    dom = _chromium(browser, proxy, tmp_path / "profile", "--dump-dom", page).stdout
    assert f"Access evidence, {period.start} to {period.end}" in dom
    assert "Requests: 3" in dom and "Exceptions: 1" in dom and "REQ-2" in dom and "INC-9 migration" in dom
    assert "The audit chain verified" in dom and dom.count("<svg") >= 2 and "Requests per week" in dom

    shot = tmp_path / "report.png"  # an artefact of the test run only, never kept in the repository
    _chromium(browser, proxy, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,1400", page)
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 8  # text and bars drawn, not a blank page
    assert proxy.page_requests() == []
