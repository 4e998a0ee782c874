"""NUT-00 token serialization: V3 (`cashuA`, base64url JSON) and V4 (`cashuB`, base64url CBOR).

Decoding is strict about types (a token is untrusted input) but lenient about presentation: surrounding
whitespace, a `cashu:` URI prefix and missing base64 padding are accepted. Every failure is a
`TokenError`. Keyset ids are kept exactly as the token carries them (V4 tokens often carry 8-byte short
ids); call `resolve_short_keyset_ids` with the mint's keyset list before talking to the mint.

A token comes from anyone, so what decoding may cost is bounded before any arithmetic or curve work:
at most `MAX_TOKEN_CHARS` characters and `MAX_PROOFS` proofs, every amount an integer in
[1, 2^64) and their sum too (CBOR bignum and other semantic tags are refused while decoding, JSON
numbers longer than 20 digits while parsing), and no secret twice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2

from .errors import TokenError
from .nut00 import DLEQProof, Proof

V3_PREFIX = "cashuA"
V4_PREFIX = "cashuB"
RAW_V4_PREFIX = b"crawB"
SHORT_ID_HEX_LEN = 16

# Real wallets send tokens of a few to a few tens of proofs (one per binary digit of the amount, a
# few more from an unsplit wallet); 1,000 is also what Nutshell takes in one swap
# (mint_max_request_length), so no token above it could be redeemed anyway.
MAX_PROOFS = 1000
# Refused before it is decoded. Decoding time grows faster than the length (the cyclic GC walks the
# many small containers a crafted CBOR or JSON token can hold): measured here, the worst 64 KiB token
# costs ~15 ms, the worst 1 MB one ~0.7 s. Real tokens are a few KB: in a header (Authorization,
# X-Cashu) they cannot exceed 8 KB anyway (aiohttp's and most proxies' limit); 64 KiB holds ~200
# proofs with DLEQ proofs in V4, ~400 without.
MAX_TOKEN_CHARS = 65_536
# A proof's amount and a token's total: a CBOR unsigned integer's range (NUT-00 amounts are u64).
MAX_AMOUNT = 2**64 - 1
_MAX_INT_DIGITS = len(str(MAX_AMOUNT))
# CBOR tags cbor2 decodes by itself (bignums, decimals, regexes, dates, shared references...): a V4
# token uses none, and some cost a lot to build (a bignum of 2^40000, a regex to compile).
_CBOR_TAGS = [0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004]
_CBOR_TAGS += [43000, 55799]
_CBOR_MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Token:
    """Proofs from one mint. Multi-mint V3 tokens are rejected: a payment comes from one mint."""

    mint: str
    unit: str
    proofs: list[Proof] = field(default_factory=list)
    memo: str | None = None

    @property
    def amount(self) -> int:
        return sum(p.amount for p in self.proofs)

    @property
    def keyset_ids(self) -> list[str]:
        """Distinct keyset ids in order of first appearance."""
        return list(dict.fromkeys(p.id for p in self.proofs))


# --------------------------------------------------------------------------------------------- decode


def _b64decode(data: str) -> bytes:
    """base64url (or standard base64) with optional padding."""
    data = data.strip()
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as e:
        raise TokenError(f"token is not valid base64: {e}") from None


def _normalize_mint(mint: Any) -> str:
    if not isinstance(mint, str) or not mint.strip():
        raise TokenError("token has no mint URL")
    return mint.strip().rstrip("/")


def _check_count(n: int) -> None:
    """Called before a list is decoded into proofs, so a huge one costs nothing past the limit."""
    if n > MAX_PROOFS:
        raise TokenError(f"token has more than {MAX_PROOFS} proofs")


def _check_proofs(proofs: list[Proof]) -> list[Proof]:
    if not proofs:
        raise TokenError("token contains no proofs")
    _check_count(len(proofs))
    total = 0
    secrets: set[str] = set()
    for p in proofs:
        if isinstance(p.amount, bool) or not isinstance(p.amount, int):
            raise TokenError("proof amount must be an integer")
        if not 0 < p.amount <= MAX_AMOUNT:
            raise TokenError("proof amount must be positive and below 2^64")
        total += p.amount
        if not p.id:
            raise TokenError("proof has an empty keyset id")
        if p.secret in secrets:  # the mint would refuse it; refused here before any work is done
            raise TokenError("token contains the same proof twice")
        secrets.add(p.secret)
    if total > MAX_AMOUNT:
        raise TokenError("token amount must be below 2^64")
    return proofs


def decode_token(s: str) -> Token:
    """Parse a serialized token (`cashuA…`, `cashuB…`, optionally `cashu:`-prefixed)."""
    if not isinstance(s, str):
        raise TokenError("token must be a string")
    if len(s) > MAX_TOKEN_CHARS:
        raise TokenError(f"token is longer than {MAX_TOKEN_CHARS} characters")
    s = s.strip()
    if s[:6].lower() == "cashu:":
        s = s[6:].lstrip("/").strip()
    if s.startswith(V4_PREFIX):
        return _decode_v4_obj(_cbor_loads(_b64decode(s[len(V4_PREFIX) :])))
    if s.startswith(V3_PREFIX):
        return _decode_v3(_b64decode(s[len(V3_PREFIX) :]))
    if s.startswith("cashu"):
        raise TokenError(f"unsupported token version {s[5:6]!r}")
    raise TokenError("not a cashu token (expected prefix 'cashuA' or 'cashuB')")


def decode_token_raw(data: bytes) -> Token:
    """Parse the binary form `craw` || `B` || cbor(token) used over NFC and the like."""
    if len(data) > MAX_TOKEN_CHARS:
        raise TokenError(f"token is longer than {MAX_TOKEN_CHARS} bytes")
    if not data.startswith(RAW_V4_PREFIX):
        raise TokenError("unsupported raw token (expected prefix 'crawB')")
    return _decode_v4_obj(_cbor_loads(data[len(RAW_V4_PREFIX) :]))


def _no_tag(*_: Any) -> Any:
    raise ValueError("tagged values are not part of a token")


_NO_TAGS = dict.fromkeys(_CBOR_TAGS, _no_tag)


def _cbor_loads(raw: bytes) -> Any:
    try:
        return cbor2.loads(
            raw,
            semantic_decoders=_NO_TAGS,
            tag_hook=_no_tag,
            max_depth=_CBOR_MAX_DEPTH,
            strict_hashable_types=True,
        )
    except Exception as e:  # cbor2 raises a zoo of types on garbage: all mean "malformed"
        raise TokenError(f"token is not valid CBOR: {e}") from None


def _json_int(digits: str) -> int:
    """JSON integers as the V3 decoder meets them: longer than any u64 is refused unconverted."""
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise TokenError("token holds a number too large for an amount")
    return int(digits)


def _decode_v3(raw: bytes) -> Token:
    try:
        obj = json.loads(raw, parse_int=_json_int)
    except TokenError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TokenError("token is not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("token"), list) or not obj["token"]:
        raise TokenError("V3 token must have a non-empty 'token' list")
    mints: list[str] = []
    proofs: list[Proof] = []
    _check_count(len(obj["token"]))
    for entry in obj["token"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("proofs"), list):
            raise TokenError("V3 token entry must have a 'proofs' list")
        mint = _normalize_mint(entry.get("mint"))
        if mint not in mints:
            mints.append(mint)
        if len(mints) > 1:
            raise TokenError("V3 token with proofs from more than one mint is not supported")
        _check_count(len(proofs) + len(entry["proofs"]))
        try:
            proofs.extend(Proof.from_dict(p) for p in entry["proofs"])
        except ValueError as e:
            raise TokenError(f"invalid proof in token: {e}") from None
    return Token(
        mint=mints[0],
        unit=_opt_str(obj, "unit") or "sat",
        proofs=_check_proofs(proofs),
        memo=_opt_str(obj, "memo"),
    )


def _opt_str(obj: dict[Any, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise TokenError(f"token field {key!r} must be a string")
    return value


def _bytes_field(obj: dict[Any, Any], key: str, what: str, nbytes: int | None = None) -> str:
    value = obj.get(key)
    if isinstance(value, str):  # some encoders put hex strings where bytes belong: accept them
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise TokenError(f"{what} is neither bytes nor hex") from None
    if not isinstance(value, bytes):
        raise TokenError(f"{what} must be bytes")
    if nbytes is not None and len(value) != nbytes:
        raise TokenError(f"{what} must be {nbytes} bytes")
    return value.hex()


def _decode_v4_obj(obj: Any) -> Token:
    if not isinstance(obj, dict):
        raise TokenError("V4 token must be a CBOR map")
    groups = obj.get("t")
    if not isinstance(groups, list) or not groups:
        raise TokenError("V4 token must have a non-empty 't' list")
    proofs: list[Proof] = []
    _check_count(len(groups))
    for group in groups:
        if not isinstance(group, dict) or not isinstance(group.get("p"), list):
            raise TokenError("V4 token group must have 'i' and a 'p' list")
        keyset_id = _bytes_field(group, "i", "keyset id")
        _check_count(len(proofs) + len(group["p"]))
        for p in group["p"]:
            proofs.append(_decode_v4_proof(p, keyset_id))
    return Token(
        mint=_normalize_mint(obj.get("m")),
        unit=_opt_str(obj, "u") or "sat",
        proofs=_check_proofs(proofs),
        memo=_opt_str(obj, "d"),
    )


def _decode_v4_proof(p: Any, keyset_id: str) -> Proof:
    if not isinstance(p, dict):
        raise TokenError("V4 proof must be a map")
    amount = p.get("a")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TokenError("V4 proof amount must be an integer")
    secret = p.get("s")
    if not isinstance(secret, str):
        raise TokenError("V4 proof secret must be a string")
    witness = _opt_str(p, "w")
    dleq = None
    if p.get("d") is not None:
        d = p["d"]
        if not isinstance(d, dict):
            raise TokenError("V4 proof DLEQ must be a map")
        dleq = DLEQProof(
            e=_bytes_field(d, "e", "dleq.e", 32),
            s=_bytes_field(d, "s", "dleq.s", 32),
            r=_bytes_field(d, "r", "dleq.r", 32),
        )
    return Proof(
        amount=amount,
        id=keyset_id,
        secret=secret,
        C=_bytes_field(p, "c", "signature C", 33),
        dleq=dleq,
        witness=witness,
    )


# --------------------------------------------------------------------------------------------- encode


def _b64encode(raw: bytes) -> str:
    """base64url without padding, as Nutshell, cdk and cashu-ts emit."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _check_encodable(token: Token) -> None:
    if not token.proofs:
        raise TokenError("cannot encode a token without proofs")


