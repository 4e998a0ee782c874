"""The payment hash read from a bolt11: BOLT 11's own example, invoices of other networks and
amounts (written by the ``bolt11`` package Nutshell uses, with its decoder's answer), and what is not
an invoice."""

from __future__ import annotations

import bech32
import pytest

from routstr.core.bolt11 import MAX_BOLT11_CHARS, normalize, payment_hash

# BOLT 11, "Examples": donation of any amount, payment hash 0001020304…0102
SPEC = (
    "lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqq"
    "qsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7c"
    "k6q93dj32dlqnls087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql"
)
SPEC_HASH = "0001020304050607080900010203040506070809000102030405060708090102"
# written with bolt11 2.2.0 (lnbits), checked with its decode(): regtest 1 µBTC, testnet no amount,
# mainnet 25 mBTC; each with description, expiry and payment secret
OTHERS = [
    (
        "lnbcrt1u1pj48ugqpp5wphp6jv6araxjdwuzs26s0ghpsyrkjdy3rl90ucckd0y3yazkdesdq5wfhh2arnw3ezqar9wd6qxqrrsssp"
        "5qsa8rpm5c4etmz394kltr07dtsp9dts3em8el8pljfwsu54747ysju2junupj3ms9yvm6q0lwm7hrlvhtdq6z8cueexljtkkjj6"
        "9cm9zyjl849pnklpvtycfsm9hksq0zsc760r0n5q86s7lg8sfhtrfllqp23cx5z",
        "706e1d499ae8fa6935dc1415a83d170c083b49a488fe57f318b35e4893a2b373",
    ),
    (
        "lntb1pj48ugqpp5u4chxetl955nejpp9en7vt3w84gj3egfqhv4leksu9trk5n9fgeqdq5wfhh2arnw3ezqar9wd6qxqrrsssp5qs"
        "a8rpm5c4etmz394kltr07dtsp9dts3em8el8pljfwsu54747ys6ltd7du97ec79dlegv2my8eqe4u6tg4wjzmvtjhfreg24wlkfm"
        "c4jpm4d7pcz56sl3t0lujnpg4cac235vh5t07sjjdvwwum83tuv2spxcm7pa",
        "e57173657f2d293cc8212e67e62e2e3d5128e50905d95fe6d0e1563b52654a32",
    ),
    (
        "lnbc25m1pj48ugqpp5py248yfcypcyutzfnednjnqwj3wms25n9p88netnfgc82wzytrkqdq5wfhh2arnw3ezqar9wd6qxqrrsssp"
        "5qsa8rpm5c4etmz394kltr07dtsp9dts3em8el8pljfwsu54747ysayjjwqgk2y9d2xr38vgxl2ngmfwkx0wj0cskvxumh5x74cs"
        "gm5m446rkeyg2u9rn259permehrxftskzrpvn2xqqmz7ljp8jez9dv6cpmy3rll",
        "091553913820704e2c499e5b394c0e945db82a93284e79e5734a3075384458ec",
    ),
]


@pytest.mark.parametrize(("invoice", "expected"), [(SPEC, SPEC_HASH), *OTHERS])
def test_reads_the_payment_hash(invoice: str, expected: str):
    assert payment_hash(invoice) == expected
    # as a QR code or a link carries it
    assert payment_hash("lightning:" + invoice.upper()) == expected
    assert normalize(" LIGHTNING:" + invoice.upper() + "\n") == invoice


def _rewritten(invoice: str, change: dict[int, int]) -> str:
    """The invoice with some 5-bit words changed and a valid checksum again."""
    hrp, words = bech32.bech32_decode(invoice)
    assert hrp is not None and words is not None
    for i, w in change.items():
        words[i] = w
    return str(bech32.bech32_encode(hrp, words))


def test_a_p_field_of_another_length_is_skipped_and_none_is_an_error():
    hrp, words = bech32.bech32_decode(SPEC)
    assert hrp is not None and words is not None
    p_at = 7 + 3 + 52  # after the timestamp comes the 52-word "s" field, then "p"
    assert words[p_at : p_at + 3] == [1, 1, 20]
    # "p" announcing 51 words: skipped (BOLT 11), and the rest no longer lines up
    with pytest.raises(ValueError):
        payment_hash(_rewritten(SPEC, {p_at + 2: 19}))
    # the "p" tag turned into an unknown tag: no payment hash
    with pytest.raises(ValueError, match="no payment hash"):
        payment_hash(_rewritten(SPEC, {p_at: 31}))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "lnbc",
        "garbage",
        SPEC[:-1] + ("q" if SPEC[-1] != "q" else "p"),  # checksum
        "lnurl1dp68gurn8ghj7um9wfmxjcm99ejhsctdwpkx2tmvde6hymrs9askc6trv5cjuff8",  # LNURL: bech32, "ln…"
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # a bech32 address
        "ln1" + "q" * 10,
        "lnbc1\x00" + SPEC[5:],
        "lnbc1" + "q" * MAX_BOLT11_CHARS,
    ],
)
def test_what_is_not_an_invoice_with_a_payment_hash_is_refused(text: str):
    with pytest.raises(ValueError):
        payment_hash(text)
