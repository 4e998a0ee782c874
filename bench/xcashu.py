#!/usr/bin/env python3
"""X-Cashu overhead: ``.venv/bin/python bench/xcashu.py`` (loopback only; see bench/README.md).

Starts a real Nutshell test mint, the fake OpenAI upstream and the node (``routstr serve``, SQLite,
one provider) as ``bench/run.py`` does, funds one sk- key with real eCash, and makes small tokens
(20 sat by default) before any timing. Then, with a small aiohttp client on uvloop, it measures
non-streamed chat completions paid (a) with the bearer sk- key, (b) with a fresh token per request
in ``X-Cashu`` (each answer must be 200 and carry the change token in ``X-Cashu``), and (c) the
floor: the two NUT-03 swaps of an X-Cashu request (redeem, then change) done directly against the
mint with the node's own ``MintClient``, on tokens of the same size; optionally (d) streamed
requests, bearer and X-Cashu (change in the final event's ``usage.cost.x_cashu``).

Afterwards every change token is redeemed at the mint (so each was real and unspent), a few through
the Nutshell wallet too. Prints Markdown tables; writes raw figures to ``bench/results/xcashu.json``.
Every process it starts is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

# bench/ is sys.path[0] when this file runs as a script: reuse run.py's processes, funding and helpers
from run import (
    HOST,
    PRICING,
    Processes,
    _on_sigterm,
    balance_info,
    cpu_seconds,
    fund_key,
    hotspots,
    http_json,
    loadavg,
    percentile,
    request_body,
    run_async,
    say,
    wait_http,
)

from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut01 import Keyset
from routstr.cashu.nut02 import fee_for, split_amount
from routstr.cashu.outputs import PreparedOutput, prepare_outputs, unblind_signatures
from routstr.cashu.tokens import Token, decode_token, encode_token_v4, resolve_short_keyset_ids
from routstr.devtools.nutshell import NutshellMint, clean_env, free_port
from routstr.devtools.test_wallet import TestWallet

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "xcashu.json"
MAX_BATCH = 900  # Nutshell refuses more than 1000 inputs or outputs in one request
COST_HEADER = "X-Routstr-Cost-Msats"


# -- series -------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed request (or one floor round: two swaps)."""

    ms: float
    ok: bool
    ttfb_ms: float = 0.0
    parts_ms: tuple[float, ...] = ()  # floor: swap 1, swap 2, client-side crypto
    status: int = 0
    change: str | None = None  # X-Cashu: the change token the node answered with
    early: str | None = None  # X-Cashu stream: the change in its headers (the rest is ``change``)
    cost_msat: int = 0
    note: str = ""


@dataclass
class Series:
    """A batch of timed requests of one kind at one concurrency."""

    name: str
    concurrency: int
    n: int = 0
    ok: int = 0
    errors: int = 0
    wall_s: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None
    node_unspent_proofs_at_start: int = 0  # the node's wallet, which each X-Cashu change swap grows
    parts_p50_ms: dict[str, float] = field(default_factory=dict)
    node_cpu_ms_per_req: float = 0.0
    mint_cpu_ms_per_req: float = 0.0
    error_notes: list[str] = field(default_factory=list)
    p50_first_third_ms: float = 0.0  # drift over the batch (the node's wallet grows with each request)
    p50_last_third_ms: float = 0.0
    lat_ms: list[float] = field(default_factory=list)  # every successful sample, in order


def summarise(
    name: str,
    conc: int,
    samples: list[Sample],
    wall: float,
    cpu: tuple[float, float],
    parts: tuple[str, ...] = (),
) -> Series:
    """Percentiles over the successful samples; req/s over the wall time of the whole batch."""
    s = Series(name, conc, n=len(samples), wall_s=wall)
    good = [x for x in samples if x.ok]
    s.ok, s.errors = len(good), len(samples) - len(good)
    s.error_notes = sorted({x.note for x in samples if not x.ok})[:5]
    s.rps = len(good) / wall if wall > 0 else 0.0
    if good:
        ms = [x.ms for x in good]
        s.p50_ms, s.p90_ms, s.p99_ms = (percentile(ms, q) for q in (50, 90, 99))
        s.mean_ms, s.max_ms = statistics.fmean(ms), max(ms)
        third = max(len(ms) // 3, 1)
        s.p50_first_third_ms, s.p50_last_third_ms = percentile(ms[:third], 50), percentile(ms[-third:], 50)
        s.lat_ms = [round(x, 3) for x in ms]
        if any(x.ttfb_ms for x in good):
            t = [x.ttfb_ms for x in good]
            s.ttfb_p50_ms, s.ttfb_p99_ms = percentile(t, 50), percentile(t, 99)
        for i, part in enumerate(parts):
            s.parts_p50_ms[part] = percentile([x.parts_ms[i] for x in good], 50)
    if samples:
        s.node_cpu_ms_per_req = 1000 * cpu[0] / len(samples)
        s.mint_cpu_ms_per_req = 1000 * cpu[1] / len(samples)
    return s


async def timed_batch(
    n: int, conc: int, one: Callable[[int], Awaitable[Sample]], pids: tuple[int, int]
) -> tuple[list[Sample], float, tuple[float, float]]:
    """Run ``one(i)`` for i in 0..n-1 on ``conc`` workers; wall time and CPU seconds of node and mint."""
    samples: list[Sample | None] = [None] * n
    nxt = iter(range(n))

    async def worker() -> None:
        for i in nxt:  # a shared iterator: each index goes to exactly one worker
            try:
                samples[i] = await one(i)
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                samples[i] = Sample(0.0, False, note=f"{type(e).__name__}: {e}"[:200])

    cpu0 = (cpu_seconds(pids[0]), cpu_seconds(pids[1]))
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds(pids[0]) - cpu0[0], cpu_seconds(pids[1]) - cpu0[1])
    return [x for x in samples if x is not None], wall, cpu


