"""Lightning addresses and LNURL-pay under the outbound policy: both hops checked, and every failure
told in the node's words, the same whether a port was open or closed, never the server's text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import bech32
import pytest
import pytest_asyncio
from aiohttp import web

from routstr.core.errors import ApiError, InvalidRequest, ServiceUnavailable
from routstr.devtools.nutshell import free_port
from routstr.net.outbound import OutboundPolicy
from routstr.wallet.lnurl import (
    DECLINED,
    NO_INVOICE,
    NO_PAY_REQUEST,
    NOT_ALLOWED,
    PayRequest,
    invoice_for,
    lnurl_endpoint,
    pay_request,
)
from tests.net.loopback import listening

SECRET_REASON = "db at 10.0.0.7:5432 refused: password authentication failed for user admin"


@pytest_asyncio.fixture(loop_scope="session")
async def server() -> AsyncIterator[int]:
    """A LNURL server that declines with a revealing reason, answers garbage, or too much."""

    async def declines(_: web.Request) -> web.Response:
        return web.json_response({"status": "ERROR", "reason": SECRET_REASON}, status=400)

    async def garbage(_: web.Request) -> web.Response:
        return web.Response(text=f"<html>{SECRET_REASON}</html>", status=500)

    async def huge(_: web.Request) -> web.Response:
        return web.json_response({"tag": "payRequest", "pad": "x" * 100_000})

    app = web.Application()
    app.router.add_get("/declines", declines)
    app.router.add_get("/garbage", garbage)
    app.router.add_get("/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


async def _error(policy: OutboundPolicy, url: str, callback: bool = False) -> ApiError:
    async with policy.session(5) as s:
        with pytest.raises(ApiError) as e:
            if callback:
                await invoice_for(s, policy, PayRequest(url, 1000, 10**6), 5000)
            else:
                await pay_request(s, policy, url)
    return e.value


@pytest.mark.parametrize("callback", [False, True])
async def test_private_hosts_are_refused_alike_open_or_closed(callback: bool):
    async with listening() as open_port:
        policy = OutboundPolicy(allow_http=True)
        errors = [
            await _error(policy, f"http://127.0.0.1:{port}/.well-known/lnurlp/alice", callback)
            for port in (open_port.port, free_port())
        ]
        errors.append(await _error(policy, f"http://localhost:{open_port.port}/cb", callback))
        assert open_port.connections == 0
    for e in errors:
        assert isinstance(e, InvalidRequest) and e.code == "destination_not_allowed"
        assert e.message == NOT_ALLOWED and e.details == {}


async def test_a_callback_must_be_https_unless_allowed():
    async with listening() as port:
        policy = OutboundPolicy(allow_private=("*",))  # private allowed, plain http not
        e = await _error(policy, f"http://127.0.0.1:{port.port}/cb", callback=True)
        assert e.message == NOT_ALLOWED and port.connections == 0


async def test_open_and_closed_allowed_ports_fail_in_the_same_words():
    async with listening() as open_port:  # answers a payRequest without a valid callback answer
        anything = OutboundPolicy(allow_http=True, allow_private=("*",))
        closed = free_port()
        e_open = await _error(anything, f"http://127.0.0.1:{open_port.port}/cb", callback=True)
        e_closed = await _error(anything, f"http://127.0.0.1:{closed}/cb", callback=True)
        assert open_port.connections == 1
    assert isinstance(e_open, ServiceUnavailable) and isinstance(e_closed, ServiceUnavailable)
    assert e_open.message == e_closed.message == NO_INVOICE
    assert str(closed) not in e_closed.message


async def test_the_servers_words_are_never_echoed(server: int):
    anything = OutboundPolicy(allow_http=True, allow_private=("*",))
    declined = await _error(anything, f"http://127.0.0.1:{server}/declines")
    assert isinstance(declined, InvalidRequest) and declined.message == DECLINED
    errors = [declined]
    for path in ("garbage", "huge"):
        e = await _error(anything, f"http://127.0.0.1:{server}/{path}")
        assert isinstance(e, ServiceUnavailable) and e.message == NO_PAY_REQUEST
        errors.append(e)
    for e in errors:
        shown = str(e.envelope())
        assert "10.0.0.7" not in shown and "password" not in shown and str(server) not in shown


@pytest.mark.parametrize(
    "address",
    ["../admin@example.com", "a?b@example.com", "alice@example.com/x", "alice@exa mple.com", "@example.com"],
)
def test_a_lightning_address_cannot_carry_a_path_or_query(address: str):
    with pytest.raises(InvalidRequest):
        lnurl_endpoint(address)


def test_endpoints_of_addresses_and_lnurls():
    assert lnurl_endpoint("Alice@Wallet.example") == "https://Wallet.example/.well-known/lnurlp/Alice"
    assert (
        lnurl_endpoint("alice@127.0.0.1:9", allow_http=True) == "http://127.0.0.1:9/.well-known/lnurlp/alice"
    )
    url = "https://wallet.example/lnurlp/abc"
    lnurl: Any = bech32.bech32_encode("lnurl", bech32.convertbits(url.encode(), 8, 5))
    assert lnurl_endpoint(lnurl.upper()) == url
