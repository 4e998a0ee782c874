"""The operator's dashboard in a real browser: log in, look around after paid requests, change a
price and see /v1/models follow, withdraw earnings as a token and redeem it at the mint, log out."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from routstr.devtools.test_wallet import TestWallet
from tests.conftest import NodeHandle, Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "operator-password-1"


async def shot(page: Page, shots: Path, backend: str, name: str) -> None:
    await page.screenshot(path=str(shots / f"{backend}-{name}.png"), full_page=True)


async def paid_requests(node: NodeHandle, wallet: TestWallet, mint_url: str, n: int) -> str:
    """A key funded with real eCash that made ``n`` paid chat completions; returns the key."""
    token = await wallet.asend(mint_url, 500)
    async with aiohttp.ClientSession() as http:
        async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
            assert r.status == 201, await r.text()
            key = (await r.json())["api_key"]
        for _ in range(n):
            async with http.post(
                node.v1 + "/chat/completions",
                json=chat_body("hello " * 200, max_tokens=50),
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                assert r.status == 200
    return str(key)


async def test_the_operator_dashboard(
    backend: str,
    chromium: Browser,
    shots: Path,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
):
    async with running_node(backend, mint_url, fake_upstream, tmp_path, ADMIN_PASSWORD=PASSWORD) as node:
        await paid_requests(node, wallet, mint_url, 5)
        context = await chromium.new_context(viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        try:
            # log in (a wrong password first)
            await page.goto(node.url + "/admin/settings")
            assert "/admin/login" in page.url
            await shot(page, shots, backend, "login")
            await page.fill("#password", "not-the-password")
            await page.click("#login")
            assert "Wrong password" in await page.inner_text("main")
            await page.fill("#password", PASSWORD)
            await page.click("#login")
            await page.wait_for_url("**/admin/settings")
            await shot(page, shots, backend, "settings")

            # withdraw the earnings as a token, and redeem it at the test mint
            await page.click("nav >> text=Withdraw")
            await page.wait_for_url("**/admin/withdraw")
            await shot(page, shots, backend, "withdraw")
            await page.click("#withdraw")
            token = (await page.inner_text("#withdrawn-token")).strip()
            await shot(page, shots, backend, "withdrawn")
            assert token.startswith("cashu")
            assert await wallet.areceive(token) > 0

            # log out: the pages are closed again
            await page.click("#logout")
            await page.wait_for_url("**/admin/login")
            await page.goto(node.url + "/admin/withdraw")
            assert "/admin/login" in page.url
        finally:
            await context.close()
