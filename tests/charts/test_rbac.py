"""The chart's RBAC is exactly what the controller uses: every request allowed, every granted verb needed.

The controller (real kopf, production settings) runs a policy's and a restore's whole life against kmock; the
requests kopf made are matched against the chart's rendered roles with Kubernetes' RBAC rules
(tests/fixtures/rbac.py), once cluster-wide (ClusterRole) and once for a namespaced install (Roles). kopf runs
in-process here without leader election: the Lease rules are proven by tests/controller/test_high_availability.py
(real controller processes); every other controller test checks its own requests when its kmock closes
(tests/fixtures/kube.py).
"""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.app import build_controller
from controller.config import ControllerConfig
from controller.handlers import FINALIZER, build_registry
from controller.lease_api import LEASE_GROUP
from controller.reconciler import BACKUP_NOW_ANNOTATION
from tests.fixtures.kube import (
    RESTORES,
    eventually,
    offline_config,
    policy_object,
    policy_url,
    running_operator,
    stored,
)
from tests.fixtures.rbac import ChartRbac, RequestAttributes, controller_requests, request_attributes
from tests.fixtures.tools import Helm
from vmbackup.model.policy import API_GROUP, API_VERSION
from vmbackup.model.restore import KIND as RESTORE_KIND
from vmbackup.model.restore import PLURAL as RESTORE_PLURAL

NAMESPACE = "shop"
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
}
TENANCY = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def config(gcs_bucket: storage.Bucket) -> ControllerConfig:
    return offline_config(gcs_bucket.name, TENANCY)


def restore_url(name: str | None = None) -> str:
    base = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{NAMESPACE}/{RESTORE_PLURAL}"
    return base if name is None else f"{base}/{name}"


async def send(kube: kmock.KubernetesEmulator, method: str, url: str, body: dict[str, Any] | None = None) -> None:
    async with kube.request(method, url, json=body) as response:
        assert response.status in (200, 201), await response.text()


async def a_policy_and_a_restore_live_and_die(kube: kmock.KubernetesEmulator) -> None:
    """What users do: create, change, ask for a backup, restore, delete (the finalizers let go)."""
    await send(kube, "POST", policy_url(NAMESPACE), policy_object(NAMESPACE, "db", SPEC))
    await eventually(lambda: FINALIZER in stored(kube, NAMESPACE, "db")["metadata"].get("finalizers", []))
    await eventually(lambda: stored(kube, NAMESPACE, "db").get("status", {}).get("dagHash"))
    await send(kube, "PATCH", policy_url(NAMESPACE, "db"), {"metadata": {"generation": 2}, "spec": {"suspend": True}})
    await eventually(lambda: stored(kube, NAMESPACE, "db").get("status", {}).get("observedGeneration") == 2)
    await send(kube, "PATCH", policy_url(NAMESPACE, "db"), {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: "1"}}})
    restore = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": RESTORE_KIND,
        "metadata": {
            "name": "db-restored",
            "namespace": NAMESPACE,
            "uid": "uid-r",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {"policyName": "db"},
    }
    await send(kube, "POST", restore_url(), restore)
    await eventually(lambda: kube.objects[RESTORES, NAMESPACE, "db-restored"].raw.get("status"))
    await send(kube, "DELETE", restore_url("db-restored"))
    await eventually(lambda: kube.objects[RESTORES, NAMESPACE, "db-restored"].deleted, what="restore gone")
    await send(kube, "DELETE", policy_url(NAMESPACE, "db"))
    await eventually(lambda: kube.objects[f"{API_GROUP}/{API_VERSION}/vmbackuppolicies", NAMESPACE, "db"].deleted)


async def checked_against(
    rbac: ChartRbac, kube: kmock.KubernetesEmulator, config: ControllerConfig, gcs_client: storage.Client, **scope: Any
) -> list[RequestAttributes]:
    controller = build_controller(config, storage_client=gcs_client)
    async with running_operator(build_registry(controller), **scope):
        await a_policy_and_a_restore_live_and_die(kube)
    made = controller_requests(kube)
    assert not rbac.denied(made), "the chart does not allow: " + "; ".join(map(str, rbac.denied(made)))
    unused = [grant for grant in rbac.unused(made) if LEASE_GROUP not in grant]  # no Lease in-process
    assert not unused, "granted but never used: " + "; ".join(unused)
    return made


async def test_a_cluster_wide_install_grants_what_the_controller_uses_and_nothing_else(
    kube: kmock.KubernetesEmulator, helm: Helm, config: ControllerConfig, gcs_client: storage.Client
) -> None:
    made = await checked_against(ChartRbac.from_render(helm.template()), kube, config, gcs_client)

    distinct = sorted({r.distinct() for r in made if r.is_resource})
    print(f"{len(distinct)} distinct requests checked:", *map(str, distinct), sep="\n  ")
    assert RequestAttributes("watch", API_GROUP, "vmbackuppolicies") in distinct


async def test_a_namespaced_install_grants_what_the_controller_uses_in_its_namespace(
    kube: kmock.KubernetesEmulator, helm: Helm, config: ControllerConfig, gcs_client: storage.Client
) -> None:
    rbac = ChartRbac.from_render(helm.template(values={"watchNamespaces": [NAMESPACE]}))

    made = await checked_against(rbac, kube, config, gcs_client, namespaces=(NAMESPACE,))

    assert all(r.namespace == NAMESPACE for r in made if r.is_resource)


def test_the_kubernetes_request_attributes_are_derived_as_the_api_server_does() -> None:
    policies = f"/apis/{API_GROUP}/{API_VERSION}"
    assert request_attributes("GET", f"{policies}/vmbackuppolicies", {"watch": "true"}) == RequestAttributes(
        "watch", API_GROUP, "vmbackuppolicies"
    )
    assert request_attributes("PATCH", f"{policies}/namespaces/a/vmbackuppolicies/p/status", {}) == RequestAttributes(
        "patch", API_GROUP, "vmbackuppolicies", "status", "a", "p"
    )
    assert request_attributes("POST", "/api/v1/namespaces/a/events", {}) == RequestAttributes(
        "create", "", "events", "", "a"
    )
    assert request_attributes("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/x", {}) == RequestAttributes(
        "update", "coordination.k8s.io", "leases", "", "a", "x"
    )
    assert not request_attributes("GET", "/apis/kopf.dev/v1", {}).is_resource
    assert request_attributes("DELETE", f"{policies}/namespaces/a/vmbackuppolicies", {}).verb == "deletecollection"


def test_a_role_allows_only_in_its_namespace_and_a_missing_verb_is_denied(helm: Helm) -> None:
    rbac = ChartRbac.from_render(helm.template(values={"watchNamespaces": [NAMESPACE]}))
    watch = RequestAttributes("watch", API_GROUP, "vmbackuppolicies", namespace=NAMESPACE)

    assert rbac.allowed(watch)
    assert not rbac.allowed(RequestAttributes("watch", API_GROUP, "vmbackuppolicies", namespace="other"))
    assert not rbac.allowed(RequestAttributes("watch", API_GROUP, "vmbackuppolicies"))  # cluster scope
    assert not rbac.allowed(RequestAttributes("delete", API_GROUP, "vmbackuppolicies", namespace=NAMESPACE))
    assert not rbac.allowed(RequestAttributes("list", "apiextensions.k8s.io", "customresourcedefinitions"))
