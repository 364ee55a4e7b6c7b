"""What the controller's tests share, defined once: a controller to start, and the objects they create and read.

The Kubernetes API (kmock), the bucket (the Cloud Storage emulator) and Airflow come from tests/fixtures/ (loaded by
tests/conftest.py). Here: a controller process-equivalent started on them (`start_controller`, and `operator` for a
test file's own `config` fixture), Composer's bucket-to-Airflow sync (`mirrored`), an Airflow client (`airflow`)
and the calls to it a test is not about, asked again while Airflow cannot answer (`retried`, `end_run`),
and the VMBackupPolicies and VMRestores of namespace `shop` as a user creates and reads them, and their metric
series (`series_of`); `written`: a polled run status as the status is patched with it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import kmock
import pytest
from google.cloud import storage
from pydantic import BaseModel

from controller.airflow_api import AirflowClient
from controller.airflow_errors import AirflowUnreachableError
from controller.app import build_controller
from controller.conditions import find_condition
from controller.config import AirflowCredentials, ControllerConfig
from controller.handlers import build_registry
from controller.reconciler import Controller
from controller.run_status import PolicyRunStatus
from devstack.bucket_mirror import BucketMirror
from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.airflow_api import RETRY_SECONDS, AirflowServer
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.kube import RESTORES, eventually, policy_object, policy_url, running_operator, stored
from vmbackup.model.policy import API_GROUP, API_VERSION
from vmbackup.model.restore import KIND as RESTORE_KIND
from vmbackup.model.restore import PLURAL as RESTORE_PLURAL

NAMESPACE = "shop"  # where the controller tests' policies and restores live

# The coverage world (`coverage_world`): the seeded demo-project granted to shop and ops, shop-dev-1 granted to shop
# in us-east1-b only, and billing-prod-1 granted to nobody.
DEV_PROJECT = "shop-dev-1"
UNGRANTED_PROJECT = "billing-prod-1"
COVERAGE_TENANCY: dict[str, Any] = {
    "namespaces": {
        NAMESPACE: {"projects": [GCE_PROJECT, {"project": DEV_PROJECT, "zones": ["us-east1-b"]}]},
        "ops": {"projects": [GCE_PROJECT]},
    }
}

T = TypeVar("T")
Starter = Callable[[], AbstractAsyncContextManager[Controller]]
ConfiguredStarter = Callable[[ControllerConfig], AbstractAsyncContextManager[Controller]]


@pytest.fixture
def start_controller(gcs_client: storage.Client) -> ConfiguredStarter:
    """Start a controller process-equivalent (new memory, same cluster and bucket) for a configuration, as often
    as needed: kopf with the controller's own registry, policies and restores included."""

    @asynccontextmanager
    async def start(config: ControllerConfig) -> AsyncIterator[Controller]:
        controller = build_controller(config, storage_client=gcs_client)
        async with running_operator(build_registry(controller)):
            yield controller

    return start


@pytest.fixture
def coverage_world(gce_sim: ComputeSimulator) -> ComputeSimulator:
    """Two granted projects (one only in us-east1-b) and an ungranted one, with VMs in several zones each."""
    gce_sim.add_instance(DEV_PROJECT, "us-east1-b", "dev-web", labels={"app": "shop", "tier": "web"})
    gce_sim.add_instance(DEV_PROJECT, "us-east1-c", "dev-outside-grant")
    gce_sim.add_instance(UNGRANTED_PROJECT, "us-central1-a", "payroll")
    return gce_sim


@pytest.fixture
def operator(start_controller: ConfiguredStarter, config: ControllerConfig) -> Starter:
    """The controller of the test file's `config` fixture, started afresh on each call."""
    return lambda: start_controller(config)


@pytest.fixture
def mirrored(gcs_bucket: storage.Bucket, airflow3_api: AirflowServer) -> Iterator[BucketMirror]:
    """Composer's bucket -> Airflow folder sync; our files leave Airflow's folders when the test ends."""
    mirror = BucketMirror(gcs_bucket, airflow3_api.home)
    mirror.start(interval_seconds=0.5)
    yield mirror
    mirror.stop()
    for blob in gcs_bucket.client.list_blobs(gcs_bucket.name):
        blob.delete()
    mirror.sync_once()


