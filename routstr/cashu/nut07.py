"""NUT-07: proof state check (POST /v1/checkstate), keyed by Y = hash_to_curve(secret)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ProofState(StrEnum):
    UNSPENT = "UNSPENT"
    PENDING = "PENDING"
    SPENT = "SPENT"


@dataclass(frozen=True, slots=True)
class PostCheckStateRequest:
    Ys: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"Ys": list(self.Ys)}


@dataclass(frozen=True, slots=True)
class ProofStateEntry:
    Y: str
    state: ProofState
    witness: str | None = None

    @classmethod
    def from_dict(cls, d: Any) -> ProofStateEntry:
        if not isinstance(d, dict) or not isinstance(d.get("Y"), str):
            raise ValueError("proof state must be an object with a 'Y'")
        try:
            state = ProofState(str(d.get("state")))
        except ValueError:
            raise ValueError(f"unknown proof state {d.get('state')!r}") from None
        witness = d.get("witness")
        return cls(Y=d["Y"], state=state, witness=witness if isinstance(witness, str) else None)


@dataclass(frozen=True, slots=True)
class PostCheckStateResponse:
    states: list[ProofStateEntry]

    @classmethod
    def from_dict(cls, d: Any) -> PostCheckStateResponse:
        if not isinstance(d, dict) or not isinstance(d.get("states"), list):
            raise ValueError("check state response must have a 'states' list")
        return cls(states=[ProofStateEntry.from_dict(s) for s in d["states"]])
