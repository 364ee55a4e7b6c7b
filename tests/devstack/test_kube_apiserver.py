"""The local Kubernetes API keeps objects as a real API server does: metadata, resourceVersions, conflicts, lists.

Driven over HTTP with the clients the product uses: the kubernetes Python client (vmbackupctl, the demo), raw
JSON patches with a `test` of metadata.resourceVersion (what kopf sends for finalizers), and the real kubectl.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack.kube_local import DEFAULT_CRDS, LocalKubernetes
from devstack.kube_namespaces import NEW_CLUSTER_NAMESPACES
from devstack.kube_tables import printer_columns
from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL

RESTORES = "vmrestores"
SCHEDULED = {"schedule": "0 2 * * *"}


@pytest.fixture(scope="module")
def local_kube() -> Iterator[LocalKubernetes]:
    with LocalKubernetes(namespaces=NEW_CLUSTER_NAMESPACES) as kube:
        yield kube


@pytest.fixture
def kubeconfig(local_kube: LocalKubernetes, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(local_kube.kubeconfig())
    return path


@pytest.fixture
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


@pytest.fixture
def objects(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def restore(objects: client.CustomObjectsApi, name: str, namespace: str = "default") -> dict[str, Any]:
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "VMRestore",
        "metadata": {"name": name},
        "spec": {"policy": "wordpress"},
    }
    created: dict[str, Any] = objects.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, RESTORES, body)
    return created


def patch(objects: client.CustomObjectsApi, name: str, body: Any) -> dict[str, Any]:
    patched: dict[str, Any] = objects.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, "default", RESTORES, name, body
    )
    return patched


def json_patch(kube: LocalKubernetes, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON patch (RFC 6902) over HTTP, as kopf sends it; an HTTPError carries the API server's refusal."""
    request = urllib.request.Request(
        f"{kube.url}/apis/{API_GROUP}/{API_VERSION}/namespaces/default/{RESTORES}/{name}",
        data=json.dumps(ops).encode(),
        headers={"Content-Type": "application/json-patch+json"},
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        patched: dict[str, Any] = json.loads(response.read())
    return patched


def test_a_created_object_gets_what_the_server_assigns(objects: client.CustomObjectsApi) -> None:
    metadata = restore(objects, "assigned")["metadata"]

    assert metadata["uid"]
    assert metadata["resourceVersion"]
    assert metadata["generation"] == 1
    assert metadata["creationTimestamp"].endswith("Z")
    assert metadata["namespace"] == "default"


def test_every_change_gets_a_new_resource_version(objects: client.CustomObjectsApi) -> None:
    first = restore(objects, "versions")["metadata"]["resourceVersion"]

    second = patch(objects, "versions", {"metadata": {"annotations": {"a": "1"}}})["metadata"]["resourceVersion"]
    unchanged = patch(objects, "versions", {"metadata": {"annotations": {"a": "1"}}})["metadata"]["resourceVersion"]

    assert second != first
    assert unchanged == second  # a write that changes nothing is no new version


def test_generation_counts_changes_of_the_spec_only(objects: client.CustomObjectsApi) -> None:
    restore(objects, "generations")
    patch(objects, "generations", {"metadata": {"labels": {"a": "1"}}})
    objects.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, "default", RESTORES, "generations", {"status": {"phase": "Running"}}
    )
    assert patch(objects, "generations", {"metadata": {"labels": {"a": "2"}}})["metadata"]["generation"] == 1

    assert patch(objects, "generations", {"spec": {"policy": "other"}})["metadata"]["generation"] == 2


def test_a_patch_with_a_stale_resource_version_is_a_conflict(objects: client.CustomObjectsApi) -> None:
    stale = restore(objects, "stale")["metadata"]["resourceVersion"]
    patch(objects, "stale", {"spec": {"policy": "newer"}})

    with pytest.raises(ApiException) as refused:
        patch(objects, "stale", {"metadata": {"resourceVersion": stale}, "spec": {"policy": "lost"}})

    assert refused.value.status == 409
    assert json.loads(refused.value.body)["reason"] == "Conflict"


def test_a_replace_with_a_stale_resource_version_is_a_conflict(objects: client.CustomObjectsApi) -> None:
    old = restore(objects, "replaced")
    patch(objects, "replaced", {"spec": {"policy": "newer"}})

    with pytest.raises(ApiException) as refused:
        objects.replace_namespaced_custom_object(API_GROUP, API_VERSION, "default", RESTORES, "replaced", old)

    assert refused.value.status == 409


def test_a_replace_with_the_current_version_replaces_the_object(objects: client.CustomObjectsApi) -> None:
    restore(objects, "whole")
    current = patch(objects, "whole", {"spec": {"policy": "p", "instance": "vm"}})
    current["spec"] = {"policy": "q"}  # no instance: a replace drops what the body leaves out

    replaced = objects.replace_namespaced_custom_object(API_GROUP, API_VERSION, "default", RESTORES, "whole", current)

    assert replaced["spec"] == {"policy": "q"}
    assert replaced["metadata"]["uid"] == current["metadata"]["uid"]


def test_creating_an_existing_name_is_already_exists(objects: client.CustomObjectsApi) -> None:
    restore(objects, "twice")

    with pytest.raises(ApiException) as refused:
        restore(objects, "twice")

    assert refused.value.status == 409
    assert json.loads(refused.value.body)["reason"] == "AlreadyExists"


