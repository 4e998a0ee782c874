"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``, ``claude -p``, installed by the test into
~/.cache/routstr-test-npm) against ``routstr serve`` on loopback: with its default model through the
``claude-*`` alias and a 50-sat token, and with a child key whose 20-sat limit stops it. Costs are
computed from the prices ``/v1/models`` advertises and the fake upstream's usage.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest

from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import child_store
from routstr.wallet.audit import audit
from tests.conftest import running_node
from tests.node.agents_support import (
    LOWERED,
    MIN_FITTED,
    advertised,
    balance_info,
    claude_code_node,
    cost,
    fitted,
    npm_install_claude_code,
    own_upstream,
    post,
    recording_proxy,
    reservation,
    run_claude,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_claude_code_with_its_default_model_and_a_50_sat_token(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    claude = await asyncio.to_thread(npm_install_claude_code)
    async with own_upstream() as up:
        # Claude Code's first request is ~80 KB: at 100 sats/Mtok its prompt bound costs ~8 sats, and
        # 64000 output tokens at 3000 sats/Mtok would need 192 sats more than the token holds
        env = claude_code_node(tmp_path, up.url, 100, 3000)
        async with running_node(backend, mint_url, up, tmp_path, **env) as node:
            listed = await advertised(http, node.v1)
            token = await wallet.asend(mint_url, 50)
            code, out, err = await run_claude(claude, node.url, token, tmp_path)
            assert code == 0, (out[-2000:], err[-2000:])
            assert out.strip().startswith("Echo:")  # the fake upstream's answer
            assert up.state.by_path["/v1/chat/completions"] == 1
            sent = up.state.last_body
            assert sent["model"] == "claude-haiku-4-5"  # Claude Code asked for its default (an Opus id)
            assert MIN_FITTED <= sent["max_tokens"] < 32000  # lowered from 32000 (or 64000, 128000)
            key_id = await node.app[NODE].auth.key_id(token)
            u = expected_usage(sent)
            charged = cost(listed["claude-haiku-4-5"], u["prompt_tokens"], u["completion_tokens"])
            sums = await node.ledger_sums(key_id)
            assert sums["charge"] == charged <= sums["reserve"] <= 50_000
            row = await node.assert_books_balance(key_id)
            assert (row.balance_msat, row.reserved_msat) == (50_000 - charged, 0)


LIMIT = 20_000  # the child's balance_limit, msat
FEE = 1_500  # CHILD_KEY_COST_MSATS of this node
MAX_RUNS = 12  # at these prices Claude Code is refused after about 5 answers


async def test_a_claude_code_child_key_with_a_20_sat_limit_stops_at_its_limit(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    """Claude Code asks for 64000 output tokens every time. The parent's balance would pay for that;
    the child's room (its limit less what it spent) does not, so each request is fitted to the room,
    never beyond it, until the room is below the least the request can run at: then 402
    balance_limit_exceeded, and Claude Code fails. A recording proxy between the two shows each
    request's bytes (its prompt bound) and each answer."""
    claude = await asyncio.to_thread(npm_install_claude_code)
    async with own_upstream() as up:
        # Claude Code's request is ~76 KB: at 180 sats/Mtok its prompt bound is ~14 sats, ~17 sats with
        # the least output limit (1024 tokens at 3000 sats/Mtok); an answer is charged < 1 sat
        env = claude_code_node(tmp_path, up.url, 180, 3000)
        async with (
            running_node(backend, mint_url, up, tmp_path, CHILD_KEY_COST_MSATS=str(FEE), **env) as node,
            recording_proxy(node.url) as (proxy, seen),
        ):
            haiku = (await advertised(http, node.v1))["claude-haiku-4-5"]
            async with http.get(node.v1 + "/info") as r:
                assert (await r.json())["child_key_cost_msats"] == FEE
            async with http.post(
                node.v1 + "/balance/create", json={"cashu_token": await wallet.asend(mint_url, 300)}
            ) as r:
                assert r.status == 201
                parent = (await r.json())["api_key"]
            parent_id = await node.app[NODE].auth.key_id(parent)
            r, made, _ = await post(http, node.v1 + "/balance/child-key", {"balance_limit": LIMIT}, parent)
            assert r.status == 200 and (made["balance_limit"], made["cost_msats"]) == (LIMIT, FEE), made
            paid = 300_000 - FEE
            assert made["parent_balance"] == paid
            child = made["api_keys"][0]

            spent = answered = 0  # the child's charges, as the test computes them
            for _ in range(MAX_RUNS):
                room = LIMIT - spent
                assert (await balance_info(http, node.v1, child))["balance"] == room
                parent_balance = (await balance_info(http, node.v1, parent))["balance"]
                assert parent_balance == paid - spent
                sums, calls = await node.ledger_sums(parent_id), up.state.requests_total
                seen.clear()
                code, out, err = await run_claude(claude, proxy, child, tmp_path)
                asked = [e for e in seen if (e.method, e.path) == ("POST", "/v1/messages")]
                if code != 0:
                    break
                assert out.strip().startswith("Echo:"), (out[-2000:], err[-2000:])
                assert len(asked) == 1 and asked[0].status == 200
                size, wanted = len(asked[0].body), orjson.loads(asked[0].body)["max_tokens"]
                assert reservation(haiku, size, wanted) <= parent_balance  # the parent could pay it all
                n = fitted(haiku, room, size)  # the child's room is what lowers it
                assert MIN_FITTED <= n < wanted and asked[0].headers[LOWERED] == f"{wanted}->{n}"
                sent = up.state.last_body
                assert up.state.requests_total == calls + 1
                assert (sent["model"], sent["max_tokens"]) == ("claude-haiku-4-5", n)
                u = expected_usage(sent)
                charged = cost(haiku, u["prompt_tokens"], u["completion_tokens"])
                after = await node.ledger_sums(parent_id)  # the child's requests are on its payer's books
                held = after["reserve"] - sums.get("reserve", 0)
                assert held == reservation(haiku, size, n) <= room  # spent + held never beyond the limit
                assert after["charge"] - sums.get("charge", 0) == charged > 0
                spent += charged
                answered += 1
            else:
                pytest.fail(f"Claude Code was still answered after {MAX_RUNS} runs")

            # at the limit: Claude Code's run fails, saying why; nothing reached the upstream or cost money
            assert answered >= 1 and spent <= LIMIT, (out[-2000:], err[-2000:])
            assert "402" in out and "balance_limit" in out, (out[-2000:], err[-2000:])
            assert asked and all(e.status == 402 for e in asked)
            assert up.state.requests_total == calls and await node.ledger_sums(parent_id) == sums
            body = asked[-1].body
            least = reservation(haiku, len(body), MIN_FITTED)
            assert least > room  # not even the least output limit fits what is left
            # the same request sent plainly with the child key after Claude Code stopped
            headers = {"Authorization": f"Bearer {child}", "Content-Type": "application/json"}
            async with http.post(node.v1 + "/messages", data=body, headers=headers) as r:
                assert r.status == 402 and LOWERED not in r.headers
                plain = (await r.json())["error"]
            refused = {
                "available": room,
                "required": least,
                "balance_limit": LIMIT,
                "balance_limit_spent": spent,
            }
            for error in (plain, orjson.loads(asked[-1].answer)["error"]):  # and what Claude Code got
                assert (error["type"], error["code"]) == ("insufficient_balance", "balance_limit_exceeded")
                assert {k: error["details"][k] for k in refused} == refused
            info = await balance_info(http, node.v1, child)
            books = {"balance_limit_spent": spent, "total_spent": spent, "total_requests": answered}
            assert {k: info[k] for k in books} == books and (info["balance"], info["reserved"]) == (room, 0)
            # the parent paid the fee and exactly what its child spent
            assert (await balance_info(http, node.v1, parent))["balance"] == paid - spent
            row = await node.assert_books_balance(parent_id)
            assert (row.balance_msat, row.reserved_msat) == (paid - spent, 0)
            report = await audit(node.db, node.app[NODE].mints)
            assert report.ok, report.problems
            async with node.db.read() as conn:
                assert await child_store.counter_mismatches(conn) == []
