"""Providers and per-model settings the operator manages at run time (admin API, ``routstr providers``).

Every change bumps a version in ``node_settings`` in the same transaction, and takes that row's lock
first, so changes from several processes go one after the other and each process of a fleet notices
them with one cheap read (``routstr.upstream.managed``). Provider API keys arrive here already
sealed (``routstr.core.sealed``): this module never sees one in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.storage.accounts import now_ms
from routstr.storage.schema import model_settings, node_settings, providers

KEY_PURPOSE = "provider-key"  # the sealing purpose of provider API keys
VERSION_SETTING = "catalogue_version"


@dataclass(frozen=True, slots=True)
class ProviderRow:
    id: int
    name: str
    base_url: str
    kind: str
    api_key_sealed: str | None
    fee: Decimal
    models: tuple[str, ...] | None  # None: whatever its /models lists
    enabled: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ModelSettingRow:
    model: str
    price: dict[str, Any] | None  # one ``[models."id"]`` table of the pricing file; None: the file's
    enabled: bool
    aliases: tuple[str, ...] | None  # provider model ids this public id stands for; None: no alias
    updated_at: int


async def version(conn: AsyncConnection) -> str:
    row = (
        await conn.execute(select(node_settings.c.value).where(node_settings.c.name == VERSION_SETTING))
    ).first()
    return str(row[0]) if row else "0"


async def bump_version(conn: AsyncConnection) -> str:
    """Lock the version row and step it; called first in every change's transaction."""
    q = select(node_settings.c.value).where(node_settings.c.name == VERSION_SETTING).with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(node_settings).values(name=VERSION_SETTING, value="1"))
            return "1"
        except IntegrityError:  # another process stored the first version meanwhile
            row = (await conn.execute(q)).first()
            assert row is not None
    new = str(int(row[0]) + 1)
    await conn.execute(update(node_settings).where(node_settings.c.name == VERSION_SETTING).values(value=new))
    return new


def _provider(row: Any) -> ProviderRow:
    models = orjson.loads(row.models) if row.models is not None else None
    return ProviderRow(
        id=int(row.id),
        name=str(row.name),
        base_url=str(row.base_url),
        kind=str(row.kind),
        api_key_sealed=row.api_key_sealed,
        fee=Decimal(row.fee),
        models=tuple(models) if models is not None else None,
        enabled=bool(row.enabled),
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


async def list_providers(conn: AsyncConnection) -> list[ProviderRow]:
    rows = (await conn.execute(select(providers).order_by(providers.c.id))).all()
    return [_provider(r) for r in rows]


async def provider_by_id(conn: AsyncConnection, provider_id: int) -> ProviderRow | None:
    row = (await conn.execute(select(providers).where(providers.c.id == provider_id))).first()
    return _provider(row) if row else None


async def provider_by_name(conn: AsyncConnection, name: str) -> ProviderRow | None:
    row = (await conn.execute(select(providers).where(providers.c.name == name))).first()
    return _provider(row) if row else None


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Field values as stored: the fee as a decimal string, the model list as JSON."""
    out = dict(fields)
    if "fee" in out:
        out["fee"] = str(out["fee"])
    if "models" in out:
        out["models"] = None if out["models"] is None else orjson.dumps(list(out["models"])).decode()
    return out


async def add_provider(
    conn: AsyncConnection,
    *,
    name: str,
    base_url: str,
    kind: str,
    api_key_sealed: str | None,
    fee: Decimal,
    models: tuple[str, ...] | None,
    enabled: bool,
) -> int | None:
    """The new provider's id; None if the name is taken."""
    await bump_version(conn)
    if await provider_by_name(conn, name) is not None:
        return None
    t = now_ms()
    values = _columns(
        {
            "name": name,
            "base_url": base_url,
            "kind": kind,
            "api_key_sealed": api_key_sealed,
            "fee": fee,
            "models": models,
            "enabled": enabled,
        }
    )
    res = await conn.execute(
        insert(providers).values(**values, created_at=t, updated_at=t).returning(providers.c.id)
    )
    return int(res.scalar_one())


async def update_provider(conn: AsyncConnection, provider_id: int, changes: dict[str, Any]) -> bool:
    """Change some of a provider's fields (name, base_url, kind, api_key_sealed, fee, models, enabled);
    False if there is no such provider."""
    await bump_version(conn)
    res = await conn.execute(
        update(providers)
        .where(providers.c.id == provider_id)
        .values(**_columns(changes), updated_at=now_ms())
    )
    return bool(res.rowcount == 1)


async def delete_provider(conn: AsyncConnection, provider_id: int) -> bool:
    await bump_version(conn)
    res = await conn.execute(delete(providers).where(providers.c.id == provider_id))
    return bool(res.rowcount == 1)


def _setting(row: Any) -> ModelSettingRow:
    aliases = orjson.loads(row.aliases) if row.aliases is not None else None
    return ModelSettingRow(
        model=str(row.model),
        price=orjson.loads(row.price) if row.price is not None else None,
        enabled=bool(row.enabled),
        aliases=tuple(aliases) if aliases is not None else None,
        updated_at=int(row.updated_at),
    )


async def list_model_settings(conn: AsyncConnection) -> list[ModelSettingRow]:
    rows = (await conn.execute(select(model_settings).order_by(model_settings.c.model))).all()
    return [_setting(r) for r in rows]


async def model_setting(conn: AsyncConnection, model: str) -> ModelSettingRow | None:
    row = (await conn.execute(select(model_settings).where(model_settings.c.model == model))).first()
    return _setting(row) if row else None


async def change_model_setting(conn: AsyncConnection, model: str, changes: dict[str, Any]) -> ModelSettingRow:
    """Change some of one model's settings (``price``, ``enabled``, ``aliases``); the others keep
    their stored value (a new row starts from: the file's price, enabled, no alias)."""
    await bump_version(conn)  # first: the read below and the write cannot interleave with another
    current = await model_setting(conn, model)
    merged = ModelSettingRow(
        model=model,
        price=changes["price"] if "price" in changes else (current.price if current else None),
        enabled=changes["enabled"] if "enabled" in changes else (current.enabled if current else True),
        aliases=changes["aliases"] if "aliases" in changes else (current.aliases if current else None),
        updated_at=now_ms(),
    )
    values = {
        "price": None if merged.price is None else orjson.dumps(merged.price).decode(),
        "enabled": merged.enabled,
        "aliases": None if merged.aliases is None else orjson.dumps(list(merged.aliases)).decode(),
        "updated_at": merged.updated_at,
    }
    if current is None:
        await conn.execute(insert(model_settings).values(model=model, **values))
    else:
        await conn.execute(update(model_settings).where(model_settings.c.model == model).values(**values))
    return merged


async def delete_model_setting(conn: AsyncConnection, model: str) -> bool:
    await bump_version(conn)
    res = await conn.execute(delete(model_settings).where(model_settings.c.model == model))
    return bool(res.rowcount == 1)
