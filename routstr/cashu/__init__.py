"""Cashu protocol layer: our own small client (no Nutshell import), one module per NUT.

Everything is pure except `mint_client`. The names most callers need are re-exported here.
"""

from .errors import CashuError, CashuProtocolError, ErrorCode, MintError, MintUnavailable, TokenError
from .mint_client import MintClient
from .nut00 import BlindedMessage, BlindedSignature, DLEQProof, Proof, hash_to_curve
from .nut01 import Keyset
from .nut02 import KeysetInfo, fee_for, split_amount
from .nut07 import ProofState
from .nut12 import verify_dleq_proof, verify_dleq_signature
from .outputs import PreparedOutput, prepare_outputs, unblind_restored, unblind_signatures
from .tokens import Token, decode_token, encode_token_v3, encode_token_v4, resolve_short_keyset_ids

__all__ = [
    "BlindedMessage",
    "BlindedSignature",
    "CashuError",
    "CashuProtocolError",
    "DLEQProof",
    "ErrorCode",
    "Keyset",
    "KeysetInfo",
    "MintClient",
    "MintError",
    "MintUnavailable",
    "PreparedOutput",
    "Proof",
    "ProofState",
    "Token",
    "TokenError",
    "decode_token",
    "encode_token_v3",
    "encode_token_v4",
    "fee_for",
    "hash_to_curve",
    "prepare_outputs",
    "resolve_short_keyset_ids",
    "split_amount",
    "unblind_restored",
    "unblind_signatures",
    "verify_dleq_proof",
    "verify_dleq_signature",
]
