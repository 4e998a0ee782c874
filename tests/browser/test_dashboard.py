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
        key = await paid_requests(node, wallet, mint_url, 5)
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
            # an admin API token for scripts: shown once
            await page.fill("#tokens ~ form input[name=name]", "browser test")
            await page.click("#create-token")
            assert (await page.inner_text("#new-token")).startswith("rta-")
            assert "browser test" in await page.inner_text("#tokens")
            await shot(page, shots, backend, "settings")

            # the overview: five paid requests, drawn as bars
            await page.click("nav >> text=Overview")
            await page.wait_for_url("**/admin/")
            assert (await page.inner_text("#total-requests")).strip() == "5"
            heights = await page.eval_on_selector_all(
                "svg.chart rect.bar", "bars => bars.map(b => b.getBBox().height)"
            )
            assert any(h > 0 for h in heights)
            assert "gpt-4o-mini" in await page.inner_text("#models")
            await shot(page, shots, backend, "overview")

            # find the key by pasting it; its history; change its limits
            await page.click("nav >> text=Keys")
            await page.fill("#key-search", key)
            await page.click("#find-key")
            rows = await page.query_selector_all("#keys tr")
            assert len(rows) == 2  # the header and the one key
            assert key not in await page.content() and key not in page.url  # not echoed, not in a URL
            await shot(page, shots, backend, "keys")
            await page.click("#keys a")
            history = await page.inner_text("#ledger")
            assert history.count("charge") == 5 and "credit" in history
            await page.fill("input[name=requests_per_minute]", "7")
            await page.click("#save-limits")
            assert "Limits saved" in await page.inner_text("main")
            assert await page.input_value("input[name=requests_per_minute]") == "7"
            await shot(page, shots, backend, "key")

            # the requests, and the mints
            await page.click("nav >> text=Requests")
            assert (await page.inner_text("#requests")).count("not charged") == 0
            assert len(await page.query_selector_all("#requests tr")) == 6
            await shot(page, shots, backend, "requests")
            # change a model's price: /v1/models follows at once; test the model
            await page.click("nav >> text=Providers & models")
            assert "gpt-4o-mini" in await page.inner_text("#model-list")
            await shot(page, shots, backend, "models")
            await page.click("#model-list >> text=gpt-4o-mini")
            await page.fill("#price-prompt", "2500")
            await page.fill("#price-completion", "7500")
            await page.click("#save-model")
            assert "Saved" in await page.inner_text("#model-saved")
            async with aiohttp.ClientSession() as http, http.get(node.v1 + "/models") as r:
                listed = {m["id"]: m for m in (await r.json())["data"]}
            assert listed["gpt-4o-mini"]["sats_pricing"]["prompt"] == pytest.approx(2500 / 1_000_000)
            assert listed["gpt-4o-mini"]["sats_pricing"]["completion"] == pytest.approx(7500 / 1_000_000)
            await page.click("#test-model")
            assert "ok" in await page.inner_text("#model-test")
            await shot(page, shots, backend, "model")

            await page.click("nav >> text=Mints")
            assert "up" in await page.inner_text(".mint h2")
            await shot(page, shots, backend, "mints")

            # withdraw the earnings as a token, and redeem it at the test mint
            await page.click("nav >> text=Withdraw")
            await page.wait_for_url("**/admin/withdraw")
            await shot(page, shots, backend, "withdraw")
            await page.click("#withdraw")
            token = (await page.inner_text("#withdrawn-token")).strip()
            await shot(page, shots, backend, "withdrawn")
            assert token.startswith("cashu")
            assert await wallet.areceive(token) > 0

            # add an upstream, then edit it (its key stays unless a new one is typed)
            await page.click("nav >> text=Providers & models")
            await page.fill("#add-provider input[name=name]", "spare")
            await page.fill("#add-provider input[name=base_url]", fake_upstream.url)
            await page.fill("#add-provider input[name=api_key]", "sk-spare-upstream-9876")
            await page.click("#add-provider button")
            assert "Provider spare added." in await page.inner_text("main")
            await page.click("#providers details.edit summary")
            await page.fill("#providers details.edit input[name=fee]", "0.25")
            await page.click("#providers details.edit button")
            assert "Provider spare saved." in await page.inner_text("main")
            row = await page.inner_text("#providers tr:has-text('spare')")
            assert "0.25" in row and "9876" in row and "sk-spare" not in await page.content()
            await shot(page, shots, backend, "providers")

            # on a phone: nothing wider than the screen (wide tables scroll inside their panel)
            await page.set_viewport_size({"width": 390, "height": 844})
            for path, name in (("/admin/", "phone-overview"), ("/admin/requests", "phone-requests")):
                await page.goto(node.url + path)
                assert await page.evaluate("document.documentElement.scrollWidth") <= 390
                await shot(page, shots, backend, name)

            # log out: the pages are closed again
            await page.click("#logout")
            await page.wait_for_url("**/admin/login")
            await page.goto(node.url + "/admin/withdraw")
            assert "/admin/login" in page.url
        finally:
            await context.close()
