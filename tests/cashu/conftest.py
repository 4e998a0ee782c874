"""Real-mint fixtures for the Cashu client tests, on the shared mint and wallet (tests/conftest.py).

`nutshell_mint` is the shared fee-free mint; `nutshell_fee_mint` a second mint charging 1 sat per
input (MINT_INPUT_FEE_PPK=1000); `nutshell_tokens` real tokens cut by Nutshell's own wallet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet


@pytest.fixture(scope="session")
def nutshell_mint(mint: NutshellMint) -> NutshellMint:
    return mint


@pytest.fixture(scope="session")
def nutshell_fee_mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    with NutshellMint("cashu-fee", input_fee_ppk=1000) as m:
        yield m


@pytest.fixture(scope="session")
def nutshell_tokens(
    wallet: TestWallet, nutshell_mint: NutshellMint, nutshell_fee_mint: NutshellMint
) -> dict[str, str]:
    """v4 (with a memo), v3, both with DLEQ proofs kept, and one token of the fee mint."""
    url = nutshell_mint.url
    return {
        "v4": wallet.send(url, 100, memo="from nutshell"),
        "v3": wallet.send(url, 21, legacy=True),
        "v4_dleq": wallet.send(url, 13, include_dleq=True),
        "v3_dleq": wallet.send(url, 7, legacy=True, include_dleq=True),
        "fee": wallet.send(nutshell_fee_mint.url, 10),
    }
