"""Attack 8: pay with a ``sat`` token for a request that costs a fraction of a sat more than a whole one.

A request priced at 1,903 msat (1,000 output tokens at 1,903 sats per million, prompts free), paid with
a sat X-Cashu token, costs 2 sats: a sat token is charged whole sats rounded up, so the node never
sells below its price; the change is the token's value less 2 sats, to the sat.
"""

from __future__ import annotations

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import ODD, PRICES, AdvNode, Paid, chat, tokens_of

pytestmark = pytest.mark.asyncio(loop_scope="session")
PROMPT = "Count to a thousand."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_1903_msat_cost_2_sats_of_a_sat_token(
    node: AdvNode, wallet: TestWallet, mint_url: str, stream: bool
) -> None:
    body = chat(ODD, PROMPT, max_tokens=1000, stream=stream)
    paid = await Paid.send(node, wallet, mint_url, 10, "/v1/chat/completions", body)
    assert paid.answer.status == 200, paid.answer.describe()
    assert paid.answer.output_tokens == 1000
    price = PRICES[ODD].msat(tokens_of(PROMPT), paid.answer.output_tokens)
    assert price == 1903
    cost = paid.answer.cost_msat
    assert cost == 2000, (
        f"a {price} msat request paid with a sat token cost {cost} msat, not 2 sats (rounded up)"
    )
    assert paid.change_msat == 8000, f"change {paid.change_msat} msat, expected 10 - 2 sats"
    await paid.check(2000, f"{price} msat rounded up to the sat")
