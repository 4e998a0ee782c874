"""A real ``routstr serve`` process for the crash tests: started with a failpoint armed, killed there,
restarted on the same database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from routstr.billing.pipeline import WRITE_OFF
from routstr.devtools.nutshell import free_port


class NodeProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, failpoint: str = "") -> None:
        env = {**os.environ, **self.env, "PORT": str(self.port), "ROUTSTR_FAILPOINT": failpoint}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "routstr", "serve", "--env-file", ""],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        import urllib.request

        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url + "/v1/info", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait_killed(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        written_off = [line for line in self._log_text().splitlines() if WRITE_OFF in line]
        assert not written_off, f"the node wrote costs off: {written_off}"

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def post_dies(http: aiohttp.ClientSession, url: str, **kw: object) -> None:
    with pytest.raises(aiohttp.ClientError):
        async with http.post(url, **kw) as r:  # type: ignore[arg-type]
            await r.read()


async def balance_of(http: aiohttp.ClientSession, node: NodeProcess, token: str) -> dict[str, int]:
    async with http.get(node.url + "/v1/balance/info", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]


async def routstr_cli(node: NodeProcess, *args: str, failpoint: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **node.env, "ROUTSTR_FAILPOINT": failpoint}
    cmd = [sys.executable, "-m", "routstr", *args, "--env-file", ""]
    return await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)


async def assert_audit_passes(node: NodeProcess) -> None:
    done = await routstr_cli(node, "audit")
    assert done.returncode == 0, done.stderr
