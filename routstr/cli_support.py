"""What every ``routstr`` operator command shares: its settings, its database, and printing its result.

``cli.py`` and ``cli_catalogue.py`` both import these (and not each other's helpers), so the commands
form one direction: ``cli`` → ``cli_catalogue`` → ``cli_support``. Imports stay inside the functions,
so ``routstr --help`` loads nothing of the node.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine

    from routstr.config import Settings
    from routstr.storage.db import Database


def command_settings(args: argparse.Namespace) -> Settings | None:
    """The settings an operator command runs with; None (after saying why) if they are wrong."""
    from routstr.config import ConfigError, load_settings

    try:
        return load_settings(dict(os.environ), env_file=args.env_file)
    except ConfigError as e:
        print(f"routstr: configuration error: {e}", file=sys.stderr)
        return None


@contextlib.asynccontextmanager
async def opened_db(settings: Settings) -> AsyncIterator[Database]:
    """The node's database for one command, its schema brought up to date first (a command may run
    before a node), closed when the command is done."""
    from routstr.storage.db import Database
    from routstr.storage.migrate import upgrade

    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        await db.close()


def run_and_print(command: str, work: Coroutine[object, object, object]) -> int:
    """Run an operator command: its result as JSON on stdout, or its error on stderr and exit 1."""
    import asyncio
    import json

    from routstr.config import ConfigError
    from routstr.core.errors import ApiError

    try:
        out = asyncio.run(work)
    except ApiError as e:
        print(f"routstr {command}: {e.message}", file=sys.stderr)
        return 1
    except ConfigError as e:  # e.g. a node secret that does not match the database
        print(f"routstr {command}: configuration error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0
