"""NUT-03: swap request/response (POST /v1/swap), the receive path of every payment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .nut00 import BlindedMessage, BlindedSignature, Proof


@dataclass(frozen=True, slots=True)
class PostSwapRequest:
    inputs: list[Proof]
    outputs: list[BlindedMessage]

    def to_dict(self) -> dict[str, Any]:
        """Inputs go without their DLEQ: the blinding factor `r` must never reach the mint."""
        return {
            "inputs": [p.to_input_dict() for p in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
        }


@dataclass(frozen=True, slots=True)
class PostSwapResponse:
    signatures: list[BlindedSignature]

    @classmethod
    def from_dict(cls, d: Any) -> PostSwapResponse:
        """ValueError if the body is not `{"signatures": [BlindSignature, ...]}`."""
        if not isinstance(d, dict):
            raise ValueError("swap response must be an object")
        sigs = d.get("signatures")
        if sigs is None:  # pre-0.13 Nutshell name
            sigs = d.get("promises")
        if not isinstance(sigs, list):
            raise ValueError("swap response must have a 'signatures' list")
        return cls(signatures=[BlindedSignature.from_dict(s) for s in sigs])
