"""`make demo` with KUBECONFIG on a new cluster: it creates what the examples need, says so once, warns of nothing.

No cluster exists here, so the cluster is the local API server served as a real one is reached: over HTTPS with a
self-signed certificate, through a kubeconfig that says insecure-skip-tls-verify, holding only a new cluster's
namespaces. The demo takes its KUBECONFIG path (LocalStack.start_kubernetes with KUBECONFIG set).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.__main__ import api_refusal
from devstack.cluster import TLS_OFF_NOTE, api_client, apply_examples, example_namespaces, example_policies
from devstack.kube_local import LocalKubernetes
from devstack.kube_namespaces import NEW_CLUSTER_NAMESPACES
from devstack.stack import LocalStack
from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL

# The tests' own reads of the cluster skip TLS verification too; what the demo warns is recorded in demo_kubernetes.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 that no client trusts (as a test cluster's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apiserver.crt", directory / "apiserver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def new_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new cluster behind HTTPS with a self-signed certificate; KUBECONFIG points at it. Yields the kubeconfig."""
    with LocalKubernetes(namespaces=NEW_CLUSTER_NAMESPACES, ssl_context=self_signed_context(tmp_path)) as cluster:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(cluster.kubeconfig())
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield kubeconfig


@pytest.fixture
def demo_kubernetes(new_cluster: Path, tmp_path: Path) -> Iterator[tuple[LocalStack, list[str]]]:
    """The demo's Kubernetes step on that cluster, with every line it printed."""
    printed: list[str] = []
    stack = LocalStack(state_dir=tmp_path / "state", echo=printed.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack.start_kubernetes()
        apply_examples(api_client(new_cluster), echo=printed.append)
    printed += [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    try:
        yield stack, printed
    finally:
        stack.stop()


def test_the_demo_uses_the_cluster_in_kubeconfig(
    demo_kubernetes: tuple[LocalStack, list[str]], new_cluster: Path
) -> None:
    stack, printed = demo_kubernetes

    assert stack.kubeconfig == new_cluster
    assert printed[0] == f"[4/5] kubernetes    {new_cluster} (CRDs applied from crds/)"


def test_the_demo_creates_the_namespaces_its_examples_use_and_says_so_once(
    demo_kubernetes: tuple[LocalStack, list[str]], new_cluster: Path
) -> None:
    _, printed = demo_kubernetes
    missing = [ns for ns in example_namespaces() if ns not in NEW_CLUSTER_NAMESPACES]

    namespaces = {ns.metadata.name for ns in client.CoreV1Api(api_client(new_cluster)).list_namespace().items}

    assert set(example_namespaces()) <= namespaces
    assert [line for line in printed if "namespace" in line] == [
        f"                    created namespaces {', '.join(missing)} (used by crds/examples/)"
    ]


def test_every_example_is_applied_on_a_new_cluster(
    demo_kubernetes: tuple[LocalStack, list[str]], new_cluster: Path
) -> None:
    _, printed = demo_kubernetes
    objects = client.CustomObjectsApi(api_client(new_cluster))

    stored = {
        (item["metadata"]["namespace"], item["metadata"]["name"])
        for item in objects.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL)["items"]
    }

    expected = {(doc["metadata"].get("namespace", "default"), doc["metadata"]["name"]) for doc in example_policies()}
    assert stored == expected
    assert sum(line.endswith(" created") for line in printed) == len(expected)


def test_tls_verification_off_is_said_once_and_nothing_warns(demo_kubernetes: tuple[LocalStack, list[str]]) -> None:
    _, printed = demo_kubernetes

    assert [line.strip() for line in printed if "TLS" in line] == [TLS_OFF_NOTE]
    assert [line for line in printed if line.startswith("warning:")] == []


def test_a_second_demo_on_the_same_cluster_creates_nothing_and_says_nothing_of_it(
    demo_kubernetes: tuple[LocalStack, list[str]], tmp_path: Path
) -> None:
    printed: list[str] = []
    again = LocalStack(state_dir=tmp_path / "again", echo=printed.append)
    try:
        again.start_kubernetes()
    finally:
        again.stop()

    assert [line for line in printed if "namespace" in line] == []


def test_a_refusal_of_the_cluster_is_one_line_with_the_servers_message(new_cluster: Path) -> None:
    objects = client.CustomObjectsApi(api_client(new_cluster))
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(API_GROUP, API_VERSION, "nowhere", PLURAL, example_policies()[0])

    said = api_refusal(refused.value)

    assert said == 'the Kubernetes API refused a request: 404 Not Found: namespaces "nowhere" not found'
