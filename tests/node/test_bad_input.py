"""No input makes a real ``routstr serve`` answer 500 (issue 14, item 9): numbers and ids out of range
or in other scripts' digits, and headers past aiohttp's limits, are 4xx in the spec's envelope, and
they cost nothing: the balance stays what it was and a token sent with them is not redeemed.

Each test collects every answer that is not what it should be and fails once with the whole list."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from routstr.cashu.tokens import decode_token
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import chat_body
from tests.node.node_process import NodeProcess, balance_of, routstr_cli

pytestmark = pytest.mark.asyncio(loop_scope="session")

HUGE = "99999999999999999999"  # past int64
U64_MAX = 2**64 - 1  # the largest integer a JSON body can carry to the node (orjson)
ARABIC_INDIC = "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660"  # "1700000000", not ASCII
SUPERSCRIPT = "\u00b2"  # str.isdigit() says yes, int() says no
BIG_HEADER = "a" * (200 * 1024)  # past the node's 128 KiB a field (aiohttp's parser refuses it)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Problems(list[str]):
    """What went wrong, one line per request."""

    async def expect(self, what: str, r: aiohttp.ClientResponse, *statuses: int) -> dict[str, Any]:
        """The answer must be one of ``statuses`` in the spec's envelope; else it is noted."""
        text = await r.text()
        err: dict[str, Any] = {}
        if r.content_type == "application/json":
            err = orjson.loads(text).get("error") or {}
        if r.status not in statuses or set(err) != {"type", "message", "code", "details"}:
            self.append(f"{what}: {r.status} {r.content_type} {text[:160]!r}")
        return err


async def admin_token(node: NodeProcess) -> dict[str, str]:
    done = await routstr_cli(node, "admin-token", "create", "--name", "bad-input")
    assert done.returncode == 0, done.stderr
    return bearer(orjson.loads(done.stdout)["token"])


async def test_bad_numbers_and_headers_are_4xx_and_free(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str
):
    node = node_proc
    await asyncio.to_thread(node.start)
    problems = Problems()
    async with aiohttp.ClientSession() as http:
        # Key-Expiry-Time out of range or in other digits: refused before the token is redeemed
        token = await wallet.asend(mint_url, 30)
        for bad in (HUGE, ARABIC_INDIC, SUPERSCRIPT, "1e9", "-5", "12 34"):
            async with http.post(
                node.url + "/v1/balance/create", json={"cashu_token": token}, headers={"Key-Expiry-Time": bad}
            ) as r:
                err = await problems.expect(f"create, Key-Expiry-Time {bad!r}", r, 400)
            if err and err.get("details", {}).get("param") != "Key-Expiry-Time":
                problems.append(f"create, Key-Expiry-Time {bad!r}: {err}")
        if await wallet.acheck(token) != ["UNSPENT"] * len(decode_token(token).proofs):
            problems.append("a refused Key-Expiry-Time redeemed the token")
        async with http.post(node.url + "/v1/balance/create", json={"cashu_token": token}) as r:
            assert r.status == 201, await r.text()
            key = (await r.json())["api_key"]
        before = await balance_of(http, node, key)
        assert before["balance"] == 30_000
        for bad in (HUGE, ARABIC_INDIC):
            headers = {**bearer(key), "Key-Expiry-Time": bad}
            async with http.get(node.url + "/v1/balance/info", headers=headers) as r:
                await problems.expect(f"balance/info, Key-Expiry-Time {bad!r}", r, 400)
            topup = node.url + "/v1/balance/topup"
            async with http.post(topup, json={"cashu_token": "x"}, headers=headers) as r:
                await problems.expect(f"topup, Key-Expiry-Time {bad!r}", r, 400)

        # output limits and counts past any provider's: 400, nothing reserved or charged
        hi = [{"role": "user", "content": "hi"}]
        legacy = {"model": "gpt-4o-mini", "prompt": "hi"}
        bodies: list[tuple[str, dict[str, Any]]] = [
            ("/v1/chat/completions", chat_body(max_tokens=U64_MAX)),
            ("/v1/chat/completions", chat_body(max_completion_tokens=U64_MAX)),
            ("/v1/chat/completions", chat_body(max_tokens=2**31)),
            ("/v1/chat/completions", chat_body(max_tokens=5, n=U64_MAX)),
            ("/v1/completions", {**legacy, "max_tokens": U64_MAX}),
            ("/v1/completions", {**legacy, "max_tokens": 5, "best_of": U64_MAX}),
            ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": U64_MAX}),
            ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": U64_MAX, "messages": hi}),
        ]
        for path, body in bodies:
            async with http.post(node.url + path, json=body, headers=bearer(key)) as r:
                await problems.expect(f"{path} {sorted(body)}", r, 400)

        # a header past aiohttp's own limit: the envelope, not aiohttp's plain text
        async with http.get(node.url + "/v1/info", headers={"X-Big": BIG_HEADER}) as r:
            err = await problems.expect("GET /v1/info with a 200 KiB header", r, 400)
        if err and err.get("type") != "invalid_request":
            problems.append(f"header too large: {err}")
        async with http.post(
            node.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
            headers={**bearer(key), "X-Big": BIG_HEADER},
        ) as r:  # fmt: skip
            await problems.expect("POST /v1/chat/completions with a 200 KiB header", r, 400)

        after = await balance_of(http, node, key)
        async with http.get(node.url + "/v1/info") as r:
            assert r.status == 200  # the node still answers
    assert not problems, "\n".join(problems)
    assert after == before  # none of it cost anything


