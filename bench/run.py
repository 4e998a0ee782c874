#!/usr/bin/env python3
"""The routstr benchmark: one command, ``python bench/run.py`` (or ``python3 tasks.py bench``).

Starts a real Cashu test mint (Nutshell + FakeWallet), the fake OpenAI upstream, the node (``routstr
serve``, SQLite in a temp dir) and the bare aiohttp relay (``bench/bare_relay.py``), each in its own
process; funds one sk- key with real eCash; warms up; then measures with wrk, for each target
(upstream direct, bare relay, node with full billing), requests/s and p50/p99 latency at
concurrency 1, 10 and 50, non-streaming and streaming; plus time to first byte of a stream at c=1,
the node's peak RSS, and that the node billed every request. Prints a Markdown table and writes the
raw results to ``bench/results/latest.json``. Every process it starts is stopped at the end, also
on Ctrl-C or an error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import aiohttp

from routstr.devtools.nutshell import NutshellMint, clean_env, free_port
from routstr.devtools.test_wallet import TestWallet, WalletWorkerError

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "latest.json"
HOST = "127.0.0.1"
MODEL = "gpt-4o-mini"
MAX_TOKENS = 64
PROMPT = "Summarise in one sentence why a relay in front of an LLM provider should add almost no latency."
FUND_SAT = 2_000_000
FUND_CHUNK_SAT = 200_000
PRICING = """
[default]
prompt_sats_per_mtok = 1000
completion_sats_per_mtok = 3000
"""
TARGET_NAMES = {"upstream": "upstream direct", "relay": "bare aiohttp relay", "node": "node (full billing)"}
GOAL_RPS_C50 = 1500.0
GOAL_ADDED_P50_MS = 1.0
GOAL_ADDED_TTFB_MS = 1.5
GOAL_RSS_MIB = 120.0

T = TypeVar("T")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- processes ----------------------------------------------------------------------------------------


class Processes:
    """Child processes, each in its own session (a Ctrl-C reaches us, not them); stopped in reverse."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        log: IO[bytes] = open(self.logdir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, chars: int = 2000) -> str:
        try:
            return (self.logdir / f"{name}.log").read_bytes().decode(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop_all(self) -> None:
        while self.procs:
            name, proc = self.procs.pop()
            if proc.poll() is not None:
                continue
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                say(f"{name} (pid {proc.pid}) did not stop on SIGTERM; killing it")
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    # each child leads its own process group (start_new_session), so this reaches only what we started
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            return int(r.status), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def wait_http(procs: Processes, name: str, proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited rc={proc.returncode}:\n{procs.log_tail(name)}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if http_json("GET", url, timeout=2)[0] == 200:
                return
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s:\n{procs.log_tail(name)}")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a process in KiB, from /proc/PID/status."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key + "_kib"] = int(rest.split()[0])
    return out


# -- wrk --------------------------------------------------------------------------------------------

# wrk's done() hook prints the exact percentiles as one JSON line (latency in microseconds).
LUA_TEMPLATE = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d," ..
    "\\"p99_us\\":%d,\\"mean_us\\":%.1f,\\"max_us\\":%d,\\"status\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"timeout\\":%d}}\\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass
class Point:
    """One wrk run."""

    target: str
    stream: bool
    connections: int
    threads: int
    duration_s: float
    rps: float = 0.0
    requests: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    server_cpu_pct: float = 0.0  # CPU of the target's server process during the run (100 = one core)
    server_cpu_ms_per_req: float = 0.0
    warmup: bool = False

    @property
    def ok(self) -> int:
        return max(self.requests - self.non_2xx - sum(self.socket_errors.values()), 0)


def request_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def write_lua(path: Path, stream: bool, api_key: str | None) -> Path:
    body = json.dumps(request_body(stream), separators=(",", ":"))
    auth = f'wrk.headers["Authorization"] = "Bearer {api_key}"' if api_key else ""
    path.write_text(LUA_TEMPLATE.format(body=body, auth=auth))
    return path


