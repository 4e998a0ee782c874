"""The node's long-lived parts, built once by the app factory and reached through the app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from routstr.billing.auth import Authenticator
from routstr.billing.pipeline import Pipeline
from routstr.billing.xcashu import XCashu
from routstr.config import Settings
from routstr.discovery.keys import NostrKey
from routstr.rates.feed import BtcUsdFeed
from routstr.storage.db import Database
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.providers import Provider
from routstr.wallet.lightning_in import Invoices
from routstr.wallet.lightning_out import Payouts
from routstr.wallet.mints import MintRegistry
from routstr.wallet.redeem import Redeemer
from routstr.wallet.refund import Refunder


@dataclass
class Node:
    settings: Settings
    db: Database
    mints: MintRegistry
    redeemer: Redeemer
    refunder: Refunder
    auth: Authenticator
    catalogue: Catalogue
    providers: list[Provider]
    pipeline: Pipeline
    rates: BtcUsdFeed
    xcashu: XCashu
    invoices: Invoices
    payouts: Payouts
    nostr: NostrKey | None = None  # the node's Nostr key (build_node always sets it)


NODE: web.AppKey[Node] = web.AppKey("node", Node)
