"""NUT-09: restore (POST /v1/restore): re-fetch signatures for outputs the mint already signed.

This is how an interrupted swap (timeout after sending) is recovered without losing the funds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .nut00 import BlindedMessage, BlindedSignature


@dataclass(frozen=True, slots=True)
class PostRestoreRequest:
    outputs: list[BlindedMessage]

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": [o.to_dict() for o in self.outputs]}


@dataclass(frozen=True, slots=True)
class PostRestoreResponse:
    outputs: list[BlindedMessage]
    signatures: list[BlindedSignature]

    @classmethod
    def from_dict(cls, d: Any) -> PostRestoreResponse:
        """ValueError unless `outputs` and `signatures` are lists of equal length."""
        if not isinstance(d, dict):
            raise ValueError("restore response must be an object")
        outputs = d.get("outputs")
        sigs = d.get("signatures")
        if sigs is None:  # older Nutshell name
            sigs = d.get("promises")
        if not isinstance(outputs, list) or not isinstance(sigs, list) or len(outputs) != len(sigs):
            raise ValueError("restore response needs equally long 'outputs' and 'signatures' lists")
        return cls(
            outputs=[BlindedMessage.from_dict(o) for o in outputs],
            signatures=[BlindedSignature.from_dict(s) for s in sigs],
        )
