"""Attack 1: get the reservation back while the stream it pays for is still running.

The node's reservation has a lease (``RESERVATION_TTL_SECONDS``, 1 s here) after which a sweeper gives
it back, meant for requests whose process died. A client that keeps a stream open longer than that and
asks for its whole balance back mid-stream must still pay for the stream: the lease of a live request
is renewed, so the refund cannot take the money the stream is reserved against.
"""

from __future__ import annotations

import asyncio

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import GPT, PRICES, Account, AdvNode, chat, tokens_of

pytestmark = pytest.mark.asyncio(loop_scope="session")
NODE_ENV = {"RESERVATION_TTL_SECONDS": "1"}


async def test_a_refund_mid_stream_does_not_take_the_streams_money(
    node: AdvNode, wallet: TestWallet, mint_url: str
) -> None:
    account = await Account.open(node, wallet, mint_url, 50)
    prompt = "[slow:0.2] tell me a long story"  # 400 tokens, 16 per event, 0.2 s apart: 5 s
    body = chat(GPT, prompt, max_tokens=400, stream=True)
    reading = asyncio.create_task(account.post("/v1/chat/completions", body))
    await asyncio.sleep(2.5)  # the lease ran out twice over; the sweeper runs every 0.5 s
    assert not reading.done()
    refunded = await account.refund(wallet)
    answer = await reading
    assert answer.status == 200, answer.describe()
    assert answer.output_tokens == 400, answer.output_tokens  # the client read the whole answer
    required = PRICES[GPT].msat(tokens_of(prompt), answer.output_tokens)
    charged = await account.check(required, f"the {answer.output_tokens} tokens streamed")
    assert account.paid_msat == refunded + charged + (await account.info())["balance"]
