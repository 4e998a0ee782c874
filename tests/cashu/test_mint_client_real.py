"""MintClient against a REAL Nutshell mint (see conftest.py): keys, tokens, swap, state, restore, fees."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Protocol

import aiohttp
import pytest

from routstr.cashu.errors import ErrorCode, MintError, MintUnavailable
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import fee_for, split_amount, verify_keyset_id
from routstr.cashu.nut12 import verify_dleq_proof
from routstr.cashu.outputs import PreparedOutput, prepare_outputs, unblind_restored, unblind_signatures
from routstr.cashu.tokens import Token, decode_token, resolve_short_keyset_ids

pytestmark = pytest.mark.mint  # registered by tests/conftest.py: "runs a real Nutshell mint"


class MintLike(Protocol):
    """All the tests need from a mint fixture (so the shared devtools fixture can replace conftest's)."""

    url: str


class RequestCounter:
    """aiohttp trace hook counting real HTTP requests, to prove the caches work."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._on_start)

    async def _on_start(
        self, _s: aiohttp.ClientSession, _c: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        self.paths.append(params.url.path)


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
async def session(counter: RequestCounter) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trace_configs=[counter.config]) as s:
        yield s


async def _swap_to_fresh_proofs(
    client: MintClient, inputs: list[Proof], unit: str = "sat"
) -> tuple[list[Proof], list[PreparedOutput]]:
    """Receive `inputs`: swap them (minus input fees) into new proofs of the active keyset."""
    keyset = await client.active_keyset(unit)
    fee = fee_for(inputs, await client.fee_ppk_by_keyset())
    prepared = prepare_outputs(split_amount(sum(p.amount for p in inputs) - fee), keyset.id)
    sigs = await client.swap(inputs, [p.to_blinded_message() for p in prepared])
    return unblind_signatures(prepared, sigs, keyset), prepared


async def _resolved(client: MintClient, token: Token) -> list[Proof]:
    return resolve_short_keyset_ids(token.proofs, await client.keyset_ids())


async def test_keysets_and_keys_are_cached(
    nutshell_mint: MintLike, session: aiohttp.ClientSession, counter: RequestCounter
) -> None:
    client = MintClient(nutshell_mint.url + "/", session)
    assert client.url == nutshell_mint.url
    info = await client.info()
    assert "nuts" in info
    keysets = await client.keysets()
    active = [k for k in keysets if k.active and k.unit == "sat"]
    assert len(active) == 1
    assert active[0].id.startswith("01") and len(active[0].id) == 66  # v2 ids
    assert active[0].input_fee_ppk == 0
    [keyset] = await client.keys(active[0].id)
    assert verify_keyset_id(keyset)  # Nutshell derives ids exactly as NUT-02 v2 says
    assert keyset.amounts[0] == 1 and len(keyset.amounts) >= 32
    assert keyset.id in {k.id for k in await client.keys()}
    n_requests = len(counter.paths)
    # hot path: all of this is served from the caches
    await client.keysets()
    await client.keys(keyset.id)
    await client.keys()
    assert await client.active_keyset("sat") == keyset
    await client.fee_ppk_by_keyset()
    assert len(counter.paths) == n_requests
    await client.refresh()
    assert counter.paths[n_requests:] == ["/v1/keysets"]


async def test_decode_real_tokens(nutshell_mint: MintLike, nutshell_tokens: dict[str, str]) -> None:
    v4 = decode_token(nutshell_tokens["v4"])
    v3 = decode_token(nutshell_tokens["v3"])
    assert nutshell_tokens["v4"].startswith("cashuB") and nutshell_tokens["v3"].startswith("cashuA")
    assert (v4.mint, v4.unit, v4.amount, v4.memo) == (nutshell_mint.url, "sat", 100, "from nutshell")
    assert (v3.mint, v3.unit, v3.amount) == (nutshell_mint.url, "sat", 21)
    assert all(len(p.id) == 16 for p in v4.proofs)  # Nutshell's V4 tokens carry short keyset ids
    assert all(len(p.id) == 66 for p in v3.proofs)  # ... its V3 tokens the full ones
    assert all(p.dleq is None for p in v4.proofs + v3.proofs)


async def test_swap_round_trip(
    nutshell_mint: MintLike, nutshell_tokens: dict[str, str], session: aiohttp.ClientSession
) -> None:
    client = MintClient(nutshell_mint.url, session)
    token = decode_token(nutshell_tokens["v4"])
    inputs = await _resolved(client, token)
    keyset = await client.active_keyset()
    assert {p.id for p in inputs} == {keyset.id}

    t0 = time.perf_counter()
    proofs, prepared = await _swap_to_fresh_proofs(client, inputs)
    swap_ms = (time.perf_counter() - t0) * 1000
    assert sum(p.amount for p in proofs) == 100
    assert swap_ms < 2000
    # Nutshell returns DLEQs; unblind_signatures verified them, and Carol can verify them too
    assert all(p.dleq is not None and verify_dleq_proof(p, keyset.public_key(p.amount)) for p in proofs)

    # our proofs are valid: the mint accepts them as inputs
    proofs2, prepared2 = await _swap_to_fresh_proofs(client, proofs)
    assert sum(p.amount for p in proofs2) == 100

    # double spend of the original token
    with pytest.raises(MintError) as exc:
        await client.swap(inputs, [p.to_blinded_message() for p in prepare_outputs([100], keyset.id)])
    assert exc.value.code == ErrorCode.PROOFS_ALREADY_SPENT and exc.value.is_already_spent
    assert exc.value.status == 400

    # re-using outputs the mint already signed is refused too, and the inputs stay unspent
    with pytest.raises(MintError) as exc:
        await client.swap(proofs2, [p.to_blinded_message() for p in prepared2])
    assert exc.value.is_outputs_already_signed, exc.value

    states = await client.check_state([p.Y for p in inputs + proofs + proofs2])
    assert [states[p.Y] for p in inputs] == ["SPENT"] * len(inputs)
    assert [states[p.Y] for p in proofs] == ["SPENT"] * len(proofs)
    assert [states[p.Y] for p in proofs2] == ["UNSPENT"] * len(proofs2)

    # NUT-09: the mint re-issues the signatures of outputs it signed (e.g. after a lost response)
    fresh = prepare_outputs([1], keyset.id)[0]
    restored = await client.restore([p.to_blinded_message() for p in [*prepared, fresh]])
    assert [o.B_ for o, _ in restored] == [p.B_ for p in prepared]  # unsigned one left out
    recovered = unblind_restored([fresh, *reversed(prepared)], restored, keyset)
    assert [(p.secret, p.C) for p in recovered] == [(p.secret, p.C) for p in proofs]


async def test_receive_v3_token(
    nutshell_mint: MintLike, nutshell_tokens: dict[str, str], session: aiohttp.ClientSession
) -> None:
    client = MintClient(nutshell_mint.url, session)
    inputs = await _resolved(client, decode_token(nutshell_tokens["v3"]))
    proofs, _ = await _swap_to_fresh_proofs(client, inputs)
    assert sum(p.amount for p in proofs) == 21


@pytest.mark.parametrize("name", ["v4_dleq", "v3_dleq"])
async def test_token_dleq_from_nutshell(
    nutshell_mint: MintLike, nutshell_tokens: dict[str, str], session: aiohttp.ClientSession, name: str
) -> None:
    """Carol-side NUT-12 check of DLEQs that Nutshell's wallet put into a token."""
    client = MintClient(nutshell_mint.url, session)
    inputs = await _resolved(client, decode_token(nutshell_tokens[name]))
    keyset = await client.keyset(inputs[0].id)
    assert all(p.dleq is not None and p.dleq.r is not None for p in inputs)
    assert all(verify_dleq_proof(p, keyset.public_key(p.amount)) for p in inputs)
    forged = replace(inputs[0], secret="f" * 64)
    assert not verify_dleq_proof(forged, keyset.public_key(forged.amount))
    # a proof with a bad signature is refused by the mint (and nothing is spent)
    with pytest.raises(MintError) as exc:
        await client.swap(
            [forged], [p.to_blinded_message() for p in prepare_outputs([forged.amount], keyset.id)]
        )
    assert exc.value.code is not None
    proofs, _ = await _swap_to_fresh_proofs(client, inputs)
    assert sum(p.amount for p in proofs) == sum(p.amount for p in inputs)


async def test_input_fees(
    nutshell_fee_mint: MintLike, nutshell_tokens: dict[str, str], session: aiohttp.ClientSession
) -> None:
    client = MintClient(nutshell_fee_mint.url, session)
    keysets = await client.keysets()
    assert [k.input_fee_ppk for k in keysets if k.active] == [1000]
    keyset = await client.active_keyset()
    assert keyset.input_fee_ppk == 1000
    token = decode_token(nutshell_tokens["fee"])
    inputs = await _resolved(client, token)
    fee = fee_for(inputs, await client.fee_ppk_by_keyset())
    assert fee == len(inputs)  # 1000 ppk = 1 sat per input

    # ignoring the fee is rejected, and does not burn the inputs
    no_fee = prepare_outputs(split_amount(token.amount), keyset.id)
    with pytest.raises(MintError) as exc:
        await client.swap(inputs, [p.to_blinded_message() for p in no_fee])
    assert exc.value.is_unbalanced, exc.value

    proofs, _ = await _swap_to_fresh_proofs(client, inputs)
    assert sum(p.amount for p in proofs) == token.amount - fee
    states = await client.check_state([p.Y for p in inputs])
    assert set(states.values()) == {"SPENT"}


async def test_unknown_keyset_is_a_mint_error(
    nutshell_mint: MintLike, session: aiohttp.ClientSession
) -> None:
    client = MintClient(nutshell_mint.url, session)
    with pytest.raises(MintError) as exc:
        await client.keys("01" + "ab" * 32)
    assert exc.value.status == 400


async def test_mint_unavailable_on_closed_port(session: aiohttp.ClientSession) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        client = MintClient(f"http://127.0.0.1:{port}", session, timeout_s=2)
        with pytest.raises(MintUnavailable) as exc:
            await client.keysets()
        assert exc.value.maybe_processed is False
        with pytest.raises(MintUnavailable):
            await client.swap([], [])