# -- requests to the node -----------------------------------------------------------------------------


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stream: bool
) -> Sample:
    """One chat completion, timed from sending until the whole body is read (and to its first byte)."""
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as r:
        if stream:
            first = await r.content.readany()
            t1 = time.perf_counter()
            raw = first + await r.content.read()
        else:
            raw = await r.read()
            t1 = 0.0
        t2 = time.perf_counter()
        status, change, cost = r.status, r.headers.get("X-Cashu"), r.headers.get(COST_HEADER)
    s = Sample((t2 - t0) * 1000, status == 200, ttfb_ms=(t1 - t0) * 1000 if stream else 0.0, status=status)
    if stream and s.ok:  # early change in the headers; the rest (and the cost) in the final usage.cost
        s.early = change
        change, cost = stream_change(raw)
        s.ok = b"[DONE]" in raw
    s.change = change
    s.cost_msat = int(cost) if cost and cost.isdigit() else 0
    if not s.ok:
        s.note = f"HTTP {status}: {raw[:160].decode(errors='replace')}"
    return s


def stream_change(raw: bytes) -> tuple[str | None, str | None]:
    """``usage.cost.x_cashu`` and the cost in msat from the last SSE event that carries a cost."""
    change = cost = None
    for event in raw.split(b"\n\n"):
        line = event.strip()
        if not line.startswith(b"data: {"):
            continue
        obj = orjson.loads(line[6:])
        c = (obj.get("usage") or {}).get("cost")
        if isinstance(c, dict):
            change, cost = c.get("x_cashu"), c.get("msats")
    return change, str(cost) if cost is not None else None


def check_change(samples: list[Sample], token_sat: int, mint_url: str) -> list[str]:
    """Every X-Cashu answer carries change tokens of our mint (a stream: early + final) worth exactly the
    token minus the cost."""
    problems = []
    for i, s in enumerate(samples):
        if not s.ok:
            continue
        parts = [decode_token(t) for t in (s.early, s.change) if t]
        if not parts:
            problems.append(f"#{i}: no change token")
            continue
        want = token_sat - s.cost_msat // 1000
        got = sum(t.amount for t in parts)
        if any(t.mint != mint_url or t.unit != "sat" for t in parts) or got != want:
            problems.append(f"#{i}: change {got} sat in {len(parts)} parts, expected {want} sat")
    return problems


def change_tokens(samples: list[Sample]) -> list[str]:
    """Every change token of the successful samples (a stream's early one too), to redeem them all."""
    return [t for x in samples if x.ok for t in (x.early, x.change) if t]


# -- tokens and the floor (the node's own Cashu client, straight to the mint) ------------------------


