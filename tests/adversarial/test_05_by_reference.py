"""Attack 5: content by reference, which a provider bills at far more tokens than its bytes.

An image URL is ~50 bytes in the body and 1,105 prompt tokens at the provider; a node that bounds the
prompt by the body's length reserves nothing for it. Expected: reserved and charged at the real cost,
or 402 when the key cannot cover it; never delivered below price. Inputs whose size the node cannot know
at all (stored responses, conversations and prompts, files) must be refused (400 ``unbounded_input``)
at no cost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.support import CLAUDE, GPT, PRICES, Account, AdvNode, chat, tokens_of

pytestmark = pytest.mark.asyncio(loop_scope="session")
IMAGES = 100
IMAGE_TOKENS = 1105  # what the provider bills per image, whatever its URL's bytes
TEXT = "Describe these pictures."


def _images_body(dialect: str) -> tuple[str, dict[str, Any]]:
    urls = [f"https://img.example/{i}.png" for i in range(IMAGES)]
    if dialect == "chat":
        parts: list[dict[str, Any]] = [{"type": "text", "text": TEXT}]
        parts += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
        return "/v1/chat/completions", chat(GPT, parts, max_tokens=16)
    items: list[dict[str, Any]] = [{"type": "input_text", "text": TEXT}]
    items += [{"type": "input_image", "image_url": u} for u in urls]
    return "/v1/responses", {
        "model": GPT,
        "input": [{"role": "user", "content": items}],
        "max_output_tokens": 16,
    }


@pytest.mark.parametrize("dialect", ["chat", "responses"])
async def test_a_hundred_image_urls_on_a_20_sat_key(
    node: AdvNode, wallet: TestWallet, mint_url: str, dialect: str
) -> None:
    account = await Account.open(node, wallet, mint_url, 20)
    path, body = _images_body(dialect)
    answer = await account.post(path, body)
    if answer.status == 402:
        await account.check_nothing_charged()
        return
    assert answer.status == 200, answer.describe()
    required = PRICES[GPT].msat(IMAGES * IMAGE_TOKENS + tokens_of(TEXT), answer.output_tokens)
    await account.check(required, f"{IMAGES} images ({IMAGES * IMAGE_TOKENS} tokens) and the answer")


async def test_two_image_requests_at_once_on_a_key_that_covers_one(
    node: AdvNode, wallet: TestWallet, mint_url: str
) -> None:
    """Each costs ~110.5 sats at the provider; the key holds 150: what the first reserves must keep the
    second from running on the same money (one is refused, or both are paid in full)."""
    account = await Account.open(node, wallet, mint_url, 150)
    _, body = _images_body("chat")
    body["messages"][0]["content"][0]["text"] = "[slow:0.2] " + TEXT  # both streams in flight at once
    body.update(stream=True, max_tokens=32)
    answers = await asyncio.gather(*(account.post("/v1/chat/completions", body) for _ in range(2)))
    assert all(a.status in (200, 402) for a in answers), [a.describe() for a in answers]
    text = tokens_of("[slow:0.2] " + TEXT)
    required = sum(
        PRICES[GPT].msat(IMAGES * IMAGE_TOKENS + text, a.output_tokens) for a in answers if a.status == 200
    )
    served = sum(a.status == 200 for a in answers)
    await account.check(required, f"{served} answered request(s) of {IMAGES} images each")


def _file_parts(kind: str) -> list[dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {
        "input_file": {"type": "input_file", "file_id": "file-abc123"},
        "file": {"type": "file", "file": {"file_id": "file-abc123"}},
        "document": {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    }
    doc = docs[kind]
    text = {"type": "input_text" if kind == "input_file" else "text", "text": "Summarise this."}
    return [doc, text]


UNBOUNDED: dict[str, tuple[str, dict[str, Any]]] = {
    "previous_response_id": (
        "/v1/responses",
        {"model": GPT, "input": "Go on.", "previous_response_id": "resp_abc123", "max_output_tokens": 16},
    ),
    "conversation": (
        "/v1/responses",
        {"model": GPT, "input": "Go on.", "conversation": "conv_abc123", "max_output_tokens": 16},
    ),
    "stored_prompt": (
        "/v1/responses",
        {"model": GPT, "input": "Go on.", "prompt": {"id": "pmpt_abc123"}, "max_output_tokens": 16},
    ),
    "responses_input_file": (
        "/v1/responses",
        {
            "model": GPT,
            "input": [{"role": "user", "content": _file_parts("input_file")}],
            "max_output_tokens": 16,
        },
    ),
    "chat_file": ("/v1/chat/completions", chat(GPT, _file_parts("file"), max_tokens=16)),
    "anthropic_document": ("/v1/messages", chat(CLAUDE, _file_parts("document"), max_tokens=16)),
}


@pytest.mark.parametrize("case", list(UNBOUNDED))
async def test_inputs_of_unknown_size_are_refused_at_no_cost(
    node: AdvNode, wallet: TestWallet, mint_url: str, case: str
) -> None:
    account = await Account.open(node, wallet, mint_url, 50)
    await account.check_refused(case, *UNBOUNDED[case], "unbounded_input")


@pytest.mark.parametrize("dialect", ["chat", "responses"])
async def test_a_hundred_image_urls_on_a_key_that_covers_them_pay_their_real_cost(
    node: AdvNode, wallet: TestWallet, mint_url: str, dialect: str
) -> None:
    """Reserved at the node's per-image bound (4,096 tokens each: 410 sats here), charged at what the
    provider billed (1,105 each), the rest released."""
    account = await Account.open(node, wallet, mint_url, 500)
    path, body = _images_body(dialect)
    answer = await account.post(path, body)
    assert answer.status == 200, answer.describe()
    required = PRICES[GPT].msat(IMAGES * IMAGE_TOKENS + tokens_of(TEXT), answer.output_tokens)
    charged = await account.check(required, f"{IMAGES} images and the answer")
    assert charged < 200_000  # the bound was reserved, the real cost charged