def airflow3_config(bucket: storage.Bucket, airflow3_api: AirflowServer, **settings: Any) -> ControllerConfig:
    """A controller of the `shop` namespace (granted shop-prod-1) on the shared Airflow 3 and the test bucket,
    polling each second; `settings` adds or overrides ControllerConfig fields."""
    fields: dict[str, Any] = {
        "bucket": bucket.name,
        "airflow_url": airflow3_api.base_url,
        "airflow_auth": AirflowCredentials(mode="jwt", username=airflow3_api.username, password=airflow3_api.password),
        "poll_interval_seconds": 1.0,
        "metrics_port": 0,
        "liveness_endpoint": None,
        "tenancy_text": json.dumps({"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}),
    }
    return ControllerConfig(**{**fields, **settings})


@pytest.fixture
async def airflow(airflow3_api: AirflowServer) -> AsyncIterator[AirflowClient]:
    async with airflow3_api.client() as client:
        yield client


async def retried(call: Callable[[], Awaitable[T]], what: str) -> T:
    """A call to the test Airflow that the test is not about (setting a run up, ending it), asked again while Airflow
    does not answer it: AirflowUnavailable (a 5xx, e.g. "Database error" while its sqlite is busy; a timeout),
    or the same sorted by AirflowControl (AirflowUnreachableError). Anything Airflow answers with ends it."""

    async def answered() -> tuple[T] | None:
        try:
            return (await call(),)  # in a tuple: a falsy answer is an answer too
        except AirflowUnreachableError:
            return None  # (AirflowUnavailable is "not yet" for eventually itself)

    answer = await eventually(answered, within=RETRY_SECONDS, interval=0.5, what=what)
    return answer[0]


async def end_run(airflow: AirflowClient, dag_id: str, run_id: str, state: str) -> None:
    """Set a run's state through the REST API, as a user ending it would (asked again while Airflow cannot answer)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    await retried(lambda: airflow.raw_request("PATCH", path, json_body={"state": state}), f"{run_id} set {state}")


async def create_policy(kube: kmock.KubernetesEmulator, name: str, spec: dict[str, Any], **metadata: Any) -> None:
    async with kube.post(policy_url(NAMESPACE), json=policy_object(NAMESPACE, name, spec, **metadata)) as response:
        assert response.status in (200, 201), await response.text()


async def patch_policy(kube: kmock.KubernetesEmulator, name: str, patch: dict[str, Any]) -> None:
    async with kube.patch(policy_url(NAMESPACE, name), json=patch) as response:
        assert response.status == 200, await response.text()


def status_of(kube: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    """A policy's status as the API server holds it now."""
    return stored(kube, NAMESPACE, name).get("status") or {}


def condition(kube: kmock.KubernetesEmulator, name: str, type_: str) -> dict[str, Any]:
    """One condition of a policy's status ({} until it has one)."""
    found = find_condition(status_of(kube, name).get("conditions"), type_)
    return dict(found) if found else {}


def restore_url(name: str | None = None) -> str:
    base = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{NAMESPACE}/{RESTORE_PLURAL}"
    return base if name is None else f"{base}/{name}"


def restore_object(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": RESTORE_KIND,
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": spec,
    }


async def create_restore(kube: kmock.KubernetesEmulator, name: str, spec: dict[str, Any]) -> None:
    async with kube.post(restore_url(), json=restore_object(name, spec)) as response:
        assert response.status in (200, 201), await response.text()


def restore_status(kube: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    """A VMRestore's status as the API server holds it now."""
    return dict(kube.objects[RESTORES, NAMESPACE, name].raw.get("status") or {})


def put_report(bucket: storage.Bucket, object_name: str, report: BaseModel) -> None:
    """A report in the bucket as the DAG that writes it does: JSON with the contract's camelCase names."""
    bucket.blob(object_name).upload_from_string(report.model_dump_json(by_alias=True), content_type="application/json")


def series_of(controller: Controller, name: str) -> list[str]:
    """The names of the controller's metric samples labelled with policy `name` of `shop`."""
    return [
        sample.name
        for family in controller.metrics.registry.collect()
        for sample in family.samples
        if (sample.labels.get("namespace"), sample.labels.get("name")) == (NAMESPACE, name)
    ]


def written(poll: PolicyRunStatus) -> dict[str, Any]:
    """The result the runs read as, and the run fields as the status is patched with them."""
    fields = poll.run_fields()
    assert fields is not None, "Airflow was not reachable"
    return {"result": fields.result, **fields.to_status()}
