"""``routstr serve --workers N``: N node processes sharing one port (SO_REUSEPORT) and one database.

The supervisor brings the schema up to date, makes or checks the node secret (so the workers find one
file, not a race to create it) and finishes swaps a crash left pending while no worker runs yet (so
none of them can be in flight), then starts the workers and restarts any that dies.
SIGTERM or Ctrl-C stops them all. Money state is only in the database; background jobs that move
money run in one worker at a time (leases, see ``routstr.jobs``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import aiohttp

from routstr.config import WORKER_ENV, Settings
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.node_secret import load_node_secret
from routstr.wallet.mints import MintRegistry
from routstr.wallet.recovery import recover_pending

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0


async def prepare(settings: Settings) -> dict[str, int]:
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        await load_node_secret(db, settings)  # created (or moved out of the database) once, checked
        async with aiohttp.ClientSession() as session:
            mints = MintRegistry(settings.cashu_mints, session, settings.mint_timeout_s)
            return await recover_pending(db, mints, min_age_s=0)
    finally:
        await db.close()


def _spawn(env_file: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, WORKER_ENV: "1"}  # read into Settings.worker by the worker's load_settings
    cmd = [sys.executable, "-m", "routstr", "serve", "--reuse-port", "--env-file", env_file]
    return subprocess.Popen(cmd, env=env)


def supervise(settings: Settings, workers: int, env_file: str) -> int:
    counts = asyncio.run(prepare(settings))
    if counts:
        log.info("start-up recovery before the workers: %s", counts)
    procs = [_spawn(env_file) for _ in range(workers)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"routstr supervising {workers} workers on http://{settings.host}:{settings.port}", flush=True)
    while not stopping:
        time.sleep(0.2)
        for i, p in enumerate(procs):
            if p.poll() is not None and not stopping:
                log.warning("worker %d exited with %s; restarting it", p.pid, p.returncode)
                time.sleep(RESTART_PAUSE_S)
                procs[i] = _spawn(env_file)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    return 0
