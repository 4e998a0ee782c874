"""Fitting a request's output limit to the balance (pure: the pipeline reserves, this decides).

Coding agents send a large output limit on every request (Claude Code: ``max_tokens`` 32000 or
64000) although most answers are short. Reserving all of it would refuse a key that can pay for the
answer many times over, so when the balance cannot reserve the client's own limit the node lowers
it to what the balance pays for, sends the upstream that lower limit (it can never deliver beyond the
reservation) and says so in the ``X-Routstr-Max-Tokens-Lowered: <from>-><to>`` response header (per
generation, as the client wrote it). Below ``MIN_FITTED_MAX_TOKENS`` (default 1024: one agent turn,
a short answer or a tool call with its arguments, and Anthropic's smallest thinking budget) the
answer would be too short to be of use: 402, as before. A limit the client set at or under that
minimum is never lowered. A request that set no limit is fitted down to one token, as it always was.
"""

from __future__ import annotations

LOWERED_HEADER = "X-Routstr-Max-Tokens-Lowered"


def least_output(requested: int | None, floor: int) -> int:
    """The smallest output limit (per generation) the node may run the request at: one token when
    the client set none, else its own limit or the floor, whichever is lower."""
    return 1 if requested is None else min(requested, floor)


def fitted_output(requested: int | None, wanted: int, affordable: int, floor: int) -> int | None:
    """The output limit to run at when ``wanted`` (the client's limit, or the node's default) cannot
    be reserved but ``affordable`` tokens can; None: refuse (402)."""
    lowest = least_output(requested, floor)
    if affordable < lowest:
        return None
    return min(wanted, affordable)


def lowered_header(requested: int, to: int) -> dict[str, str]:
    return {LOWERED_HEADER: f"{requested}->{to}"}