def run_wrk(
    url: str, script: Path, target: str, stream: bool, conns: int, duration: int, server_pid: int
) -> Point:
    threads = 1 if conns == 1 else 2
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    cpu, wall = cpu_seconds(server_pid) - cpu0, time.monotonic() - t0
    out = res.stdout
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed (rc={res.returncode}): {' '.join(cmd)}\n{out}\n{res.stderr}")
    raw = json.loads(m.group(1))
    p = Point(target, stream, conns, threads, duration)
    p.requests = int(raw["requests"])
    p.rps = p.requests / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0
    if rps := re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M):
        p.rps = float(rps.group(1))
    p.p50_ms, p.p90_ms, p.p99_ms = (raw[k] / 1000 for k in ("p50_us", "p90_us", "p99_us"))
    p.mean_ms, p.max_ms = raw["mean_us"] / 1000, raw["max_us"] / 1000
    # wrk prints "Non-2xx or 3xx responses: N" only when there were some; parse it (and cross-check)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p.non_2xx = int(non2xx.group(1)) if non2xx else 0
    if p.non_2xx != int(raw["status"]):
        say(f"  note: wrk printed {p.non_2xx} non-2xx but its summary counted {raw['status']}")
        p.non_2xx = max(p.non_2xx, int(raw["status"]))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        p.socket_errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
    p.server_cpu_pct = 100 * cpu / wall if wall > 0 else 0.0
    p.server_cpu_ms_per_req = 1000 * cpu / p.requests if p.requests else 0.0
    return p


# -- time to first byte -------------------------------------------------------------------------------


@dataclass
class Ttfb:
    target: str
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    full_p50_ms: float
    errors: int


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    idx = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[idx]


