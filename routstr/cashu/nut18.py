"""NUT-18 payment requests (`creqA`): what a receiver asks a payer for, e.g. in a NUT-24 `X-Cashu` challenge.

A request is untrusted input, so decoding is strict about types; unknown keys are ignored (forward
compatibility) and null/undefined optional values count as absent (cashu-ts writes CBOR `undefined` for a
transport without tags). Encoding writes only the present keys, in the order of the spec's test vectors,
with base64 padding as they have it. `creqB` (NUT-26, bech32m TLV with NIP-19 re-encoding) is recognised
but not supported.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from typing import Any

import cbor2

from .errors import TokenError

PREFIX = "creqA"
_B64 = re.compile(r"[A-Za-z0-9_\-+/]*={0,2}")  # url-safe alphabet; the standard one is tolerated

Tags = tuple[tuple[str, ...], ...]


class PaymentRequestError(TokenError):
    """A payment request is malformed or of an unsupported version (bad input, like a bad token)."""


def _opt(obj: dict[Any, Any], key: str) -> Any:
    value = obj.get(key)
    return None if value is None or value is cbor2.undefined else value


def _opt_str(obj: dict[Any, Any], key: str, what: str) -> str | None:
    value = _opt(obj, key)
    if value is not None and not isinstance(value, str):
        raise PaymentRequestError(f"{what} field {key!r} must be a string")
    return value


def _req_str(obj: dict[Any, Any], key: str, what: str) -> str:
    if (value := _opt_str(obj, key, what)) is None:
        raise PaymentRequestError(f"{what} field {key!r} is required")
    return value


def _map(value: Any, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise PaymentRequestError(f"{what} must be a map")
    return value


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PaymentRequestError(f"{what} must be an array of strings")
    return tuple(value)


def _tags(value: Any, what: str) -> Tags:
    """`[[key, value, ...], ...]`; absent, null or undefined means no tags."""
    if value is None or value is cbor2.undefined:
        return ()
    if not isinstance(value, list | tuple):
        raise PaymentRequestError(f"{what} must be an array of arrays of strings")
    tags = tuple(_str_list(tag, what) for tag in value)
    if any(not tag for tag in tags):
        raise PaymentRequestError(f"{what} must not contain an empty tag")
    return tags


@dataclass(frozen=True, slots=True)
class Transport:
    """Where the payer sends the payload (`nostr` nprofile, `post` URL); none means in-band (NUT-24)."""

    type: str
    target: str
    tags: Tags = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.type, "a": self.target}
        if self.tags:  # optional: omitted rather than null/undefined, which strict decoders may refuse
            out["g"] = [list(tag) for tag in self.tags]
        return out

    @classmethod
    def from_dict(cls, value: Any) -> Transport:
        obj = _map(value, "transport")
        return cls(
            _req_str(obj, "t", "transport"), _req_str(obj, "a", "transport"), _tags(obj.get("g"), "tags")
        )


@dataclass(frozen=True, slots=True)
class Nut10Option:
    """The NUT-10 locking condition (kind, data, tags) the payee wants on the proofs, e.g. P2PK."""

    kind: str
    data: str
    tags: Tags = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind, "d": self.data}
        if self.tags:
            out["t"] = [list(tag) for tag in self.tags]
        return out

    @classmethod
    def from_dict(cls, value: Any) -> Nut10Option:
        obj = _map(value, "nut10")
        return cls(
            _req_str(obj, "k", "nut10"), _req_str(obj, "d", "nut10"), _tags(obj.get("t"), "nut10 tags")
        )


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A NUT-18 request; every field is optional (`a` needs `u`, as the spec says it MUST)."""

    payment_id: str | None = None
    amount: int | None = None
    unit: str | None = None
    single_use: bool | None = None
    mints: tuple[str, ...] | None = None
    description: str | None = None
    transports: tuple[Transport, ...] = ()
    nut10: Nut10Option | None = None

    def __post_init__(self) -> None:
        if self.amount is not None:
            if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
                raise PaymentRequestError("payment request amount must be a non-negative integer")
            if self.unit is None:
                raise PaymentRequestError("payment request with an amount must have a unit")

    def to_dict(self) -> dict[str, Any]:
        """The CBOR/JSON map: present keys only, no `t` for an in-band request."""
        out: dict[str, Any] = {}
        if self.transports:
            out["t"] = [t.to_dict() for t in self.transports]
        for key, value in (("i", self.payment_id), ("a", self.amount), ("u", self.unit)):
            if value is not None:
                out[key] = value
        if self.mints is not None:
            out["m"] = list(self.mints)
        if self.description is not None:
            out["d"] = self.description
        if self.single_use is not None:
            out["s"] = self.single_use
        if self.nut10 is not None:
            out["nut10"] = self.nut10.to_dict()
        return out

    @classmethod
    def from_dict(cls, value: Any) -> PaymentRequest:
        """Validate a decoded map (CBOR or the spec's JSON form)."""
        obj = _map(value, "payment request")
        amount, single_use = _opt(obj, "a"), _opt(obj, "s")  # amount: checked by __post_init__
        if single_use is not None and not isinstance(single_use, bool):
            raise PaymentRequestError("payment request field 's' must be a boolean")
        mints, transports, nut10 = _opt(obj, "m"), _opt(obj, "t"), _opt(obj, "nut10")
        if transports is not None and not isinstance(transports, list | tuple):
            raise PaymentRequestError("payment request field 't' must be an array of transports")
        return cls(
            payment_id=_opt_str(obj, "i", "payment request"),
            amount=amount,
            unit=_opt_str(obj, "u", "payment request"),
            single_use=single_use,
            mints=None if mints is None else _str_list(mints, "payment request field 'm'"),
            description=_opt_str(obj, "d", "payment request"),
            transports=tuple(Transport.from_dict(t) for t in transports or ()),
            nut10=None if nut10 is None else Nut10Option.from_dict(nut10),
        )


def encode_payment_request(req: PaymentRequest) -> str:
    """`creqA` + base64url(CBOR(request)), padded like the spec's vectors."""
    return PREFIX + base64.urlsafe_b64encode(cbor2.dumps(req.to_dict())).decode("ascii")


def _b64decode(data: str) -> bytes:
    if not _B64.fullmatch(data) or ("=" in data and len(data) % 4):
        raise PaymentRequestError("payment request is not valid base64url")
    data = data.rstrip("=")
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise PaymentRequestError(f"payment request is not valid base64url: {e}") from None


def _cbor_loads(raw: bytes) -> Any:
    fp = io.BytesIO(raw)
    try:
        obj = cbor2.CBORDecoder(fp).decode()
    except Exception as e:  # cbor2 raises a zoo of types on garbage: all mean "malformed"
        raise PaymentRequestError(f"payment request is not valid CBOR: {e}") from None
    if fp.tell() != len(raw):
        raise PaymentRequestError("payment request has trailing bytes after its CBOR map")
    return obj


def decode_payment_request(s: str) -> PaymentRequest:
    """Parse `creqA…` (padding optional, surrounding whitespace ignored); PaymentRequestError if malformed."""
    if not isinstance(s, str):
        raise PaymentRequestError("payment request must be a string")
    s = s.strip()
    if s[:5].lower() == "creqb":
        raise PaymentRequestError("creqB (NUT-26 bech32m) payment requests are not supported")
    if not s.startswith(PREFIX):
        raise PaymentRequestError(f"not a payment request (expected prefix {PREFIX!r})")
    return PaymentRequest.from_dict(_cbor_loads(_b64decode(s[len(PREFIX) :])))
