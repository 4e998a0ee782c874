"""The mints page: health, exposure against its limit, and the books per unit of each mint."""

from __future__ import annotations

from aiohttp import web

from routstr.admin.render import render
from routstr.admin.views.guard import page
from routstr.node import NODE
from routstr.operator.mints import mints_view


@page
async def mints_page(request: web.Request) -> web.StreamResponse:
    mints = await mints_view(request.app[NODE])
    return render(request, "mints.html", title="Mints", mints=mints)
