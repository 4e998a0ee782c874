"""Real Nostr parts for the discovery tests, installed by the tests themselves on first use:

- a relay: PyPI's ``nostr-relay`` (Python; it checks every event's signature before storing it), in a
  venv of its own under the test cache (its FastAPI-era dependencies must not meet the node's), run
  on a loopback port with an SQLite file in the test's directory;
- ``nostr-tools`` from npm (with ``ws``: Node 20 has no WebSocket client of its own), installed in the
  test cache, never in the repository, to read the announcement back and check it independently.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from routstr.devtools.nutshell import cache_dir, clean_env, free_port

# 1.14 runs its schema migrations, then serves; these pins are the versions it was tested with here
RELAY_REQUIREMENTS = ("nostr-relay==1.14", "uvicorn==0.55.0", "websockets==17.4", "sqlalchemy==2.1.9")
NPM_PACKAGES = ("nostr-tools@2.25.2", "ws@8.23.1")
SCRIPT = Path(__file__).with_name("fetch_announcement.mjs")


def _ready(directory: Path, marker: str, wanted: str) -> bool:
    try:
        return (directory / marker).read_text() == wanted
    except OSError:
        return False


def _build_once(directory: Path, wanted: str, steps: list[list[str]], what: str) -> None:
    """Run ``steps`` in a fresh ``directory`` unless it was built with ``wanted`` already; a flock
    serialises parallel test runs, and the marker written last throws away half-built ones."""
    marker = ".routstr-ready"
    if _ready(directory, marker, wanted):
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(directory, marker, wanted):
            return
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        print(f"routstr tests: installing {what} into {directory} (once)", file=sys.stderr)
        for cmd in steps:
            res = subprocess.run(
                cmd, capture_output=True, text=True, cwd=directory, env=clean_env(), timeout=600
            )
            if res.returncode != 0:
                raise RuntimeError(
                    f"installing {what} failed: {' '.join(cmd)}\n{(res.stdout + res.stderr)[-3000:]}"
                )
        (directory / marker).write_text(wanted)


def relay_venv() -> Path:
    venv = cache_dir() / "nostr-relay-1.14"
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", *RELAY_REQUIREMENTS],
        [str(python), "-c", "import nostr_relay.web, uvicorn"],
    ]
    _build_once(venv, "\n".join(RELAY_REQUIREMENTS), steps, "the nostr-relay venv")
    return venv


def nostr_tools_dir() -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the discovery tests need Node.js 20+ and npm (apt-get install nodejs npm)")
    directory = cache_dir() / "npm-nostr-tools-2.25.2"
    steps = [
        [npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund", "--silent", *NPM_PACKAGES]
    ]
    _build_once(directory, "\n".join(NPM_PACKAGES), steps, "nostr-tools from npm")
    return directory


def fetch_announcements(relay_url: str, pubkey_hex: str) -> list[dict[str, Any]]:
    """The author's kind-38421 events on the relay, each as {event, verified, npub} from nostr-tools."""
    directory = nostr_tools_dir()
    script = directory / SCRIPT.name  # beside node_modules, where Node resolves the imports
    tmp = script.with_name(f".{script.name}.{os.getpid()}")
    tmp.write_text(SCRIPT.read_text())
    os.replace(tmp, script)  # whole, also while a parallel run reads it
    node = shutil.which("node") or "node"
    res = subprocess.run(
        [node, str(script), relay_url, pubkey_hex],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out: list[dict[str, Any]] = json.loads(res.stdout)
    return out


class Relay:
    """``nostr-relay`` on a loopback port, storing into ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.log = workdir / "relay.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        venv = relay_venv()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "relay.yaml"
        config.write_text(
            json.dumps(  # YAML is a superset of JSON
                {
                    "DEBUG": False,
                    "relay_name": "routstr test relay",
                    "storage": {
                        "sqlalchemy.url": f"sqlite+aiosqlite:///{self.workdir / 'relay.sqlite3'}",
                        "validators": ["nostr_relay.validators.is_signed"],
                    },
                    "gunicorn": {"bind": f"127.0.0.1:{self.port}", "workers": 1, "loglevel": "warning"},
                    "authentication": {"enabled": False},
                }
            )
        )
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / "nostr-relay"), "-c", str(config), "serve", "--use-uvicorn"],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
