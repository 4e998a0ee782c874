"""The operator's providers: those of the environment and ``PROVIDERS_FILE`` (read-only, shown with
``source: "file"``) and those stored in the database (added, edited, switched, removed here).

A change is stored (keys sealed), applied at once in this process and within CATALOGUE_SYNC_SECONDS
in every other one (``upstream/managed.py``). No view ever holds a provider key: only whether one is
set and its last four characters.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core.errors import InvalidRequest, NotFound
from routstr.core.sealed import SealError, seal, unseal
from routstr.node import Node
from routstr.operator import forms
from routstr.operator.ids import parse_id
from routstr.storage import provider_store
from routstr.storage.provider_store import KEY_PURPOSE, ProviderRow
from routstr.upstream.managed import ManagedCatalogue
from routstr.upstream.providers import Provider
from routstr.upstream.spec import ProviderSpec


def key_hint(key: str) -> str | None:
    """The last four characters of a key, shown so an operator can tell keys apart (none for a key
    too short to spare four)."""
    return key[-4:] if len(key) >= 12 else None


def _live(node: Node, name: str) -> Provider | None:
    return next((p for p in node.providers if p.spec.name == name), None)


def _runtime(p: Provider | None) -> dict[str, Any]:
    return {
        "in_rotation": p is not None,
        "answered": None if p is None else p.answered,
        "cooling_down": False if p is None else not p.breaker.available(),
        "listed_models": None if p is None else len(p.listed),
    }


def file_provider_fields(spec: ProviderSpec) -> dict[str, Any]:
    """A provider of the environment or PROVIDERS_FILE, as shown (its key only hinted at)."""
    return {
        "id": None,
        "source": "file",
        "name": spec.name,
        "base_url": spec.base_url,
        "kind": spec.kind,
        "fee": str(spec.fee),
        "models": sorted(spec.models) if spec.models is not None else None,
        "enabled": True,
        "api_key_set": bool(spec.api_key),
        "api_key_last4": key_hint(spec.api_key),
    }


def db_provider_fields(row: ProviderRow, secret: bytes) -> dict[str, Any]:
    """A stored provider, as shown (its key only hinted at)."""
    hint, readable = None, True
    if row.api_key_sealed:
        try:
            hint = key_hint(unseal(secret, KEY_PURPOSE, row.api_key_sealed))
        except SealError:
            readable = False
    return {
        "id": row.id,
        "source": "database",
        "name": row.name,
        "base_url": row.base_url,
        "kind": row.kind,
        "fee": str(row.fee),
        "models": list(row.models) if row.models is not None else None,
        "enabled": row.enabled,
        "api_key_set": row.api_key_sealed is not None,
        "api_key_last4": hint,
        "api_key_readable": readable,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def file_provider_view(node: Node, spec: ProviderSpec) -> dict[str, Any]:
    return {**file_provider_fields(spec), **_runtime(_live(node, spec.name))}


def db_provider_view(node: Node, row: ProviderRow) -> dict[str, Any]:
    live = _live(node, row.name) if row.enabled else None
    return {**db_provider_fields(row, node.auth.secret), **_runtime(live)}


async def provider_views(node: Node, managed: ManagedCatalogue) -> list[dict[str, Any]]:
    async with node.db.read() as conn:
        rows = await provider_store.list_providers(conn)
    return [file_provider_view(node, s) for s in managed.file_specs] + [
        db_provider_view(node, r) for r in rows
    ]


def _stored_fields(secret: bytes, fields: dict[str, Any]) -> dict[str, Any]:
    """The checked fields as stored: the key sealed with the node's secret (None: no key)."""
    out = dict(fields)
    if "api_key" in out:
        key = out.pop("api_key")
        out["api_key_sealed"] = seal(secret, KEY_PURPOSE, key) if key else None
    return out


def _name_taken(name: str, where: str = "exists already") -> InvalidRequest:
    return InvalidRequest(
        f"A provider named {name!r} {where}", details={"param": "name"}, code="provider_name_taken"
    )


def _check_name_free(file_names: Collection[str], name: str) -> None:
    if name in file_names:
        raise _name_taken(name, "is configured in the environment or PROVIDERS_FILE")


async def insert_provider(
    conn: AsyncConnection, secret: bytes, file_names: Collection[str], body: dict[str, Any]
) -> ProviderRow:
    """Check a new provider's body and store it (the admin API's and ``routstr providers add``)."""
    fields = _stored_fields(secret, forms.provider_changes(body, new=True))
    _check_name_free(file_names, fields["name"])
    new_id = await provider_store.add_provider(conn, **fields)
    row = None if new_id is None else await provider_store.provider_by_id(conn, new_id)
    if row is None:
        raise _name_taken(fields["name"])
    return row


async def add_provider(node: Node, managed: ManagedCatalogue, body: dict[str, Any]) -> dict[str, Any]:
    async with node.db.write() as conn:
        row = await insert_provider(conn, node.auth.secret, managed.file_names, body)
    await managed.reload()
    return db_provider_view(node, row)


def _provider_id(managed: ManagedCatalogue, raw: str) -> int:
    if raw in managed.file_names:
        raise InvalidRequest(
            f"Provider {raw!r} comes from the environment or PROVIDERS_FILE: change it there",
            code="provider_read_only",
        )
    provider_id = parse_id(raw)
    if provider_id is None:
        raise NotFound(f"No provider with id {raw[:40]!r}")
    return provider_id


async def edit_provider(
    node: Node, managed: ManagedCatalogue, raw_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    provider_id = _provider_id(managed, raw_id)
    fields = _stored_fields(node.auth.secret, forms.provider_changes(body, new=False))
    if "name" in fields:
        _check_name_free(managed.file_names, fields["name"])
    async with node.db.write() as conn:
        other = await provider_store.provider_by_name(conn, fields["name"]) if "name" in fields else None
        if other is not None and other.id != provider_id:
            raise _name_taken(fields["name"])
        if not await provider_store.update_provider(conn, provider_id, fields):
            raise NotFound(f"No provider with id {provider_id}")
        row = await provider_store.provider_by_id(conn, provider_id)
    assert row is not None
    await managed.reload()
    return db_provider_view(node, row)


async def remove_provider(node: Node, managed: ManagedCatalogue, raw_id: str) -> None:
    provider_id = _provider_id(managed, raw_id)
    async with node.db.write() as conn:
        if not await provider_store.delete_provider(conn, provider_id):
            raise NotFound(f"No provider with id {provider_id}")
    await managed.reload()
