"""A real Nutshell mint and the long-lived test wallet make, redeem and check real tokens, fast."""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from routstr.devtools.nutshell import NutshellMint, ensure_nutshell_venv, nutshell_venv_dir
from routstr.devtools.test_wallet import TestWallet, WalletWorkerError

pytestmark = pytest.mark.mint

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str) -> dict[str, object]:
    with _OPENER.open(url, timeout=5) as r:
        data = json.loads(r.read())
    assert isinstance(data, dict)
    return data


def keyset_ids(url: str) -> list[str]:
    keysets = get_json(url + "/v1/keysets")["keysets"]
    assert isinstance(keysets, list)
    return sorted(k["id"] for k in keysets)


def test_venv_is_cached(nutshell_python: Path) -> None:
    t0 = time.perf_counter()
    assert ensure_nutshell_venv() == nutshell_python
    assert time.perf_counter() - t0 < 0.1


def test_mint_answers(mint: NutshellMint) -> None:
    info = get_json(mint.url + "/v1/info")
    assert "nuts" in info and mint.pid is not None and mint.log_path.exists()
    assert all(k.startswith("01") and len(k) == 66 for k in keyset_ids(mint.url))  # v2 keyset ids


def test_send_receive_check(mint: NutshellMint, wallet: TestWallet) -> None:
    v4 = wallet.send(mint.url, 100)
    v3 = wallet.send(mint.url, 21, legacy=True)
    assert v4.startswith("cashuB") and v3.startswith("cashuA")
    assert wallet.send(mint.url, 100) != v4  # fresh proofs every time
    assert set(wallet.check(v4)) == {"UNSPENT"}
    balance = wallet.balance(mint.url)
    assert wallet.receive(v4) == 100
    assert wallet.balance(mint.url) == balance + 100
    assert set(wallet.check(v4)) == {"SPENT"}
    with pytest.raises(WalletWorkerError, match="11001"):  # already spent
        wallet.receive(v4)
    assert wallet.receive(v3) == 21  # the worker survived the error


def test_bad_token_is_an_error_not_a_crash(wallet: TestWallet, mint: NutshellMint) -> None:
    with pytest.raises(WalletWorkerError):
        wallet.receive("cashuBnot-a-token")
    with pytest.raises(WalletWorkerError, match="cannot load the keysets"):
        wallet.balance("http://127.0.0.1:1")  # nothing listens there
    assert isinstance(wallet.balance(mint.url), int)  # the worker still answers after both errors


def test_send_latency(mint: NutshellMint, wallet: TestWallet) -> None:
    wallet.send(mint.url, 1)  # warm-up: wallet loaded, balance funded
    times = []
    for i in range(10):
        t0 = time.perf_counter()
        wallet.send(mint.url, 10 + i)
        times.append(time.perf_counter() - t0)
    print(
        f"\n10 sends: total {sum(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms"
    )
    assert statistics.median(times) < 0.3


async def test_async_api(mint: NutshellMint, wallet: TestWallet) -> None:
    import asyncio

    tokens = await asyncio.gather(*[wallet.asend(mint.url, 5) for _ in range(4)])
    assert len(set(tokens)) == 4
    assert await wallet.acheck(tokens[0]) == ["UNSPENT"] * len(await wallet.acheck(tokens[0]))
    before = await wallet.abalance(mint.url)
    assert await wallet.areceive(tokens[0]) == 5
    assert await wallet.abalance(mint.url) == before + 5


def test_restart_keeps_keys_and_db_and_fees(nutshell_python: Path, wallet: TestWallet) -> None:
    with NutshellMint("restart-fees", input_fee_ppk=1000) as m:  # 1 sat per input
        url, keys = m.start(), keyset_ids(m.url)
        keysets = get_json(url + "/v1/keysets")["keysets"]
        assert isinstance(keysets, list) and keysets[0]["input_fee_ppk"] == 1000
        assert wallet.receive(wallet.send(url, 10)) < 10  # the receiver's swap pays the input fees
        token = wallet.send(url, 42)
        m.stop()
        assert not m.running
        with pytest.raises(WalletWorkerError):
            wallet.check(token)  # mint down
        assert m.start() == url
        assert keyset_ids(url) == keys
        assert 0 < wallet.receive(token) < 42  # the minted proofs survived in its db
    assert not m.workdir.exists()


def test_start_failure_shows_log(nutshell_python: Path) -> None:
    m = NutshellMint("broken", extra_env={"MINT_BACKEND_BOLT11_SAT": "NoSuchWallet"})
    try:
        with pytest.raises(RuntimeError, match="exited") as e:
            m.start(timeout=20)
        assert "NoSuchWallet" in str(e.value)
    finally:
        m.cleanup()


def test_cashu_never_imported_here() -> None:
    venv = str(nutshell_venv_dir())
    leaked = [n for n, mod in sys.modules.items() if venv in (getattr(mod, "__file__", None) or "")]
    assert leaked == []
    assert "cashu.wallet" not in sys.modules and "cashu.mint" not in sys.modules
