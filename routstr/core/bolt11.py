"""The payment hash of a BOLT 11 invoice, read from the invoice itself.

NUT-04 mint quotes carry the bolt11 but not its payment hash, which Routstr clients expect next to
it. Only the ``p`` field is read (the signature is not checked: the invoices read here come from our
own mint, and recovering by bolt11 compares the whole string with the stored one); the ``bech32``
package already does the checksum, so no BOLT 11 library is needed for this.
"""

from __future__ import annotations

import re

import bech32

_TIMESTAMP_WORDS = 7  # 35 bits
_SIGNATURE_WORDS = 104  # 520 bits: 64-byte signature and a recovery id
_PAYMENT_HASH_TAG = 1  # "p"
_PAYMENT_HASH_WORDS = 52  # 260 bits: 256 and 4 bits of padding
# ln + mainnet, testnet, signet, regtest or simnet + an optional amount with its multiplier
_HRP = re.compile(r"ln(bc|tb|tbs|bcrt|sb)([0-9]+[munp]?)?")
MAX_BOLT11_CHARS = 7089  # more than any QR code holds; real invoices are a few hundred characters


def normalize(invoice: str) -> str:
    """The invoice as stored and compared: without a ``lightning:`` prefix or spaces, lower case."""
    text = invoice.strip().lower()
    return text.removeprefix("lightning:")


def payment_hash(invoice: str) -> str:
    """The invoice's payment hash (64 hex digits); ValueError if it is not a bolt11 invoice with one."""
    text = normalize(invoice)
    if len(text) > MAX_BOLT11_CHARS:
        raise ValueError("too long for a bolt11 invoice")
    hrp, words = bech32.bech32_decode(text)
    if hrp is None or words is None:
        raise ValueError("not a bolt11 invoice (bad bech32 or checksum)")
    if not _HRP.fullmatch(hrp):
        raise ValueError("not a bolt11 invoice (its prefix is not ln + network + amount)")
    end = len(words) - _SIGNATURE_WORDS
    pos = _TIMESTAMP_WORDS
    while pos + 3 <= end:
        tag, length = words[pos], words[pos + 1] * 32 + words[pos + 2]
        data = words[pos + 3 : pos + 3 + length]
        pos += 3 + length
        if pos > end:
            break
        # BOLT 11: a reader skips a "p" field whose length is not 52
        if tag == _PAYMENT_HASH_TAG and length == _PAYMENT_HASH_WORDS:
            raw = bech32.convertbits(data, 5, 8, False)
            if raw is None or len(raw) != 32:
                raise ValueError("malformed payment hash")
            return bytes(raw).hex()
    raise ValueError("the invoice has no payment hash")
