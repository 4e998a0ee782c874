"""Attack 2: one request, many answers: ``n`` choices, ``best_of`` and lists of prompts.

The provider generates every choice to ``max_tokens`` (and ``best_of`` answers per prompt, billed, of
which ``n`` come back); a node that reserves for one answer lets a small balance buy fifty. After the
fix either the node refuses (400/402, nothing charged, an X-Cashu token untouched or given back whole)
or it charges at least the price of every choice delivered, and never more than was paid.
"""

from __future__ import annotations

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import GPT, PRICES, Account, AdvNode, Paid, chat, tokens_of

pytestmark = pytest.mark.asyncio(loop_scope="session")
REFUSALS = (400, 402)
PROMPT = "Write as much as you can."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_fifty_choices_on_a_20_sat_key(
    node: AdvNode, wallet: TestWallet, mint_url: str, stream: bool
) -> None:
    account = await Account.open(node, wallet, mint_url, 20)
    body = chat(GPT, PROMPT, n=50, max_tokens=1000, stream=stream)
    answer = await account.post("/v1/chat/completions", body)
    if answer.status in REFUSALS:
        await account.check_nothing_charged()
        return
    assert answer.status == 200, answer.describe()
    required = PRICES[GPT].msat(tokens_of(PROMPT), answer.output_tokens)
    await account.check(required, f"50 choices: {answer.output_tokens} tokens delivered")


async def test_fifty_choices_on_a_5_sat_x_cashu_token(
    node: AdvNode, wallet: TestWallet, mint_url: str
) -> None:
    body = chat(GPT, PROMPT, n=50, max_tokens=1000)
    paid = await Paid.send(node, wallet, mint_url, 5, "/v1/chat/completions", body)
    if paid.answer.status in REFUSALS:
        await paid.check_refused(wallet)
        return
    assert paid.answer.status == 200, paid.answer.describe()
    required = PRICES[GPT].msat(tokens_of(PROMPT), paid.answer.output_tokens)
    await paid.check(required, f"50 choices: {paid.answer.output_tokens} tokens delivered")


async def test_a_hundred_prompts_best_of_two(node: AdvNode, wallet: TestWallet, mint_url: str) -> None:
    account = await Account.open(node, wallet, mint_url, 20)
    prompts = [f"Prompt number {i}." for i in range(100)]
    body = {"model": GPT, "prompt": prompts, "best_of": 2, "max_tokens": 100}
    answer = await account.post("/v1/completions", body)
    if answer.status in REFUSALS:
        await account.check_nothing_charged()
        return
    assert answer.status == 200, answer.describe()
    assert len(answer.json["choices"]) == 100
    required = PRICES[GPT].msat(sum(tokens_of(p) for p in prompts), answer.output_tokens)
    await account.check(required, f"100 prompts: {answer.output_tokens} tokens delivered")


async def test_fifty_choices_without_a_limit_are_capped_to_what_the_key_pays_for(
    node: AdvNode, wallet: TestWallet, mint_url: str
) -> None:
    """No ``max_tokens``: the provider would write 16,384 tokens per choice. The node answers (it does
    not refuse a request that set no limit) with each choice capped to what the balance pays for."""
    account = await Account.open(node, wallet, mint_url, 20)
    answer = await account.post("/v1/chat/completions", chat(GPT, PROMPT, n=50))
    assert answer.status == 200, answer.describe()
    assert len(answer.json["choices"]) == 50
    assert 0 < answer.output_tokens <= 20_000 * 1000 // PRICES[GPT].completion  # within 20 sats of output
    required = PRICES[GPT].msat(tokens_of(PROMPT), answer.output_tokens)
    await account.check(required, f"50 capped choices: {answer.output_tokens} tokens delivered")
