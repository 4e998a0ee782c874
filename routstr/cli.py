"""The ``routstr`` command: ``serve`` runs the node, ``books`` prints its books, ``audit`` checks them,
``demo`` runs a complete local setup; ``providers`` and ``keys`` are in ``cli_catalogue.py``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from routstr import __version__
from routstr.cli_support import command_settings, opened_db, run_and_print

if TYPE_CHECKING:
    from routstr.config import Settings


def _has_a_provider(settings: Settings) -> bool:
    """A provider from the environment or a file, or one stored (and switched on) in the database."""
    if settings.providers:
        return True
    import asyncio

    from sqlalchemy.engine import make_url

    from routstr.storage import provider_store

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and os.path.isfile(url.database)):
        return False  # no database yet, so nothing stored (and none is made just to look)

    async def look() -> bool:
        async with opened_db(settings) as db:
            async with db.read() as conn:
                return any(p.enabled for p in await provider_store.list_providers(conn))

    return asyncio.run(look())


async def _check_node_secret(settings: Settings) -> None:
    """Create (or move out of the database) the node secret and check it against the database before
    the node starts, so a wrong one stops ``serve`` with a message (``NodeSecretError``)."""
    from routstr.storage.node_secret import load_node_secret

    async with opened_db(settings) as db:
        await load_node_secret(db, settings)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from aiohttp import web

    from routstr.app import create_app
    from routstr.config import NO_PROVIDER, ConfigError, load_settings
    from routstr.logs import configure_logging

    env = dict(os.environ)
    if args.host:
        env["HOST"] = args.host
    if args.port:
        env["PORT"] = str(args.port)
    try:
        settings = load_settings(env, env_file=args.env_file)
    except ConfigError as e:
        print(f"routstr: configuration error: {e}", file=sys.stderr)
        return 2
    if not _has_a_provider(settings):
        print(f"routstr: configuration error: {NO_PROVIDER}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, settings.log_client_ips)
    try:
        if args.workers > 1:
            from routstr.workers import supervise

            return supervise(settings, args.workers, args.env_file)  # its prepare() checks the secret
        asyncio.run(_check_node_secret(settings))
    except ConfigError as e:  # a node secret that does not match the database: say so, no traceback
        print(f"routstr: configuration error: {e}", file=sys.stderr)
        return 2
    _use_uvloop()
    print(f"routstr {__version__} serving on http://{settings.host}:{settings.port}", flush=True)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=None,
        reuse_port=args.reuse_port or None,
    )
    return 0


def _books(args: argparse.Namespace) -> int:
    """Print the books per mint and unit (JSON): wallet, what is owed, uncollected tokens, surplus."""
    import asyncio
    import json

    from routstr.storage.books import books

    settings = command_settings(args)
    if settings is None:
        return 2

    async def run() -> list[dict[str, object]]:
        async with opened_db(settings) as db:
            async with db.read() as conn:
                return [b.as_dict() for b in await books(conn)]

    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


def _audit(args: argparse.Namespace) -> int:
    """Check the books (ledger, coverage, proofs at the mints, unfinished operations); exit 1 if wrong."""
    import asyncio
    import json

    import aiohttp

    from routstr.wallet.audit import AuditReport, audit
    from routstr.wallet.mints import MintRegistry

    settings = command_settings(args)
    if settings is None:
        return 2

    async def run() -> AuditReport:
        async with opened_db(settings) as db:
            async with aiohttp.ClientSession() as session:
                mints = MintRegistry(settings.cashu_mints, session, settings.mint_timeout_s)
                return await audit(db, mints, check_mints=not args.offline)

    report = asyncio.run(run())
    print(
        json.dumps(
            {"ok": report.ok, "proofs_checked": report.proofs_checked, "books": report.books}, indent=2
        )
    )
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("audit: OK" if report.ok else f"audit: {len(report.problems)} problem(s)", file=sys.stderr)
    return 0 if report.ok else 1


def _withdraw(args: argparse.Namespace) -> int:
    """Pay the node's earnings (never users' money) out as a Cashu token printed to stdout, or over
    Lightning with ``--to``."""

    import aiohttp

    from routstr.operator.withdraw import as_token, over_lightning
    from routstr.wallet.lightning_out import Payouts
    from routstr.wallet.mints import MintRegistry, canonical_mint_url

    settings = command_settings(args)
    if settings is None:
        return 2

    async def run() -> dict[str, object]:
        async with opened_db(settings) as db:
            async with aiohttp.ClientSession() as session:
                mints = MintRegistry(settings.cashu_mints, session, settings.mint_timeout_s)
                mint = canonical_mint_url(args.mint) if args.mint else mints.primary
                if args.to:
                    payouts = Payouts(
                        db, mints, session, settings.lnurl_allow_http, settings.lnurl_allow_private
                    )
                    return await over_lightning(db, payouts, mint, args.to, args.amount)
                return await as_token(db, mints, mint, args.unit, args.amount)

    return run_and_print("withdraw", run())


def _admin_password(args: argparse.Namespace) -> int:
    """Set (or reset) the dashboard password; every dashboard session is logged out."""
    import asyncio
    import getpass

    from routstr.core.passwords import hash_password, password_problem
    from routstr.storage import admin_sessions, admin_store

    settings = command_settings(args)
    if settings is None:
        return 2
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("new admin password: ")
        if getpass.getpass("again: ") != password:
            print("routstr admin-password: the two passwords differ", file=sys.stderr)
            return 1
    problem = password_problem(password)
    if problem:
        print(f"routstr admin-password: {problem}", file=sys.stderr)
        return 1

    async def run() -> int:
        async with opened_db(settings) as db:
            async with db.write() as conn:
                await admin_store.set_password_hash(conn, hash_password(password))
                return await admin_sessions.end_all_but(conn, None)

    ended = asyncio.run(run())
    print(f"admin password set; {ended} dashboard session(s) logged out")
    return 0


def _admin_token(args: argparse.Namespace) -> int:
    """Create, list or revoke the tokens scripts use for /admin/api/* (only their HMAC is stored)."""
    from routstr.operator.tokens import create_admin_token, token_rows
    from routstr.storage import admin_store
    from routstr.storage.node_secret import load_node_secret

    settings = command_settings(args)
    if settings is None:
        return 2

    async def run() -> object:
        async with opened_db(settings) as db:
            secret = await load_node_secret(db, settings)
            async with db.write() as conn:
                if args.action == "create":
                    token_id, token = await create_admin_token(conn, secret, args.name)
                    return {"id": token_id, "token": token, "name": args.name}
                if args.action == "revoke":
                    return {"revoked": await admin_store.revoke(conn, args.id)}
                return token_rows(await admin_store.list_tokens(conn))

    return run_and_print("admin-token", run())


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def _demo(args: argparse.Namespace) -> int:
    from routstr.devtools.demo import run_demo

    return int(run_demo(port=args.port or 8000, amount=args.amount))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="routstr", description="Sell LLM access for Bitcoin (Cashu eCash).")
    p.add_argument("--version", action="version", version=f"routstr {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the node (configured by environment variables / .env)")
    s.add_argument("--host", help="address to listen on (default: $HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on (default: $PORT or 8000)")
    s.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    s.add_argument("--workers", type=int, default=1, help="node processes sharing the port (default 1)")
    s.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # set for workers
    s.set_defaults(func=_serve)
    a = sub.add_parser("audit", help="check the books; exits 1 if anything is wrong")
    a.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    a.add_argument(
        "--offline", action="store_true", help="do not ask the mints whether the proofs are unspent"
    )
    a.set_defaults(func=_audit)
    w = sub.add_parser("withdraw", help="pay the node's earnings out as a Cashu token (never user money)")
    w.add_argument("--amount", type=int, help="how much (default: all earnings at that mint and unit)")
    w.add_argument("--mint", help="which mint (default: the primary)")
    w.add_argument("--unit", default="sat", choices=("sat", "msat"))
    w.add_argument("--to", help="pay over Lightning instead: a bolt11, a Lightning address or an LNURL")
    w.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    w.set_defaults(func=_withdraw)
    t = sub.add_parser("admin-token", help="tokens for the admin API: create, list, revoke")
    t.add_argument("action", choices=("create", "list", "revoke"))
    t.add_argument("--name", default="script", help="a label for a new token")
    t.add_argument("--id", type=int, help="the token to revoke")
    t.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    t.set_defaults(func=_admin_token)
    ap = sub.add_parser("admin-password", help="set or reset the dashboard password (ends its sessions)")
    ap.add_argument("--password-stdin", action="store_true", help="read it from the first line of stdin")
    ap.add_argument("--env-file", default=".env")
    ap.set_defaults(func=_admin_password)
    b = sub.add_parser("books", help="what the node holds and owes per mint and unit (JSON)")
    b.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    b.set_defaults(func=_books)
    d = sub.add_parser(
        "demo", help="start a local test mint, a fake LLM upstream and the node, with a funded token"
    )
    d.add_argument("--port", type=int, help="node port (default 8000)")
    d.add_argument("--amount", type=int, default=1000, help="sats in the demo token (default 1000)")
    d.set_defaults(func=_demo)
    from routstr.cli_catalogue import add_commands

    add_commands(sub)  # routstr providers …, routstr keys …
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