async def split_tokens(
    client: MintClient, wallet: TestWallet, mint_url: str, count: int, sat: int
) -> list[list[Proof]]:
    """``count`` groups of proofs worth ``sat`` each: one Nutshell-wallet token of a batch's total,
    swapped at the mint into ``split_amount(sat)`` outputs per group (one swap per batch)."""
    ks = await client.active_keyset("sat")
    ids = await client.keyset_ids()
    fees = await client.fee_ppk_by_keyset()
    per = len(split_amount(sat))
    out: list[list[Proof]] = []
    while len(out) < count:
        k = min(MAX_BATCH // per, count - len(out))
        src = decode_token(await wallet.asend(mint_url, k * sat))
        inputs = resolve_short_keyset_ids(src.proofs, ids)
        if fee_for(inputs, fees):
            raise RuntimeError("the test mint charges input fees; this benchmark expects none")
        groups = [prepare_outputs(split_amount(sat), ks.id) for _ in range(k)]
        flat = [o for g in groups for o in g]
        proofs = unblind_signatures(
            flat, await client.swap(inputs, [o.to_blinded_message() for o in flat]), ks
        )
        out += [proofs[j : j + per] for j in range(0, len(proofs), per)]
    return out


def encode(proofs: list[Proof], mint_url: str, dleq: bool) -> str:
    """A V4 token, without DLEQ proofs unless asked (as Nutshell's ``send`` makes them by default)."""
    return encode_token_v4(Token(mint=mint_url, unit="sat", proofs=proofs), include_dleq=dleq)


async def floor_round(client: MintClient, ks: Keyset, proofs: list[Proof], cost_sat: int) -> Sample:
    """The two swaps of an X-Cashu request, straight to the mint: redeem the token into fresh proofs
    (like the node's redeem), then swap those into the user's change plus the cost (like its refund).
    Only the two ``swap`` calls count; blinding and unblinding (with DLEQ checks) are timed apart."""
    c0 = time.perf_counter()
    amount = sum(p.amount for p in proofs)
    out1 = prepare_outputs(split_amount(amount), ks.id)
    t0 = time.perf_counter()
    sigs1 = await client.swap(proofs, [o.to_blinded_message() for o in out1])
    t1 = time.perf_counter()
    mine = unblind_signatures(out1, sigs1, ks)
    out2: list[PreparedOutput] = prepare_outputs(split_amount(amount - cost_sat), ks.id)
    out2 += prepare_outputs(split_amount(cost_sat), ks.id)
    t2 = time.perf_counter()
    sigs2 = await client.swap(mine, [o.to_blinded_message() for o in out2])
    t3 = time.perf_counter()
    unblind_signatures(out2, sigs2, ks)
    t4 = time.perf_counter()
    swap1, swap2 = (t1 - t0) * 1000, (t3 - t2) * 1000
    crypto = ((t0 - c0) + (t2 - t1) + (t4 - t3)) * 1000
    return Sample(swap1 + swap2, True, parts_ms=(swap1, swap2, crypto))


async def redeem_all(client: MintClient, ks: Keyset, tokens: list[str]) -> int:
    """Swap every change token's proofs for fresh outputs (batched): the mint accepts each as unspent
    and correctly signed, or the swap fails. Returns the sat redeemed."""
    ids = await client.keyset_ids()
    proofs = [p for t in tokens for p in resolve_short_keyset_ids(decode_token(t).proofs, ids)]
    total = 0
    for j in range(0, len(proofs), MAX_BATCH):
        batch = proofs[j : j + MAX_BATCH]
        amount = sum(p.amount for p in batch)
        outs = prepare_outputs(split_amount(amount), ks.id)
        unblind_signatures(outs, await client.swap(batch, [o.to_blinded_message() for o in outs]), ks)
        total += amount
    return total


def node_wallet(db: Path) -> dict[str, Any]:
    """The shape of the node's swaps and the size of its wallet, read from its database (read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        swaps = {
            kind: {"count": n, "inputs_avg": round(i, 2), "outputs_avg": round(o, 2)}
            for kind, n, i, o in con.execute(
                "SELECT kind, count(*), avg(json_array_length(inputs)), avg(json_array_length(outputs)) "
                "FROM swaps GROUP BY kind"
            )
        }
        states = dict(con.execute("SELECT state, count(*) FROM proofs GROUP BY state").fetchall())
    finally:
        con.close()
    return {"swaps": swaps, "proofs_by_state": states}


def node_unspent(db: Path) -> int:
    """How many unspent proofs the node's wallet holds (read-only, outside the timing)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM proofs WHERE state = 'unspent'").fetchone()[0])
    finally:
        con.close()


# -- the measurement ----------------------------------------------------------------------------------


@dataclass
class Stack:
    mint_url: str
    node_url: str
    upstream_root: str
    node_pid: int
    mint_pid: int
    api_key: str
    node_db: Path


async def measure(args: argparse.Namespace, stack: Stack, wallet: TestWallet) -> dict[str, Any]:
    """Make the tokens, then time every series; check the answers and redeem the change afterwards."""
    url = f"{stack.node_url}/v1/chat/completions"
    pids = (stack.node_pid, stack.mint_pid)
    conc: list[int] = args.conc
    n, warm, sat = args.requests, args.warmup, args.token_sat
    json_body = orjson.dumps(request_body(stream=False))
    stream_body = orjson.dumps(request_body(stream=True))
    ctype = {"Content-Type": "application/json"}
    bearer = {**ctype, "Authorization": f"Bearer {stack.api_key}"}
    out: dict[str, Any] = {"series": [], "checks": {}}

    mint_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    )  # as the node's own (routstr.app._pooled_session)
    client_conn = aiohttp.TCPConnector(limit=max(conc), keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=client_conn, timeout=aiohttp.ClientTimeout(total=60))
    try:
        client = MintClient(stack.mint_url, mint_session)
        ks = await client.active_keyset("sat")

        # -- tokens, before any timing
        say(f"making {warm} X-Cashu warm-up tokens of {sat} sat with the Nutshell wallet (send each) ...")
        t0 = time.perf_counter()
        sends: list[float] = []
        nutshell_tokens = []
        for _ in range(warm):
            s0 = time.perf_counter()
            nutshell_tokens.append(await wallet.asend(stack.mint_url, sat))
            sends.append((time.perf_counter() - s0) * 1000)
        n_xc = n * len(conc) + (n + warm if args.stream else 0) + (n if args.profile else 0)
        n_xc += n if args.repeat else 0
        n_floor = n * len(conc) + warm + (n if args.repeat else 0)
        say(
            f"  {warm} sends in {time.perf_counter() - t0:.1f} s "
            f"(p50 {percentile(sends, 50):.0f} ms per token)"
        )
        say(
            f"making {n_xc + n_floor:,} more tokens of {sat} sat: "
            "one wallet send per batch, split at the mint ..."
        )
        t0 = time.perf_counter()
        groups = await split_tokens(client, wallet, stack.mint_url, n_xc + n_floor, sat)
        split_s = time.perf_counter() - t0
        say(f"  done in {split_s:.1f} s")
        xc_tokens = [encode(g, stack.mint_url, args.dleq) for g in groups[:n_xc]]
        floor_groups = groups[n_xc:]
        out["tokens"] = {
            "sat_each": sat,
            "proofs_each": len(split_amount(sat)),
            "dleq_in_tokens": args.dleq,
            "nutshell_send_p50_ms": percentile(sends, 50),
            "split_tokens": len(groups),
            "split_seconds": split_s,
        }
        xc = iter(xc_tokens)
        fl = iter(floor_groups)

        def bearer_one(body: bytes, stream: bool) -> Callable[[int], Awaitable[Sample]]:
            return lambda i: post(session, url, body, bearer, stream)

        def xcashu_one(body: bytes, stream: bool, tokens: list[str]) -> Callable[[int], Awaitable[Sample]]:
            return lambda i: post(session, url, body, {**ctype, "X-Cashu": tokens[i]}, stream)

        def floor_one(groups_: list[list[Proof]]) -> Callable[[int], Awaitable[Sample]]:
            return lambda i: floor_round(client, ks, groups_[i], args.floor_cost_sat)

        # -- warm-up (not in the table): the bearer path, X-Cashu with Nutshell-made tokens, the floor
        http_json("POST", f"{stack.upstream_root}/_fake/reset")
        before = await asyncio.to_thread(balance_info, stack.node_url, stack.api_key)
        bearer_200 = 0
        say(f"warming up ({warm} requests each: bearer, X-Cashu with Nutshell-made tokens, floor) ...")
        sent_200 = 0
        changes: list[str] = []
        warm_out: dict[str, Any] = {}
        for name, one in (
            ("bearer", bearer_one(json_body, False)),
            ("xcashu (Nutshell tokens)", xcashu_one(json_body, False, nutshell_tokens)),
            ("floor", floor_one([next(fl) for _ in range(warm)])),
        ):
            samples, wall, cpu = await timed_batch(warm, 1, one, pids)
            w = summarise(name, 1, samples, wall, cpu)
            warm_out[name] = asdict(w)
            if name != "floor":
                sent_200 += sum(x.status == 200 for x in samples)
            if name == "bearer":
                bearer_200 += sum(x.status == 200 for x in samples)
            if name.startswith("xcashu"):
                changes += change_tokens(samples)
                out["checks"]["warmup_change_problems"] = check_change(samples, sat, stack.mint_url)
            say(f"  {name:26} ok {w.ok}/{w.n}  p50 {w.p50_ms:.2f} ms")
        out["warmup"] = warm_out

        # -- the timed series
        plan: list[tuple[str, int, Callable[[int], Awaitable[Sample]], tuple[str, ...]]] = []
        for c in conc:
            xt = [next(xc) for _ in range(n)]
            fg = [next(fl) for _ in range(n)]
            plan += [
                ("bearer json", c, bearer_one(json_body, False), ()),
                ("X-Cashu json", c, xcashu_one(json_body, False, xt), ()),
                ("floor: two swaps", c, floor_one(fg), ("swap1", "swap2", "client_crypto")),
            ]
        if args.stream:
            xt = [next(xc) for _ in range(n + warm)]
            plan += [
                ("bearer stream (warm-up)", 1, bearer_one(stream_body, True), ()),
                ("X-Cashu stream (warm-up)", 1, xcashu_one(stream_body, True, xt[:warm]), ()),
                ("bearer stream", 1, bearer_one(stream_body, True), ()),
                ("X-Cashu stream", 1, xcashu_one(stream_body, True, xt[warm:]), ()),
            ]
        if args.repeat:  # the same c=1 series again, now that the node's wallet (and the mint's db) grew
            xt = [next(xc) for _ in range(n)]
            fg = [next(fl) for _ in range(n)]
            plan += [
                ("bearer json (end)", 1, bearer_one(json_body, False), ()),
                ("X-Cashu json (end)", 1, xcashu_one(json_body, False, xt), ()),
                ("floor: two swaps (end)", 1, floor_one(fg), ("swap1", "swap2", "client_crypto")),
            ]
        problems: list[str] = []
        for name, c, one, parts in plan:
            count = warm if name.endswith("(warm-up)") else n
            unspent = await asyncio.to_thread(node_unspent, stack.node_db)
            samples, wall, cpu = await timed_batch(count, c, one, pids)
            s = summarise(name, c, samples, wall, cpu, parts)
            s.node_unspent_proofs_at_start = unspent
            if not name.startswith("floor"):
                sent_200 += sum(x.status == 200 for x in samples)
            if name.startswith("bearer"):
                bearer_200 += sum(x.status == 200 for x in samples)
            if name.startswith("X-Cashu"):
                changes += change_tokens(samples)
                problems += [f"{name} c={c} {p}" for p in check_change(samples, sat, stack.mint_url)]
            extra = "".join(f"  {k} {v:.2f}" for k, v in s.parts_p50_ms.items())
            ttfb = f"  TTFB p50 {s.ttfb_p50_ms:.2f} ms" if s.ttfb_p50_ms is not None else ""
            say(
                f"  {name:26} c={c:<2} {s.rps:7.1f} req/s  p50 {s.p50_ms:7.2f} ms  p99 {s.p99_ms:7.2f} ms  "
                f"ok {s.ok}/{s.n}{ttfb}{extra}  node CPU {s.node_cpu_ms_per_req:.2f} ms/req  "
                f"mint CPU {s.mint_cpu_ms_per_req:.2f} ms/req"
            )
            if s.errors:
                say(f"    errors: {s.error_notes}")
            if not name.endswith("(warm-up)"):
                out["series"].append(asdict(s))

        if args.profile:
            out["profile"] = await profile_xcashu(
                args, stack, xcashu_one(json_body, False, [next(xc) for _ in range(n)])
            )
            changes += out["profile"].pop("changes")
            sent_200 += out["profile"]["ok"]

        # -- checks, outside the timing
        out["checks"]["change_problems"] = problems[:20]
        out["checks"]["change_problem_count"] = len(problems)
        say(
            f"redeeming all {len(changes):,} change tokens at the mint, "
            f"{args.redeem_sample} through the Nutshell wallet ..."
        )
        via_wallet = 0
        for tok in changes[: args.redeem_sample]:
            got = await wallet.areceive(tok)
            if got != decode_token(tok).amount:
                problems.append(f"the wallet redeemed {got} sat of a {decode_token(tok).amount} sat change")
            via_wallet += 1
        redeemed = await redeem_all(client, ks, changes[args.redeem_sample :])
        out["checks"]["change_tokens"] = len(changes)
        out["checks"]["change_redeemed_by_nutshell_wallet"] = via_wallet
        out["checks"]["change_redeemed_by_batch_swap_sat"] = redeemed
        await asyncio.sleep(0.5)
        _, stats = http_json("GET", f"{stack.upstream_root}/_fake/stats")
        served = int(stats["by_path"].get("/v1/chat/completions", 0)) if isinstance(stats, dict) else -1
        after = await asyncio.to_thread(balance_info, stack.node_url, stack.api_key)
        out["checks"]["answered_200"] = sent_200
        out["checks"]["upstream_served"] = served
        out["checks"]["bearer_answered_200"] = bearer_200
        out["checks"]["bearer_billed"] = int(after["total_requests"]) - int(before["total_requests"])
        out["checks"]["bearer_reserved_after"] = int(after["reserved"])
        out["node_wallet"] = await asyncio.to_thread(node_wallet, stack.node_db)
    finally:
        await session.close()
        await mint_session.close()
    return out


