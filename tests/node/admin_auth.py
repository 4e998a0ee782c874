"""Admin API credentials for node tests: a token stored the way ``routstr admin-token create`` does."""

from __future__ import annotations

from routstr.node import NODE
from routstr.operator.tokens import admin_token_hash, new_admin_token
from routstr.storage import admin_store
from tests.conftest import NodeHandle


async def admin_headers(node: NodeHandle) -> dict[str, str]:
    token = new_admin_token()
    async with node.db.write() as conn:
        await admin_store.add_token(conn, admin_token_hash(node.app[NODE].auth.secret, token), "tests")
    return {"Authorization": f"Bearer {token}"}
