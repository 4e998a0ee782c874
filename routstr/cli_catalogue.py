"""``routstr providers`` and ``routstr keys``: the operator's common tasks on providers and keys.

Same rules as the admin API (``operator/providers.py``, ``operator/keys.py``): the checks are the
API's, provider keys are sealed before they are stored, and no output holds a key or its hash. A
running node applies a provider change within CATALOGUE_SYNC_SECONDS. Output is JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _read_key(args: argparse.Namespace) -> str | None:
    """The provider key from ``--api-key-env VAR`` or stdin (``--api-key-stdin``): never an argument,
    which every user of the machine could read in the process list."""
    if args.api_key_env:
        return os.environ.get(args.api_key_env, "")
    if args.api_key_stdin:
        return sys.stdin.readline().strip()
    return None


def _providers(args: argparse.Namespace) -> int:
    from routstr.cli_support import command_settings, opened_db, run_and_print
    from routstr.core.errors import InvalidRequest, NotFound
    from routstr.operator.providers import db_provider_fields, file_provider_fields, insert_provider
    from routstr.storage import provider_store
    from routstr.storage.node_secret import load_node_secret

    settings = command_settings(args)
    if settings is None:
        return 2
    file_names = {s.name for s in settings.providers}

    async def target(conn: Any) -> int:
        if args.id is not None:
            return int(args.id)
        if args.name in file_names:
            raise InvalidRequest(f"provider {args.name!r} comes from the environment or PROVIDERS_FILE")
        row = await provider_store.provider_by_name(conn, args.name or "") if args.name else None
        if row is None:
            raise NotFound("name a stored provider with --id N or --name NAME")
        return row.id

    async def run() -> object:
        async with opened_db(settings) as db:
            secret = await load_node_secret(db, settings)
            async with db.write() as conn:
                if args.action == "list":
                    rows = await provider_store.list_providers(conn)
                    return [file_provider_fields(s) for s in settings.providers] + [
                        db_provider_fields(r, secret) for r in rows
                    ]
                if args.action == "add":
                    body: dict[str, Any] = {"name": args.name, "base_url": args.base_url, "kind": args.kind}
                    body.update(fee=args.fee, enabled=not args.disabled, api_key=_read_key(args))
                    if args.models:
                        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
                    return db_provider_fields(await insert_provider(conn, secret, file_names, body), secret)
                provider_id = await target(conn)
                if args.action == "remove":
                    found = await provider_store.delete_provider(conn, provider_id)
                else:
                    changes = {"enabled": args.action == "enable"}
                    found = await provider_store.update_provider(conn, provider_id, changes)
                if not found:
                    raise NotFound(f"no stored provider with id {provider_id}")
                return {"id": provider_id, args.action + "d": True}

    return run_and_print("providers", run())


def _keys(args: argparse.Namespace) -> int:
    from routstr.cli_support import command_settings, opened_db, run_and_print
    from routstr.core.errors import InvalidRequest
    from routstr.operator.keys import key_detail, search_keys
    from routstr.storage.node_secret import load_node_secret

    settings = command_settings(args)
    if settings is None:
        return 2
    value = args.value
    if value == "-":  # a pasted key or token, kept out of the process list
        value = sys.stdin.readline().strip()

    async def run() -> object:
        async with opened_db(settings) as db:
            secret = await load_node_secret(db, settings)
            async with db.read() as conn:
                if args.action == "show":
                    if not value or not value.isdigit():
                        raise InvalidRequest("routstr keys show ID: the key's id")
                    return await key_detail(conn, int(value), args.limit)
                if args.action == "search" and not value:
                    raise InvalidRequest("routstr keys search Q: a key id, an sk-… key or a Cashu token")
                query = value if args.action == "search" else ""
                return [k.as_dict() for k in await search_keys(conn, secret, query, args.limit, args.before)]

    return run_and_print("keys", run())


def add_commands(sub: Any) -> None:
    """Register ``providers`` and ``keys`` on the ``routstr`` command's subparsers."""
    p = sub.add_parser(
        "providers", help="providers stored in the database: list, add, remove, enable, disable"
    )
    p.add_argument("action", choices=("list", "add", "remove", "enable", "disable"))
    p.add_argument("--id", type=int, help="the stored provider to remove, enable or disable")
    p.add_argument("--name", help="add: its name; remove/enable/disable: instead of --id")
    p.add_argument("--base-url", help="add: its OpenAI- or Anthropic-style base URL, e.g. https://…/v1")
    p.add_argument("--kind", default="openai", choices=("openai", "anthropic"))
    p.add_argument("--fee", default="0", help="add: markup on the listed price (0.05 for +5%%)")
    p.add_argument("--models", help="add: comma list of the models it serves (default: its /models)")
    p.add_argument("--api-key-env", help="add: read its API key from this environment variable")
    p.add_argument("--api-key-stdin", action="store_true", help="add: read its API key from stdin")
    p.add_argument("--disabled", action="store_true", help="add: stored but not used until enabled")
    p.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    p.set_defaults(func=_providers)
    k = sub.add_parser("keys", help="users' keys: list, show ID, search Q (an id, an sk- key or a token)")
    k.add_argument("action", choices=("list", "show", "search"))
    k.add_argument("value", nargs="?", help="show: the key id; search: what to look for ('-': read stdin)")
    k.add_argument("--limit", type=int, default=50, help="how many keys (show: ledger rows)")
    k.add_argument("--before", type=int, help="list: keys older than this id (the next page)")
    k.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    k.set_defaults(func=_keys)