async def profile_xcashu(
    args: argparse.Namespace, stack: Stack, one: Callable[[int], Awaitable[Sample]]
) -> dict[str, Any]:
    """py-spy (``--gil``) on the node during an extra sequential X-Cashu run (not in the table)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    conc = args.profile_concurrency
    raw = args.profile / f"node-xcashu-c{conc}.collapsed.txt"
    cmd = ["record", "--gil", "-r", "500", "--format", "raw", "-o", str(raw), "--pid", str(stack.node_pid)]
    spy = await asyncio.create_subprocess_exec(
        pyspy, *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(1.0)  # py-spy attaches
        samples, wall, cpu = await timed_batch(args.requests, conc, one, (stack.node_pid, stack.mint_pid))
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            _, err = await asyncio.wait_for(spy.communicate(), 30)
        except TimeoutError:
            spy.kill()
            _, err = await spy.communicate()
    s = summarise("X-Cashu json (profiled)", conc, samples, wall, cpu)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')}")
    spots = hotspots(raw)
    say(
        f"  profiled X-Cashu c=1: p50 {s.p50_ms:.2f} ms; top self: "
        + ", ".join(f"{f} {p}%" for f, p in spots["self_pct"][:6])
    )
    return {
        "raw": str(raw),
        "p50_ms": s.p50_ms,
        "ok": sum(x.status == 200 for x in samples),
        "changes": [x.change for x in samples if x.ok and x.change],
        **spots,
    }


# -- report -------------------------------------------------------------------------------------------


def find(results: dict[str, Any], name: str, c: int) -> dict[str, Any] | None:
    return next((s for s in results["series"] if s["name"] == name and s["concurrency"] == c), None)


def derive(results: dict[str, Any]) -> list[dict[str, Any]]:
    """X-Cashu overhead (X-Cashu p50 - bearer p50) against the floor (two swaps p50), per concurrency."""
    rows = []
    runs = [(c, "") for c in results["meta"]["concurrency"]] + [(1, " (end)")]
    for c, end in runs:
        b, x, f = (find(results, k + end, c) for k in ("bearer json", "X-Cashu json", "floor: two swaps"))
        if not (b and x and f):
            continue
        over = x["p50_ms"] - b["p50_ms"]
        rows.append(
            {
                "what": f"json, c={c}{', repeated at the end' if end else ''}",
                "overhead_p50_ms": over,
                "floor_p50_ms": f["p50_ms"],
                "above_floor_ms": over - f["p50_ms"],
                "floor_share": f["p50_ms"] / over if over > 0 else float("nan"),
                "node_cpu_ms_per_req_extra": x["node_cpu_ms_per_req"] - b["node_cpu_ms_per_req"],
            }
        )
    bs, xs, f1 = (
        find(results, "bearer stream", 1),
        find(results, "X-Cashu stream", 1),
        find(results, "floor: two swaps", 1),
    )
    if bs and xs and f1:
        over = xs["p50_ms"] - bs["p50_ms"]
        rows.append(
            {
                "what": "stream, c=1 (whole stream)",
                "overhead_p50_ms": over,
                "floor_p50_ms": f1["p50_ms"],
                "above_floor_ms": over - f1["p50_ms"],
                "floor_share": f1["p50_ms"] / over if over > 0 else float("nan"),
                "node_cpu_ms_per_req_extra": xs["node_cpu_ms_per_req"] - bs["node_cpu_ms_per_req"],
            }
        )
        if xs["ttfb_p50_ms"] is not None and bs["ttfb_p50_ms"] is not None:
            over = xs["ttfb_p50_ms"] - bs["ttfb_p50_ms"]
            one = f1["parts_p50_ms"]["swap1"]
            rows.append(
                {
                    "what": "stream, c=1, TTFB (one swap before the first byte)",
                    "overhead_p50_ms": over,
                    "floor_p50_ms": one,
                    "above_floor_ms": over - one,
                    "floor_share": one / over if over > 0 else float("nan"),
                    "node_cpu_ms_per_req_extra": None,
                }
            )
    return rows


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    tok = results["tokens"]
    lines = [
        f"routstr X-Cashu benchmark — {meta['date']} — {meta['nproc']} cores, {meta['cpu']}, Python "
        f"{meta['python']}, aiohttp {meta['aiohttp']}, node at commit {meta['git_commit']}"
        + (" (+ uncommitted changes under routstr/)" if meta["routstr_uncommitted"] else ""),
        f"{meta['requests']} requests per series, client on uvloop over kept-alive connections; tokens of "
        f"{tok['sat_each']} sat ({tok['proofs_each']} proofs, DLEQ "
        f"{'in' if tok['dleq_in_tokens'] else 'not in'} the token), made before timing. "
        f"Load average before/after: {meta['loadavg_before']} / "
        f"{meta['loadavg_after']}.",
        "",
        "| series | c | ok | req/s | p50 ms | p90 ms | p99 ms | TTFB p50 ms "
        "| node CPU ms/req | mint CPU ms/req | node's proofs at start |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in results["series"]:
        ttfb = f"{s['ttfb_p50_ms']:.2f}" if s["ttfb_p50_ms"] is not None else ""
        lines.append(
            f"| {s['name']} | {s['concurrency']} | {s['ok']}/{s['n']} | {s['rps']:,.0f} | "
            f"{s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | {ttfb} | "
            f"{s['node_cpu_ms_per_req']:.2f} | {s['mint_cpu_ms_per_req']:.2f} | "
            f"{s['node_unspent_proofs_at_start']:,} |"
        )
    floors = [s for s in results["series"] if s["parts_p50_ms"]]
    if floors:
        lines += ["", "| floor, c | swap 1 (redeem) p50 ms | swap 2 (change) p50 ms | client crypto p50 ms |"]
        lines.append("|---|--:|--:|--:|")
        for s in floors:
            p = s["parts_p50_ms"]
            lines.append(
                f"| {s['concurrency']} | {p['swap1']:.2f} | {p['swap2']:.2f} | {p['client_crypto']:.2f} |"
            )
    lines += [
        "",
        "| compared | X-Cashu overhead p50 | floor p50 | above the floor | floor / overhead "
        "| extra node CPU ms/req |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in results["derived"]:
        cpu = f"{r['node_cpu_ms_per_req_extra']:.2f}" if r["node_cpu_ms_per_req_extra"] is not None else ""
        lines.append(
            f"| {r['what']} | {r['overhead_p50_ms']:.2f} ms | {r['floor_p50_ms']:.2f} ms | "
            f"{r['above_floor_ms']:.2f} ms | {100 * r['floor_share']:.0f}% | {cpu} |"
        )
    ch = results["checks"]
    lines += [
        "",
        f"Checks: {ch['answered_200']} answers 200, the upstream served {ch['upstream_served']} chat "
        f"completions; the bearer key was billed for {ch['bearer_billed']} requests "
        f"({ch['bearer_answered_200']} answered 200, {ch['bearer_reserved_after']} msat still reserved); "
        f"{ch['change_tokens']} change tokens, {ch['change_problem_count']} with a wrong amount or none; "
        f"all redeemed at the mint ({ch['change_redeemed_by_nutshell_wallet']} through the Nutshell "
        f"wallet, the rest ({ch['change_redeemed_by_batch_swap_sat']:,} sat) in batched swaps).",
    ]
    wallet = results.get("node_wallet") or {}
    shapes = "; ".join(
        f"{kind} {v['count']} × {v['inputs_avg']:.1f} inputs → {v['outputs_avg']:.1f} outputs"
        for kind, v in wallet.get("swaps", {}).items()
    )
    if shapes:
        lines += [
            "",
            f"The node's swaps (averages): {shapes}. Its proofs at the end: {wallet['proofs_by_state']}.",
        ]
    drift = ", ".join(
        f"{s['name']} c={s['concurrency']} {s['p50_first_third_ms']:.1f} → {s['p50_last_third_ms']:.1f}"
        for s in results["series"]
        if s["ok"]
    )
    lines += ["", f"p50 ms of the first third of each series → of its last third: {drift}."]
    return "\n".join(lines)


def machine_meta(load_before: list[float]) -> dict[str, Any]:
    """What ran where: as bench/run.py's, without wrk."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )

    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", *cmd], capture_output=True, text=True, cwd=BENCH.parent, check=False
        ).stdout

    dirty = git("status", "--porcelain", "--", "routstr").split("\n")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "git_commit": git("rev-parse", "--short", "HEAD").strip(),
        "routstr_uncommitted": [line[3:] for line in dirty if line.strip()],
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


