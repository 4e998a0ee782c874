# mypy: ignore-errors
"""A long-lived Nutshell wallet for tests, run by the Nutshell venv's python (never imported by the node).

Usage: ``<nutshell-venv>/bin/python nutshell_wallet_worker.py WORKDIR``. Reads one JSON command per
line on stdin and writes exactly one JSON line per command on stdout, carrying the request's ``id``:

    {"id": 1, "cmd": "mint", "mint_url": U, "amount": N}             -> {"id": 1, "amount": N, "balance": B}
    {"id": 2, "cmd": "send", "mint_url": U, "amount": N, "legacy": f} -> {"id": 2, "token": "cashuB…"}
    {"id": 3, "cmd": "receive", "token": T}                           -> {"id": 3, "amount": N}
    {"id": 4, "cmd": "check", "token": T}                             -> {"id": 4, "states": ["UNSPENT"]}
    {"id": 5, "cmd": "balance", "mint_url": U}                        -> {"id": 5, "balance": B}
    {"id": 6, "cmd": "ping"}                                          -> {"id": 6, "version": "0.20.2"}

A failure answers ``{"id": …, "error": "…", "type": "ExceptionName"}`` and the worker carries on.
Being long-lived is the point: a fresh ``cashu`` CLI per token costs ~0.7 s, a warm wallet ~0.1 s.
"""

import asyncio
import hashlib
import json
import os
import sys
import traceback

# The protocol channel is a private copy of stdout; fd 1 then points at stderr, so anything cashu
# prints (redeem() does) cannot corrupt the JSON stream.
_PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

WORKDIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
os.makedirs(WORKDIR, exist_ok=True)
os.environ["CASHU_DIR"] = os.path.join(WORKDIR, "cashu")
os.chdir(WORKDIR)  # cashu reads ./.env at import time

import cashu  # noqa: E402
from cashu.core.base import TokenV3, TokenV4  # noqa: E402
from cashu.wallet.helpers import deserialize_token_from_string  # noqa: E402
from cashu.wallet.wallet import Wallet  # noqa: E402

sys.__dict__.pop("tracebacklimit", None)  # cashu sets it to 0 on import

TOPUP_MIN = 10_000  # mint in big chunks: fewer NUT-04 round trips for many small sends
FEE_MARGIN = 100  # a send's swap pays input fees at a mint that charges them
_wallets: dict[tuple[str, str], Wallet] = {}


async def wallet_for(mint_url: str, unit: str = "sat") -> Wallet:
    """One wallet (own sqlite db) per mint URL and unit, loaded once."""
    url = mint_url.rstrip("/")
    key = (url, unit)
    if key not in _wallets:
        name = "w" + hashlib.sha256(f"{url}|{unit}".encode()).hexdigest()[:12]
        db = os.path.join(WORKDIR, "wallets", name)
        os.makedirs(db, exist_ok=True)
        w = await Wallet.with_db(url, db, name=name, unit=unit)
        await w.load_mint()  # logs, but does not raise, when the mint is unreachable
        if not w.keysets:
            raise ConnectionError(f"cannot load the keysets of mint {url}")
        await w.load_proofs(reload=True)
        _wallets[key] = w
    return _wallets[key]


async def mint(w: Wallet, amount: int) -> None:
    """NUT-04: FakeWallet pays the invoice at once."""
    quote = await w.request_mint(amount)
    await w.mint(amount, quote_id=quote.quote)


async def cmd_mint(req):
    amount = int(req["amount"])
    w = await wallet_for(req["mint_url"], req.get("unit", "sat"))
    await mint(w, amount)
    return {"amount": amount, "balance": w.available_balance.amount}


async def cmd_send(req):
    amount = int(req["amount"])
    if amount <= 0:
        raise ValueError("amount must be positive")
    w = await wallet_for(req["mint_url"], req.get("unit", "sat"))
    short = amount + FEE_MARGIN - w.available_balance.amount
    if short > 0:
        await mint(w, max(short, TOPUP_MIN))
    proofs, _fees = await w.select_to_send(w.proofs, amount, set_reserved=True)
    token = await w.serialize_proofs(
        proofs,
        legacy=bool(req.get("legacy", False)),
        include_dleq=bool(req.get("include_dleq", False)),
        memo=req.get("memo"),
    )
    return {"token": token, "amount": sum(p.amount for p in proofs)}


def _parts(token: str):
    """(mint_url, unit, proofs) groups of a V4 or V3 token."""
    tok = deserialize_token_from_string(token)
    if isinstance(tok, TokenV4):
        return [(tok.mint, tok.unit, tok.proofs)]
    if isinstance(tok, TokenV3):
        unit = tok.unit or "sat"
        return [(t.mint, unit, t.proofs) for t in tok.token]
    raise ValueError("unsupported token")


async def cmd_receive(req):
    """NUT-03 swap into this wallet: proves a token (e.g. a refund from the node) is real and unspent."""
    total = 0
    for url, unit, proofs in _parts(req["token"]):
        w = await wallet_for(url, unit)
        await w._expand_short_keyset_ids(proofs)  # V4 carries 8-byte short keyset ids
        keep, _ = await w.redeem(proofs)
        total += sum(p.amount for p in keep)
    return {"amount": total}


async def cmd_check(req):
    """NUT-07 state of each proof, in token order."""
    states = []
    for url, unit, proofs in _parts(req["token"]):
        w = await wallet_for(url, unit)
        resp = await w.check_proof_state(proofs)
        states += [s.state.value for s in resp.states]
    return {"states": states}


async def cmd_balance(req):
    w = await wallet_for(req["mint_url"], req.get("unit", "sat"))
    return {"balance": w.available_balance.amount}


async def cmd_ping(req):
    return {"version": cashu.__version__ if hasattr(cashu, "__version__") else "unknown"}


COMMANDS = {
    "mint": cmd_mint,
    "send": cmd_send,
    "receive": cmd_receive,
    "check": cmd_check,
    "balance": cmd_balance,
    "ping": cmd_ping,
}


async def handle(line: bytes) -> dict:
    req_id = None
    try:
        req = json.loads(line)
        req_id = req.get("id")
        fn = COMMANDS.get(req.get("cmd"))
        if fn is None:
            raise ValueError(f"unknown command {req.get('cmd')!r}")
        return {"id": req_id, **(await fn(req))}
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        return {"id": req_id, "error": str(e) or repr(e), "type": type(e).__name__}


async def main() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not line:
            return  # parent closed stdin: exit quietly
        if line.strip():
            _PROTO.write(json.dumps(await handle(line)) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
