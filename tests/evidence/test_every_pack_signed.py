"""Attack r8b: evidence packs that leave the bot unsigned although a signing key is configured.

docs/audit-integrity.md §3: "With ACCESSBOT_SIGNING_KEY ... and ACCESSBOT_SIGNING_CERT ..., every
evidence pack carries signing-cert.pem and manifest.json.sig"; an unsigned pack can be rewritten by
whoever holds it (manifest digests recomputed), so the signature is what makes a pack evidence.
``accessbot evidence export`` and the chat word ``evidence`` sign; the dashboard's download
(/dashboard/evidence/pack, SPEC §8 / docs/dashboard.md) and the scheduled quarterly pack (the
policy's ``evidence:`` block, delivered by ``accessbot sweep`` and the server's scheduler) do not.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import yaml

from tests.evidence.test_signing import _key_and_cert
from tests.support import chat, cli, copy_examples
from tests.web.conftest import serve_dashboard


def _signed_by(members: dict[str, bytes]) -> str | None:
    manifest = json.loads(members["manifest.json"])
    sig = manifest.get("signature")
    return None if sig is None or "manifest.json.sig" not in members else str(sig.get("subject"))


async def test_dashboard_download_is_signed_when_a_key_is_set(sqlite_url, tmp_path) -> None:
    key, cert = _key_and_cert(tmp_path, "org", "rsa")
    env = {"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)}
    async with serve_dashboard(sqlite_url, tmp_path, env=env) as h:
        await h.say("bob@example.com", "request analytics-read for 1d")
        cookie = await h.sign_in("sam.sec@example.com")
        days = sorted({h.clock.now().date(), datetime.now(UTC).date()})
        period = f"from={days[0] - timedelta(days=1)}&to={days[-1] + timedelta(days=1)}"
        async with h.http.get(f"{h.url}/dashboard/evidence/pack?{period}", headers={"Cookie": cookie}) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pack = tmp_path / "downloaded.zip"
    pack.write_bytes(body)
    verdict = cli("evidence", "verify", str(pack), "--cert", str(cert))
    assert _signed_by(members) is not None, (
        f"the dashboard's pack is unsigned although ACCESSBOT_SIGNING_KEY is set: {sorted(members)}\n"
        f"accessbot evidence verify --cert: exit {verdict.returncode}: {verdict.stdout}")
    assert verdict.returncode == 0, verdict.stdout


def test_scheduled_quarterly_pack_is_signed_when_a_key_is_set(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    out = tmp_path / "delivered"
    policy = yaml.safe_load(files.policy.read_text())
    policy["evidence"] = {"quarterly": True, "deliver_to": str(out)}
    files.policy.write_text(yaml.safe_dump(policy, sort_keys=False))
    key, cert = _key_and_cert(tmp_path, "org", "ec")
    env = {"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)}
    chat("bob@example.com", "request analytics-read for 1d", db=sqlite_url, files=files, env=env)
    swept = cli("sweep", db=sqlite_url, files=files, env=env)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    packs = sorted(out.glob("*.zip"))
    assert packs, (swept.stdout, swept.stderr, list(out.iterdir()) if out.exists() else None)
    with zipfile.ZipFile(packs[0]) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    verdict = cli("evidence", "verify", str(packs[0]), "--cert", str(cert))
    assert _signed_by(members) is not None, (
        f"the scheduled pack {packs[0].name} is unsigned although ACCESSBOT_SIGNING_KEY is set\n"
        f"accessbot evidence verify --cert: exit {verdict.returncode}: {verdict.stdout}")
    assert verdict.returncode == 0, verdict.stdout
