"""Coding agents just work: wildcard aliases (Claude Code asks for its own default model id), providers
restricted to some models, and an output limit lowered to what the balance pays for (Claude Code
sends ``max_tokens`` 32000 or 64000 on every request) instead of a 402.

Costs are computed here from the prices ``/v1/models`` advertises and the usage the fake upstream
reports, never with the node's pricing code. The real Claude Code CLI runs in
``test_agents_claude_code.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from anthropic import AsyncAnthropic

from routstr.devtools.fake_anthropic import expected_anthropic_usage
from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import UPSTREAM_KEY, NodeHandle, chat_body, running_node
from tests.node.admin_auth import admin_headers
from tests.node.agents_support import (
    LOWERED,
    MIN_FITTED,
    advertised,
    cost,
    fitted,
    funded_key,
    msat_prices,
    own_upstream,
    post,
    reservation,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# -- wildcard aliases -----------------------------------------------------------------------------------


async def test_wildcard_aliases_route_and_bill_as_their_target(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    async with own_upstream() as up:
        providers = tmp_path / "providers.toml"
        providers.write_text(
            f'[[providers]]\nname = "up"\nbase_url = "{up.url}"\napi_key = "{UPSTREAM_KEY}"\n\n'
            '[aliases]\n"claude-*" = "claude-haiku-4-5"\n"claude-opus-*" = ["gpt-4o-mini"]\n'
            '"claude-opus-4-1" = ["llama-3.1-8b"]\n'
        )
        env = {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers)}
        async with running_node(backend, mint_url, up, tmp_path, **env) as node:
            listed = await advertised(http, node.v1)
            assert not any("*" in m for m in listed)  # patterns stand for ids nobody can list
            assert {"claude-opus-4-1", "claude-haiku-4-5", "gpt-4o-mini", "claude-sonnet-4-6"} <= set(listed)
            token, key_id = await funded_key(node, wallet, mint_url, 100)
            url = node.v1 + "/chat/completions"
            spent = 0
            # requested id -> (served as, priced as): the most specific pattern wins; a listed id (an
            # exact alias, a model the provider serves) is never rewritten by a pattern
            cases = {
                "claude-opus-4-5-20251101": ("gpt-4o-mini", "gpt-4o-mini"),
                "claude-3-7-sonnet-latest": ("claude-haiku-4-5", "claude-haiku-4-5"),
                "claude-opus-4-1": ("llama-3.1-8b", "claude-opus-4-1"),  # exact alias: its own price
                "claude-sonnet-4-6": ("claude-sonnet-4-6", "claude-sonnet-4-6"),
            }
            for requested, (served, priced) in cases.items():
                before = up.state.by_model[served]
                r, answer, _ = await post(
                    http, url, chat_body("which model?", model=requested, max_tokens=20), token
                )
                assert r.status == 200, answer
                assert up.state.by_model[served] == before + 1 and up.state.last_body["model"] == served
                if served == priced:  # the answer names the model that answered
                    assert answer["model"] == served
                u = expected_usage(up.state.last_body)
                expected = cost(listed[priced], u["prompt_tokens"], u["completion_tokens"])
                assert int(r.headers["X-Routstr-Cost-Msats"]) == expected, requested
                spent += expected
            assert cost(listed["gpt-4o-mini"], 10, 10) != cost(listed["claude-haiku-4-5"], 10, 10)

            # a model nothing matches is still 404 model_not_found, free, never sent upstream
            calls = up.state.requests_total
            r, answer, _ = await post(http, url, chat_body("x", model="gpt-5", max_tokens=5), token)
            assert (r.status, answer["error"]["code"]) == (404, "model_not_found")
            assert up.state.requests_total == calls

            # through the admin API: a pattern with one target and no price of its own
            admin = await admin_headers(node)
            api = node.url + "/admin/api/models/"
            for bad in (
                {"aliases": ["llama-3.1-8b", "gpt-4o-mini"]},
                {"aliases": ["gpt-*"]},
                {"aliases": ["llama-3.1-8b"], "price": {"prompt_sats_per_mtok": 1}},
            ):
                async with http.put(api + "gemini-*", json=bad, headers=admin) as resp:
                    assert resp.status == 400 and (await resp.json())["error"]["type"] == "invalid_request", (
                        bad
                    )
            async with http.put(api + "fast", json={"aliases": ["gpt-*"]}, headers=admin) as resp:
                assert resp.status == 400
            async with http.put(api + "gemini-*", json={"aliases": ["llama-3.1-8b"]}, headers=admin) as resp:
                assert resp.status == 200
                view = await resp.json()
            assert (view["wildcard"], view["listed"], view["aliases"], view["providers"]) == (
                True,
                False,
                ["llama-3.1-8b"],
                ["up"],
            )
            assert view["msat"]["prompt_per_mtok"] == msat_prices(listed["llama-3.1-8b"])[0]  # the target's
            gemini = chat_body("gemini?", model="gemini-2.5-pro", max_tokens=20)
            r, answer, _ = await post(http, url, gemini, token)
            assert r.status == 200 and up.state.last_body["model"] == "llama-3.1-8b"
            u = expected_usage(up.state.last_body)
            expected = cost(listed["llama-3.1-8b"], u["prompt_tokens"], u["completion_tokens"])
            assert int(r.headers["X-Routstr-Cost-Msats"]) == expected
            spent += expected
            async with http.get(node.url + "/admin/api/models", headers=admin) as resp:
                views = {m["id"]: m for m in (await resp.json())["models"]}
            assert views["claude-*"]["wildcard"] and views["claude-*"]["alias_source"] == "file"
            assert not views["gpt-4o-mini"]["wildcard"]
            async with http.delete(api + "gemini-*", headers=admin) as resp:
                assert resp.status == 200
            r, answer, _ = await post(http, url, gemini, token)
            assert r.status == 404 and answer["error"]["code"] == "model_not_found"

            row = await node.assert_books_balance(key_id)
            assert row.balance_msat == 100_000 - spent and row.reserved_msat == 0


async def test_a_restricted_provider_lists_and_serves_only_its_models(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    async with own_upstream() as up:
        providers = tmp_path / "providers.toml"
        providers.write_text(
            f'[[providers]]\nname = "only-two"\nbase_url = "{up.url}"\napi_key = "{UPSTREAM_KEY}"\n'
            'models = ["gpt-4o-mini", "claude-haiku-4-5"]\n\n[aliases]\n"claude-*" = "claude-haiku-4-5"\n'
        )
        env = {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers)}
        async with running_node(backend, mint_url, up, tmp_path, **env) as node:
            # the upstream lists nine models and the pricing file prices others: only the two are sold
            assert set(await advertised(http, node.v1)) == {"gpt-4o-mini", "claude-haiku-4-5"}
            async with http.get(node.v1 + "/models/paths") as r:
                assert set((await r.json())["paths"]) == {"gpt-4o-mini", "claude-haiku-4-5"}
            token, key_id = await funded_key(node, wallet, mint_url, 20)
            url = node.v1 + "/chat/completions"
            calls = up.state.requests_total
            for other in ("llama-3.1-8b", "gpt-4o", "dall-e-3"):
                r, answer, _ = await post(http, url, chat_body("x", model=other, max_tokens=5), token)
                assert (r.status, answer["error"]["code"]) == (404, "model_not_found"), other
            assert up.state.requests_total == calls
            for model, served in (("gpt-4o-mini", "gpt-4o-mini"), ("claude-opus-4-5", "claude-haiku-4-5")):
                r, _, _ = await post(http, url, chat_body("x", model=model, max_tokens=5), token)
                assert r.status == 200 and up.state.last_body["model"] == served
            await node.assert_books_balance(key_id)


# -- max_tokens fitted to the balance -------------------------------------------------------------------


async def test_a_small_balance_gets_its_own_limit_lowered_on_every_dialect(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    listed = await advertised(http, node.v1)
    token, key_id = await funded_key(node, wallet, mint_url, 20)
    up = node.upstream.state
    paid = 20_000
    spent = 0

    async def lowered(
        path: str, body: dict[str, Any], field: str, model: str, generations: int = 1
    ) -> tuple[aiohttp.ClientResponse, dict[str, Any], int]:
        """Send it; check the header, the limit the upstream saw and the reservation taken."""
        nonlocal spent
        balance = (await node.key_row(key_id)).balance_msat
        sums = await node.ledger_sums(key_id)
        n = fitted(listed[model], balance, len(orjson.dumps(body)), generations)
        assert MIN_FITTED <= n < 32000
        r, answer, raw = await post(http, node.v1 + path, body, token)
        assert r.status == 200, answer
        assert r.headers[LOWERED] == f"32000->{n}"
        assert up.last_body[field] == n  # never delivered beyond the reservation
        after = await node.ledger_sums(key_id)
        reserved = after["reserve"] - sums.get("reserve", 0)
        charged = after["charge"] - sums.get("charge", 0)
        assert reserved == reservation(listed[model], len(raw), n * generations) <= balance
        assert 0 < charged <= reserved
        spent += charged
        return r, answer, charged

    chat = chat_body("Tell me a long story", max_tokens=32000)
    _, answer, charged = await lowered("/chat/completions", chat, "max_tokens", "gpt-4o-mini")
    u = answer["usage"]
    assert charged == cost(listed["gpt-4o-mini"], u["prompt_tokens"], u["completion_tokens"])
    e = expected_usage(up.last_body)
    assert (u["prompt_tokens"], u["completion_tokens"]) == (e["prompt_tokens"], e["completion_tokens"])

    newer = chat_body("A reasoning model's field", max_completion_tokens=32000, stream=True)
    await lowered("/chat/completions", newer, "max_completion_tokens", "gpt-4o-mini")
    assert "max_tokens" not in up.last_body  # the field the client used

    responses = {"model": "gpt-4o-mini", "input": "Tell me more", "max_output_tokens": 32000}
    await lowered("/responses", responses, "max_output_tokens", "gpt-4o-mini")

    # legacy completions: the limit applies to each of best_of x prompts generations
    legacy = {"model": "gpt-3.5-turbo-instruct", "prompt": "Once", "max_tokens": 32000, "n": 2, "best_of": 3}
    await lowered("/completions", legacy, "max_tokens", "gpt-3.5-turbo-instruct", generations=3)

    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == paid - spent and row.reserved_msat == 0


async def test_anthropic_messages_translated_for_an_openai_provider_are_fitted(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """On an OpenAI-type provider (translated): the chat request upstream carries the lowered limit."""
    token, key_id = await funded_key(node, wallet, mint_url, 20)
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    r, answer, _ = await post(http, node.v1 + "/messages", body, token)
    assert r.status == 200 and answer["type"] == "message"
    frm, to = r.headers[LOWERED].split("->")
    assert frm == "32000" and MIN_FITTED <= int(to) < 32000
    assert node.upstream.state.last_body["max_tokens"] == int(to)
    sums = await node.ledger_sums(key_id)
    assert sums["charge"] <= sums["reserve"] <= 20_000
    await node.assert_books_balance(key_id)


async def test_below_the_minimum_it_is_402_as_before_and_costs_nothing(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    listed = await advertised(http, node.v1)
    token, key_id = await funded_key(node, wallet, mint_url, 5)
    calls = node.upstream.state.requests_total
    for max_tokens in (32000, 900):  # 900: a limit under the minimum is never lowered
        body = chat_body("Tell me a long story", max_tokens=max_tokens)
        assert fitted(listed["gpt-4o-mini"], 5000, len(orjson.dumps(body))) < min(max_tokens, MIN_FITTED)
        r, answer, raw = await post(http, node.v1 + "/chat/completions", body, token)
        assert r.status == 402 and LOWERED not in r.headers
        err = answer["error"]
        assert (err["type"], err["details"]["available"]) == ("insufficient_balance", 5000)
        # what it takes to run the request: the reservation at the least limit the node may use
        least = reservation(listed["gpt-4o-mini"], len(raw), min(max_tokens, MIN_FITTED))
        assert err["details"]["required"] == least > 5000
    assert node.upstream.state.requests_total == calls
    row = await node.assert_books_balance(key_id)
    assert (row.balance_msat, row.reserved_msat) == (5000, 0)


async def test_an_x_cashu_token_is_fitted_too(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    listed = await advertised(http, node.v1)
    token = await wallet.asend(mint_url, 20)
    body = chat_body("Pay per request", max_tokens=32000)
    n = fitted(listed["gpt-4o-mini"], 20_000, len(orjson.dumps(body)))
    async with http.post(
        node.v1 + "/chat/completions",
        data=orjson.dumps(body),
        headers={"X-Cashu": token, "Content-Type": "application/json"},
    ) as r:
        assert r.status == 200, await r.text()
        assert r.headers[LOWERED] == f"32000->{n}" and r.headers["X-Cashu"].startswith("cashu")
        charged = int(r.headers["X-Routstr-Cost-Msats"])
    assert node.upstream.state.last_body["max_tokens"] == n
    assert charged % 1000 == 0 and 0 < charged <= 20_000


# -- Claude Code's shape, with the anthropic SDK and with the real CLI ----------------------------------


def _claude_code_providers(tmp_path: Path, url: str) -> dict[str, str]:
    """An Anthropic-type provider (Claude Code's requests go through as they are) and the alias."""
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f'[[providers]]\nname = "anthropic"\ntype = "anthropic"\nbase_url = "{url}"\n'
        f'api_key = "{UPSTREAM_KEY}"\n\n[aliases]\n"claude-*" = "claude-haiku-4-5"\n'
    )
    return {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers)}


