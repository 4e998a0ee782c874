"""Attack 3: read an Anthropic-native stream and leave before ``message_delta``.

An Anthropic stream says ``output_tokens: 1`` in ``message_start``; the real count comes only in
``message_delta``, at the end. A client that reads thousands of tokens and hangs up before it must still
pay for what it read (and for its prompt), not for one token.
"""

from __future__ import annotations

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import CLAUDE, PRICES, Account, AdvNode, chat, tokens_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_leaving_before_message_delta_pays_what_was_read(
    node: AdvNode, wallet: TestWallet, mint_url: str
) -> None:
    account = await Account.open(node, wallet, mint_url, 100)
    prompt = "[slow:0.005] Write a very long essay."  # 8,000 tokens in 500 events, 5 ms apart
    body = chat(CLAUDE, prompt, max_tokens=8000, stream=True)
    answer = await account.post("/v1/messages", body, until_tokens=4000)
    assert answer.status == 200, answer.describe()
    assert answer.left_early and answer.output_tokens >= 4000
    assert answer.events[0]["type"] == "message_start"  # native: Anthropic's own events
    assert not any(e.get("type") == "message_delta" for e in answer.events)
    required = PRICES[CLAUDE].msat(tokens_of(prompt), answer.output_tokens)
    await account.check(required, f"the prompt and the {answer.output_tokens} tokens read")
