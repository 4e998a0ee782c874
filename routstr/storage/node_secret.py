"""The node secret: it HMACs API keys and Cashu token identities, derives sk- keys and seals provider
keys and webhook secrets, so it must never sit in the database it protects (a copy of the database
alone then opens nothing).

It is ``SECRET_KEY`` if set, else a file (``SECRET_KEY_FILE``; by default beside the SQLite file,
or ``./routstr.secret`` for PostgreSQL) created with mode 0600 on first start. Older nodes kept it
in the database (setting ``key_hmac_secret``): it is moved into the file and deleted from the
database. The database keeps only a slow check value, so a node started with another secret
refuses to start instead of silently failing every key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from routstr.core.errors import ConfigError
from routstr.storage import accounts
from routstr.storage.db import Database

log = logging.getLogger(__name__)

LEGACY_SETTING = "key_hmac_secret"  # where nodes before SECRET_KEY_FILE kept a generated secret
CHECK_SETTING = "node_secret_check"
_CHECK_SALT = b"routstr node secret check"
_PROCESS_SECRET = secrets.token_hex(32)  # an in-memory database dies with the process: so does this


class NodeSecretError(ConfigError):
    """The node secret cannot be had, or is not the one the database was set up with."""


class SecretSettings(Protocol):
    """What this module reads of the node's settings (``config.Settings`` has them): storage does not
    import config, which imports storage for its defaults."""

    @property
    def secret_key(self) -> str: ...
    @property
    def secret_key_file(self) -> str: ...
    @property
    def database_url(self) -> str: ...


def node_secret_path(settings: SecretSettings) -> Path | None:
    """Where the secret file is: SECRET_KEY_FILE, else beside the data; None for an in-memory SQLite
    database (nothing outlives the process, so nothing is written)."""
    if settings.secret_key_file:
        return Path(settings.secret_key_file).absolute()
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return Path("routstr.secret").absolute()
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in str(url):
        return None
    db_file = Path(name)
    return db_file.with_name(db_file.stem + ".secret").absolute()


def secret_check(secret: str) -> str:
    """The check value stored in the database: scrypt, slow on purpose, so that a weak SECRET_KEY
    cannot be guessed quickly from a copy of the database."""
    derived = hashlib.scrypt(secret.encode(), salt=_CHECK_SALT, n=2**14, r=8, p=1, dklen=32)
    return derived.hex()


async def load_node_secret(db: Database, settings: SecretSettings) -> bytes:
    """The node secret (SECRET_KEY, or the secret file, created or migrated on first start),
    checked against the database. Raises ``NodeSecretError`` with what the operator should do."""
    if settings.secret_key:
        await _forget_legacy_copy(db, settings.secret_key)
        await _check(db, settings.secret_key, "SECRET_KEY", None)
        return settings.secret_key.encode()
    path = node_secret_path(settings)
    if path is None:
        return _PROCESS_SECRET.encode()
    value, created, moved = await _from_file(db, path)
    await _check(db, value, f"the file {path}", path if created else None)
    if created:
        what = "moved the node secret out of the database into" if moved else "created the node secret file"
        log.warning("%s %s: back it up with the database, nothing stored opens without it", what, path)
    return value.encode()


async def _setting(db: Database, name: str) -> str | None:
    async with db.read() as conn:
        return await accounts.get_setting(conn, name)


async def _delete_setting(db: Database, name: str) -> None:
    async with db.write() as conn:
        await accounts.delete_setting(conn, name)


async def _forget_legacy_copy(db: Database, configured: str) -> None:
    """With SECRET_KEY set, a generated secret left in the database was never used (the old code
    ignored it too); a copy equal to SECRET_KEY is deleted, another one only warned about, because
    keys made before SECRET_KEY was set would open with it alone."""
    legacy = await _setting(db, LEGACY_SETTING)
    if legacy is None:
        return
    if legacy == configured:
        await _delete_setting(db, LEGACY_SETTING)
        return
    log.warning(
        "the database still holds the secret generated before SECRET_KEY was set (node setting %s); "
        "it is not used, and it opens whatever was created with it: delete that setting once nothing "
        "made before SECRET_KEY is needed",
        LEGACY_SETTING,
    )


async def _from_file(db: Database, path: Path) -> tuple[str, bool, bool]:
    """The secret in ``path``, whether this call created the file, and whether from the legacy
    database copy (which is then deleted; else a fresh one). Concurrent starters on one machine all
    get the one that won."""
    legacy = await _setting(db, LEGACY_SETTING)
    check = await _setting(db, CHECK_SETTING)  # read before the file: whoever stored it made the file first
    value = _read(path)
    created = False
    if value is None:
        if legacy is None and check is not None:
            raise NodeSecretError(
                f"the node secret file {path} is missing, and this database was set up with a node "
                "secret: API keys, sealed provider keys and webhook secrets would not open with a new "
                "one. Restore the file from the node that created this database (or point "
                "SECRET_KEY_FILE at it), or set SECRET_KEY to the secret it was set up with"
            )
        value, created = _create(path, legacy or secrets.token_hex(32))
    if legacy is not None:
        if legacy != value:
            raise NodeSecretError(
                f"the database holds a node secret (setting {LEGACY_SETTING}, from before the secret "
                f"moved out of the database) that differs from the file {path}: keys, sealed provider "
                "keys and webhook secrets made with one would not open with the other. If that file "
                "belongs to another node, move it away (or set SECRET_KEY_FILE elsewhere) and start "
                "again: the database's secret is then moved into a new file"
            )
        await _delete_setting(db, LEGACY_SETTING)  # it is in the file now (or was, before a crash)
    return value, created, created and legacy is not None


def _read(path: Path) -> str | None:
    """The secret in the file (None if there is none); a file others may read is tightened to 0600."""
    try:
        value = path.read_text().strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise NodeSecretError(f"cannot read the node secret file {path}: {e.strerror}") from None
    if not value:
        raise NodeSecretError(
            f"the node secret file {path} is empty; restore it from a backup (or remove it if this "
            "database is new)"
        )
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
            log.warning("the node secret file %s was open to group/others (mode %o); now 0600", path, mode)
        except OSError:  # not ours, or a read-only mount: say so and go on
            log.warning("the node secret file %s is open to group/others (mode %o); make it 0600", path, mode)
    return value


def _create(path: Path, value: str) -> tuple[str, bool]:
    """Create ``path`` holding ``value``, mode 0600, atomically: written to a temporary file in the
    same directory, then hard-linked to its name, which fails if another process created it first
    (then its value is the one). Returns the value in the file and whether this call created it."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    except OSError as e:
        raise NodeSecretError(f"cannot create the node secret file {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        for _ in range(3):
            try:
                os.link(tmp, path)
            except FileExistsError:
                existing = _read(path)
                if existing is not None:
                    return existing, False
                continue  # removed meanwhile (a starter that found the database set up otherwise)
            except OSError as e:
                raise NodeSecretError(f"cannot create the node secret file {path}: {e.strerror}") from None
            _sync_dir(path.parent)
            return value, True
        raise NodeSecretError(f"the node secret file {path} keeps appearing and disappearing")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _sync_dir(directory: Path) -> None:
    """Make the new name durable (a crash must not lose the file once the database is set up)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def _check(db: Database, secret: str, where: str, created: Path | None) -> None:
    """Store the secret's check value on first start; after that, refuse a secret that does not
    match it. A file this call created is removed before refusing, so a retry starts clean."""
    check = await asyncio.to_thread(secret_check, secret)
    stored = await _setting(db, CHECK_SETTING)
    if stored is None:
        with contextlib.suppress(IntegrityError):  # another process of the fleet stored it first
            async with db.write() as conn:
                await accounts.put_setting_if_absent(conn, CHECK_SETTING, check)
        stored = await _setting(db, CHECK_SETTING)
    if stored == check:
        return
    if created is not None:
        _remove(created)
    source = f"{where}, just created" if created is not None else where
    raise NodeSecretError(
        f"the node secret ({source}) is not the one this database was set up with: API keys, sealed "
        "provider keys and webhook secrets would not open. Restore the secret file from the node "
        "that created this database (and point SECRET_KEY_FILE at it if it is elsewhere), or set "
        "SECRET_KEY to the secret it was set up with"
    )
