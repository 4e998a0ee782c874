"""The outbound policy: which private hosts an operator may allow, and a guarded session that never
opens a connection the policy refuses (address literals, names that resolve privately, redirects)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from routstr.net.addresses import DestinationError
from routstr.net.outbound import OutboundPolicy, private_hosts, refused
from tests.net.loopback import listening


@pytest.mark.parametrize(
    "raw, hosts",
    [
        ("", ()),
        ("false", ()),
        ("off", ()),
        ("true", ("*",)),
        ("1", ("*",)),
        ("127.0.0.1:8080", ("127.0.0.1:8080",)),
        (" LNbits.LAN. , 10.0.0.5 ", ("lnbits.lan", "10.0.0.5")),
        ("::1", ("[::1]",)),
        ("[0:0::1]:3338, [::1]:3338", ("[::1]:3338",)),
    ],
)
def test_private_hosts_are_none_any_or_a_list(raw: str, hosts: tuple[str, ...]):
    assert private_hosts(raw) == hosts


@pytest.mark.parametrize("raw", ["http://10.0.0.5", "10.0.0.5/path", "user@10.0.0.5", "host:0", "host:99999"])
def test_private_hosts_refuse_what_is_not_a_host(raw: str):
    with pytest.raises(ValueError, match="is not a host or host:port"):
        private_hosts(raw)


def test_a_listed_host_is_private_only_on_its_port():
    policy = OutboundPolicy(allow_private=private_hosts("127.0.0.1:8080, lnbits.lan, ::1"))
    assert policy.private_ok("127.0.0.1", 8080)
    assert not policy.private_ok("127.0.0.1", 8081)
    assert policy.private_ok("lnbits.lan", 443) and policy.private_ok("LNbits.lan.", 5000)
    assert policy.private_ok("::1", 1) and policy.private_ok("0::1", 2)
    assert not policy.private_ok("10.0.0.1", 8080)
    assert OutboundPolicy(allow_private=("*",)).private_ok("10.0.0.1", 1)
    assert not OutboundPolicy().private_ok("127.0.0.1", 8080)


async def test_check_refuses_private_addresses_and_plain_http():
    with pytest.raises(DestinationError) as e:
        await OutboundPolicy(allow_http=True).check("http://127.0.0.1:9/x")
    assert e.value.code == "destination_not_allowed"
    with pytest.raises(DestinationError) as e:
        await OutboundPolicy(allow_http=True).check("http://localhost:9/x")  # a name, resolved
    assert e.value.code == "destination_not_allowed"
    with pytest.raises(DestinationError) as e:
        await OutboundPolicy(allow_private=("*",)).check("http://127.0.0.1:9/x")
    assert e.value.code == "invalid_url"  # https only unless allowed
    with pytest.raises(DestinationError) as e:
        await OutboundPolicy(allow_http=True, allow_private=("*",)).check("http://0.0.0.0:9/x")
    assert e.value.code == "destination_not_allowed"  # never, whatever is allowed
    await OutboundPolicy(allow_http=True, allow_private=("127.0.0.1:9",)).check("http://127.0.0.1:9/x")


async def test_the_guarded_session_opens_no_connection_the_policy_refuses():
    async with listening() as port:
        p = port.port
        strict = OutboundPolicy(allow_http=True)
        one_port = OutboundPolicy(allow_http=True, allow_private=(f"127.0.0.1:{p + 1}",))
        urls = [
            f"http://127.0.0.1:{p}/x",
            f"http://localhost:{p}/x",  # resolves to loopback
            f"http://[::ffff:127.0.0.1]:{p}/x",  # IPv4-mapped
            f"http://[::1]:{p}/x",
        ]
        for policy in (strict, one_port):
            async with policy.session(5) as s:
                for url in urls:
                    with pytest.raises(aiohttp.ClientError) as e:
                        async with s.get(url):
                            pass
                    no = refused(e.value)
                    assert no is not None and no.code == "destination_not_allowed", url
        assert port.connections == 0


async def test_an_allowed_private_host_is_reached_but_a_redirect_is_not_followed():
    async with listening() as target:
        hits: list[str] = []

        async def redirect(request: web.Request) -> web.Response:
            hits.append(request.path)
            raise web.HTTPFound(f"http://127.0.0.1:{target.port}/x")

        app = web.Application()
        app.router.add_get("/r", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            anything = OutboundPolicy(allow_http=True, allow_private=("*",))
            async with anything.session(5) as s:
                with pytest.raises(aiohttp.ClientResponseError) as e:
                    async with s.get(f"http://127.0.0.1:{port}/r"):
                        pass
                assert e.value.status == 302 and refused(e.value) is None
                async with s.get(f"http://127.0.0.1:{target.port}/x") as r:  # allowed: reached
                    assert r.status == 200
        finally:
            await runner.cleanup()
        assert hits == ["/r"] and target.connections == 1  # only the direct call reached it


def test_the_settings_read_private_hosts_and_name_a_mistake():
    from routstr.config import ConfigError, load_settings

    base = {"UPSTREAM_BASE_URL": "https://api.example.com/v1", "CASHU_MINTS": "https://mint.a"}
    s = load_settings(base, env_file=None)
    assert s.lnurl_allow_private == () and s.foreign_mint_allow_private == ()  # public only by default
    s = load_settings(
        {**base, "LNURL_ALLOW_PRIVATE": "127.0.0.1:8080, lnbits.lan", "FOREIGN_MINT_ALLOW_PRIVATE": "true"},
        env_file=None,
    )
    assert s.lnurl_allow_private == ("127.0.0.1:8080", "lnbits.lan") and s.foreign_mint_allow_private == (
        "*",
    )
    with pytest.raises(ConfigError, match="LNURL_ALLOW_PRIVATE: 'http://x' is not a host"):
        load_settings({**base, "LNURL_ALLOW_PRIVATE": "http://x"}, env_file=None)
