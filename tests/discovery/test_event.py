"""The node's Nostr key and announcement event, against references computed independently
(``vectors``): no relay, no network."""

from __future__ import annotations

import json

import pytest

from routstr.config import ConfigError, load_settings
from routstr.discovery.announcement import KIND, Listing, build_event
from routstr.discovery.keys import NostrKeyError, derive_key, node_key, parse_secret_key
from routstr.discovery.publisher import RENEW_S, RelaySchedule, retry_delay
from tests.discovery.vectors import (
    SECRET_HEX,
    derived_pubkey,
    nip01_id,
    npub_of,
    nsec_of,
    schnorr_valid,
    xonly_pubkey,
)

SECRET = bytes.fromhex(SECRET_HEX)
PUBKEY = "87d3561f19b74adbe8bf840682992466068830a9d8c36b4a0c99d36f826cb6cb"
LISTING = Listing(
    provider_id="routstr",
    http_url="https://node.example.com",
    onion_url="http://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv.onion",
    mints=("https://mint-a.example.com", "https://mint-b.example.com/Bitcoin"),
    version="0.1.0",
    name='Ada\'s "node" ☕',
    about="line one\nline two\tand a tab, \\ a backslash",
)
# NIP-01 id of LISTING signed by SECRET at CREATED_AT (sha256 of its serialization; see test below)
CREATED_AT = 1_700_000_000
EXPECTED_ID = "fc29dc24cc7bfda26c70c76ed5fd6c710be6559980eba06560d4fd24c27520bc"


def test_a_secret_key_is_read_as_nsec_or_hex_and_gives_the_independent_public_key() -> None:
    assert xonly_pubkey(SECRET) == PUBKEY
    for text in (nsec_of(SECRET), SECRET_HEX, SECRET_HEX.upper(), f"  {nsec_of(SECRET)}\n"):
        key = parse_secret_key(text)
        assert key.public_hex == PUBKEY
        assert key.npub == npub_of(PUBKEY)
    assert SECRET_HEX not in repr(parse_secret_key(SECRET_HEX))


@pytest.mark.parametrize(
    "text",
    [
        npub_of(PUBKEY),  # a public key where the secret one belongs
        nsec_of(SECRET)[:-1] + ("q" if nsec_of(SECRET)[-1] != "q" else "p"),  # bad checksum
        SECRET_HEX[:-2],  # 31 bytes
        "ff" * 32,  # above the curve order
        "00" * 32,
        "",
        "nsec1",
    ],
)
def test_anything_but_a_valid_secret_key_is_refused_without_repeating_it(text: str) -> None:
    with pytest.raises(NostrKeyError) as e:
        parse_secret_key(text)
    assert not text or text not in str(e.value)


def test_without_nsec_the_key_is_derived_from_the_node_secret_the_same_every_time() -> None:
    for node_secret in (b"k", b"a" * 64, bytes(range(32))):
        assert derive_key(node_secret).public_hex == derived_pubkey(node_secret)
        assert node_key("", node_secret).public_hex == derived_pubkey(node_secret)
    assert derive_key(b"one").public_hex != derive_key(b"two").public_hex
    assert node_key(SECRET_HEX, b"k").public_hex == PUBKEY  # NSEC wins


def test_the_event_matches_nip01_known_answer_and_is_signed_by_the_node_key() -> None:
    event = build_event(LISTING, parse_secret_key(SECRET_HEX), CREATED_AT)
    assert set(event) == {"id", "pubkey", "created_at", "kind", "tags", "content", "sig"}
    assert event["kind"] == KIND == 38421
    assert event["pubkey"] == PUBKEY
    assert event["created_at"] == CREATED_AT
    assert event["tags"] == [
        ["d", "routstr"],
        ["u", "https://node.example.com"],
        ["u", "http://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv.onion"],
        ["mint", "https://mint-a.example.com"],
        ["mint", "https://mint-b.example.com/Bitcoin"],
        ["version", "0.1.0"],
    ]
    assert json.loads(event["content"]) == {"name": LISTING.name, "about": LISTING.about}
    assert event["id"] == nip01_id(event) == EXPECTED_ID
    assert schnorr_valid(event)
    tampered = {**event, "content": event["content"].replace("Ada", "Eve")}
    assert nip01_id(tampered) != event["id"]


def test_an_address_that_is_not_set_gets_no_u_tag() -> None:
    listing = Listing("p", "", "", ("https://m.example.com",), "1.2.3", "n", "a")
    event = build_event(listing, derive_key(b"k"), CREATED_AT)
    assert event["tags"] == [["d", "p"], ["mint", "https://m.example.com"], ["version", "1.2.3"]]
    assert event["id"] == nip01_id(event) and schnorr_valid(event)


def test_the_schedule_renews_daily_and_backs_off_after_failures() -> None:
    s = RelaySchedule()
    assert s.due(0.0)
    delays = [s.failed(1000.0) for _ in range(9)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert s.next_at == 1000.0 + 3600 and not s.due(1000.0 + 3599) and s.due(1000.0 + 3600)
    s.succeeded(5000.0)
    assert s.failures == 0 and s.next_at == 5000.0 + RENEW_S == 5000.0 + 86400
    assert retry_delay(1) == 30 and retry_delay(10_000) == 3600


BASE_ENV = {"UPSTREAM_BASE_URL": "https://api.example.com/v1", "CASHU_MINTS": "https://mint.example.com"}


def test_settings_default_to_no_relays_no_nsec_and_provider_id_routstr() -> None:
    s = load_settings(BASE_ENV, env_file=None)
    assert (s.relays, s.nsec, s.provider_id) == ((), "", "routstr")


def test_settings_read_nsec_relays_and_provider_id() -> None:
    env = {
        **BASE_ENV,
        "NSEC": nsec_of(SECRET),
        "RELAYS": "wss://relay.example.com, ws://127.0.0.1:7777/path,wss://relay.example.com",
        "PROVIDER_ID": "my-node",
    }
    s = load_settings(env, env_file=None)
    assert s.nsec == nsec_of(SECRET)
    assert s.relays == ("wss://relay.example.com", "ws://127.0.0.1:7777/path")
    assert s.provider_id == "my-node"


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("NSEC", npub_of(PUBKEY), "NSEC must be a Nostr secret key"),
        ("NSEC", "ff" * 32, "NSEC is not a valid Nostr secret key"),
        ("RELAYS", "https://relay.example.com", "is not a relay URL"),
        ("RELAYS", "wss://", "is not a relay URL"),
        ("RELAYS", "wss://relay.example.com:99999", "bad port"),
        ("RELAYS", "wss://me:hunter2@relay.example.com", "must not hold credentials"),
        ("PROVIDER_ID", "x" * 129, "at most 128 printable characters"),
        ("PROVIDER_ID", "a\x00b", "at most 128 printable characters"),
    ],
)
def test_bad_discovery_settings_stop_start_up_saying_what_to_fix(var: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings({**BASE_ENV, var: value}, env_file=None)
    assert says in str(e.value)
    assert "hunter2" not in str(e.value) and ("ff" * 32) not in str(e.value)