async def test_admin_ids_past_int64_or_not_ascii_are_404_or_400(node_proc: NodeProcess):
    node = node_proc
    await asyncio.to_thread(node.start)
    await admin_token(node)  # id 1: what "١" (Arabic-Indic one) used to revoke
    admin = await admin_token(node)
    problems = Problems()
    async with aiohttp.ClientSession() as http:
        for bad in (HUGE, ARABIC_INDIC[:1], "0"):
            for method, path in (
                ("GET", f"/admin/api/keys/{bad}"),
                ("PUT", f"/admin/api/keys/{bad}/limits"),
                ("DELETE", f"/admin/api/keys/{bad}/limits"),
                ("PUT", f"/admin/api/providers/{bad}"),
                ("DELETE", f"/admin/api/providers/{bad}"),
                ("DELETE", f"/admin/api/tokens/{bad}"),
            ):
                body = {"requests_per_minute": 5} if path.endswith("limits") else {"fee": "0.1"}
                async with http.request(method, node.url + path, json=body, headers=admin) as r:
                    await problems.expect(f"{method} {path}", r, 400, 404)
        for bad in (HUGE, SUPERSCRIPT, ARABIC_INDIC, "-1", "0"):
            for path in (
                f"/admin/api/keys?before={bad}",
                f"/admin/api/requests?before={bad}",
                f"/admin/api/requests?key_id={bad}",
                f"/admin/api/keys/1?ledger={bad}",
                f"/admin/api/overview?hours={bad}",
                f"/admin/api/keys?limit={bad}",
            ):
                async with http.get(node.url + path, headers=admin) as r:
                    await problems.expect(f"GET {path}", r, 400, 404)
        async with http.get(node.url + f"/admin/api/keys?q={ARABIC_INDIC}", headers=admin) as r:
            await problems.expect("keys?q=<Arabic-Indic digits>", r, 400)  # no id, key or token
        async with http.get(node.url + f"/admin/api/keys?q={HUGE}", headers=admin) as r:
            if r.status != 200 or (await r.json()).get("keys") != []:
                problems.append(f"keys?q={HUGE}: {r.status} {(await r.text())[:160]}")  # no key has it
        async with http.put(
            node.url + "/admin/api/keys/1/limits", json={"requests_per_minute": 2**63}, headers=admin
        ) as r:
            await problems.expect("a limit of 2^63", r, 400)
        async with http.get(node.url + "/admin/api/keys?before=5&limit=10", headers=admin) as r:
            if r.status != 200:  # in range: still fine (and the token was not revoked as "1")
                problems.append(f"keys?before=5&limit=10: {r.status} {(await r.text())[:160]}")
    assert not problems, "\n".join(problems)
