"""vmbackupctl against a cluster served over TLS with a self-signed certificate, as dev clusters often are.

A real TLS listener (asyncio with a certificate made here) forwards to kmock; the CLI runs as the user
runs it, in its own process, so whatever it prints to stderr (warnings included) is what the test reads.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import kmock
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.kube import policy_object, policy_url

SPEC = {"project": "demo-project", "instances": [{"name": "web-1", "zone": "us-central1-a"}], "schedule": "0 2 * * *"}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: what `kubeadm`-style dev clusters present."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-cluster")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
async def tls_cluster(kube: kmock.KubernetesEmulator, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """https://127.0.0.1:PORT terminating TLS in front of kmock; yields the URL and the certificate."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(kube.url.host, kube.url.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with kube.post(policy_url("shop"), json=policy_object("shop", "web", SPEC)) as response:
        assert response.status in (200, 201)
    async with server:
        yield f"https://127.0.0.1:{port}", cert
        server.close()


def kubeconfig(path: Path, server: str, **tls: object) -> Path:
    cluster = {"server": server, **tls}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "clusters": [{"name": "dev", "cluster": cluster}],
                "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": "u", "namespace": "shop"}}],
                "users": [{"name": "u", "user": {}}],
            }
        )
    )
    return path


async def vmbackupctl(config: Path, *argv: str) -> tuple[int, str, str]:
    """The CLI in a process of its own, with Python's default warning filters (as a user's shell has them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "KUBECONFIG")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller.vmbackupctl",
        *argv,
        "--kubeconfig",
        str(config),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_skip_tls_verify_prints_no_warning(tls_cluster: tuple[str, Path], tmp_path: Path) -> None:
    server, _ = tls_cluster
    config = kubeconfig(tmp_path / "insecure", server, **{"insecure-skip-tls-verify": True})

    code, out, err = await vmbackupctl(config, "get", "web")

    assert code == 0
    assert "web" in out
    assert err == ""


async def test_a_trusted_certificate_prints_no_warning(tls_cluster: tuple[str, Path], tmp_path: Path) -> None:
    server, cert = tls_cluster
    authority = base64.b64encode(cert.read_bytes()).decode()
    config = kubeconfig(tmp_path / "trusted", server, **{"certificate-authority-data": authority})

    code, out, err = await vmbackupctl(config, "get", "web")

    assert code == 0
    assert "web" in out
    assert err == ""


async def test_an_untrusted_certificate_is_still_refused(tls_cluster: tuple[str, Path], tmp_path: Path) -> None:
    server, _ = tls_cluster
    config = kubeconfig(tmp_path / "untrusted", server)

    code, _, err = await vmbackupctl(config, "get", "web")

    assert code == 4
    assert err.startswith(f"vmbackupctl: error: cannot reach the Kubernetes API at {server}")