async def test_the_anthropic_sdk_with_claude_codes_shape_through_the_alias(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    async with own_upstream() as up:
        env = _claude_code_providers(tmp_path, up.url)
        async with running_node(backend, mint_url, up, tmp_path, **env) as node:
            listed = await advertised(http, node.v1)
            token, key_id = await funded_key(node, wallet, mint_url, 50)
            client = AsyncAnthropic(base_url=node.url, api_key=token, max_retries=0)
            async with client.messages.stream(
                model="claude-opus-4-8",  # Claude Code 2.1.197's default Opus id: no provider serves it
                max_tokens=32000,
                thinking={"type": "enabled", "budget_tokens": 31999},
                system=[
                    {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
                ],
                tools=[
                    {
                        "name": "Bash",
                        "description": "Run a shell command",
                        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                    }
                ],
                metadata={"user_id": "user_test"},
                messages=[{"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]}],
            ) as stream:
                lowered = stream.response.headers[LOWERED]
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            sent = up.state.last_body
            n = int(lowered.split("->")[1])
            assert lowered.startswith("32000->") and MIN_FITTED < n < 32000
            assert (sent["model"], sent["max_tokens"], sent["thinking"]["budget_tokens"]) == (
                "claude-haiku-4-5",
                n,
                n - 1,  # Anthropic wants max_tokens above the thinking budget
            )
            assert text.startswith("Echo:") and final.model == "claude-haiku-4-5"
            u = expected_anthropic_usage(sent)
            charged = cost(listed["claude-haiku-4-5"], u["input_tokens"], u["output_tokens"])
            sums = await node.ledger_sums(key_id)
            assert sums["charge"] == charged <= sums["reserve"] <= 50_000
            row = await node.assert_books_balance(key_id)
            assert row.balance_msat == 50_000 - charged
