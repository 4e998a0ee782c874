"""Attack 6: features a provider bills on top of tokens, which the node's prices do not cover.

The priority tier (billed double), built-in web search (per call, and its results as input), and
background responses (queued: the answer and its usage come later, past the node's settlement) are
refused (400 ``unpriced_feature``) before anything is reserved: the balance does not move.
"""

from __future__ import annotations

from typing import Any

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import CLAUDE, GPT, Account, AdvNode, chat

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _responses(**extra: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/responses", {"model": GPT, "input": "What happened today?", "max_output_tokens": 16, **extra}


ANTHROPIC_SEARCH = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
UNPRICED: dict[str, tuple[str, dict[str, Any]]] = {
    "chat_priority_tier": ("/v1/chat/completions", chat(GPT, "Hi", max_tokens=16, service_tier="priority")),
    "responses_priority_tier": _responses(service_tier="priority"),
    "responses_web_search": _responses(tools=[{"type": "web_search"}]),
    "responses_web_search_preview": _responses(tools=[{"type": "web_search_preview"}]),
    "anthropic_web_search": (
        "/v1/messages",
        chat(CLAUDE, "What happened today?", max_tokens=16, tools=ANTHROPIC_SEARCH),
    ),
    "chat_web_search_options": (
        "/v1/chat/completions",
        chat(GPT, "What happened today?", max_tokens=16, web_search_options={}),
    ),
    "responses_background": _responses(background=True),
}


@pytest.mark.parametrize("case", list(UNPRICED))
async def test_unpriced_extras_are_refused_at_no_cost(
    node: AdvNode, wallet: TestWallet, mint_url: str, case: str
) -> None:
    account = await Account.open(node, wallet, mint_url, 50)
    await account.check_refused(case, *UNPRICED[case], "unpriced_feature")
