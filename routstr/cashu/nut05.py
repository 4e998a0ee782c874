"""NUT-05 + NUT-23 (bolt11): melt quotes and melting, i.e. paying a Lightning invoice with eCash.

Flow: POST /v1/melt/quote/bolt11 with an invoice gives `amount` and `fee_reserve`; POST /v1/melt/bolt11
with inputs worth at least amount + fee_reserve + input fees (NUT-02) pays it. Blank outputs (NUT-08,
see nut08.py) let the mint return the unused fee reserve as `change`. The answer is the quote itself:
PAID (with a preimage), or PENDING when the payment is still in flight (poll the quote's state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .nut00 import BlindedMessage, BlindedSignature, Proof
from .nut04 import amount_field, opt_int_field, str_field


class MeltQuoteState(StrEnum):
    UNPAID = "UNPAID"  # not paid (also after a failed payment: the inputs are free again)
    PENDING = "PENDING"  # being paid: the inputs are locked until it settles or fails
    PAID = "PAID"  # paid: the inputs are spent


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string or null")
    return value


@dataclass(frozen=True, slots=True)
class PostMeltQuoteBolt11Request:
    request: str  # the bolt11 invoice to pay (with an amount: amountless invoices are not supported here)
    unit: str = "sat"

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "unit": self.unit}


@dataclass(frozen=True, slots=True)
class MeltQuote:
    """A bolt11 melt quote as the mint reports it: on creation, on a state check and as a melt's answer."""

    quote: str
    amount: int
    fee_reserve: int
    unit: str
    state: MeltQuoteState
    expiry: int | None  # unix time until which the quote is valid; None if the mint gives none
    request: str | None = None  # the invoice, echoed (NUT-23 has it; NUT-05's async example does not)
    payment_preimage: str | None = None  # proof of payment once PAID (as the Lightning backend reports it)
    change: list[BlindedSignature] = field(default_factory=list)  # NUT-08: signed blank outputs, in order

    @property
    def is_paid(self) -> bool:
        return self.state is MeltQuoteState.PAID

    def amount_needed(self, input_fee: int = 0) -> int:
        """What the inputs must be worth at least: amount + fee_reserve + the inputs' own fee (NUT-02)."""
        return self.amount + self.fee_reserve + input_fee

    @classmethod
    def from_dict(cls, d: Any) -> MeltQuote:
        """ValueError unless quote, amount, fee_reserve, unit and a known state are present and typed."""
        if not isinstance(d, dict):
            raise ValueError("melt quote must be an object")
        try:
            state = MeltQuoteState(str_field(d, "state"))
        except ValueError as e:
            raise ValueError(f"bad melt quote state: {e}") from None
        change = d.get("change")
        if change is not None and not isinstance(change, list):
            raise ValueError("field 'change' must be a list or null")
        return cls(
            quote=str_field(d, "quote"),
            amount=amount_field(d, "amount"),
            fee_reserve=amount_field(d, "fee_reserve"),
            unit=str_field(d, "unit"),
            state=state,
            expiry=opt_int_field(d, "expiry"),
            request=_opt_str(d, "request"),
            payment_preimage=_opt_str(d, "payment_preimage"),
            change=[BlindedSignature.from_dict(s) for s in change or []],
        )


@dataclass(frozen=True, slots=True)
class PostMeltBolt11Request:
    quote: str
    inputs: list[Proof]
    outputs: list[BlindedMessage] = field(default_factory=list)  # NUT-08 blank outputs (omitted if none)
    prefer_async: bool = False  # answer at once with PENDING instead of waiting for the payment

    def to_dict(self) -> dict[str, Any]:
        """Inputs go without their DLEQ, as in a swap: the blinding factor `r` must never reach the mint."""
        out: dict[str, Any] = {"quote": self.quote, "inputs": [p.to_input_dict() for p in self.inputs]}
        if self.outputs:
            out["outputs"] = [o.to_dict() for o in self.outputs]
        if self.prefer_async:
            out["prefer_async"] = True
        return out
