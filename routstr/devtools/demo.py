"""``routstr demo``: a complete node on loopback for a newcomer's first minutes.

Starts a real Cashu test mint (Nutshell, FakeWallet: invoices pay themselves), the fake LLM
upstream and the node, mints a funded token, and prints what to paste and the dashboard's password.
Ctrl-C stops all of it.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from routstr.app import create_app
from routstr.config import load_settings
from routstr.devtools.fake_upstream import start_fake_upstream
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet

DEMO_PRICING = """
[default]
prompt_sats_per_mtok = 1000
completion_sats_per_mtok = 3000

[models."gpt-4o-mini"]
prompt_usd_per_mtok = 0.15
completion_usd_per_mtok = 0.60

[models."claude-haiku-4-5"]
prompt_usd_per_mtok = 1
completion_usd_per_mtok = 5
"""
# any claude-* id (Claude Code asks for its current default Opus model) is served as claude-haiku-4-5;
# the fake upstream is an OpenAI-type provider, so /v1/messages is translated to chat completions (the
# fake's own Anthropic route refuses the mid-conversation "system" messages Claude Code now sends)
DEMO_PROVIDERS = """
[aliases]
"claude-*" = "claude-haiku-4-5"
"""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _instructions(node_url: str, mint_url: str, token: str, amount: int, password: str) -> str:
    return f"""
routstr demo is running
  node          {node_url}   (docs: {node_url}/docs)
  dashboard     {node_url}/admin/   (password: {password})
  test mint     {mint_url}   (Nutshell + FakeWallet)
  fake upstream serves models gpt-4o-mini, gpt-4o, llama-3.1-8b, claude-haiku-4-5 (also as claude-*)

A Cashu token worth {amount} sat, usable as an API key:

{token}

curl:
  curl {node_url}/v1/chat/completions \\
    -H "Authorization: Bearer {token}" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Python (pip install openai):
  from openai import OpenAI
  client = OpenAI(base_url="{node_url}/v1", api_key="{token}")
  r = client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "Hello!"}}])
  print(r.choices[0].message.content, r.usage)

Claude Code (npm i -g @anthropic-ai/claude-code), its default model served through the alias:
  ANTHROPIC_BASE_URL={node_url} ANTHROPIC_AUTH_TOKEN={token} claude

Balance:  curl {node_url}/v1/balance/info -H "Authorization: Bearer <token>"
Refund:   curl -X POST {node_url}/v1/balance/refund -H "Authorization: Bearer <token>"

Ctrl-C stops the node, the mint and the upstream.
"""


async def _run(port: int, amount: int, workdir: Path) -> None:
    mint = NutshellMint("demo", workdir=workdir / "mint")
    wallet = TestWallet(workdir / "wallet")
    runners: list[web.AppRunner] = []
    try:
        _say("starting the test mint (the first run builds its virtualenv, about a minute) ...")
        mint_url = await asyncio.to_thread(mint.start)
        up_runner, upstream_url = await start_fake_upstream(include_failure_models=False)
        runners.append(up_runner)
        pricing = workdir / "pricing.toml"
        pricing.write_text(DEMO_PRICING)
        providers = workdir / "providers.toml"
        providers.write_text(DEMO_PROVIDERS)
        password = secrets.token_urlsafe(12)  # a fresh node each run: a fresh password, printed below
        settings = load_settings(
            {
                "UPSTREAM_BASE_URL": upstream_url,
                "PROVIDERS_FILE": str(providers),
                "CASHU_MINTS": mint_url,
                "DATABASE_URL": f"sqlite:///{workdir / 'node.sqlite3'}",
                "BTC_USD_PRICE": "100000",
                "PRICING_FILE": str(pricing),
                "NAME": "routstr demo node",
                "ADMIN_PASSWORD": password,
                "PORT": str(port),
            },
            env_file=None,
        )
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        _say("minting a demo token ...")
        await asyncio.to_thread(wallet.start)
        token = await asyncio.to_thread(wallet.send, mint_url, amount)
        _say(_instructions(f"http://127.0.0.1:{port}", mint_url, token, amount, password))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        _say("stopping ...")
        for r in reversed(runners):
            await r.cleanup()
        await asyncio.to_thread(wallet.close)
        await asyncio.to_thread(mint.stop)


def run_demo(port: int = 8000, amount: int = 1000) -> int:
    with tempfile.TemporaryDirectory(prefix="routstr-demo-") as tmp:
        try:
            asyncio.run(_run(port, amount, Path(tmp)))
        except OSError as e:
            print(f"routstr demo: {e}", file=sys.stderr)
            return 1
    return 0
