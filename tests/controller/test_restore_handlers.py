"""VMRestores in the controller: kopf against kmock (the Kubernetes API) and the Cloud Storage emulator (the bucket).

Airflow is configured at an address where nothing listens: the restore DAG is uploaded, and the restore waits
(Pending) to trigger its run. Runs with a real Airflow are in test_restore_handlers_with_airflow.py.
"""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.config import ControllerConfig
from dags_templates.render_restore import render_restore_dag
from tests.controller.conftest import (
    NAMESPACE,
    Starter,
    create_policy,
    create_restore,
    restore_status,
    restore_url,
)
from tests.fixtures.kube import RESTORES, events_for, eventually, offline_config
from vmbackup.model.policy import parse_policy
from vmbackup.model.restore import parse_restore

POLICY_SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
}
TENANCY = {"namespaces": {NAMESPACE: {"projects": [{"project": "shop-prod-1", "zones": ["us-central1-a"]}]}}}
pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def config(gcs_bucket: storage.Bucket) -> ControllerConfig:
    return offline_config(gcs_bucket.name, TENANCY)  # nothing listens at its Airflow address


async def create_policy_and_restore(kube: kmock.KubernetesEmulator, name: str, spec: dict[str, Any]) -> None:
    await create_policy(kube, "db", POLICY_SPEC)
    await create_restore(kube, name, spec)


def dag_in(bucket: storage.Bucket, name: str) -> str | None:
    blob = bucket.get_blob(f"dags/vmrestore__{NAMESPACE}__{name}.py")
    return None if blob is None else blob.download_as_text()


async def test_a_restore_gets_its_dag_in_the_bucket_and_waits_for_airflow(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db"})

        source = await eventually(lambda: dag_in(gcs_bucket, "db-back"), what="restore DAG uploaded")
        status = await eventually(
            lambda: restore_status(kube, "db-back").get("dagId") and restore_status(kube, "db-back")
        )

    policy = parse_policy(NAMESPACE, "db", POLICY_SPEC)
    assert source == render_restore_dag(parse_restore(NAMESPACE, "db-back", {"policyName": "db"}, policy, 1))
    assert status["phase"] == "Pending"
    assert status["dagId"] == "vmrestore__shop__db-back"
    assert "127.0.0.1" in status["message"]
    assert "runId" not in status


async def test_an_invalid_restore_fails_naming_the_field(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db", "instance": "mail-1"})

        status = await eventually(
            lambda: restore_status(kube, "db-back").get("phase") == "Failed" and restore_status(kube, "db-back")
        )
        events = await eventually(lambda: [e for e in events_for(kube, "db-back") if e["reason"] == "InvalidSpec"])

    assert "spec.instance" in status["message"]
    assert events[0]["type"] == "Warning"
    assert dag_in(gcs_bucket, "db-back") is None


async def test_a_target_zone_not_granted_to_the_namespace_is_refused(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db", "targetZone": "europe-west1-b"})

        status = await eventually(
            lambda: restore_status(kube, "db-back").get("phase") == "Failed" and restore_status(kube, "db-back")
        )

    assert "europe-west1-b" in status["message"]
    assert dag_in(gcs_bucket, "db-back") is None


async def test_a_restore_waits_for_its_policy(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_restore(kube, "db-back", {"policyName": "db"})

        status = await eventually(
            lambda: restore_status(kube, "db-back").get("phase") and restore_status(kube, "db-back")
        )

    assert status["phase"] == "Pending"
    assert "waiting for VMBackupPolicy 'db'" in status["message"]
    assert dag_in(gcs_bucket, "db-back") is None


async def test_deleting_a_restore_removes_its_dag(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db"})
        await eventually(lambda: dag_in(gcs_bucket, "db-back"))

        async with kube.delete(restore_url("db-back")):
            pass

        await eventually(lambda: kube.objects[RESTORES, NAMESPACE, "db-back"].deleted)
    assert dag_in(gcs_bucket, "db-back") is None


async def test_an_in_place_restore_without_confirmation_fails_naming_the_field(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db", "mode": "InPlace"})

        status = await eventually(
            lambda: restore_status(kube, "db-back").get("phase") == "Failed" and restore_status(kube, "db-back")
        )

    assert status["message"].startswith("spec.inPlace.confirmReplaceDisks: required for mode InPlace")
    assert "set spec.inPlace.confirmReplaceDisks: true" in status["message"]
    assert dag_in(gcs_bucket, "db-back") is None


async def test_a_confirmed_in_place_restore_gets_its_dag(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    spec = {"policyName": "db", "mode": "InPlace", "inPlace": {"confirmReplaceDisks": True}}
    async with operator():
        await create_policy_and_restore(kube, "db-back", spec)

        source = await eventually(lambda: dag_in(gcs_bucket, "db-back"), what="restore DAG uploaded")
        status = await eventually(
            lambda: restore_status(kube, "db-back").get("dagId") and restore_status(kube, "db-back")
        )

    assert "InPlace" in source
    assert status["instance"] == "db-1"  # the VM restored into is the source itself
