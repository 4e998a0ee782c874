"""The login backoff: waits that double up to a cap and never lock out, a burst that cannot slip past
it, forgetting after a success or idle time, shared by a fleet through Redis, and the client address
(only a trusted proxy's X-Forwarded-For counts; IPv6 by /64)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from ipaddress import ip_network

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from routstr.limits import MemoryLimiter
from routstr.limits.backoff import BackoffPolicy, MemoryBackoff
from routstr.limits.by_address import address_group, backoff_for
from routstr.limits.redis_backoff import RedisBackoff
from routstr.limits.redis_limiter import RedisLimiter
from routstr.net.client_address import forwarded_client
from tests.limits.conftest import REDIS_URL, FakeClock, require_redis

POLICY = BackoffPolicy(free=3, base_s=1.0, max_s=8.0, forget_s=60.0)


def test_waits_double_up_to_the_cap():
    assert [POLICY.wait_after(n) for n in range(1, 10)] == [0, 0, 0, 1, 2, 4, 8, 8, 8]
    assert BackoffPolicy().wait_after(10_000) == 300  # never a lockout, however many failures


async def test_memory_backoff_waits_forgets_and_is_per_name(clock: FakeClock):
    b = MemoryBackoff(POLICY, clock)
    assert [await b.attempt("a") for _ in range(5)] == [0, 0, 0, 0, 1]  # the 4th starts a 1 s wait
    assert await b.attempt("b") == 0  # another name is not touched
    clock.now += 1.0
    assert await b.attempt("a") == 0  # the 5th, after its wait: 2 s now
    clock.now += 1.5
    assert await b.attempt("a") == 1  # refused attempts do not lengthen it
    clock.now += 0.5
    assert await b.attempt("a") == 0
    await b.forget("a")  # a success
    assert [await b.attempt("a") for _ in range(3)] == [0, 0, 0]
    clock.now += 2 * 60.0  # idle long enough: forgotten as well
    assert [await b.attempt("a") for _ in range(4)] == [0, 0, 0, 0]


async def test_memory_backoff_stays_bounded(clock: FakeClock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(MemoryBackoff, "MAX_NAMES", 100)
    b = MemoryBackoff(POLICY, clock)
    for i in range(1000):
        await b.attempt(f"10.0.{i // 256}.{i % 256}")
    assert len(b) <= 100


@pytest_asyncio.fixture(loop_scope="session")
async def redis_prefix() -> AsyncIterator[str]:
    require_redis()
    prefix = f"test:backoff:{uuid.uuid4().hex[:10]}"
    yield prefix
    admin = Redis.from_url(REDIS_URL)
    keys = [k async for k in admin.scan_iter(match=prefix + ":*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()


async def test_a_fleet_shares_one_record_and_a_burst_gets_no_more(redis_prefix: str):
    one, two = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    a, b = RedisBackoff(one, redis_prefix, POLICY), RedisBackoff(two, redis_prefix, POLICY)
    try:
        # twenty attempts at once through two processes: the free three and one more go through
        results = await asyncio.gather(*(p.attempt("203.0.113.7") for p in (a, b) for _ in range(10)))
        assert sorted(results).count(0) == POLICY.free + 1
        assert await b.attempt("203.0.113.7") == 1 and await a.attempt("198.51.100.1") == 0
        await a.forget("203.0.113.7")
        assert await b.attempt("203.0.113.7") == 0
        ttl = await one.pttl(f"{redis_prefix}:198.51.100.1")
        assert 0 < ttl <= POLICY.forget_s * 1000  # an idle record goes away on its own
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_down_falls_back_to_this_process():
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    b = RedisBackoff(dead, "x", POLICY)
    try:
        assert [await b.attempt("a") for _ in range(5)] == [0, 0, 0, 0, 1]  # still limited
    finally:
        await dead.aclose()


async def test_the_backoff_lives_beside_the_limiter(redis_prefix: str):
    mem = MemoryLimiter()
    assert isinstance(backoff_for(mem, "login", POLICY), MemoryBackoff)
    assert backoff_for(mem, "login", POLICY) is backoff_for(mem, "login", POLICY)
    lim = RedisLimiter(Redis.from_url(REDIS_URL), redis_prefix)
    try:
        store = backoff_for(lim, "login", POLICY)
        assert isinstance(store, RedisBackoff)
        await store.attempt("a")
        admin = Redis.from_url(REDIS_URL)
        assert await admin.exists(f"{redis_prefix}:login:a") == 1  # in the limiter's namespace
        await admin.aclose()
    finally:
        await lim.close()


def test_address_groups():
    assert address_group("203.0.113.7") == "203.0.113.7"
    one_subscriber = ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:ffff::1")
    assert {address_group(a) for a in one_subscriber} == {"2001:db8:1:2::/64"}
    assert address_group("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_group(None) == "?" and address_group("unix") == "unix"


def test_forwarded_for_only_from_a_trusted_proxy():
    proxies = (ip_network("10.0.0.0/8"), ip_network("::1/128"))
    # no proxies configured, or the peer is not one: the header is anyone's to write
    assert forwarded_client("10.0.0.2", ["198.51.100.1"], ()) == "10.0.0.2"
    assert forwarded_client("192.0.2.9", ["198.51.100.1"], proxies) == "192.0.2.9"
    # through our proxies: the rightmost address that is not one of them
    assert forwarded_client("10.0.0.2", ["198.51.100.1"], proxies) == "198.51.100.1"
    assert forwarded_client("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.3"], proxies) == "198.51.100.1"
    assert forwarded_client("::1", ["6.6.6.6", "198.51.100.1"], proxies) == "198.51.100.1"  # two headers
    assert forwarded_client("::ffff:10.0.0.2", ["198.51.100.1"], proxies) == "198.51.100.1"
    assert forwarded_client("10.0.0.2", ["[2001:db8::5]:443"], proxies) == "2001:db8::5"
    assert forwarded_client("10.0.0.2", ["198.51.100.1:5555"], proxies) == "198.51.100.1"
    # nothing usable: the peer (never a guess), or the first address all our proxies saw
    assert forwarded_client("10.0.0.2", [], proxies) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", ["unknown"], proxies) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", ["10.0.0.9, 10.0.0.3"], proxies) == "10.0.0.9"


def test_trusted_proxies_setting():
    from routstr.config import ConfigError, load_settings

    base = {"CASHU_MINTS": "https://mint.example", "UPSTREAM_BASE_URL": "https://api.example/v1"}
    assert load_settings(base, env_file=None).trusted_proxies == ()  # default: X-Forwarded-For ignored
    s = load_settings({**base, "TRUSTED_PROXIES": "10.0.0.0/8, ::1,192.0.2.7"}, env_file=None)
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings({**base, "TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}, env_file=None)
