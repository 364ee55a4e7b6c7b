"""The demo's Kubernetes side: what a new cluster needs before the examples apply, and the examples themselves.

The same steps run on the local API (kmock) and on the cluster in KUBECONFIG, so the demo on a new cluster does
what it does locally: it creates the namespaces the examples use (saying which, in one line) and applies
crds/examples/ as `kubectl apply` would. A kubeconfig with insecure-skip-tls-verify (a test cluster with a
self-signed certificate) is said once; urllib3's warning on every request is not repeated to the user.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import InsecureRequestWarning

from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "crds" / "examples"
CRD_FILES = tuple(sorted((REPO_ROOT / "crds").glob("*.yaml")))
CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
TLS_OFF_NOTE = "TLS verification is off: the kubeconfig sets insecure-skip-tls-verify"


def example_policies() -> list[dict[str, Any]]:
    """The VMBackupPolicy documents shipped in crds/examples/."""
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "VMBackupPolicy":
                docs.append(doc)
    return docs


def example_namespaces() -> list[str]:
    """Every namespace the shipped examples use."""
    return sorted({doc["metadata"].get("namespace", "default") for doc in example_policies()})


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


def tls_verification_off(kubeconfig: Path) -> bool:
    """True when the kubeconfig turns TLS verification off; then urllib3's per-request warning is silenced here.

    The user chose it in their kubeconfig; the demo says so once instead of twice per request.
    """
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    if configuration.verify_ssl:
        return False
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    return True


def apply_crds(api: client.ApiClient, paths: Iterable[Path] = CRD_FILES) -> list[str]:
    """Create each CustomResourceDefinition, or replace it with the shipped one; their names.

    As `kubectl apply -f crds/` leaves them, without needing the server's OpenAPI document (kubectl's client-side
    validation downloads it first).
    """
    objects = client.CustomObjectsApi(api)
    applied = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            name = doc["metadata"]["name"]
            try:
                objects.create_cluster_custom_object(*CRDS, doc)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = cast(dict[str, Any], objects.get_cluster_custom_object(*CRDS, name))
                version = current["metadata"]["resourceVersion"]
                replacement = {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}}
                objects.replace_cluster_custom_object(*CRDS, name, replacement)
            applied.append(name)
    return applied


def ensure_namespaces(api: client.ApiClient, names: Iterable[str]) -> list[str]:
    """Create the namespaces that do not exist yet; the ones it created, in order."""
    core = client.CoreV1Api(api)
    created = []
    for name in names:
        try:
            core.read_namespace(name)
            continue
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except ApiException as exc:
            if exc.status != 409:  # created meanwhile by someone else: it exists, which is all the demo needs
                raise
            continue
        created.append(name)
    return created


def namespaces_note(created: list[str]) -> str:
    """The one line that says what the demo created in the cluster ('' when nothing)."""
    if not created:
        return ""
    return f"created namespace{'s' if len(created) > 1 else ''} {', '.join(created)} (used by crds/examples/)"


def apply_examples(api: client.ApiClient, echo: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """kubectl apply of crds/examples/ (create, or replace the spec when it exists)."""
    objects = client.CustomObjectsApi(api)
    applied = []
    for doc in example_policies():
        namespace = doc["metadata"].get("namespace", "default")
        name = doc["metadata"]["name"]
        try:
            objects.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, doc)
            verb = "created"
        except ApiException as exc:
            if exc.status != 409:
                raise
            patch = {"spec": doc["spec"]}
            objects.patch_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, name, patch)
            verb = "configured"
        echo(f"vmbackuppolicy.{API_GROUP}/{name} {verb}")
        applied.append((namespace, name))
    return applied
