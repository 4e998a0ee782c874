"""The overview page: requests, revenue, and users' money in and out over time, per model, and the
books per mint."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from routstr.admin.charts import bar_chart, grouped_bar_chart
from routstr.admin.render import render
from routstr.admin.views.guard import page
from routstr.node import NODE
from routstr.storage import admin_queries
from routstr.storage.accounts import now_ms

PERIODS = {24: "24 hours", 168: "7 days"}


def _hour_label(start_ms: int, hours: int) -> str:
    t = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
    return t.strftime("%H:00") if hours <= 48 else t.strftime("%d %b")


@page
async def overview_page(request: web.Request) -> web.StreamResponse:
    hours = int(request.query.get("hours", "24")) if request.query.get("hours", "24") in ("24", "168") else 24
    node = request.app[NODE]
    async with node.db.read() as conn:
        ov = await admin_queries.overview(conn, now_ms(), hours)
    labels = [_hour_label(h["start"], hours) for h in ov.hours]
    totals = {
        "requests": sum(h["requests"] for h in ov.hours),
        "revenue_msat": sum(h["revenue_msat"] for h in ov.hours),
        "paid_in_msat": sum(h["paid_in_msat"] for h in ov.hours),
        "wallet_msat": sum(b["wallet_msat"] for b in ov.books),
        "liabilities_msat": sum(b["liabilities_msat"] for b in ov.books),
    }
    return render(
        request,
        "overview.html",
        title="Overview",
        hours=hours,
        periods=PERIODS,
        totals=totals,
        requests_chart=bar_chart(labels, [h["requests"] for h in ov.hours], "Requests per hour"),
        revenue_chart=bar_chart(
            labels, [h["revenue_msat"] / 1000 for h in ov.hours], "Revenue per hour (sats)", " sat"
        ),
        flow_chart=grouped_bar_chart(
            labels,
            [
                ("paid in", [h["paid_in_msat"] / 1000 for h in ov.hours]),
                ("refunded", [h["refunded_msat"] / 1000 for h in ov.hours]),
            ],
            "Paid in and refunded per hour (sats)",
            " sat",
        ),
        models=ov.models,
        books=ov.books,
    )