# -- processes ----------------------------------------------------------------------------------------


def start_stack(tmp: Path, procs: Processes, mint: NutshellMint, wallet: TestWallet) -> Stack:
    """Mint, fake upstream and node as bench/run.py starts them (one provider); one funded sk- key."""
    py = sys.executable
    say("starting the test mint (the first run builds its virtualenv, ~1 min) ...")
    mint_url = mint.start(timeout=60)
    up_port, node_port = free_port(), free_port()
    upstream_base = f"http://{HOST}:{up_port}/v1"
    env = clean_env(PYTHONUNBUFFERED="1")
    up = procs.spawn(
        "upstream",
        [py, "-m", "routstr.devtools.fake_upstream", "--port", str(up_port), "--hide-failure-models"],
        env,
        tmp,
    )
    wait_http(procs, "upstream", up, f"{upstream_base}/models", 30)
    pricing = tmp / "pricing.toml"
    pricing.write_text(PRICING)
    node_env = clean_env(
        PYTHONUNBUFFERED="1",
        # the limiter runs (its cost is measured) with limits one key at c=50 never reaches
        RATE_LIMIT_REQUESTS_PER_MINUTE="100000000",
        RATE_LIMIT_TOKENS_PER_HOUR="100000000000",
        RATE_LIMIT_CONCURRENT="100000",
        XCASHU_LIMIT_PER_ADDRESS="0",  # every X-Cashu request here comes from one address
        XCASHU_LIMIT_TOTAL="0",
        UPSTREAM_BASE_URL=upstream_base,
        UPSTREAM_API_KEY="sk-bench-upstream",
        CASHU_MINTS=mint_url,
        DATABASE_URL=f"sqlite:///{tmp / 'node.sqlite3'}",
        BTC_USD_PRICE="100000",
        PRICING_FILE=str(pricing),
        HOST=HOST,
        PORT=str(node_port),
    )
    routstr_bin = Path(py).parent / "routstr"
    node_cmd = [str(routstr_bin), "serve"] if routstr_bin.exists() else [py, "-m", "routstr", "serve"]
    node = procs.spawn("node", node_cmd, node_env, tmp)  # cwd=tmp: no stray ./.env is read
    node_url = f"http://{HOST}:{node_port}"
    wait_http(procs, "node", node, f"{node_url}/v1/info", 60)
    say(f"funding a key with real eCash from {mint_url} ...")
    wallet.start()
    api_key, info = fund_key(wallet, mint_url, node_url)
    say(f"  {api_key[:7]}… holds {info['balance']:,} msat")
    assert mint.pid is not None
    db = tmp / "node.sqlite3"
    return Stack(mint_url, node_url, f"http://{HOST}:{up_port}", node.pid, mint.pid, api_key, db)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=300, help="requests (and tokens) per series (default 300)")
    p.add_argument("--concurrency", default="1,8", help="comma-separated concurrencies (default 1,8)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up requests per kind (default 20)")
    p.add_argument("--token-sat", type=int, default=20, help="value of each X-Cashu token (default 20 sat)")
    p.add_argument(
        "--floor-cost-sat", type=int, default=1, help="what the floor's 2nd swap keeps (default 1)"
    )
    p.add_argument("--no-stream", dest="stream", action="store_false", help="skip the streamed series")
    p.add_argument(
        "--no-repeat",
        dest="repeat",
        action="store_false",
        help="skip the c=1 json series repeated at the end",
    )
    p.add_argument("--dleq", action="store_true", help="keep the mint's DLEQ proofs in the tokens (NUT-12)")
    p.add_argument(
        "--redeem-sample", type=int, default=5, help="change tokens redeemed by the Nutshell wallet"
    )
    p.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the node during an extra X-Cashu run")
    p.add_argument("--profile-concurrency", type=int, default=1, help="concurrency of the profiled run")
    p.add_argument("--output", type=Path, default=RESULTS, help="raw results JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = p.parse_args(argv)
    args.conc = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.conc or min(args.conc) < 1 or args.requests < 1 or args.warmup < 1:
        p.error("--requests, --warmup and --concurrency must be whole numbers >= 1")
    if not 1 <= args.floor_cost_sat < args.token_sat:
        p.error("--floor-cost-sat must be at least 1 and below --token-sat")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="routstr-xcashu-"))
    procs = Processes(tmp)
    mint = NutshellMint("bench", workdir=tmp / "mint")
    wallet = TestWallet(tmp / "wallet")
    keep = args.keep
    load_before = loadavg()
    if load_before and load_before[0] > 0.5:
        say(f"warning: the machine is busy before the run (load average {load_before}); figures will suffer")
    try:
        stack = start_stack(tmp, procs, mint, wallet)
        results = run_async(measure(args, stack, wallet))
    except KeyboardInterrupt:
        say("xcashu: interrupted; stopping everything")
        return 130
    except BaseException:
        keep = True
        raise
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            wallet.close()
        with contextlib.suppress(Exception):
            mint.stop()
        if keep:
            say(f"xcashu: logs and databases kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = machine_meta(load_before)
    results["meta"] = {**meta, "requests": args.requests, "concurrency": args.conc, "warmup": args.warmup}
    results["derived"] = derive(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results), flush=True)
    say(f"\nraw results: {args.output}")
    ch = results["checks"]
    failed = ch["change_problem_count"] or any(s["errors"] for s in results["series"])
    failed = failed or ch["answered_200"] != ch["upstream_served"]
    if failed:
        say("xcashu: some requests failed or a check did not hold (see 'Checks'); exit status 1")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
