"""The local stack's Kubernetes API (kmock on loopback), reached through a kubeconfig like a real cluster."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from devstack.kube_local import DEFAULT_CRDS, LocalKubernetes, resources_from_crds
from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL


@pytest.fixture(scope="module")
def local_kube() -> Iterator[LocalKubernetes]:
    with LocalKubernetes() as kube:
        yield kube


@pytest.fixture
def custom_objects(local_kube: LocalKubernetes, tmp_path: Path) -> client.CustomObjectsApi:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(local_kube.kubeconfig())
    return client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))


def test_every_shipped_crd_is_served() -> None:
    served = resources_from_crds(DEFAULT_CRDS)
    assert f"{API_GROUP}/{API_VERSION}/{PLURAL}" in served
    assert served[f"{API_GROUP}/{API_VERSION}/{PLURAL}"].subresources == {"status"}


def test_a_policy_and_its_status_round_trip(custom_objects: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "VMBackupPolicy",
        "metadata": {"name": "wordpress", "namespace": "default"},
        "spec": {"project": "demo-project"},
    }
    custom_objects.create_namespaced_custom_object(API_GROUP, API_VERSION, "default", PLURAL, body)
    custom_objects.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, "default", PLURAL, "wordpress", {"status": {"result": "Succeeded"}}
    )
    stored = custom_objects.get_namespaced_custom_object(API_GROUP, API_VERSION, "default", PLURAL, "wordpress")
    assert stored["status"] == {"result": "Succeeded"}
