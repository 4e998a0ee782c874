"""MintClient error mapping and response validation against a scripted local HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from routstr.cashu.errors import CashuProtocolError, MintError, MintUnavailable
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import BlindedMessage, Proof
from routstr.cashu.nut02 import derive_keyset_id_v1
from tests.cashu.nut_vectors_data import KEYS_4

KEYSET_ID = derive_keyset_id_v1(KEYS_4)
C = KEYS_4[1]
Handler = Callable[[web.Request], Any]


class Scripted:
    """A server whose answer per path is set by each test; records the JSON bodies it received."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.bodies: list[Any] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.can_read_body:
            self.bodies.append(await request.json())
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="<html>not found</html>", content_type="text/html")
        result = handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, web.StreamResponse)
        return result


@pytest.fixture
async def server() -> AsyncIterator[tuple[Scripted, str]]:
    scripted = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield scripted, str(srv.make_url("")).rstrip("/")
    finally:
        await srv.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _json(body: Any, status: int = 200) -> Handler:
    return lambda _r: web.json_response(body, status=status)


KEYS_BODY = {
    "keysets": [
        {"id": KEYSET_ID, "unit": "sat", "active": True, "keys": {str(a): k for a, k in KEYS_4.items()}}
    ]
}
PROOF = Proof(1, KEYSET_ID, "secret", C)
OUTPUT = BlindedMessage(1, KEYSET_ID, C)


async def test_mint_error_400(server: tuple[Scripted, str], session: aiohttp.ClientSession) -> None:
    scripted, url = server
    scripted.routes["/v1/swap"] = _json({"detail": "proofs already spent", "code": 11001}, 400)
    with pytest.raises(MintError) as exc:
        await MintClient(url, session).swap([PROOF], [OUTPUT])
    assert exc.value.is_already_spent and exc.value.detail == "proofs already spent"
    # inputs are sent without dleq, outputs as BlindedMessages
    assert scripted.bodies[-1] == {"inputs": [PROOF.to_input_dict()], "outputs": [OUTPUT.to_dict()]}


async def test_validation_error_422_is_mint_error(
    server: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    scripted, url = server
    scripted.routes["/v1/swap"] = _json({"detail": [{"loc": ["body"], "msg": "field required"}]}, 422)
    with pytest.raises(MintError) as exc:
        await MintClient(url, session).swap([PROOF], [OUTPUT])
    assert exc.value.status == 422 and exc.value.code is None


@pytest.mark.parametrize(
    ("handler", "maybe_processed"),
    [
        (_json({"detail": "internal"}, 500), True),
        (lambda _r: web.Response(status=502, text="bad gateway"), True),
        (_json({"detail": "Rate limit exceeded"}, 429), False),
        (lambda _r: web.Response(status=200, text="<html>hello</html>"), True),
        (lambda _r: web.Response(status=400, text="plain text error"), False),
        (lambda _r: web.Response(status=302, headers={"Location": "/nowhere"}), False),
    ],
)
async def test_unavailable_mappings(
    server: tuple[Scripted, str], session: aiohttp.ClientSession, handler: Handler, maybe_processed: bool
) -> None:
    scripted, url = server
    scripted.routes["/v1/swap"] = handler
    with pytest.raises(MintUnavailable) as exc:
        await MintClient(url, session).swap([PROOF], [OUTPUT])
    assert exc.value.maybe_processed is maybe_processed


async def test_404_html_is_unavailable(server: tuple[Scripted, str], session: aiohttp.ClientSession) -> None:
    _, url = server
    with pytest.raises(MintUnavailable) as exc:
        await MintClient(url, session).keysets()
    assert exc.value.status == 404


async def test_timeout_is_unavailable(server: tuple[Scripted, str], session: aiohttp.ClientSession) -> None:
    scripted, url = server

    async def slow(_r: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    scripted.routes["/v1/swap"] = slow
    with pytest.raises(MintUnavailable, match="timeout") as exc:
        await MintClient(url, session, timeout_s=0.2).swap([PROOF], [OUTPUT])
    assert exc.value.maybe_processed  # the mint may have spent the inputs: restore before retrying


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/v1/keysets", {"keysets": "nope"}, lambda c: c.keysets()),
        ("/v1/keys", {"keysets": [{"id": "x", "unit": "sat", "keys": {"1": "02ab"}}]}, lambda c: c.keys()),
        ("/v1/swap", {"signatures": []}, lambda c: c.swap([PROOF], [OUTPUT])),  # count mismatch
        ("/v1/swap", {"signatures": [{"amount": 1}]}, lambda c: c.swap([PROOF], [OUTPUT])),
        ("/v1/checkstate", {"states": []}, lambda c: c.check_state(["02aa"])),  # missing Y
        ("/v1/checkstate", {"states": [{"Y": "02aa", "state": "GONE"}]}, lambda c: c.check_state(["02aa"])),
        ("/v1/restore", {"outputs": [OUTPUT.to_dict()], "signatures": []}, lambda c: c.restore([OUTPUT])),
        ("/v1/info", [1, 2], lambda c: c.info()),
    ],
)
async def test_protocol_errors(
    server: tuple[Scripted, str], session: aiohttp.ClientSession, path: str, body: Any, call: Any
) -> None:
    scripted, url = server
    scripted.routes[path] = _json(body)
    with pytest.raises(CashuProtocolError):
        await call(MintClient(url, session))


