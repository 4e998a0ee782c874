"""Which keyset new outputs are made for, and the fee table (pure rules of ``cashu.nut02``)."""

from __future__ import annotations

from itertools import permutations

from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import KeysetInfo, cheapest_active, fee_for, fee_table

G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # any point will do

OLD_FREE = KeysetInfo("00aa000000000001", "sat", active=False, input_fee_ppk=0)  # cheapest, but retired
MSAT_FREE = KeysetInfo("00aa000000000002", "msat", active=True, input_fee_ppk=0)  # cheapest, other unit
SAT_DEAR = KeysetInfo("00aa000000000003", "sat", active=True, input_fee_ppk=400)
SAT_B = KeysetInfo("00bb000000000000", "sat", active=True, input_fee_ppk=100)
SAT_A = KeysetInfo("00ab000000000000", "sat", active=True, input_fee_ppk=100)  # ties with SAT_B
MINT = [OLD_FREE, MSAT_FREE, SAT_DEAR, SAT_B, SAT_A]


def test_the_cheapest_active_keyset_of_the_unit_whatever_order_the_mint_lists_them_in() -> None:
    for order in permutations(MINT):
        # neither the retired free keyset nor the other unit's; the lower id of the two at 100 ppk
        assert cheapest_active(order, "sat") == SAT_A
        assert cheapest_active(order, "msat") == MSAT_FREE


def test_fee_beats_id_and_list_order() -> None:
    cheap_late = KeysetInfo("00ff000000000000", "sat", active=True, input_fee_ppk=99)
    assert cheapest_active([SAT_A, SAT_DEAR, cheap_late], "sat") == cheap_late
    assert cheapest_active([SAT_DEAR], "sat") == SAT_DEAR  # one active keyset: that one, whatever it costs


def test_no_active_keyset_of_the_unit_is_none() -> None:
    assert cheapest_active(MINT, "usd") is None
    assert cheapest_active([OLD_FREE], "sat") is None  # only a retired one
    assert cheapest_active([], "sat") is None


def test_the_fee_table_keeps_inactive_keysets_so_old_proofs_are_priced() -> None:
    table = fee_table(MINT)
    assert table == {k.id: k.input_fee_ppk for k in MINT}
    spent = [Proof(amount=1, id=k.id, secret=f"s{i}" * 8, C=G) for i, k in enumerate((OLD_FREE, SAT_DEAR))]
    assert fee_for(spent, table) == 1  # (0 + 400) ppk, rounded up once
    assert fee_table([]) == {}
