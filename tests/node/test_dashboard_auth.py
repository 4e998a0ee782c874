"""Dashboard login: the password as a hash, sessions in the database, CSRF, login limits, logout."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from tests.conftest import NodeHandle, Upstream, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "first-password-123"
STORED = "SELECT value FROM node_settings WHERE name = 'admin_password_hash'"


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


async def log_in(node: NodeHandle, http: aiohttp.ClientSession, password: str = PASSWORD) -> int:
    async with http.post(
        node.url + "/admin/login",
        data={"password": password, "next": "/admin/settings"},
        allow_redirects=False,
    ) as r:
        return r.status


async def settings_csrf(node: NodeHandle, http: aiohttp.ClientSession) -> str:
    async with http.get(node.url + "/admin/settings", allow_redirects=False) as r:
        assert r.status == 200
        return csrf_of(await r.text())


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # keeps cookies of 127.0.0.1


async def test_login_sessions_csrf_and_logout(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node,
        browser() as http,
        browser() as other,
    ):
        async with http.get(node.url + "/admin/settings", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/admin/login?next=/admin/settings"
        assert await log_in(node, http, "wrong-password") == 401
        async with http.post(
            node.url + "/admin/login", data={"password": PASSWORD, "next": "/admin/settings"},
            allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 303 and r.headers["Location"] == "/admin/settings"
            cookie = r.cookies["routstr_admin"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin"
        async with node.db.read() as conn:
            stored = (await conn.execute(text(STORED))).scalar()
            sessions = [r[0] for r in (await conn.execute(text("SELECT id_hash FROM admin_sessions"))).all()]
        assert stored.startswith("scrypt$") and PASSWORD not in stored
        assert len(sessions) == 1 and cookie.value not in sessions  # only the cookie's HMAC is kept

        csrf = await settings_csrf(node, http)
        change = {"current": PASSWORD, "new": "second-password-456"}
        async with http.post(node.url + "/admin/settings/password", data=change) as r:
            assert r.status == 403  # no CSRF token
        async with http.post(
            node.url + "/admin/settings/password", data={**change, "csrf": csrf},
            headers={"Origin": "https://evil.example"},
        ) as r:  # fmt: skip
            assert r.status == 403  # a valid token from another site's page
        assert await log_in(node, other) == 303  # a second session, to be logged out by the change
        async with http.post(
            node.url + "/admin/settings/password", data={**change, "current": "nope-nope-nope", "csrf": csrf}
        ) as r:
            assert r.status == 400 and "current password is wrong" in await r.text()
        async with http.post(node.url + "/admin/settings/password", data={**change, "csrf": csrf}) as r:
            assert r.status == 200 and "1 other session(s) logged out" in await r.text()
        async with other.get(node.url + "/admin/settings", allow_redirects=False) as r:
            assert r.status == 303  # the other session ended
        assert await log_in(node, other) == 401  # the old password no longer works
        assert await log_in(node, other, "second-password-456") == 303

        async with http.post(node.url + "/admin/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(node.url + "/admin/settings", allow_redirects=False) as r:
            assert r.status == 303


async def test_login_attempts_are_limited_and_the_env_password_is_only_the_first(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    from routstr.operator.password import store_first_password

    async with running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node:
        async with node.db.read() as conn:
            before = (await conn.execute(text(STORED))).scalar()
        await store_first_password(node.db, "another-password-789")  # a restart with another value
        async with node.db.read() as conn:
            assert (await conn.execute(text(STORED))).scalar() == before
        async with browser() as http:
            statuses = [await log_in(node, http, f"guess-{i}") for i in range(8)]
            # five at once, the sixth starts a wait of 1 s (then 2 s, 4 s …): refused until it ends
            assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429]
            assert await log_in(node, http) == 429  # even the right password waits now
    (tmp_path / "b").mkdir()
    async with running_node(backend, mint_url, fake_upstream, tmp_path / "b", ADMIN_PASSWORD="") as bare:
        async with browser() as http, http.get(bare.url + "/admin/login") as r:
            assert "No admin password is set" in await r.text()
        async with browser() as http:
            assert await log_in(bare, http, "") == 401


async def test_the_cli_resets_the_password_and_ends_sessions(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    import asyncio
    import os
    import subprocess
    import sys

    from tests.conftest import node_env

    async with running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node:
        env = {
            **os.environ,
            **node_env(mint_url, fake_upstream.url, node.settings.database_url, tmp_path / "pricing.toml"),
        }
        async with browser() as http:
            assert await log_in(node, http) == 303
            cmd = [sys.executable, "-m", "routstr", "admin-password", "--password-stdin", "--env-file", ""]
            done = await asyncio.to_thread(
                subprocess.run, cmd, env=env, input="short\n", capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 1 and "at least 8" in done.stderr
            done = await asyncio.to_thread(
                subprocess.run,
                cmd,
                env=env,
                input="reset-password-1\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0 and "1 dashboard session(s) logged out" in done.stdout
            async with http.get(node.url + "/admin/settings", allow_redirects=False) as r:
                assert r.status == 303  # logged out
            assert await log_in(node, http) == 401
            assert await log_in(node, http, "reset-password-1") == 303
