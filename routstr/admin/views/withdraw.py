"""Withdrawing earnings from the dashboard: as a Cashu token shown once, or paid over Lightning.

The same operations as ``POST /admin/api/withdraw`` and ``routstr withdraw`` (``routstr.operator.withdraw``):
what may leave is checked against the books in the transaction that takes the proofs, so users' money
never goes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from routstr.admin.render import render
from routstr.admin.views.guard import form, page
from routstr.core.errors import ApiError
from routstr.node import NODE
from routstr.operator.withdraw import UNITS, as_token, available, over_lightning


async def _show(request: web.Request, status: int = 200, **result: Any) -> web.Response:
    node = request.app[NODE]
    context: dict[str, Any] = {"token": None, "paid": None, "error": None, **result}
    return render(request, "withdraw.html", status=status, available=await available(node),
                  mints=node.mints.urls, units=UNITS, **context)  # fmt: skip


@page
async def withdraw_page(request: web.Request) -> web.StreamResponse:
    return await _show(request)


@page
async def post_withdraw(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    data = form(request)
    mint, unit, to = data.get("mint", ""), data.get("unit", "sat"), data.get("to", "").strip()
    amount: int | None = None
    if data.get("amount", "").strip():
        try:
            amount = int(data["amount"])
        except ValueError:
            amount = -1
        if amount <= 0:
            return await _show(request, 400, error="The amount must be a positive whole number.")
    if mint not in node.mints.urls or unit not in UNITS:
        return await _show(request, 400, error="Choose one of this node's mints and a unit.")
    try:
        if to:
            p = await over_lightning(node.db, node.payouts, mint, to, amount)
            paid = {"state": p["state"], "amount": p["amount_sats"], "fee": p["fee_sats"]}
            return await _show(request, paid=paid)
        token = await as_token(node.db, node.mints, mint, unit, amount)
    except ApiError as e:
        return await _show(request, e.status if e.status < 500 else 502, error=e.message)
    return await _show(request, token=token)