async def test_keyset_id_mismatch_detected(
    server: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    scripted, url = server
    forged = {"keysets": [{**KEYS_BODY["keysets"][0], "id": "00" + "11" * 7}]}
    scripted.routes["/v1/keys"] = _json(forged)
    with pytest.raises(CashuProtocolError, match="does not match"):
        await MintClient(url, session).keys()
    [ks] = await MintClient(url, session, verify_keyset_ids=False).keys()
    assert ks.id == "00" + "11" * 7


async def test_keys_by_id_cached_and_checked(
    server: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    scripted, url = server
    calls: list[str] = []

    def keys(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response(KEYS_BODY)

    scripted.routes[f"/v1/keys/{KEYSET_ID}"] = keys
    scripted.routes["/v1/keys/00ffffffffffffff"] = keys  # answers with another keyset
    client = MintClient(url, session)
    ks = await client.keyset(KEYSET_ID)
    assert ks is await client.keyset(KEYSET_ID)
    assert calls == [f"/v1/keys/{KEYSET_ID}"]
    with pytest.raises(CashuProtocolError, match="asked for keyset"):
        await client.keyset("00ffffffffffffff")


async def test_check_state_and_restore_empty_make_no_request(
    server: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    scripted, url = server
    client = MintClient(url, session)
    assert await client.check_state([]) == {}
    assert await client.restore([]) == []
    assert scripted.bodies == []


async def test_concurrent_first_calls_share_one_keysets_request(
    server: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    scripted, url = server
    calls = 0

    async def keysets(_r: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return web.json_response({"keysets": [{"id": KEYSET_ID, "unit": "sat", "active": True}]})

    scripted.routes["/v1/keysets"] = keysets
    client = MintClient(url, session)
    results = await asyncio.gather(*(client.keysets() for _ in range(5)))
    assert calls == 1 and all(r == results[0] for r in results)


async def test_check_state_is_batched(
    server: tuple[Scripted, str], session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted, url = server
    monkeypatch.setattr("routstr.cashu.mint_client.CHECKSTATE_BATCH", 2)

    async def checkstate(request: web.Request) -> web.Response:
        ys = (await request.json())["Ys"]
        return web.json_response({"states": [{"Y": y, "state": "UNSPENT", "witness": None} for y in ys]})

    scripted.routes["/v1/checkstate"] = checkstate
    ys = [f"02{i:02x}" for i in range(5)]
    assert await MintClient(url, session).check_state(ys) == dict.fromkeys(ys, "UNSPENT")
    assert [len(b["Ys"]) for b in scripted.bodies] == [2, 2, 1]
