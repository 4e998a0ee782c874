"""Log lines: the redaction safety net, the JSON and text formats, the request id and client IP."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from routstr.logs import CLIENT_IP, REQUEST_ID, log_client_ips, make_handler, redact

KEY = "sk-" + "a1B2" * 12
UPSTREAM_KEY = "sk-proj-Ab3_x9-ZZ"
TOKEN_B = "cashuBo2FteCJodHRwczovL21pbnQuZXhhbXBsZS5jb21hdWNzYXRhdIGiYWlIAJEYa2V5c2V0YXCB"
TOKEN_A = "cashuAeyJ0b2tlbiI6W3sibWludCI6Imh0dHBzOi8vbWludC5leGFtcGxlLmNvbSJ9XX0="
ADMIN = "rta-" + "0f" * 24
BOLT11 = (
    "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg"
    "spp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfq"
)
TESTNET = "lntb10n1pj9x7f4pp5u8nqnrvv5k2z5hyyxzz6vvc7kpx6s8ezscjlqf6lx0nh4m7wtesdq"
LNURL = (
    "LNURL1DP68GURN8GHJ7UM9WFMXJCM99E3K7MF0V9CXJ0M385EKVCENXC6R2C35XVUKXEFCV5MKVV34X5EKZD3EV56NYD3H"
    "XQURZEPEXEJXXEPNXSCRVWFNV9NXZCN9XQ6XYEFHVGCXXCMYXYMNSERXFQ5FNS"
)

SECRETS = {
    KEY: "sk-",
    UPSTREAM_KEY: "sk-",
    TOKEN_B: "cashuB",
    TOKEN_A: "cashuA",
    ADMIN: "rta-",
    BOLT11: "lnbc",
    TESTNET: "lntb",
    LNURL: "LNURL",
}


@pytest.mark.parametrize(("secret", "prefix"), SECRETS.items())
def test_redact_masks_keys_tokens_and_invoices(secret: str, prefix: str):
    clean = redact(f"refund of {secret}, failed: ({secret})")
    assert clean == f"refund of {prefix}[redacted], failed: ({prefix}[redacted])"


def test_redact_leaves_ordinary_text_alone():
    for text in (
        "task-1234 finished",
        "risk-free mask-wearing desk-lamp",
        "the key sk- was empty",
        "cashu mint https://mint.example.com/ is down",
        "lnbc is a prefix, nothing more",
        "request 01JBZ7Q0S2 answered 200 in 0.42 ms",
        "brta-5 and lnurl",
    ):
        assert redact(text) == text


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger writing through the node's JSON handler and its text handler."""
    json_out, text_out = io.StringIO(), io.StringIO()
    logger = logging.getLogger("routstr.tests.logs")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handlers = [make_handler("json", json_out), make_handler("text", text_out)]
    for h in handlers:
        logger.addHandler(h)
    try:
        yield logger, json_out, text_out
    finally:
        for h in handlers:
            logger.removeHandler(h)
        log_client_ips(False)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_have_time_level_logger_message_request_id(captured):
    logger, json_out, text_out = captured
    logger.info("outside any request")
    token = REQUEST_ID.set("req-42")
    try:
        logger.warning("paid %d msat with %s", 1500, KEY)
    finally:
        REQUEST_ID.reset(token)
    first, second = lines(json_out)
    assert set(first) == {"time", "level", "logger", "message"}  # no request: no request_id
    assert second["level"] == "WARNING" and second["logger"] == "routstr.tests.logs"
    assert second["request_id"] == "req-42"
    assert second["message"] == "paid 1500 msat with sk-[redacted]"
    assert str(second["time"]).endswith("Z") and str(second["time"])[10] == "T"
    assert KEY not in json_out.getvalue() and KEY not in text_out.getvalue()
    text = text_out.getvalue().splitlines()
    assert text[0].endswith("routstr.tests.logs: outside any request")
    assert text[1].endswith(
        "WARNING routstr.tests.logs: paid 1500 msat with sk-[redacted] [request_id=req-42]"
    )


def test_exceptions_are_logged_redacted(captured):
    logger, json_out, text_out = captured
    try:
        raise ValueError(f"the mint refused {TOKEN_B}")
    except ValueError:
        logger.exception("redeem failed")
    [line] = lines(json_out)
    assert line["message"] == "redeem failed"
    exception = str(line["exception"])
    assert "Traceback" in exception and "ValueError: the mint refused cashuB[redacted]" in exception
    assert TOKEN_B not in json_out.getvalue() and TOKEN_B not in text_out.getvalue()


def test_client_ip_only_when_the_operator_turns_it_on(captured):
    logger, json_out, _ = captured
    rid, ip = REQUEST_ID.set("r1"), CLIENT_IP.set("203.0.113.9")
    try:
        logger.info("off")
        log_client_ips(True)
        logger.info("on")
    finally:
        REQUEST_ID.reset(rid)
        CLIENT_IP.reset(ip)
    off, on = lines(json_out)
    assert "client_ip" not in off and "203.0.113.9" not in str(off)
    assert on["client_ip"] == "203.0.113.9" and on["request_id"] == "r1"


def test_a_malformed_log_call_does_not_raise_into_the_caller(captured):
    logger, json_out, _ = captured
    logging.raiseExceptions = False  # the handler reports errors to stderr by default; keep it quiet
    try:
        logger.info("%d msat", "not a number")  # the caller goes on, as with plain logging
    finally:
        logging.raiseExceptions = True
    assert json_out.getvalue() == ""