def test_a_json_patch_testing_the_current_version_applies(
    objects: client.CustomObjectsApi, local_kube: LocalKubernetes
) -> None:
    version = restore(objects, "finalized")["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/metadata/finalizers", "value": ["vmbackup.dev/restore"]},
    ]

    patched = json_patch(local_kube, "finalized", ops)

    assert patched["metadata"]["finalizers"] == ["vmbackup.dev/restore"]
    assert patched["metadata"]["resourceVersion"] != version


def test_a_json_patch_testing_a_stale_version_is_refused_whole(
    objects: client.CustomObjectsApi, local_kube: LocalKubernetes
) -> None:
    stale = restore(objects, "raced")["metadata"]["resourceVersion"]
    patch(objects, "raced", {"metadata": {"annotations": {"someone": "else"}}})
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "add", "path": "/metadata/finalizers", "value": ["vmbackup.dev/restore"]},
    ]

    with pytest.raises(urllib.error.HTTPError) as refused:
        json_patch(local_kube, "raced", ops)

    assert refused.value.code == 422  # kube-apiserver's answer to a failed test (kubernetes/kubernetes#68346)
    stored = objects.get_namespaced_custom_object(API_GROUP, API_VERSION, "default", RESTORES, "raced")
    assert "finalizers" not in stored["metadata"]


def test_a_list_says_its_kind_and_its_items_theirs(objects: client.CustomObjectsApi) -> None:
    restore(objects, "listed")

    listed = objects.list_cluster_custom_object(API_GROUP, API_VERSION, RESTORES)

    assert listed["kind"] == "VMRestoreList"
    assert listed["apiVersion"] == f"{API_GROUP}/{API_VERSION}"
    assert listed["metadata"]["resourceVersion"]
    assert {(item["kind"], item["apiVersion"]) for item in listed["items"]} == {("VMRestore", listed["apiVersion"])}


def test_kubectl_lists_restores_of_every_namespace(
    objects: client.CustomObjectsApi, kubeconfig: Path, kubectl_bin: Path
) -> None:
    restore(objects, "by-kubectl")

    shown = subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(kubeconfig), "get", "vmrestores", "-A"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert shown.returncode == 0, shown.stderr
    assert "by-kubectl" in shown.stdout


def test_an_object_in_a_namespace_that_does_not_exist_is_refused(objects: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as refused:
        restore(objects, "nowhere", namespace="finance")

    assert refused.value.status == 404
    assert json.loads(refused.value.body)["message"] == 'namespaces "finance" not found'


def test_a_created_namespace_takes_objects(objects: client.CustomObjectsApi, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})

    created = restore(objects, "in-shop", namespace="shop")

    assert created["metadata"]["namespace"] == "shop"
    assert core.read_namespace("shop").status.phase == "Active"
    assert {"default", "shop"} <= {ns.metadata.name for ns in core.list_namespace().items}


def test_objects_named_by_generate_name_get_names_of_their_own(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    event = {"metadata": {"generateName": "kopf-event-"}, "involvedObject": {"name": "x"}, "reason": "R"}

    names = {core.create_namespaced_event("default", event).metadata.name for _ in range(2)}

    assert len(names) == 2
    assert all(name.startswith("kopf-event-") for name in names)


def test_kubectl_prints_a_policys_printer_columns(
    objects: client.CustomObjectsApi, kubeconfig: Path, kubectl_bin: Path
) -> None:
    """The README's `kubectl get vmbackuppolicies` table: the server renders the CRD's printer columns."""
    body = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "VMBackupPolicy", "metadata": {"name": "printed"}}
    objects.create_namespaced_custom_object(API_GROUP, API_VERSION, "default", PLURAL, {**body, "spec": {}})
    objects.patch_namespaced_custom_object(API_GROUP, API_VERSION, "default", PLURAL, "printed", {"spec": SCHEDULED})
    status = {"status": {"result": "Succeeded", "lastSnapshotTime": "2026-12-01T02:00:00Z"}}
    objects.patch_namespaced_custom_object_status(API_GROUP, API_VERSION, "default", PLURAL, "printed", status)

    shown = subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(kubeconfig), "get", PLURAL, "printed"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    header, row = shown.stdout.splitlines()
    columns = printer_columns(DEFAULT_CRDS)[f"{API_GROUP}/{API_VERSION}/{PLURAL}"]
    shown_by_default = ["NAME"] + [c["name"].upper() for c in columns if not c.get("priority")]
    assert header.split() == " ".join(shown_by_default).split()
    assert row.split()[:6] == ["printed", "0", "2", "*", "*", "*"]
    assert "Succeeded" in row.split()


def test_a_delete_held_by_a_finalizer_is_a_write_and_releasing_it_deletes(
    objects: client.CustomObjectsApi, local_kube: LocalKubernetes
) -> None:
    created = restore(objects, "held")
    version = created["metadata"]["resourceVersion"]
    add = {"op": "add", "path": "/metadata/finalizers", "value": ["vmbackup.dev/restore"]}
    held = json_patch(local_kube, "held", [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, add])

    objects.delete_namespaced_custom_object(API_GROUP, API_VERSION, "default", RESTORES, "held")
    deleting = objects.get_namespaced_custom_object(API_GROUP, API_VERSION, "default", RESTORES, "held")
    current = deleting["metadata"]["resourceVersion"]
    remove = {"op": "remove", "path": "/metadata/finalizers"}
    json_patch(local_kube, "held", [{"op": "test", "path": "/metadata/resourceVersion", "value": current}, remove])

    assert deleting["metadata"]["deletionTimestamp"]
    assert current != held["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as gone:
        objects.get_namespaced_custom_object(API_GROUP, API_VERSION, "default", RESTORES, "held")
    assert gone.value.status == 404
