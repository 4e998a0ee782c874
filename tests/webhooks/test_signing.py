"""The signature header and the retry schedule: pure functions, fixed vectors."""

from __future__ import annotations

import pytest

from routstr.webhooks.backoff import retry_delay_s, schedule_s
from routstr.webhooks.signing import signature, verify

BODY = b'{"id":"evt_1","type":"balance.low","created_at":1700000000,"data":{}}'
# openssl dgst -sha256 -hmac 'whsec_test_secret' over BODY
EXPECTED = "sha256=662fa22c9be41b2c120d14841455c79cc352c4dfdf12132887f9eb639869a701"


def test_signature_is_hmac_sha256_of_the_raw_body():
    assert signature("whsec_test_secret", BODY) == EXPECTED
    assert verify("whsec_test_secret", BODY, EXPECTED)
    assert verify("whsec_test_secret", BODY, EXPECTED + "\n")  # a header's trailing whitespace


@pytest.mark.parametrize(
    "secret, body, header",
    [
        ("whsec_test_secret", BODY.replace(b"1700000000", b"1700000001"), EXPECTED),  # altered body
        ("whsec_other_secret", BODY, EXPECTED),  # another secret
        ("whsec_test_secret", BODY, EXPECTED.removeprefix("sha256=")),  # no scheme prefix
        ("whsec_test_secret", BODY, ""),
    ],
)
def test_anything_else_does_not_verify(secret: str, body: bytes, header: str):
    assert not verify(secret, body, header)


def test_backoff_doubles_from_the_base_up_to_the_cap():
    assert [retry_delay_s(n, 10, 3600) for n in range(1, 11)] == [
        10,
        20,
        40,
        80,
        160,
        320,
        640,
        1280,
        2560,
        3600,
    ]
    assert retry_delay_s(10_000, 0.5, 60) == 60  # no overflow, however many attempts
    assert schedule_s(4, 1, 3) == [1, 2, 3]  # 4 attempts: 3 waits
    assert schedule_s(1, 1, 3) == []
    with pytest.raises(ValueError):
        retry_delay_s(0, 10, 3600)
