"""What the adversarial tests share: the prices they sell at, a real node process in front of the fake
provider, and the client's own books (what it paid, got back and received), kept from the outside.

Prices and token counts here are the test's own: 4 bytes of output are one token (the fake provider's
words, ``routstr/devtools/fake_provider_model.py``), and a price is the pricing file's numbers. Nothing
is computed with the node's pricing code.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from routstr.billing.pipeline import WRITE_OFF  # the node's warning when a settlement found the key short
from routstr.devtools.test_wallet import TestWallet
from tests.adversarial.answers import Answer, error_code, event_output_bytes, sse_events
from tests.conftest import fresh_database, node_env
from tests.node.node_process import NodeProcess

PROVIDER_KEY = "sk-fake-provider"
GPT, CLAUDE, ODD = "adv-gpt", "adv-claude", "adv-odd"  # OpenAI-type, Anthropic-type, OpenAI-type
OPENAI_MODELS = (GPT, ODD)
ANTHROPIC_MODELS = (CLAUDE,)


@dataclass(frozen=True)
class Price:
    """sats per million tokens, as the pricing file says."""

    prompt: int
    completion: int

    def msat(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The advertised price of that many tokens, rounded up to the msat."""
        return -(-(prompt_tokens * self.prompt + completion_tokens * self.completion) * 1000 // 1_000_000)


PRICES = {GPT: Price(1000, 4000), CLAUDE: Price(1000, 5000), ODD: Price(0, 1903)}


def pricing_toml() -> str:
    out = "[default]\nprompt_sats_per_mtok = 1000\ncompletion_sats_per_mtok = 3000\n"
    for model, p in PRICES.items():
        out += f'\n[models."{model}"]\nprompt_sats_per_mtok = {p.prompt}\n'
        out += f"completion_sats_per_mtok = {p.completion}\n"
    return out


def providers_toml(url: str) -> str:
    return (
        f'[[providers]]\nname = "fake-openai"\nbase_url = "{url}"\napi_key = "{PROVIDER_KEY}"\n'
        f"models = {list(OPENAI_MODELS)!r}\n\n".replace("'", '"')
        + f'[[providers]]\nname = "fake-anthropic"\ntype = "anthropic"\nbase_url = "{url}"\n'
        f'api_key = "{PROVIDER_KEY}"\nmodels = {list(ANTHROPIC_MODELS)!r}\n'.replace("'", '"')
    )


def chat(model: str, content: Any, **extra: Any) -> dict[str, Any]:
    """A chat completions (or Anthropic Messages) body with one user message."""
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def tokens_of(text: str | bytes) -> int:
    """ceil(bytes / 4): the prompt tokens of a text (at least what any honest provider counts)."""
    n = len(text.encode() if isinstance(text, str) else text)
    return -(-n // 4)


def json_tokens(value: Any) -> int:
    return tokens_of(orjson.dumps(value))


# -- the node -----------------------------------------------------------------------------------------


@dataclass
class AdvNode:
    """A ``routstr serve`` process selling the fake provider's models, with an admin token to read books."""

    proc: NodeProcess
    http: aiohttp.ClientSession
    backend: str
    admin: str = ""

    @property
    def url(self) -> str:
        return self.proc.url

    def log_mark(self) -> int:
        return self.proc.log.stat().st_size if self.proc.log.exists() else 0

    def write_offs(self, since: int) -> list[str]:
        with self.proc.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [line for line in text.splitlines() if WRITE_OFF in line]

    def assert_no_write_off(self, since: int) -> None:
        found = self.write_offs(since)
        assert not found, f"the node wrote money off: {found[:3]}"

    async def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str], *, until_tokens: int | None = None
    ) -> Answer:
        """POST and read the whole answer; a stream is parsed into events, and with ``until_tokens`` the
        client closes the connection once it has received that many output tokens."""
        async with self.http.post(self.url + path, json=body, headers=headers) as r:
            hdrs = {k: v for k, v in r.headers.items()}
            if not r.content_type.startswith("text/event-stream"):
                return Answer(r.status, hdrs, await r.read())
            raw, left = b"", False
            try:
                async for chunk in r.content.iter_any():
                    raw += chunk
                    if until_tokens is not None:
                        whole = raw[: raw.rfind(b"\n\n") + 2]
                        if sum(event_output_bytes(e) for e in sse_events(whole)) >= until_tokens * 4:
                            left = True
                            r.close()
                            raw = whole
                            break
            except aiohttp.ClientPayloadError:
                pass  # an unfinished body: count what arrived
            return Answer(r.status, hdrs, raw, sse_events(raw[: raw.rfind(b"\n\n") + 2]), left)

    async def admin_get(self, path: str) -> Any:
        async with self.http.get(self.url + path, headers={"Authorization": f"Bearer {self.admin}"}) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def key_books(self, secret: str) -> dict[str, Any]:
        """The key a key or token names (the admin API), with its ledger sums per kind."""
        found = (await self.admin_get(f"/admin/api/keys?q={secret}"))["keys"]
        assert len(found) == 1, found
        detail = await self.admin_get(f"/admin/api/keys/{found[0]['id']}?ledger=500")
        sums: dict[str, int] = {}
        for row in detail["ledger"]:
            sums[row["kind"]] = sums.get(row["kind"], 0) + int(row["amount_msat"])
        return {**detail, "sums": sums}

    async def models(self) -> dict[str, Any]:
        async with self.http.get(self.url + "/v1/models") as r:
            assert r.status == 200
            return {m["id"]: m for m in (await r.json())["data"]}


