"""Webhooks over https, the default (plain http needs WEBHOOK_ALLOW_HTTP): the delivery connects to
the address it checked, yet TLS is verified against the URL's host name (SNI and certificate), with a
receiver on 127.0.0.1 whose certificate a test CA made for ``localhost`` only."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import webhook_store
from routstr.webhooks.delivery import DeliveryPolicy, deliver_due
from tests.conftest import Upstream, running_node
from tests.node.test_webhooks import SECRET, eventually, funded_key, register

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:  # the CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class TlsReceiver:
    port: int = 0
    ca_file: Path = Path()
    server_names: list[str | None] = field(default_factory=list)  # the SNI of each handshake
    hosts: list[str] = field(default_factory=list)  # the Host header of each delivery


@pytest_asyncio.fixture(loop_scope="session")
async def tls_receiver(tmp_path: Path) -> AsyncIterator[TlsReceiver]:
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("routstr test CA", ca_key, None, ca_key)
    leaf = _cert("localhost", leaf_key, ca.subject, ca_key)
    rec = TlsReceiver(ca_file=tmp_path / "ca.pem")
    rec.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    server.sni_callback = lambda _sock, name, _ctx: rec.server_names.append(name)  # type: ignore[assignment]

    async def hook(request: web.Request) -> web.Response:
        rec.hosts.append(request.headers["Host"])
        await request.read()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server).start()
    rec.port = runner.addresses[0][1]
    yield rec
    await runner.cleanup()


async def test_https_delivery_verifies_the_host_name_of_the_url(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    tls_receiver: TlsReceiver,
):
    env = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_CHECK_SECONDS": "0.2", "WEBHOOK_DELIVER_SECONDS": "3600"}
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, **env) as node,
        aiohttp.ClientSession() as http,
    ):
        key = await funded_key(node, wallet, mint_url, http, 5)
        port = tls_receiver.port
        async with http.post(
            node.v1 + "/webhooks",
            json={"url": f"http://localhost:{port}/hook", "events": ["balance.low"], "secret": SECRET},
            headers=key,
        ) as r:
            assert r.status == 400  # plain http is not allowed by default
        by_name = await register(
            node, http, key, url=f"https://localhost:{port}/hook", events=["balance.low"], low_balance_sats=10
        )
        by_ip = await register(  # the certificate names localhost, not this address
            node, http, key, url=f"https://127.0.0.1:{port}/hook", events=["balance.low"], low_balance_sats=10
        )

        async def queued() -> bool:
            async with node.db.read() as conn:
                rows = [await webhook_store.deliveries_of(conn, h["id"]) for h in (by_name, by_ip)]
            return all(len(r) == 1 for r in rows)

        await eventually(queued)
        trusting = ssl.create_default_context(cafile=str(tls_receiver.ca_file))  # the receiver's CA only
        policy = DeliveryPolicy(allow_private=True, allow_http=False, timeout_s=3, retry_base_s=60)
        n = node.app[NODE]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
            outcome = await deliver_due(node.db, session, n.auth.secret, policy)
        assert outcome == {"delivered": 1, "retry": 1}
        assert tls_receiver.hosts == [f"localhost:{port}"]
        assert "localhost" in tls_receiver.server_names  # SNI: the URL's name, not the pinned address
        async with node.db.read() as conn:
            [ok] = await webhook_store.deliveries_of(conn, by_name["id"])
            [refused] = await webhook_store.deliveries_of(conn, by_ip["id"])
        assert ok.delivered_at is not None
        assert refused.delivered_at is None and refused.last_error
        assert "Certificate" in refused.last_error  # verified, and refused: the name does not match
