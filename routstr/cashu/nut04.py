"""NUT-04 + NUT-23 (bolt11): mint quotes and minting, i.e. buying eCash by paying a Lightning invoice.

Flow: POST /v1/mint/quote/bolt11 gives a quote id and an invoice; once the invoice is paid the quote is
PAID, and POST /v1/mint/bolt11 with outputs summing to the quote's amount returns the signatures (the
quote becomes ISSUED). The quote id is a bearer secret until then: whoever knows it can mint.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .nut00 import BlindedMessage, BlindedSignature, _req

BOLT11 = "bolt11"


class MintQuoteState(StrEnum):
    UNPAID = "UNPAID"
    PAID = "PAID"  # paid, eCash not issued yet: mint now
    ISSUED = "ISSUED"  # paid and issued: the quote is used up


# field helpers shared with nut05 (the mint's JSON is parsed strictly: a wrong type is an error)


def opt_int_field(d: dict[str, Any], key: str) -> int | None:
    """An optional integer field (absent or null -> None); bool is not an int here."""
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"field {key!r} must be an integer or null")
    return value


def amount_field(d: dict[str, Any], key: str) -> int:
    """A required integer field that must not be negative."""
    value: int = _req(d, key, int)
    if value < 0:
        raise ValueError(f"field {key!r} must not be negative")
    return value


def str_field(d: dict[str, Any], key: str) -> str:
    """A required non-empty string field."""
    value: str = _req(d, key, str)
    if not value:
        raise ValueError(f"field {key!r} must not be empty")
    return value


@dataclass(frozen=True, slots=True)
class PostMintQuoteBolt11Request:
    amount: int
    unit: str = "sat"
    description: str | None = None  # only sent when set: mints whose backend cannot take one refuse it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"amount": self.amount, "unit": self.unit}
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class MintQuote:
    """A bolt11 mint quote as the mint reports it (the same shape for creation and state checks)."""

    quote: str
    request: str  # the bolt11 invoice to pay
    amount: int
    unit: str
    state: MintQuoteState
    expiry: int | None  # unix time until which the invoice can be paid; None if the mint gives none

    @property
    def bolt11(self) -> str:
        return self.request

    @property
    def is_paid(self) -> bool:
        """The invoice was paid (whether or not the eCash was issued already)."""
        return self.state in (MintQuoteState.PAID, MintQuoteState.ISSUED)

    @classmethod
    def from_dict(cls, d: Any) -> MintQuote:
        """ValueError unless quote, request, amount, unit and a known state are present and typed."""
        if not isinstance(d, dict):
            raise ValueError("mint quote must be an object")
        try:
            state = MintQuoteState(str_field(d, "state"))
        except ValueError as e:
            raise ValueError(f"bad mint quote state: {e}") from None
        return cls(
            quote=str_field(d, "quote"),
            request=str_field(d, "request"),
            amount=amount_field(d, "amount"),
            unit=str_field(d, "unit"),
            state=state,
            expiry=opt_int_field(d, "expiry"),
        )


@dataclass(frozen=True, slots=True)
class PostMintBolt11Request:
    quote: str
    outputs: list[BlindedMessage]

    def to_dict(self) -> dict[str, Any]:
        return {"quote": self.quote, "outputs": [o.to_dict() for o in self.outputs]}


@dataclass(frozen=True, slots=True)
class PostMintBolt11Response:
    signatures: list[BlindedSignature]

    @classmethod
    def from_dict(cls, d: Any) -> PostMintBolt11Response:
        """ValueError if the body is not `{"signatures": [BlindSignature, ...]}`."""
        if not isinstance(d, dict) or not isinstance(d.get("signatures"), list):
            raise ValueError("mint response must have a 'signatures' list")
        return cls(signatures=[BlindedSignature.from_dict(s) for s in d["signatures"]])