def encode_token_v3(token: Token, include_dleq: bool = True) -> str:
    """Serialize as deprecated V3 (`cashuA`), for receivers that do not read V4."""
    _check_encodable(token)
    obj: dict[str, Any] = {
        "token": [{"mint": token.mint, "proofs": [p.to_dict(include_dleq) for p in token.proofs]}],
        "unit": token.unit,
    }
    if token.memo is not None:
        obj["memo"] = token.memo
    return V3_PREFIX + _b64encode(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def _v4_obj(token: Token, include_dleq: bool, short_ids: bool) -> dict[str, Any]:
    _check_encodable(token)
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in token.proofs:
        entry: dict[str, Any] = {"a": p.amount, "s": p.secret, "c": bytes.fromhex(p.C)}
        if include_dleq and p.dleq is not None and p.dleq.r is not None:
            entry["d"] = {
                "e": bytes.fromhex(p.dleq.e),
                "s": bytes.fromhex(p.dleq.s),
                "r": bytes.fromhex(p.dleq.r),
            }
        if p.witness is not None:
            entry["w"] = p.witness
        groups.setdefault(p.id, []).append(entry)
    t = []
    for keyset_id, entries in groups.items():
        try:
            id_bytes = bytes.fromhex(keyset_id)
        except ValueError:
            raise TokenError(f"keyset id {keyset_id!r} is not hex: use a V3 token") from None
        if short_ids and keyset_id.startswith("01"):
            id_bytes = id_bytes[: SHORT_ID_HEX_LEN // 2]
        t.append({"i": id_bytes, "p": entries})
    obj: dict[str, Any] = {"t": t}
    if token.memo is not None:
        obj["d"] = token.memo
    obj["m"] = token.mint
    obj["u"] = token.unit
    return obj


def encode_token_v4(token: Token, include_dleq: bool = True, short_ids: bool = False) -> str:
    """Serialize as V4 (`cashuB`). Full keyset ids by default: every receiver can use them as they are."""
    return V4_PREFIX + _b64encode(cbor2.dumps(_v4_obj(token, include_dleq, short_ids)))


def encode_token_raw_v4(token: Token, include_dleq: bool = True, short_ids: bool = False) -> bytes:
    """Binary V4 form: b"crawB" || cbor(token)."""
    return RAW_V4_PREFIX + cbor2.dumps(_v4_obj(token, include_dleq, short_ids))


# --------------------------------------------------------------------------------------------- short ids


def resolve_keyset_id(keyset_id: str, known_full_ids: Iterable[str]) -> str:
    """Map a (possibly short) keyset id to the mint's full id; unknown or ambiguous -> TokenError."""
    known = list(known_full_ids)
    if keyset_id in known:
        return keyset_id
    lowered = keyset_id.lower()
    if lowered in known:
        return lowered
    if len(keyset_id) == SHORT_ID_HEX_LEN:
        matches = {k for k in known if k.lower().startswith(lowered)}
        if len(matches) == 1:
            return matches.pop()
        if len(matches) > 1:
            raise TokenError(f"short keyset id {keyset_id} is ambiguous")
    raise TokenError(f"unknown keyset id {keyset_id}")


def resolve_short_keyset_ids(proofs: list[Proof], known_full_ids: Iterable[str]) -> list[Proof]:
    """Return the proofs with every keyset id replaced by the mint's full id (NUT-00/02 short ids)."""
    known = list(known_full_ids)
    cache: dict[str, str] = {}
    out: list[Proof] = []
    for p in proofs:
        full = cache.get(p.id)
        if full is None:
            full = cache[p.id] = resolve_keyset_id(p.id, known)
        out.append(p if full == p.id else replace(p, id=full))
    return out
