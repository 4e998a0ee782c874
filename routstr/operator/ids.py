"""Row ids as the operator types them: in a URL, a form or a search box."""

from __future__ import annotations

MAX_ID = 2**63 - 1  # row ids are BIGINT: a larger number overflows the driver, not a lookup


def parse_id(raw: str) -> int | None:
    """A row id: ASCII digits, 1 to ``MAX_ID``; None for anything else (``str.isdigit`` also takes
    other scripts' digits and superscripts, which ``int`` reads differently or not at all)."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None
