"""The BTC/USD rate that USD-priced models are converted at: live from public sources, or pinned."""

from routstr.rates.feed import DEFAULT_SANE_RANGE, BtcUsdFeed, SourceStatus, StaleRate
from routstr.rates.sources import (
    DEFAULT_SOURCES,
    KNOWN_URLS,
    PARSERS,
    Source,
    parse_sources,
    sources_from_env,
)

__all__ = [
    "DEFAULT_SANE_RANGE",
    "DEFAULT_SOURCES",
    "KNOWN_URLS",
    "PARSERS",
    "BtcUsdFeed",
    "Source",
    "SourceStatus",
    "StaleRate",
    "parse_sources",
    "sources_from_env",
]
