"""Attack 7: a flood of X-Cashu requests, each with a fresh token (so per-key limits never bind).

The node limits X-Cashu requests per client address (``XCASHU_LIMIT_PER_ADDRESS``, 3 a minute here)
before it redeems anything: the 4th request within the minute gets 429 with ``Retry-After``, and its
token is untouched: unspent at the mint, and still good for a request at a node without the limit.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from routstr.devtools.fake_provider import FakeProvider
from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.answers import error_code
from tests.adversarial.support import GPT, AdvNode, adv_node, chat

pytestmark = pytest.mark.asyncio(loop_scope="session")
NODE_ENV = {"XCASHU_LIMIT_PER_ADDRESS": "3"}
PATH = "/v1/chat/completions"


async def test_the_fourth_x_cashu_request_in_a_minute_is_refused_before_redemption(
    node: AdvNode, wallet: TestWallet, mint_url: str, provider: FakeProvider, tmp_path: Path
) -> None:
    tokens = [await wallet.asend(mint_url, 10) for _ in range(4)]
    if time.time() % 60 > 50:  # all four in one clock minute, whatever the window the node counts in
        await asyncio.sleep(60.2 - time.time() % 60)
    mark = node.log_mark()
    body = chat(GPT, "Hi", max_tokens=5)
    for token in tokens[:3]:
        answer = await node.post(PATH, body, {"X-Cashu": token})
        assert answer.status == 200, answer.describe()
        assert (
            await wallet.areceive(answer.headers["X-Cashu"])
            == 10 - int(answer.headers["X-Routstr-Cost-Msats"]) // 1000
        )
    fourth = await node.post(PATH, body, {"X-Cashu": tokens[3]})
    assert fourth.status == 429, f"the 4th X-Cashu request in a minute: expected 429, got {fourth.describe()}"
    assert error_code(fourth.json) == "rate_limit_exceeded", fourth.describe()
    assert int(fourth.headers["Retry-After"]) >= 1
    assert set(await wallet.acheck(tokens[3])) == {"UNSPENT"}, "the refused request's token was redeemed"
    node.assert_no_write_off(mark)
    # and the token still pays, at a node without the limit
    async with adv_node(node.backend, tmp_path, mint_url, provider.url) as other:
        answer = await other.post(PATH, body, {"X-Cashu": tokens[3]})
        assert answer.status == 200, answer.describe()
        cost = int(answer.headers["X-Routstr-Cost-Msats"])
        assert cost > 0 and await wallet.areceive(answer.headers["X-Cashu"]) * 1000 + cost == 10_000
