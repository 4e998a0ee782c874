"""A real Nutshell (PyPI ``cashu``) mint on loopback, for tests and the demo.

Nutshell pins old FastAPI/httpx/cryptography and changes process-wide state on import
(``sys.tracebacklimit = 0``), so it never enters the node's interpreter: it lives in its own venv
(:func:`ensure_nutshell_venv`) and runs as a subprocess (:class:`NutshellMint`). Its Lightning
backend is FakeWallet, which needs no Lightning node and pays every invoice at once.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

NUTSHELL_VERSION = "0.20.2"
# 0.20.3+ need a breez-sdk-spark release that no longer exists; without marshmallow<4 cashu fails on
# import and without limits<5 the mint does not start.
NUTSHELL_REQUIREMENTS: tuple[str, ...] = (f"cashu=={NUTSHELL_VERSION}", "marshmallow<4", "limits<5")
_MARKER = ".routstr-nutshell-ready"

# Loopback must never go through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def cache_dir() -> Path:
    """``$ROUTSTR_CACHE_DIR`` or ``~/.cache/routstr``: shared by test runs, so the venv is built once."""
    env = os.environ.get("ROUTSTR_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "routstr"


def nutshell_venv_dir() -> Path:
    return cache_dir() / f"nutshell-{NUTSHELL_VERSION}"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _is_ready(venv: Path) -> bool:
    try:
        marker = (venv / _MARKER).read_text()
    except OSError:
        return False
    return marker == "\n".join(NUTSHELL_REQUIREMENTS) and _venv_python(venv).exists()


def ensure_nutshell_venv() -> Path:
    """Build the Nutshell venv once (~16 s) and return its python.

    A ``flock`` serialises concurrent builders (parallel test runs); the marker is written last, so a
    venv left half-built by a crash is thrown away and rebuilt.
    """
    venv = nutshell_venv_dir()
    if _is_ready(venv):
        return _venv_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(venv):  # another process built it while we waited
            return _venv_python(venv)
        if venv.exists():
            shutil.rmtree(venv)
        print(f"routstr: building Nutshell {NUTSHELL_VERSION} venv in {venv} (~1 min, once)", file=sys.stderr)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(_venv_python(venv)), "-m", "pip", "install", "--quiet", *NUTSHELL_REQUIREMENTS],
            [str(_venv_python(venv)), "-c", "import cashu.wallet.helpers, cashu.mint.ledger, uvicorn"],
        ]
        for cmd in steps:
            res = subprocess.run(
                cmd, capture_output=True, text=True, cwd=venv.parent, env=clean_env(), check=False
            )
            if res.returncode != 0:
                tail = (res.stdout + res.stderr)[-3000:]
                raise RuntimeError(f"building the Nutshell venv failed: {' '.join(cmd)}\n{tail}")
        (venv / _MARKER).write_text("\n".join(NUTSHELL_REQUIREMENTS))
    return _venv_python(venv)


def free_port() -> int:
    """A port that was free a moment ago (the usual small race is handled by a retry in start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**overrides: str) -> dict[str, str]:
    """The parent's env without anything cashu reads, so a developer's shell cannot change a test."""
    drop = ("MINT_", "FAKEWALLET_", "CASHU_", "WALLET_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    for k in ("DEBUG", "TOR", "SOCKS_HOST", "SOCKS_PORT", "SOCKS_PROXY", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(k, None)
        env.pop(k.lower(), None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(overrides)
    return env


def _http_ok(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2) as r:
            return int(r.status) == 200
    except (OSError, urllib.error.URLError):
        return False


class NutshellMint:
    """One Nutshell mint process with a FakeWallet backend on 127.0.0.1.

    ``stop()`` keeps the workdir and port, so ``start()`` again brings back the same keys and database
    ("mint down, then back"). Leaving the context manager also deletes a workdir this object created.
    """

    def __init__(
        self,
        name: str = "mint",
        input_fee_ppk: int = 0,
        workdir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
        units: tuple[str, ...] = ("sat",),
    ) -> None:
        self.name = name
        self.units = units
        self.input_fee_ppk = input_fee_ppk
        self.extra_env = dict(extra_env or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"nutshell-{name}-"))
        self.log_path = self.workdir / "mint.log"
        self.port: int | None = port  # None: a free port at first start, then kept for restarts
        self.url = ""
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def env(self, port: int) -> dict[str, str]:
        """The mint's environment, as in shared/testing/cashu_mint_demo.py."""
        db = self.workdir / "db"
        env = clean_env(
            MINT_BACKEND_BOLT11_SAT="FakeWallet",
            MINT_PRIVATE_KEY=f"test-only-seed-{self.name}",  # same key -> same keysets
            MINT_LISTEN_HOST="127.0.0.1",
            MINT_LISTEN_PORT=str(port),
            MINT_DATABASE=str(db),  # a directory: mint.sqlite3 is created inside
            MINT_AUTH_DATABASE=str(db),
            CASHU_DIR=str(self.workdir / "cashu"),
            MINT_INPUT_FEE_PPK=str(self.input_fee_ppk),  # Nutshell's default is 100
            MINT_RATE_LIMIT="FALSE",
            FAKEWALLET_DELAY_INCOMING_PAYMENT="0",
            FAKEWALLET_DELAY_OUTGOING_PAYMENT="0",
            LOG_LEVEL="INFO",
        )
        extra = [u for u in self.units if u != "sat"]
        for unit in extra:  # a FakeWallet backend and a keyset per extra unit (its index in the path)
            env[f"MINT_BACKEND_BOLT11_{unit.upper()}"] = "FakeWallet"
        if extra:
            env["MINT_DERIVATION_PATH_LIST"] = json.dumps([f"m/0'/{_UNIT_INDEX[u]}'/0'" for u in extra])
        env.update(self.extra_env)  # e.g. FAKEWALLET_PAY_INVOICE_STATE=FAILED for failure paths
        return env

    def start(self, timeout: float = 30) -> str:
        """Start the mint (building the venv if needed) and return its URL once it answers."""
        if self.running:
            return self.url
        python = ensure_nutshell_venv()
        for attempt in range(3):
            fixed = self.port is not None
            port = self.port if self.port is not None else free_port()
            try:
                self._spawn(python, port, timeout)
                self.port = port
                return self.url
            except RuntimeError as e:
                # A port grabbed by someone else between free_port() and bind: try another one.
                if fixed or attempt == 2 or "address already in use" not in str(e).lower():
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, python: Path, port: int, timeout: float) -> None:
        for d in ("db", "cashu", "cwd"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        log: IO[bytes] = open(self.log_path, "ab")  # closed below, once the child has it
        offset = log.tell()
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                [str(python), "-m", "cashu.mint", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env(port),
                cwd=self.workdir / "cwd",  # cashu reads ./.env: keep cwd empty
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self._proc, self.pid = proc, proc.pid
        _LIVE[proc.pid] = proc
        url = f"http://127.0.0.1:{port}"
        while not (_http_ok(url + "/v1/info") and _http_ok(url + "/v1/keys")):
            if proc.poll() is not None:
                self._forget()
                raise RuntimeError(f"mint {self.name} exited rc={proc.returncode}:\n{self.log_tail(offset)}")
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"mint {self.name} not ready in {timeout}s:\n{self.log_tail(offset)}")
            time.sleep(0.05)
        self.url = url

    def log_tail(self, offset: int = 0, chars: int = 3000) -> str:
        try:
            data = self.log_path.read_bytes()[offset:]
        except OSError:
            return ""
        return data.decode(errors="replace")[-chars:]

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the mint's process group (it exits in ~0.1 s), SIGKILL if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL without a clean shutdown: a crash, for tests."""
        if self._proc is not None and self._proc.poll() is None:
            _killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._forget()

    def _forget(self) -> None:
        if self._proc is not None:
            _LIVE.pop(self._proc.pid, None)
        self._proc = None
        self.pid = None

    def cleanup(self) -> None:
        """Stop, and delete the workdir if this object made it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"NutshellMint(name={self.name!r}, url={self.url!r}, pid={self.pid})"


_UNIT_INDEX = {"sat": 0, "msat": 1, "usd": 2, "eur": 3}  # Nutshell reads a keyset's unit from its path


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@atexit.register
def _kill_leftovers() -> None:
    """A test run that dies without stopping its mints must not leave them serving."""
    for proc in list(_LIVE.values()):
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGKILL)
