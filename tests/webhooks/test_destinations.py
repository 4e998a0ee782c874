"""Which webhook URLs the node accepts and which addresses it will connect to."""

from __future__ import annotations

import ipaddress

import pytest

from routstr.webhooks.destinations import DestinationError, parse_url, refusal, resolve

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",  # cloud metadata
    "100.64.0.1": "non-public",  # carrier-grade NAT
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "::1": "loopback",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "2001:db8::1": "private",  # documentation
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:10.0.0.1": "private",
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
    "2002:a00:1::1": "private",  # 6to4 of 10.0.0.1
}
NEVER = {"0.0.0.0": "unspecified", "::": "unspecified", "224.0.0.1": "multicast", "ff02::1": "multicast"}
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address, reason", sorted(REFUSED.items()))
def test_private_addresses_are_refused_unless_allowed(address: str, reason: str):
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) == reason
    assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize("address, reason", sorted(NEVER.items()))
def test_multicast_and_unspecified_are_never_a_destination(address: str, reason: str):
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) == reason
    assert refusal(ip, allow_private=True) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str):
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


def test_parse_url_keeps_what_the_delivery_needs():
    d = parse_url("https://Hooks.Example.COM/in/coming?t=a%2Fb&x=1#frag", allow_http=False)
    assert (d.scheme, d.host, d.port, d.path_qs) == (
        "https",
        "hooks.example.com",
        443,
        "/in/coming?t=a%2Fb&x=1",
    )
    assert d.host_header == "hooks.example.com" and d.ip is None
    # the connection goes to a checked address; path and query are sent exactly as given
    assert str(d.url_for("93.184.215.14")) == "https://93.184.215.14/in/coming?t=a%2Fb&x=1"
    assert str(d.url_for("2606:2800::1")) == "https://[2606:2800::1]/in/coming?t=a%2Fb&x=1"
    v6 = parse_url("http://[::1]:8080", allow_http=True)
    assert (v6.host, v6.port, v6.path_qs, v6.host_header) == ("::1", 8080, "/", "[::1]:8080")
    assert str(v6.ip) == "::1"


@pytest.mark.parametrize(
    "url, allow_http",
    [
        ("http://hooks.example.com/", False),  # plain http only when the operator allows it
        ("ftp://hooks.example.com/", True),
        ("https://user:pass@hooks.example.com/", False),  # credentials: the secret signs instead
        ("https:///path-only", False),
        ("/relative", False),
        ("https://hooks.example.com/ space", False),
        ("https://hooks.example.com/\nX-Injected: 1", False),
        ("https://hooks.example.com/" + "a" * 2048, False),
        ("", False),
    ],
)
def test_malformed_or_unsupported_urls_are_refused(url: str, allow_http: bool):
    with pytest.raises(DestinationError) as e:
        parse_url(url, allow_http)
    assert e.value.code == "invalid_webhook_url"


async def test_resolve_checks_every_address_a_name_has():
    # "localhost" resolves (from /etc/hosts, no network) to loopback addresses only
    with pytest.raises(DestinationError) as e:
        await resolve(parse_url("https://localhost/hook", False), allow_private=False)
    assert e.value.code == "destination_not_allowed" and "resolves to a loopback address" in e.value.message
    allowed = await resolve(parse_url("https://localhost/hook", False), allow_private=True)
    assert allowed and all(ipaddress.ip_address(a).is_loopback for a in allowed)
    with pytest.raises(DestinationError) as e:
        await resolve(parse_url("https://169.254.169.254/latest/meta-data", False), allow_private=False)
    assert e.value.code == "destination_not_allowed" and "is a link-local address" in e.value.message
    assert await resolve(parse_url("https://8.8.8.8/x", False), allow_private=False) == [
        "8.8.8.8"
    ]  # no lookup


async def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(DestinationError) as e:
        await resolve(parse_url("https://no-such-host.invalid/x", False), allow_private=False)
    assert e.value.code == "destination_unresolvable"
