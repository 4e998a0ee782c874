"""cashu-ts, the wallet routstr-sdk's clients use, as the tests' wallet: installed from npm by the test
itself into the test cache (never into the repository), run as one long-lived Node.js process
(``cashu_ts_wallet.mjs``) spoken to in JSON lines.

Version 4 is asked for explicitly: on Node 20 a plain ``npm i @cashu/cashu-ts`` resolves to 2.5.3,
which cannot load a Nutshell 0.20 mint's keysets (../shared/testing/CLIENTS.md).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from pathlib import Path
from typing import Any, Self

import orjson
import pytest

from routstr.devtools.nutshell import cache_dir, clean_env
from tests.discovery.support import _build_once

CASHU_TS = "@cashu/cashu-ts@4.13.0"
SCRIPT = Path(__file__).with_name("cashu_ts_wallet.mjs")


class CashuTsError(RuntimeError):
    """cashu-ts refused (e.g. the mint says the proofs are already spent)."""


def cashu_ts_dir() -> Path:
    """The npm prefix holding cashu-ts, installed once per machine (a marker names the version)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("the compat tests need Node.js 20+ and npm (apt-get install nodejs npm)")
        pytest.skip("Node.js/npm are not installed (CI installs them)")
    directory = cache_dir() / f"npm-cashu-ts-{CASHU_TS.rsplit('@', 1)[1]}"
    steps = [[npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund", "--silent", CASHU_TS]]
    _build_once(directory, CASHU_TS, steps, "cashu-ts from npm")
    return directory


class CashuTs:
    """The client of one ``cashu_ts_wallet.mjs`` process: one command at a time, in this event loop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def start(self) -> Self:
        script = self.directory / SCRIPT.name  # beside node_modules, where Node resolves the import
        tmp = script.with_name(f".{script.name}.{os.getpid()}")
        tmp.write_text(SCRIPT.read_text())
        os.replace(tmp, script)  # whole, also while a parallel run reads it
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node",
            str(script),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=clean_env(),
            cwd=self.directory,
            limit=16 * 1024 * 1024,
        )
        await self.call("ping")
        return self

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            request_id = next(self._ids)
            self.proc.stdin.write(orjson.dumps({"id": request_id, "cmd": cmd, **args}) + b"\n")
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line, "the cashu-ts worker died"
        answer: dict[str, Any] = orjson.loads(line)
        assert answer["id"] == request_id, answer
        if not answer["ok"]:
            raise CashuTsError(answer["error"])
        return answer

    async def send(self, mint: str, amount: int, unit: str = "sat") -> str:
        """A token of exactly ``amount`` (what ``walletAdapter.sendToken`` hands the SDK)."""
        answer = await self.call("send", mint=mint, unit=unit, amount=amount)
        assert answer["amount"] == amount
        return str(answer["token"])

    async def receive(self, token: str) -> int:
        """``walletAdapter.receiveToken``: the token swapped at its mint; its amount, in its unit."""
        return int((await self.call("receive", token=token))["amount"])

    async def metadata(self, token: str) -> dict[str, Any]:
        return await self.call("metadata", token=token)