async def measure_ttfb(target: str, url: str, api_key: str | None, n: int, warm: int) -> tuple[Ttfb, int]:
    """Sequential streamed requests over one kept-alive connection: time to the first body byte (the
    first SSE event) and to the end. Returns the summary and the number of requests answered 200."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = json.dumps(request_body(stream=True)).encode()
    first: list[float] = []
    full: list[float] = []
    errors = ok = 0
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(warm + n):
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                chunk = await r.content.readany()
                t1 = time.perf_counter()
                rest = await r.content.read()
                t2 = time.perf_counter()
                good = r.status == 200 and bool(chunk) and b"[DONE]" in (chunk + rest)
            ok += r.status == 200
            if i < warm:
                continue
            if not good:
                errors += 1
                continue
            first.append((t1 - t0) * 1000)
            full.append((t2 - t0) * 1000)
    if not first:
        raise RuntimeError(f"TTFB against {target}: every request failed")
    summary = Ttfb(
        target,
        len(first),
        percentile(first, 50),
        percentile(first, 99),
        statistics.fmean(first),
        percentile(full, 50),
        errors,
    )
    return summary, ok


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run the TTFB client on uvloop when it is installed (less client overhead in the figure)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- funding ------------------------------------------------------------------------------------------


def fund_key(wallet: TestWallet, mint_url: str, node: str) -> tuple[str, dict[str, Any]]:
    """Mint real eCash at the test mint and turn it into an sk- key (topping it up if minted in parts)."""
    try:
        tokens = [wallet.send(mint_url, FUND_SAT)]
    except WalletWorkerError as e:
        say(f"  one {FUND_SAT} sat token failed ({e}); minting {FUND_CHUNK_SAT} sat tokens instead")
        tokens = [wallet.send(mint_url, FUND_CHUNK_SAT) for _ in range(FUND_SAT // FUND_CHUNK_SAT)]
    status, answer = http_json("POST", f"{node}/v1/balance/create", {"cashu_token": tokens[0]}, timeout=60)
    if status != 201 or not isinstance(answer, dict) or "api_key" not in answer:
        raise RuntimeError(f"/v1/balance/create answered {status}: {answer}")
    api_key = str(answer["api_key"])
    auth = {"Authorization": f"Bearer {api_key}"}
    for token in tokens[1:]:
        status, answer = http_json(
            "POST", f"{node}/v1/balance/topup", {"cashu_token": token}, headers=auth, timeout=60
        )
        if status != 200:
            raise RuntimeError(f"/v1/balance/topup answered {status}: {answer}")
    return api_key, balance_info(node, api_key)


def balance_info(node: str, api_key: str) -> dict[str, Any]:
    status, info = http_json("GET", f"{node}/v1/balance/info", headers={"Authorization": f"Bearer {api_key}"})
    if status != 200 or not isinstance(info, dict):
        raise RuntimeError(f"/v1/balance/info answered {status}: {info}")
    return info


# -- py-spy (optional) --------------------------------------------------------------------------------


def profile_node(
    pid: int, url: str, script: Path, duration: int, out_dir: Path, stream: bool
) -> tuple[Point, dict[str, Any]]:
    """Record the node with py-spy during an extra c=50 run (not part of the table)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"node-c50-{'stream' if stream else 'json'}.collapsed.txt"
    secs, rate = max(int(duration) - 2, 2), 200
    # --gil: only samples of the thread holding the GIL, i.e. where the interpreter spends CPU
    # (without it this VM's idle waits -- epoll, queue.get of the aiosqlite thread -- fill the profile)
    cmd = [pyspy, "record", "--gil", "-d", str(secs), "-r", str(rate), "--format", "raw"]
    spy = subprocess.Popen(
        [*cmd, "-o", str(raw), "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        point = run_wrk(url, script, "node", stream, 50, duration, pid)
    finally:
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')}")
    point.warmup = True  # not in the table: py-spy takes CPU from the same two cores
    info: dict[str, Any] = {
        "rps_while_profiled": point.rps,
        "mode": "stream" if stream else "json",
        "raw": str(raw),
        **hotspots(raw),
    }
    info["gil_busy_pct"] = round(100 * info["samples"] / (secs * rate), 1)
    return point, info


def hotspots(collapsed: Path, top: int = 20) -> dict[str, Any]:
    """Self share of samples per function, inclusive share of the node's own functions, and where the
    stacks start, from py-spy's collapsed stacks (``frame;frame;... count`` per line).

    SQLAlchemy's async layer runs each statement in a greenlet; py-spy shows those stacks detached
    from the request that awaits them, rooted at e.g. ``Connection.execute``: counted as "greenlet".
    """
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    roots: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.strip().rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f.strip()]
        if not frames:
            roots["no Python frame"] = roots.get("no Python frame", 0) + n
            own["<no Python frame>"] = own.get("<no Python frame>", 0) + n
            continue
        root = frames[0]
        kind = (
            "event loop (main thread)"
            if root.startswith("<module>")
            else "other threads"
            if "threading.py" in root
            else "greenlet (SQLAlchemy statements)"
        )
        roots[kind] = roots.get(kind, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n

    def ranked(d: dict[str, int], k: int = top) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in sorted(d.items(), key=lambda kv: -kv[1])[:k]]

    # inclusive share of the node's own functions: where its request path spends the CPU
    ours = {f: c for f, c in incl.items() if "(routstr/" in f and "(routstr/cli.py)" not in f}
    sqla = sum(c for f, c in own.items() if "(sqlalchemy/" in f)
    return {
        "samples": total,
        "roots_pct": ranked(roots),
        "sqlalchemy_self_pct": round(100 * sqla / total, 1) if total else 0.0,
        "self_pct": ranked(own),
        "routstr_inclusive_pct": ranked(ours),
    }


# -- report -------------------------------------------------------------------------------------------


def fmt(v: float, digits: int = 2) -> str:
    return f"{v:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"routstr benchmark — {meta['date']} — {meta['nproc']} cores, {meta['cpu']}, "
        f"Python {meta['python']}, aiohttp {meta['aiohttp']}, {meta['wrk']}, "
        f"node at commit {meta['git_commit']}, {meta.get('providers', 1)} provider(s) configured, "
        f"{meta.get('database', 'sqlite')}, {meta.get('workers', 1)} worker(s)"
        + (
            f" plus uncommitted changes to {', '.join(meta['routstr_uncommitted'])}"
            if meta["routstr_uncommitted"]
            else ""
        ),
        f"wrk {meta['duration_s']:g} s per point (-t1 at c=1, -t2 otherwise); load generator, node, relay "
        "and fake upstream share the same cores; server CPU is that of the process wrk talks to. "
        f"Load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']}.",
        "",
        "| target | mode | c | req/s | p50 ms | p99 ms | non-2xx | socket err | server CPU | CPU ms/req |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in results["points"]:
        lines.append(
            f"| {TARGET_NAMES[p['target']]} | {'stream' if p['stream'] else 'json'} | {p['connections']} "
            f"| {fmt(p['rps'], 0)} | {fmt(p['p50_ms'], 3)} | {fmt(p['p99_ms'], 3)} | {p['non_2xx']} "
            f"| {sum(p['socket_errors'].values())} | {p['server_cpu_pct']:.0f}% "
            f"| {p['server_cpu_ms_per_req']:.2f} |"
        )
    lines += [
        "",
        f"Streaming time to first byte, c=1, {results['ttfb_requests']} sequential requests per target:",
        "",
        "| target | TTFB p50 ms | TTFB p99 ms | full stream p50 ms | errors |",
        "|---|--:|--:|--:|--:|",
    ]
    for t in results["ttfb"].values():
        lines.append(
            f"| {TARGET_NAMES[t['target']]} | {fmt(t['p50_ms'], 3)} | {fmt(t['p99_ms'], 3)} "
            f"| {fmt(t['full_p50_ms'], 3)} | {t['errors']} |"
        )
    a, rss, bill, goals = results["added"], results["rss"], results["billing"], results["goals"]
    lines += [
        "",
        "| added at c=1 (vs upstream direct) | bare relay | node |",
        "|---|--:|--:|",
        *(
            f"| {label} | {fmt(a['relay'][k], 3)} ms | {fmt(a['node'][k], 3)} ms |"
            for label, k in (
                ("p50, json", "json_p50_ms"),
                ("p50, stream", "stream_p50_ms"),
                ("TTFB p50, stream", "ttfb_p50_ms"),
            )
        ),
        "",
        f"Peak RSS (VmHWM) after the runs: node {fmt(rss['node']['VmHWM_kib'] / 1024, 1)} MiB, "
        f"bare relay {fmt(rss['relay']['VmHWM_kib'] / 1024, 1)} MiB, "
        f"fake upstream {fmt(rss['upstream']['VmHWM_kib'] / 1024, 1)} MiB.",
        "",
        f"Billing: total_requests grew by {bill['total_requests_delta']}; the fake upstream served "
        f"{bill['upstream_served']} chat completions in the node's phase; the load generator saw "
        f"{bill['ok_requests_sent']} answered 2xx (+{bill['extra']} cut off in flight when wrk stopped, at "
        f"most {bill['max_in_flight']}); {bill['non_2xx']} non-2xx and "
        f"{bill['socket_errors']} socket errors against the node; spent {bill['spent_msat']:,} msat. "
        + (
            "Every success was billed. "
            if bill["all_successes_billed"]
            else "MISMATCH: the successes seen and total_requests disagree. "
        )
        + (
            "Every forwarded request was settled."
            if bill["all_forwarded_settled"]
            else f"NOT SETTLED: {bill['unsettled']} forwarded request(s) never settled; "
            f"{bill['reserved_msat_after']:,} msat still reserved at the end (see the node's log)."
        ),
        "",
        "| goal | target | measured | |",
        "|---|--:|--:|---|",
    ]
    for g in goals:
        lines.append(
            f"| {g['goal']} | {g['target']} | {g['measured']} | {'met' if g['met'] else 'NOT met'} |"
        )
    prof = results.get("profile")
    if prof:
        lines += [
            "",
            f"py-spy --gil on the node during an extra c=50 {prof.get('mode', 'json')} run "
            f"({fmt(prof['rps_while_profiled'], 0)} "
            f"req/s while profiled; GIL held in {prof['gil_busy_pct']}% of samples). Where the samples' "
            "stacks start: "
            + ", ".join(f"{k} {v}%" for k, v in prof["roots_pct"])
            + f"; self time inside SQLAlchemy {prof['sqlalchemy_self_pct']}%.",
            "",
            "| self % | function | | incl. % | routstr function |",
            "|--:|---|---|--:|---|",
        ]
        for (f1, p1), (f2, p2) in zip(
            prof["self_pct"][:15], prof["routstr_inclusive_pct"][:15], strict=False
        ):
            lines.append(f"| {p1} | `{f1}` | | {p2} | `{f2}` |")
    return "\n".join(lines)


def machine_meta(duration: int, load_before: list[float]) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout.strip()
    # the node's code as measured: uncommitted changes under routstr/ make the commit id insufficient
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "routstr"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout.split("\n")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "wrk": " ".join(wrk_v.split()[:2]) or "wrk",
        "git_commit": commit,
        "routstr_uncommitted": [line[3:] for line in dirty if line.strip()],
        "duration_s": duration,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


# -- main ---------------------------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=8, help="whole seconds per wrk point (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="whole seconds of warm-up per target and mode")
    p.add_argument("--concurrency", default="1,10,50", help="comma-separated connection counts")
    p.add_argument("--ttfb-requests", type=int, default=300, help="sequential TTFB requests per target")
    p.add_argument("--output", type=Path, default=RESULTS, help="raw results JSON")
    p.add_argument(
        "--profile", type=Path, metavar="DIR", help="also py-spy the node during an extra c=50 run"
    )
    p.add_argument(
        "--profile-mode", choices=("json", "stream"), default="json", help="what the profiled run sends"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    p.add_argument(
        "--providers",
        type=int,
        default=1,
        choices=(1, 2),
        help="2: configure a second provider (a dearer one on the same fake upstream) so routing runs too",
    )
    p.add_argument(
        "--database-url",
        help="the node's database (default: SQLite in the temp dir); e.g. a scratch PostgreSQL database",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="routstr serve --workers N (CPU and RSS columns then cover the supervisor process only)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        say("bench: wrk is not installed (apt-get install wrk)")
        return 2
    conc = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.duration < 1 or args.warmup < 1 or not conc or min(conc) < 1:
        say("bench: --duration, --warmup and --concurrency must be whole numbers >= 1")
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="routstr-bench-"))
    procs = Processes(tmp)
    mint = NutshellMint("bench", workdir=tmp / "mint")
    wallet = TestWallet(tmp / "wallet")
    failed = True
    try:
        results = run(args, conc, tmp, procs, mint, wallet)
        failed = not results["billing"]["ok"]  # keep the node's log and database to look into it
    except KeyboardInterrupt:
        say("bench: interrupted; stopping everything")
        failed = False
        return 130
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            wallet.close()
        with contextlib.suppress(Exception):
            mint.stop()
        if failed or args.keep:
            say(f"bench: logs and databases kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results), flush=True)
    say(f"\nraw results: {args.output}")
    if not results["billing"]["ok"]:
        say("bench: the billing check failed (see 'Billing' above); exit status 1")
        return 1
    return 0


def run(
    args: argparse.Namespace,
    conc: list[int],
    tmp: Path,
    procs: Processes,
    mint: NutshellMint,
    wallet: TestWallet,
) -> dict[str, Any]:
    py = sys.executable
    load_before = loadavg()
    if load_before and load_before[0] > 0.5:
        say(f"warning: the machine is busy before the run (load average {load_before}); figures will suffer")
    say("starting the test mint (the first run builds its virtualenv, ~1 min) ...")
    mint_url = mint.start(timeout=60)

    up_port, node_port, relay_port = free_port(), free_port(), free_port()
    upstream_base = f"http://{HOST}:{up_port}/v1"
    env = clean_env(PYTHONUNBUFFERED="1")
    up = procs.spawn(
        "upstream",
        [py, "-m", "routstr.devtools.fake_upstream", "--port", str(up_port), "--hide-failure-models"],
        env,
        tmp,
    )
    wait_http(procs, "upstream", up, f"{upstream_base}/models", 30)
    relay = procs.spawn(
        "relay",
        [py, str(BENCH / "bare_relay.py"), "--port", str(relay_port), "--upstream", upstream_base],
        env,
        tmp,
    )
    pricing = tmp / "pricing.toml"
    pricing.write_text(PRICING)
    node_env = clean_env(
        PYTHONUNBUFFERED="1",
        # the limiter runs (its cost is measured) with limits one key at c=50 never reaches
        RATE_LIMIT_REQUESTS_PER_MINUTE="100000000",
        RATE_LIMIT_TOKENS_PER_HOUR="100000000000",
        RATE_LIMIT_CONCURRENT="100000",
        UPSTREAM_BASE_URL=upstream_base,
        UPSTREAM_API_KEY="sk-bench-upstream",
        CASHU_MINTS=mint_url,
        DATABASE_URL=args.database_url or f"sqlite:///{tmp / 'node.sqlite3'}",
        BTC_USD_PRICE="100000",
        PRICING_FILE=str(pricing),
        HOST=HOST,
        PORT=str(node_port),
    )
    routstr_bin = Path(py).parent / "routstr"
    if args.providers == 2:
        providers = tmp / "providers.toml"
        providers.write_text(
            f'[[providers]]\nname = "second"\nbase_url = "{upstream_base}"\n'
            'api_key = "sk-bench-upstream"\nfee = 0.1\n'
        )
        node_env["PROVIDERS_FILE"] = str(providers)
    node_cmd = [str(routstr_bin), "serve"] if routstr_bin.exists() else [py, "-m", "routstr", "serve"]
    if args.workers > 1:
        node_cmd += ["--workers", str(args.workers), "--env-file", ""]
    node = procs.spawn("node", node_cmd, node_env, tmp)  # cwd=tmp: no stray ./.env is read
    node_url = f"http://{HOST}:{node_port}"
    wait_http(procs, "node", node, f"{node_url}/v1/info", 60)
    # the relay answers only POSTs: a GET on its route is a 405, which is enough to know it listens
    t0 = time.monotonic()
    while True:
        try:
            http_json("GET", f"http://{HOST}:{relay_port}/v1/chat/completions", timeout=2)
            break
        except (OSError, urllib.error.URLError):
            if relay.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError(f"bare relay did not start:\n{procs.log_tail('relay')}") from None
            time.sleep(0.1)

    say(f"funding a key with {FUND_SAT:,} sat of real eCash from {mint_url} ...")
    wallet.start()
    api_key, before = fund_key(wallet, mint_url, node_url)
    say(f"  {api_key[:7]}… holds {before['balance']:,} msat")

    urls = {
        "upstream": f"{upstream_base}/chat/completions",
        "relay": f"http://{HOST}:{relay_port}/v1/chat/completions",
        "node": f"{node_url}/v1/chat/completions",
    }
    servers = {"upstream": up, "relay": relay, "node": node}
    scripts: dict[tuple[str, bool], Path] = {}
    for target in urls:
        for stream in (False, True):
            key = api_key if target == "node" else None
            name = f"{target}-{'stream' if stream else 'json'}.lua"
            scripts[target, stream] = write_lua(tmp / name, stream, key)

    node_points: list[Point] = []
    points: list[Point] = []
    ttfb: dict[str, Ttfb] = {}
    ttfb_node_ok = 0
    upstream_root = f"http://{HOST}:{up_port}"
    for target in urls:  # the node comes last: the fake upstream's counters then cover only its phase
        if target == "node":
            http_json("POST", f"{upstream_root}/_fake/reset")
        pid = servers[target].pid
        for stream in (False, True):
            say(f"warming up {target} {'stream' if stream else 'json'} ({args.warmup:g} s, c=50) ...")
            w = run_wrk(urls[target], scripts[target, stream], target, stream, 50, args.warmup, pid)
            w.warmup = True
            if target == "node":
                node_points.append(w)
            for c in conc:
                p = run_wrk(urls[target], scripts[target, stream], target, stream, c, args.duration, pid)
                say(
                    f"  {target:8} {'stream' if stream else 'json':6} c={c:<3} {p.rps:9,.0f} req/s  "
                    f"p50 {p.p50_ms:7.3f} ms  p99 {p.p99_ms:7.3f} ms  non-2xx {p.non_2xx}  "
                    f"server CPU {p.server_cpu_pct:3.0f}% ({p.server_cpu_ms_per_req:.2f} ms/req)"
                )
                points.append(p)
                if target == "node":
                    node_points.append(p)
        key = api_key if target == "node" else None
        t, ok = run_async(measure_ttfb(target, urls[target], key, args.ttfb_requests, warm=20))
        ttfb[target] = t
        if target == "node":
            ttfb_node_ok = ok
        say(
            f"  {target:8} streaming TTFB at c=1 over {t.n} requests: p50 {t.p50_ms:.3f} ms  "
            f"p99 {t.p99_ms:.3f} ms  errors {t.errors}"
        )

    profile: dict[str, Any] | None = None
    if args.profile:
        stream = args.profile_mode == "stream"
        say(f"py-spy on the node during an extra c=50 {args.profile_mode} run ({args.duration:g} s) ...")
        prof_script = scripts["node", stream]
        prof_point, profile = profile_node(
            node.pid, urls["node"], prof_script, args.duration, args.profile, stream
        )
        node_points.append(prof_point)
        top = ", ".join(f"{f} {pct}%" for f, pct in profile["self_pct"][:8])
        say(f"  {prof_point.rps:,.0f} req/s while profiled; top self time: {top}")

    rss = {name: proc_status(p.pid) for name, p in (("node", node), ("relay", relay), ("upstream", up))}
    time.sleep(1.0)  # let requests cut off by wrk's stop finish settling
    after = balance_info(node_url, api_key)
    _, stats = http_json("GET", f"{upstream_root}/_fake/stats")
    forwarded = int(stats["by_path"].get("/v1/chat/completions", 0)) if isinstance(stats, dict) else -1

    # Every request the node forwarded must be billed exactly once: total_requests grows by what the
    # upstream served during the node's phase. That is also at least what the load generator saw
    # answered 2xx, plus at most one request per connection that wrk abandoned in flight when it
    # stopped (the node still completes and bills those).
    ok_sent = sum(p.ok for p in node_points) + ttfb_node_ok
    max_in_flight = sum(p.connections for p in node_points)
    delta = int(after["total_requests"]) - int(before["total_requests"])
    billing = {
        "total_requests_before": before["total_requests"],
        "total_requests_after": after["total_requests"],
        "total_requests_delta": delta,
        "upstream_served": forwarded,
        "ok_requests_sent": ok_sent,
        "extra": delta - ok_sent,
        "max_in_flight": max_in_flight,
        "non_2xx": sum(p.non_2xx for p in node_points),
        "socket_errors": sum(sum(p.socket_errors.values()) for p in node_points),
        "spent_msat": int(after["total_spent"]) - int(before["total_spent"]),
        "balance_msat_after": after["balance"],
        "reserved_msat_after": after["reserved"],
    }
    # (a) everything the load generator saw succeed was billed (and nothing billed twice)
    billing["all_successes_billed"] = ok_sent <= delta <= ok_sent + max_in_flight
    # (b) every request the node forwarded was settled: no reservation left held at the end
    billing["unsettled"] = forwarded - delta
    billing["all_forwarded_settled"] = delta == forwarded and int(after["reserved"]) == 0
    billing["ok"] = billing["all_successes_billed"] and billing["all_forwarded_settled"]

    def p50(target: str, stream: bool) -> float:
        for p in points:
            if p.target == target and p.stream == stream and p.connections == 1:
                return p.p50_ms
        return float("nan")

    added = {
        t: {
            "json_p50_ms": p50(t, False) - p50("upstream", False),
            "stream_p50_ms": p50(t, True) - p50("upstream", True),
            "ttfb_p50_ms": ttfb[t].p50_ms - ttfb["upstream"].p50_ms,
        }
        for t in ("relay", "node")
    }
    c50 = next((p for p in points if p.target == "node" and not p.stream and p.connections == 50), None)
    c50s = next((p for p in points if p.target == "node" and p.stream and p.connections == 50), None)
    node_rss_mib = rss["node"].get("VmHWM_kib", 0) / 1024
    goals = [
        {
            "goal": "node req/s at c=50, json",
            "target": f"> {GOAL_RPS_C50:,.0f}",
            "measured": f"{c50.rps:,.0f}" if c50 else "n/a",
            "met": bool(c50 and c50.rps > GOAL_RPS_C50),
        },
        {
            "goal": "node req/s at c=50, stream",
            "target": f"> {GOAL_RPS_C50:,.0f}",
            "measured": f"{c50s.rps:,.0f}" if c50s else "n/a",
            "met": bool(c50s and c50s.rps > GOAL_RPS_C50),
        },
        {
            "goal": "added p50 at c=1, json",
            "target": f"< {GOAL_ADDED_P50_MS} ms",
            "measured": f"{added['node']['json_p50_ms']:.3f} ms",
            "met": added["node"]["json_p50_ms"] < GOAL_ADDED_P50_MS,
        },
        {
            "goal": "added streaming TTFB p50 at c=1",
            "target": f"< {GOAL_ADDED_TTFB_MS} ms",
            "measured": f"{added['node']['ttfb_p50_ms']:.3f} ms",
            "met": added["node"]["ttfb_p50_ms"] < GOAL_ADDED_TTFB_MS,
        },
        {
            "goal": "node peak RSS",
            "target": f"< {GOAL_RSS_MIB:.0f} MiB",
            "measured": f"{node_rss_mib:.1f} MiB",
            "met": 0 < node_rss_mib < GOAL_RSS_MIB,
        },
    ]
    return {
        "meta": {
            **machine_meta(args.duration, load_before),
            "providers": args.providers,
            "database": "postgresql" if (args.database_url or "").startswith("postgres") else "sqlite",
            "workers": args.workers,
        },
        "request": {"model": MODEL, "max_tokens": MAX_TOKENS, "prompt": PROMPT},
        "urls": urls,
        "points": [asdict(p) for p in points],
        "warmups_and_node_runs": [asdict(p) for p in node_points],
        "ttfb_requests": args.ttfb_requests,
        "ttfb": {t: asdict(v) for t, v in ttfb.items()},
        "added": added,
        "rss": rss,
        "billing": billing,
        "goals": goals,
        "profile": profile,
    }


if __name__ == "__main__":
    sys.exit(main())
