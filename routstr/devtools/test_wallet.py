"""A real Cashu wallet for tests: mints, sends, receives and checks tokens at a real (Nutshell) mint.

The wallet is Nutshell's, run in its own venv as a long-lived subprocess
(``nutshell_wallet_worker.py``, spoken to in JSON lines), so ``cashu`` never enters the node's
interpreter and a token costs ~0.1 s instead of the ~0.7 s of a process per token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

import orjson

from routstr.devtools.nutshell import clean_env, ensure_nutshell_venv

WORKER_SCRIPT = Path(__file__).with_name("nutshell_wallet_worker.py")


class WalletWorkerError(RuntimeError):
    """The worker answered an error (e.g. a spent token: the message carries the mint's code 11001)."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class TestWallet:
    """Client of one wallet worker process; one Nutshell wallet per mint URL inside it.

    Calls are serialised: the worker runs one command at a time, which is also what keeps concurrent
    sends from picking the same proofs. Safe to use from several threads and from asyncio.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, workdir: Path | None = None, timeout: float = 60) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="routstr-testwallet-"))
        self.log_path = self.workdir / "worker.log"
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._reader: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> Self:
        """Start the worker (building the Nutshell venv if needed) and wait until cashu is imported."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        python = ensure_nutshell_venv()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log: IO[bytes] = open(self.log_path, "ab")  # the child keeps its own copy
        try:
            self._proc = subprocess.Popen(
                [str(python), str(WORKER_SCRIPT), str(self.workdir)],
                env=clean_env(CASHU_DIR=str(self.workdir / "cashu")),
                cwd=self.workdir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        self._reader = threading.Thread(target=self._read_loop, args=(self._proc,), daemon=True)
        self._reader.start()
        try:
            self._call({"cmd": "ping"}, timeout=timeout)
        except Exception:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close stdin (the worker exits on EOF), then terminate it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def cleanup(self) -> None:
        self.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    # -- protocol ------------------------------------------------------------------------------------

    def _read_loop(self, proc: subprocess.Popen[bytes]) -> None:
        """Route each answer line to the future waiting for its id; on EOF fail whatever is pending."""
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            fut = self._pending.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        err = WalletWorkerError(f"wallet worker exited (rc={proc.poll()}):\n{self.log_tail()}", "WorkerDied")
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()

    def _submit(self, req: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise WalletWorkerError("wallet worker is not running (call start())", "NotStarted")
        fut: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            req_id = next(self._ids)
            self._pending[req_id] = fut
            try:
                proc.stdin.write(orjson.dumps({"id": req_id, **req}) + b"\n")
                proc.stdin.flush()
            except OSError as e:
                self._pending.pop(req_id, None)
                raise WalletWorkerError(
                    f"wallet worker pipe broken: {e}\n{self.log_tail()}", "WorkerDied"
                ) from e
        return fut

    @staticmethod
    def _unwrap(msg: dict[str, Any]) -> dict[str, Any]:
        if "error" in msg:
            raise WalletWorkerError(str(msg["error"]), str(msg.get("type", "")))
        return msg

    def _call(self, req: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        fut = self._submit(req)
        return self._unwrap(fut.result(timeout=timeout or self.timeout))

    async def _acall(self, req: dict[str, Any]) -> dict[str, Any]:
        """Await the answer without blocking the loop; the worker serialises the commands."""
        fut = await asyncio.to_thread(self._submit, req)
        msg = await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout)
        return self._unwrap(msg)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_bytes().decode(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- sync API ------------------------------------------------------------------------------------

    def mint(self, mint_url: str, amount: int) -> int:
        """Fund the wallet with ``amount`` sat (NUT-04 via FakeWallet); returns the new balance."""
        return int(self._call({"cmd": "mint", "mint_url": mint_url, "amount": amount})["balance"])

    def send(
        self,
        mint_url: str,
        amount: int,
        legacy: bool = False,
        include_dleq: bool = False,
        memo: str | None = None,
        unit: str = "sat",
    ) -> str:
        """A fresh token worth exactly ``amount`` of ``unit``: V4 ``cashuB…``, or V3 ``cashuA…`` if
        ``legacy``.

        Mints more first when the balance is short. At a mint with input fees the receiver nets less.
        """
        return str(self._call(_send_req(mint_url, amount, legacy, include_dleq, memo, unit))["token"])

    def receive(self, token: str) -> int:
        """Redeem ``token`` into this wallet (NUT-03 swap); returns the amount kept after fees."""
        return int(self._call({"cmd": "receive", "token": token})["amount"])

    def check(self, token: str) -> list[str]:
        """NUT-07 state of each proof: ``"UNSPENT"``, ``"SPENT"`` or ``"PENDING"``."""
        return [str(s) for s in cast(list[Any], self._call({"cmd": "check", "token": token})["states"])]

    def balance(self, mint_url: str) -> int:
        return int(self._call({"cmd": "balance", "mint_url": mint_url})["balance"])

    # -- async API -----------------------------------------------------------------------------------

    async def amint(self, mint_url: str, amount: int) -> int:
        return int((await self._acall({"cmd": "mint", "mint_url": mint_url, "amount": amount}))["balance"])

    async def asend(
        self,
        mint_url: str,
        amount: int,
        legacy: bool = False,
        include_dleq: bool = False,
        memo: str | None = None,
        unit: str = "sat",
    ) -> str:
        req = _send_req(mint_url, amount, legacy, include_dleq, memo, unit)
        return str((await self._acall(req))["token"])

    async def areceive(self, token: str) -> int:
        return int((await self._acall({"cmd": "receive", "token": token}))["amount"])

    async def acheck(self, token: str) -> list[str]:
        states = (await self._acall({"cmd": "check", "token": token}))["states"]
        return [str(s) for s in cast(list[Any], states)]

    async def abalance(self, mint_url: str) -> int:
        return int((await self._acall({"cmd": "balance", "mint_url": mint_url}))["balance"])


def _send_req(
    mint_url: str, amount: int, legacy: bool, include_dleq: bool, memo: str | None, unit: str = "sat"
) -> dict[str, Any]:
    """A send command; ``include_dleq`` keeps the mint's DLEQ proofs in the token (NUT-12)."""
    req: dict[str, Any] = {"cmd": "send", "mint_url": mint_url, "amount": amount, "legacy": legacy}
    if unit != "sat":
        req["unit"] = unit
    if include_dleq:
        req["include_dleq"] = True
    if memo is not None:
        req["memo"] = memo
    return req
