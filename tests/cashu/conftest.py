"""Fixtures for tests/cashu.

TEMPORARY real-mint fixtures (to be replaced by the shared `routstr.devtools` fixture): everything below
is self-contained and the tests only use the fixtures `nutshell_mint`, `nutshell_fee_mint` and
`nutshell_tokens` (each mint as a `RealMint` with a `.url`; tokens as `dict[name, serialized token]`).
To swap, re-implement those three fixtures on top of the shared one and delete the rest of this file.

A real Nutshell mint (FakeWallet Lightning backend) runs from its own venv, never imported here; see
shared/testing/REAL-MINT.md. Tests skip when that venv is missing. Both mints are started as soon as the
first real-mint test asks for one, so they boot in parallel; their tokens are minted in one subprocess
per mint, also in parallel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NUTSHELL_PYTHON = os.environ.get("ROUTSTR_NUTSHELL_PYTHON", "/root/.cache/routstr/mint-venv-try/bin/python")
START_TIMEOUT_S = 30.0

# Tokens minted by Nutshell's own wallet for the tests (name -> spec).
PLAIN_TOKENS: dict[str, dict[str, Any]] = {
    "v4": {"amount": 100, "memo": "from nutshell"},
    "v3": {"amount": 21, "legacy": True},
    "v4_dleq": {"amount": 13, "dleq": True},
    "v3_dleq": {"amount": 7, "dleq": True, "legacy": True},
}
FEE_TOKENS: dict[str, dict[str, Any]] = {"fee": {"amount": 10}}

# Runs inside the Nutshell venv, started together with the mints (its slow `import cashu` overlaps their
# boot): per mint, wait until it answers, mint `2 * sum(amounts)` through FakeWallet, cut one token per spec.
_TOKEN_SCRIPT = r"""
import asyncio, json, os, sys, time, urllib.request
t0 = time.perf_counter()
from cashu.wallet.wallet import Wallet
sys.__dict__.pop("tracebacklimit", None)  # cashu sets it to 0 on import
print(f"TIMING import {time.perf_counter() - t0:.2f}s", flush=True)

async def wait_ready(url):
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/keys", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("mint not ready: " + url)
        await asyncio.sleep(0.05)

async def tokens_for(url, wallet_dir, specs):
    await wait_ready(url)
    w = await Wallet.with_db(url, wallet_dir, name="routstr-test-helper")
    await w.load_mint()
    total = sum(s["amount"] for s in specs.values()) * 2  # headroom for input fees
    quote = await w.request_mint(total)
    await w.mint(total, quote_id=quote.quote)
    out = {}
    for name, s in specs.items():
        proofs, _ = await w.select_to_send(w.proofs, s["amount"], set_reserved=True)
        out[name] = await w.serialize_proofs(
            proofs, include_dleq=s.get("dleq", False), legacy=s.get("legacy", False), memo=s.get("memo")
        )
    print(f"TIMING {url} tokens at {time.perf_counter() - t0:.2f}s", flush=True)
    return out

async def main():
    jobs = json.loads(sys.argv[1])  # [[url, wallet_dir, specs], ...]
    results = await asyncio.gather(*(tokens_for(*job) for job in jobs))
    merged = {}
    for r in results:
        merged.update(r)
    print("TOKENS=" + json.dumps(merged), flush=True)

asyncio.run(main())
"""


def _find_nutshell_python() -> str:
    """The pre-built venv if present, else the shared builder of routstr.devtools (if it exists yet)."""
    if Path(NUTSHELL_PYTHON).exists():
        return NUTSHELL_PYTHON
    try:
        from routstr.devtools.nutshell import ensure_nutshell_venv

        return str(ensure_nutshell_venv())
    except Exception as e:  # no builder yet, or no network: these tests cannot run here
        pytest.skip(f"no Nutshell venv ({NUTSHELL_PYTHON} missing; devtools builder: {e})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The parent env minus anything that would reconfigure Nutshell (MINT_*, FAKEWALLET_*, DEBUG...)."""
    drop = ("MINT_", "FAKEWALLET_", "CASHU_", "WALLET_", "LIGHTNING", "TOR", "NOSTR", "DEBUG")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env.update(extra)
    return env


