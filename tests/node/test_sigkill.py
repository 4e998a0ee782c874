"""A real node process killed with SIGKILL at the worst lines, then restarted: nothing is lost.

Each test arms one failpoint (routstr/core/failpoints.py) in a `routstr serve` subprocess, makes the
request that reaches it (the process dies there, mid-request), restarts the node on the same
database without it, and checks the money: the mint's records, the ledger and the balance.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from routstr.devtools.nutshell import free_port
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import PRICING, Upstream, _backends, chat_body, fresh_database, node_env

pytestmark = pytest.mark.asyncio(loop_scope="session")


class NodeProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, failpoint: str = "") -> None:
        env = {**os.environ, **self.env, "PORT": str(self.port), "ROUTSTR_FAILPOINT": failpoint}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "routstr", "serve", "--env-file", ""],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        import urllib.request

        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url + "/v1/info", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait_killed(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest_asyncio.fixture(loop_scope="session", params=_backends())
async def node_proc(
    request: pytest.FixtureRequest, tmp_path: Path, mint_url: str, fake_upstream: Upstream
) -> AsyncIterator[NodeProcess]:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database(request.param, tmp_path) as db_url:
        node = NodeProcess(
            node_env(
                mint_url, fake_upstream.url, db_url, pricing, RESERVATION_TTL_SECONDS="1", SECRET_KEY="k"
            ),
            tmp_path / "node.log",
        )
        try:
            yield node
        finally:
            node.stop()


async def _post_dies(http: aiohttp.ClientSession, url: str, **kw: object) -> None:
    with pytest.raises(aiohttp.ClientError):
        async with http.post(url, **kw) as r:  # type: ignore[arg-type]
            await r.read()


async def _balance(http: aiohttp.ClientSession, node: NodeProcess, token: str) -> dict[str, int]:
    async with http.get(node.url + "/v1/balance/info", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]


async def test_killed_after_the_mint_swapped_the_token(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 30)
    await asyncio.to_thread(node_proc.start, "redeem.after_swap")
    await _post_dies(
        http, node_proc.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert node_proc.wait_killed() == -signal.SIGKILL
    assert set(await wallet.acheck(token)) == {"SPENT"}  # the mint swapped it; we stored nothing after
    await asyncio.to_thread(node_proc.start)  # recovery at start-up finishes the swap (NUT-09)
    for _ in range(100):
        async with http.get(
            node_proc.url + "/v1/balance/info", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            if r.status == 200:
                break
        await asyncio.sleep(0.1)
    info = await _balance(http, node_proc, token)
    assert info["balance"] == 30_000 and info["reserved"] == 0
    async with http.post(
        node_proc.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
        headers={"Authorization": f"Bearer {token}"},
    ) as r:  # fmt: skip
        assert r.status == 200
        cost = int(r.headers["X-Routstr-Cost-Msats"])
    assert (await _balance(http, node_proc, token))["balance"] == 30_000 - cost


async def test_killed_after_the_refund_swap(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 25)
    await asyncio.to_thread(node_proc.start, "refund.after_swap")
    assert (await _balance(http, node_proc, token))["balance"] == 25_000
    await _post_dies(http, node_proc.url + "/v1/balance/refund", headers={"Authorization": f"Bearer {token}"})
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)
    async with http.post(
        node_proc.url + "/v1/balance/refund", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 200, await r.text()
        refund = await r.json()
    assert refund["amount"] == 25
    assert await wallet.areceive(refund["token"]) == 25
    assert (await _balance(http, node_proc, token))["balance"] == 0


async def test_killed_between_forward_and_settle(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    await asyncio.to_thread(node_proc.start, "pipeline.before_settle")
    assert (await _balance(http, node_proc, token))["balance"] == 20_000
    await _post_dies(
        http, node_proc.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)
    # the reservation outlived its TTL (1 s here): the sweeper gives it back; the user pays nothing
    for _ in range(100):
        info = await _balance(http, node_proc, token)
        if info["reserved"] == 0:
            break
        await asyncio.sleep(0.1)
    assert info["balance"] == 20_000 and info["reserved"] == 0