async def _admin_token(proc: NodeProcess) -> str:
    env = {**os.environ, **proc.env}
    cmd = [sys.executable, "-m", "routstr", "admin-token", "create", "--name", "adv", "--env-file", ""]
    done = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return str(orjson.loads(done.stdout)["token"])


@asynccontextmanager
async def adv_node(
    backend: str, tmp: Path, mint_url: str, provider_url: str, **env: str
) -> AsyncIterator[AdvNode]:
    """A real node process on a fresh database, selling the fake provider's models at ``PRICES``."""
    (tmp / "pricing.toml").write_text(pricing_toml())
    (tmp / "providers.toml").write_text(providers_toml(provider_url))
    async with fresh_database(backend, tmp) as db_url:
        base = node_env(mint_url, "", db_url, tmp / "pricing.toml")
        base.update(PROVIDERS_FILE=str(tmp / "providers.toml"), SECRET_KEY="adversarial", **env)
        proc = NodeProcess(base, tmp / "node.log")
        async with aiohttp.ClientSession() as http:
            try:
                await asyncio.to_thread(proc.start)
                node = AdvNode(proc, http, backend)
                node.admin = await _admin_token(proc)
                yield node
            finally:
                proc.stop()


# -- the client's books -------------------------------------------------------------------------------


@dataclass
class Account:
    """A key funded with real eCash, and what its holder paid in, got back and was told it cost."""

    node: AdvNode
    key: str
    paid_msat: int
    refunded_msat: int = 0
    answers: list[Answer] = field(default_factory=list)
    mark: int = 0  # the node log's size when the account was opened

    @classmethod
    async def open(cls, node: AdvNode, wallet: TestWallet, mint_url: str, sats: int) -> Account:
        token = await wallet.asend(mint_url, sats)
        account = cls(node, token, sats * 1000, mark=node.log_mark())
        info = await account.info()
        assert info["balance"] == sats * 1000 and info["reserved"] == 0, info
        return account

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def info(self) -> dict[str, Any]:
        async with self.node.http.get(self.node.url + "/v1/balance/info", headers=self.auth) as r:
            assert r.status == 200, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def post(self, path: str, body: dict[str, Any], *, until_tokens: int | None = None) -> Answer:
        answer = await self.node.post(path, body, self.auth, until_tokens=until_tokens)
        self.answers.append(answer)
        return answer

    async def refund(self, wallet: TestWallet) -> int:
        """The whole balance back as eCash, redeemed at the mint: msat received."""
        async with self.node.http.post(self.node.url + "/v1/balance/refund", headers=self.auth) as r:
            assert r.status == 200, await r.text()
            out = await r.json()
        got = await wallet.areceive(out["token"]) * 1000
        self.refunded_msat += got
        return got

    async def settled(self, within_s: float = 15) -> dict[str, Any]:
        """The balance once nothing is reserved any more (a stream settles after its last byte)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            info = await self.info()
            if info["reserved"] == 0 or loop.time() > deadline:
                return info
            await asyncio.sleep(0.05)

    async def charged(self, required_msat: int = 0, what: str = "") -> int:
        """What the key was charged, seen from outside: paid in − balance − reserved − refunded. It must
        cover ``required_msat`` (the advertised price of ``what``), and agree with the key's total spent
        and its ledger's charges (the balance history), and with the costs the answers showed when every
        answer showed one."""
        info = await self.settled()
        assert info["reserved"] == 0, f"a reservation is still held after the requests ended: {info}"
        charged: int = self.paid_msat - int(info["balance"]) - self.refunded_msat
        assert charged >= required_msat, (
            f"charged {charged} msat < {required_msat} msat, the advertised price of {what}"
        )
        assert 0 <= charged <= self.paid_msat, (charged, info)
        sums = (await self.node.key_books(self.key))["sums"]
        assert sums.get("credit", 0) == self.paid_msat, sums
        assert charged == info["total_spent"] == sums.get("charge", 0), (charged, info, sums)
        shown = [a.cost_msat for a in self.answers if a.status == 200]
        if shown and all(c is not None for c in shown) and not any(a.left_early for a in self.answers):
            said = sum(c for c in shown if c is not None)
            assert said == charged, f"the answers said they cost {shown}, the key was charged {charged}"
        return charged

    async def check(self, required_msat: int, what: str) -> int:
        """Money is conserved, the charge covers the advertised price of what was received, nothing was
        written off. Returns the charge."""
        charged = await self.charged(required_msat, what)
        await asyncio.sleep(0.05)  # a write-off is logged just after the settlement it belongs to
        self.node.assert_no_write_off(self.mark)
        return charged

    async def check_nothing_charged(self) -> None:
        charged = await self.charged()
        assert charged == 0, f"a refused request cost {charged} msat"
        await asyncio.sleep(0.05)
        self.node.assert_no_write_off(self.mark)

    async def check_refused(self, case: str, path: str, body: dict[str, Any], code: str) -> None:
        """The request is refused with 400 ``code`` before anything is reserved: the balance is whole."""
        answer = await self.post(path, body)
        got = (answer.status, error_code(answer.json) if answer.raw.startswith(b"{") else None)
        assert got == (400, code), f"{case}: expected 400 {code}, got {answer.describe()}"
        await self.check_nothing_charged()
        assert (await self.info())["balance"] == self.paid_msat


@dataclass
class Paid:
    """One request paid with an X-Cashu token, and its change redeemed at the mint."""

    node: AdvNode
    token: str
    paid_msat: int
    answer: Answer
    mark: int
    change_msat: int = 0

    @classmethod
    async def send(
        cls, node: AdvNode, wallet: TestWallet, mint_url: str, sats: int, path: str, body: dict[str, Any]
    ) -> Paid:
        token = await wallet.asend(mint_url, sats)
        mark = node.log_mark()
        answer = await node.post(path, body, {"X-Cashu": token})
        paid = cls(node, token, sats * 1000, answer, mark)
        # the X-Cashu header (a stream's early change) and a stream's final change, each redeemed once
        for change in {answer.headers.get("X-Cashu"), _stream_change(answer)} - {None}:
            assert change is not None and change.startswith("cashu"), change  # a token, never a creqA
            paid.change_msat += await wallet.areceive(change) * 1000
        return paid

    async def untouched(self, wallet: TestWallet) -> bool:
        """The token was never redeemed: every proof still unspent at the mint (NUT-07)."""
        return set(await wallet.acheck(self.token)) == {"UNSPENT"}

    async def check_refused(self, wallet: TestWallet) -> None:
        """A refusal costs nothing: the token is untouched, or all of it came back as change."""
        if not await self.untouched(wallet):
            assert self.change_msat == self.paid_msat, (
                f"a refused request kept {self.paid_msat - self.change_msat} msat of the token"
            )
        self.node.assert_no_write_off(self.mark)

    async def check(self, required_msat: int, what: str) -> int:
        """As ``Account.check``: paid = change + what stays on the one-shot key + charged."""
        books = await self.node.key_books(self.token)
        assert books["reserved_msat"] == 0, books
        charged: int = self.paid_msat - self.change_msat - int(books["balance_msat"])
        assert charged >= required_msat, (
            f"charged {charged} msat < {required_msat} msat, the advertised price of {what}"
        )
        assert 0 <= charged <= self.paid_msat, charged
        sums = books["sums"]
        assert sums.get("credit", 0) == self.paid_msat, sums
        assert charged == books["total_spent_msat"] == sums.get("charge", 0), (charged, books)
        shown = self.answer.cost_msat
        assert shown is None or shown == charged, f"the answer said it cost {shown}, the key paid {charged}"
        self.node.assert_no_write_off(self.mark)
        return charged


def _stream_change(answer: Answer) -> str | None:
    """The change token a stream carries in its last cost object."""
    for e in reversed(answer.events):
        holder = e.get("response") if isinstance(e.get("response"), dict) else e
        change = ((holder.get("usage") or {}).get("cost") or {}).get("x_cashu")
        if isinstance(change, str):
            return change
    return None
