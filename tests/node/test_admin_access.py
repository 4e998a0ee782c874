"""Who may steer the node: admin tokens and the dashboard password over the admin API, the same on
the settings page, and editing a stored provider from the dashboard."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from tests.conftest import NodeHandle, Upstream, running_node
from tests.node.admin_auth import admin_headers
from tests.node.test_dashboard_auth import PASSWORD, browser, log_in, settings_csrf

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def status_with(http: aiohttp.ClientSession, node: NodeHandle, token: str) -> int:
    async with http.get(node.url + "/admin/api/books", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def test_tokens_and_password_over_the_admin_api(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node,
        browser() as http,
    ):
        admin = await admin_headers(node)
        api = node.url + "/admin/api"
        async with http.post(api + "/tokens", json={"name": "backup"}) as r:
            assert r.status == 401  # no token, no new token
        async with http.post(api + "/tokens", json={"name": " "}, headers=admin) as r:
            err = (await r.json())["error"]
            assert r.status == 400 and err["details"]["param"] == "name"
        async with http.post(api + "/tokens", json={"name": "backup"}, headers=admin) as r:
            assert r.status == 201
            made = await r.json()
        token = made["token"]
        assert token.startswith("rta-") and made["name"] == "backup"
        assert await status_with(http, node, token) == 200
        async with http.get(api + "/tokens", headers=admin) as r:
            listed = await r.json()
        assert token not in str(listed)
        assert [t["name"] for t in listed["tokens"]] == ["tests", "backup"]
        async with node.db.read() as conn:
            stored = [r[0] for r in (await conn.execute(text("SELECT token_hash FROM admin_tokens"))).all()]
        assert token not in stored and len(stored) == 2

        async with http.delete(f"{api}/tokens/{made['id']}", headers=admin) as r:
            assert r.status == 200
        assert await status_with(http, node, token) == 401  # revoked: refused at once
        async with http.delete(f"{api}/tokens/{made['id']}", headers=admin) as r:
            assert r.status == 404

        assert await log_in(node, http) == 303  # a dashboard session, ended by the change below
        new = "changed-by-script-789"
        async with http.put(
            api + "/password", json={"current": "wrong-one-0", "new": new}, headers=admin
        ) as r:
            assert r.status == 403 and (await r.json())["error"]["details"]["param"] == "current"
        async with http.put(
            api + "/password", json={"current": PASSWORD, "new": "short"}, headers=admin
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["details"]["param"] == "new"
        async with http.put(api + "/password", json={"current": PASSWORD, "new": new}, headers=admin) as r:
            assert r.status == 200 and await r.json() == {"changed": True, "sessions_ended": 1}
        async with http.get(node.url + "/admin/settings", allow_redirects=False) as r:
            assert r.status == 303  # logged out
        assert await log_in(node, http, PASSWORD) == 401
        assert await log_in(node, http, new) == 303


async def test_no_password_yet_can_be_set_over_the_api(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with running_node(backend, mint_url, fake_upstream, tmp_path) as node, browser() as http:
        admin = await admin_headers(node)
        assert await log_in(node, http, "anything-at-all") == 401  # no password: no dashboard yet
        new = "first-set-by-api-1"
        async with http.put(node.url + "/admin/api/password", json={"new": new}, headers=admin) as r:
            assert r.status == 200
        assert await log_in(node, http, new) == 303


async def test_settings_page_creates_and_revokes_tokens(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node,
        browser() as http,
    ):
        assert await log_in(node, http) == 303
        csrf = await settings_csrf(node, http)
        url = node.url + "/admin/settings/tokens"
        async with http.post(url, data={"action": "create", "name": "cron"}) as r:
            assert r.status == 403  # no CSRF token
        async with http.post(url, data={"action": "create", "name": "cron", "csrf": csrf}) as r:
            page = await r.text()
        m = re.search(r'id="new-token" class="token">(rta-[0-9a-f]+)<', page)
        assert r.status == 200 and m, page
        token = m.group(1)
        assert await status_with(http, node, token) == 200
        async with http.get(node.url + "/admin/settings") as r:
            page = await r.text()
        assert token not in page and "cron" in page  # listed, never shown again
        token_id = re.search(r'name="id" value="(\d+)"', page)
        assert token_id
        async with http.post(url, data={"action": "revoke", "id": token_id.group(1), "csrf": csrf}) as r:
            assert r.status == 200 and "Token revoked." in await r.text()
        assert await status_with(http, node, token) == 401


async def test_dashboard_edits_a_stored_provider(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node,
        browser() as http,
    ):
        admin = await admin_headers(node)
        assert await log_in(node, http) == 303
        csrf = await settings_csrf(node, http)
        url = node.url + "/admin/providers"
        add = {"csrf": csrf, "action": "add", "name": "spare", "base_url": fake_upstream.url,
               "kind": "openai", "api_key": "sk-upstream-secret-1234", "fee": "0", "models": ""}  # fmt: skip
        async with http.post(url, data=add) as r:
            assert r.status == 200 and "Provider spare added." in await r.text()

        async def stored() -> dict[str, object]:
            async with http.get(node.url + "/admin/api/providers", headers=admin) as r:
                return next(p for p in (await r.json())["providers"] if p["name"] == "spare")

        spare = await stored()
        edit = {**add, "action": "edit", "id": str(spare["id"]), "api_key": "", "fee": "0.1",
                "models": "gpt-4o-mini"}  # fmt: skip
        async with http.post(url, data=edit) as r:
            page = await r.text()
            assert r.status == 200 and "Provider spare saved." in page
        assert "sk-upstream-secret-1234" not in page
        spare = await stored()
        assert spare["fee"] == "0.1" and spare["models"] == ["gpt-4o-mini"]
        assert spare["api_key_set"] is True and spare["api_key_last4"] == "1234"  # left empty: kept
        async with http.post(url, data={**edit, "remove_key": "on"}) as r:
            assert r.status == 200
        assert (await stored())["api_key_set"] is False
        async with http.post(url, data={**edit, "base_url": "not a url"}) as r:
            assert r.status == 400 and 'id="catalogue-error"' in await r.text()
