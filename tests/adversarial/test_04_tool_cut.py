"""Attack 4: big tool definitions, and a stream of tool-call arguments that breaks off.

~5,000 prompt tokens of tool definitions; the answer is a tool call whose arguments stream in pieces;
the provider cuts the stream after ~1,000 tokens, so no usage ever arrives and the node must estimate.
The charge must still cover the tool definitions and the arguments the client read, on chat
completions, the Responses API and Anthropic Messages (native).
"""

from __future__ import annotations

from typing import Any

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import CLAUDE, GPT, PRICES, Account, AdvNode, chat, json_tokens, tokens_of

pytestmark = pytest.mark.asyncio(loop_scope="session")
PROMPT = "[cut:1000] Call one of the tools with a long query."
SCHEMA = {"type": "object", "properties": {"q": {"type": "string", "description": "what to look up"}}}
DESCRIPTION = "Looks things up in a very large catalogue of things. " * 36  # ~1,900 bytes


def _tools(dialect: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(10):
        name, text = f"lookup_{i}", f"{i}: {DESCRIPTION}"
        if dialect == "chat":
            out.append(
                {"type": "function", "function": {"name": name, "description": text, "parameters": SCHEMA}}
            )
        elif dialect == "responses":
            out.append({"type": "function", "name": name, "description": text, "parameters": SCHEMA})
        else:
            out.append({"name": name, "description": text, "input_schema": SCHEMA})
    return out


def _body(dialect: str) -> tuple[str, str, dict[str, Any]]:
    tools = _tools(dialect)
    if dialect == "chat":
        return "/v1/chat/completions", GPT, chat(GPT, PROMPT, tools=tools, max_tokens=4000, stream=True)
    if dialect == "responses":
        body = {"model": GPT, "input": PROMPT, "tools": tools, "max_output_tokens": 4000, "stream": True}
        return "/v1/responses", GPT, body
    return "/v1/messages", CLAUDE, chat(CLAUDE, PROMPT, tools=tools, max_tokens=4000, stream=True)


@pytest.mark.parametrize("dialect", ["chat", "responses", "messages"])
async def test_a_cut_tool_call_pays_for_its_tools_and_arguments(
    node: AdvNode, wallet: TestWallet, mint_url: str, dialect: str
) -> None:
    account = await Account.open(node, wallet, mint_url, 100)
    path, model, body = _body(dialect)
    tool_tokens = json_tokens(body["tools"])
    assert 4500 < tool_tokens < 5500
    answer = await account.post(path, body)
    assert answer.status == 200, answer.describe()
    assert 900 <= answer.output_tokens <= 1000, answer.output_tokens  # the arguments read before the cut
    required = PRICES[model].msat(tool_tokens + tokens_of(PROMPT), answer.output_tokens)
    await account.check(
        required, f"{tool_tokens} tokens of tool definitions and {answer.output_tokens} of arguments read"
    )
