"""What a redeemed token is known by, and what proves its presenter is the one who redeemed it.

A token used as a key, or a token that created an ``sk-`` key or paid an X-Cashu request, opens
that balance whenever it is presented again. So its identity must depend on what only a holder of
the genuine token has, not on its secrets alone: the mint sees every secret when the node swaps
the token, and a forger can pair them with made-up signatures.

- The identity covers each proof's secret *and* its signature ``C``. A made-up ``C`` names another
  identity (which finds nothing, and which the mint refuses to redeem).
- The mint itself can compute ``C`` from a secret (it holds the private key). What it never sees is
  the DLEQ blinding factor ``r`` (NUT-12) a wallet keeps beside a proof, since the node never sends
  it. When every proof of the redeemed token carried ``r``, the node records a *holder mark* over
  them, and a later presentation must carry the same ``r`` values.

Everything is an HMAC under the node secret, so a copy of the database cannot test guesses either.
Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

from routstr.cashu.tokens import Token


def _mac(node_secret: bytes, label: bytes, parts: object) -> str:
    # JSON encoding keeps the parts apart (secrets are free text: they may hold any separator)
    return hmac.new(node_secret, label + orjson.dumps(parts), hashlib.sha256).hexdigest()


def token_identity(node_secret: bytes, token: Token) -> str:
    """The hash a token is known by: its mint and each proof's (secret, C), in any encoding (V3/V4)."""
    pairs = sorted([p.secret, p.C.lower()] for p in token.proofs)
    return _mac(node_secret, b"token:", [token.mint.rstrip("/"), pairs])


def holder_mark(node_secret: bytes, token: Token) -> str | None:
    """What only the token's holder can show: the DLEQ blinding factors ``r`` of all its proofs.
    None when any proof lacks one (the wallet left them out: then nothing is recorded or asked)."""
    pairs = []
    for p in token.proofs:
        if p.dleq is None or not p.dleq.r:
            return None
        pairs.append([p.secret, p.dleq.r.lower()])
    return _mac(node_secret, b"holder:", sorted(pairs))


def holder_matches(recorded: str | None, presented: str | None) -> bool:
    """A presented token may act for a recorded redemption: no mark was recorded, or it is the same."""
    if recorded is None:
        return True
    return presented is not None and hmac.compare_digest(recorded, presented)


def legacy_token_identity(node_secret: bytes, mint: str, secrets: list[str]) -> str:
    """The identity tokens had before it covered ``C`` (secrets only): kept to re-key old rows."""
    canonical = mint.rstrip("/") + "\n" + "\n".join(sorted(secrets))
    return hmac.new(node_secret, canonical.encode(), hashlib.sha256).hexdigest()