@dataclass
class RealMint:
    name: str
    url: str
    fee_ppk: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready: bool = False

    def wait_ready(self) -> RealMint:
        t0 = time.monotonic()
        while not self.ready:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mint {self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                for path in ("/v1/info", "/v1/keys"):
                    with urllib.request.urlopen(self.url + path, timeout=1) as r:
                        assert r.status == 200
                self.ready = True
            except (OSError, AssertionError):
                if time.monotonic() - t0 > START_TIMEOUT_S:
                    raise RuntimeError(f"mint {self.name} not ready in {START_TIMEOUT_S}s") from None
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _launch_mint(name: str, fee_ppk: int, root: Path) -> RealMint:
    workdir = root / name
    workdir.mkdir(parents=True)
    port = _free_port()
    env = _clean_env(
        {
            "MINT_BACKEND_BOLT11_SAT": "FakeWallet",
            "MINT_PRIVATE_KEY": f"routstr-test-only-{name}",
            "MINT_LISTEN_HOST": "127.0.0.1",
            "MINT_LISTEN_PORT": str(port),
            "MINT_DATABASE": str(workdir / "db"),
            "MINT_AUTH_DATABASE": str(workdir / "db"),
            "CASHU_DIR": str(workdir / "cashu"),
            "MINT_INPUT_FEE_PPK": str(fee_ppk),
            "MINT_RATE_LIMIT": "FALSE",
            "FAKEWALLET_DELAY_INCOMING_PAYMENT": "0",
            "FAKEWALLET_DELAY_OUTGOING_PAYMENT": "0",
            "LOG_LEVEL": "INFO",
        }
    )
    log_path = workdir / "mint.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [NUTSHELL_PYTHON, "-m", "cashu.mint", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RealMint(name, f"http://127.0.0.1:{port}", fee_ppk, workdir, proc, log_path)


class TokenMinter:
    """One helper process in the Nutshell venv that mints the test tokens of several mints at once."""

    def __init__(self, jobs: list[tuple[RealMint, dict[str, dict[str, Any]]]]) -> None:
        arg = [[m.url, str(m.workdir / "wallet"), specs] for m, specs in jobs]
        workdir = jobs[0][0].workdir.parent
        self.proc = subprocess.Popen(
            [NUTSHELL_PYTHON, "-c", _TOKEN_SCRIPT, json.dumps(arg)],
            cwd=workdir,
            env=_clean_env({"CASHU_DIR": str(workdir / "cashu-wallet")}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._tokens: dict[str, str] | None = None

    def tokens(self) -> dict[str, str]:
        """Read until the TOKENS= line (not until exit: interpreter teardown costs another ~0.5 s).

        No hang risk: the helper gives up on a mint that is not ready in 30 s and then exits (EOF).
        """
        if self._tokens is None:
            assert self.proc.stdout is not None
            seen: list[str] = []
            for line in self.proc.stdout:
                if line.startswith("TOKENS="):
                    self._tokens = json.loads(line[len("TOKENS=") :])
                    break
                seen.append(line)
            else:
                self.proc.wait()
                raise RuntimeError(
                    f"token helper failed (rc={self.proc.returncode}):\n{''.join(seen)[-3000:]}"
                )
        return dict(self._tokens)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def _nutshell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, RealMint], TokenMinter]]:
    global NUTSHELL_PYTHON
    NUTSHELL_PYTHON = _find_nutshell_python()
    root = tmp_path_factory.mktemp("nutshell")
    mints = {"plain": _launch_mint("plain", 0, root), "fee": _launch_mint("fee", 1000, root)}
    minter = TokenMinter([(mints["plain"], PLAIN_TOKENS), (mints["fee"], FEE_TOKENS)])
    try:
        yield mints, minter
    finally:
        minter.stop()
        for mint in mints.values():
            mint.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def nutshell_mint(_nutshell: tuple[dict[str, RealMint], TokenMinter]) -> RealMint:
    """A real Nutshell mint with MINT_INPUT_FEE_PPK=0."""
    return _nutshell[0]["plain"].wait_ready()


@pytest.fixture(scope="session")
def nutshell_fee_mint(_nutshell: tuple[dict[str, RealMint], TokenMinter]) -> RealMint:
    """A second real Nutshell mint with MINT_INPUT_FEE_PPK=1000 (1 sat per input)."""
    return _nutshell[0]["fee"].wait_ready()


@pytest.fixture(scope="session")
def nutshell_tokens(_nutshell: tuple[dict[str, RealMint], TokenMinter]) -> dict[str, str]:
    """Tokens minted by Nutshell's wallet: PLAIN_TOKENS keys at the plain mint, FEE_TOKENS at the fee mint."""
    return _nutshell[1].tokens()
