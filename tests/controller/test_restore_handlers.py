"""VMRestores in the controller: kopf against kmock (the Kubernetes API) and the Cloud Storage emulator (the bucket).

Airflow is configured at an address where nothing listens: the shared restore DAGs' file is in the bucket, no
restore gets a DAG file of its own, and the restore waits (Pending), saying why, to start its run. Runs with a
real Airflow are in test_restore_handlers_with_airflow.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.conditions import RESTORE_RUN_STARTED, RESTORE_WAITING, find_condition
from controller.config import ControllerConfig
from controller.restore_progress import AIRFLOW_UNREACHABLE, SIGNING_KEY_MISSING
from dags_templates.render_restore import SHARED_DAG_FILE_ID, render_restore_dag, shared_restore_dag_source
from tests.controller.conftest import (
    NAMESPACE,
    ConfiguredStarter,
    Starter,
    create_policy,
    create_restore,
    restore_status,
    restore_url,
)
from tests.fixtures.kube import RESTORES, events_for, eventually, offline_config
from vmbackup.model.policy import parse_policy
from vmbackup.model.restore import SHARED_IN_PLACE_RESTORE_DAG_ID, SHARED_RESTORE_DAG_ID, parse_restore

POLICY_SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
}
TENANCY = {"namespaces": {NAMESPACE: {"projects": [{"project": "shop-prod-1", "zones": ["us-central1-a"]}, "shop-dr"]}}}
pytestmark = pytest.mark.usefixtures("kubeconfig")


KEY = "k" * 64


@pytest.fixture
def config(gcs_bucket: storage.Bucket) -> ControllerConfig:
    # nothing listens at its Airflow address
    return dataclasses.replace(offline_config(gcs_bucket.name, TENANCY), run_signing_key=KEY)


async def create_policy_and_restore(kube: kmock.KubernetesEmulator, name: str, spec: dict[str, Any]) -> None:
    await create_policy(kube, "db", POLICY_SPEC)
    await create_restore(kube, name, spec)


def dag_in(bucket: storage.Bucket, name: str) -> str | None:
    blob = bucket.get_blob(f"dags/vmrestore__{NAMESPACE}__{name}.py")
    return None if blob is None else blob.download_as_text()


def shared_dag_file(bucket: storage.Bucket) -> str | None:
    blob = bucket.get_blob(f"dags/{SHARED_DAG_FILE_ID}.py")
    return None if blob is None else blob.download_as_text()


def waiting_reason(status: dict[str, Any]) -> str | None:
    found = find_condition(status.get("conditions"), RESTORE_WAITING)
    return None if found is None else str(found["reason"])


async def test_a_restore_gets_no_dag_file_and_says_it_waits_for_airflow(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db"})

        status = await eventually(
            lambda: (
                waiting_reason(restore_status(kube, "db-back")) == AIRFLOW_UNREACHABLE
                and restore_status(kube, "db-back")
            ),
            what="the restore says Airflow does not answer",
        )

    assert dag_in(gcs_bucket, "db-back") is None
    assert shared_dag_file(gcs_bucket) == shared_restore_dag_source()
    assert (status["phase"], status["dagId"]) == ("Pending", SHARED_RESTORE_DAG_ID)
    assert status["waitingFor"].startswith("Airflow to answer")
    assert "127.0.0.1" in status["waitingFor"]
    assert status["waitingSince"]
    assert status["message"].startswith("waiting for Airflow to answer")
    started = find_condition(status["conditions"], RESTORE_RUN_STARTED)
    assert started is not None
    assert (started["status"], started["reason"]) == ("False", AIRFLOW_UNREACHABLE)
    assert "runId" not in status


async def test_without_a_signing_key_a_restore_waits_naming_it(
    kube: kmock.KubernetesEmulator, start_controller: ConfiguredStarter, config: ControllerConfig
) -> None:
    async with start_controller(dataclasses.replace(config, run_signing_key=None)):
        await create_policy_and_restore(kube, "db-back", {"policyName": "db"})

        status = await eventually(
            lambda: (
                waiting_reason(restore_status(kube, "db-back")) == SIGNING_KEY_MISSING
                and restore_status(kube, "db-back")
            )
        )

    assert status["phase"] == "Pending"
    assert "VMBACKUP_RUN_SIGNING_KEY" in status["message"]
    assert status["message"].endswith("(docs/operations/restore-signing.md)")


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


async def test_a_target_project_not_granted_to_the_namespace_is_refused(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    spec = {"policyName": "db", "targetProject": "other-team-prod", "overrides": {"networkInterfaces": [{}]}}
    async with operator():
        await create_policy_and_restore(kube, "db-back", spec)

        status = await eventually(
            lambda: restore_status(kube, "db-back").get("phase") == "Failed" and restore_status(kube, "db-back")
        )

    assert "spec.targetProject 'other-team-prod' is not allowed for namespace" in status["message"]
    assert dag_in(gcs_bucket, "db-back") is None


async def test_a_granted_target_project_is_accepted_and_waits_for_airflow(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    spec = {"policyName": "db", "targetProject": "shop-dr", "overrides": {"networkInterfaces": [{}]}}

    def past_the_policy_wait() -> dict[str, Any] | None:
        """Handled before kopf's policy index holds "db", the restore first waits for the policy; then it is
        refused (what this test must catch) or waits for Airflow."""
        status = restore_status(kube, "db-back")
        settled = status.get("phase") == "Failed" or waiting_reason(status) == AIRFLOW_UNREACHABLE
        return status if settled else None

    async with operator():
        await create_policy_and_restore(kube, "db-back", spec)

        status = await eventually(past_the_policy_wait)

    assert status["phase"] == "Pending", status["message"]
    assert status["waitingFor"].startswith("Airflow to answer")  # past the tenancy check, which refuses at once


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


async def test_deleting_a_restore_an_earlier_version_started_removes_its_dag_file(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    policy = parse_policy(NAMESPACE, "db", POLICY_SPEC)
    legacy = parse_restore(NAMESPACE, "db-back", {"policyName": "db"}, policy, 1)
    gcs_bucket.blob(f"dags/{legacy.dag_id}.py").upload_from_string(render_restore_dag(legacy))
    async with operator():
        await create_policy_and_restore(kube, "db-back", {"policyName": "db"})
        await eventually(lambda: restore_status(kube, "db-back").get("dagId"))

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


async def test_a_confirmed_in_place_restore_goes_to_the_in_place_dag(
    kube: kmock.KubernetesEmulator, operator: Starter, gcs_bucket: storage.Bucket
) -> None:
    spec = {"policyName": "db", "mode": "InPlace", "inPlace": {"confirmReplaceDisks": True}}
    async with operator():
        await create_policy_and_restore(kube, "db-back", spec)

        status = await eventually(
            lambda: restore_status(kube, "db-back").get("dagId") and restore_status(kube, "db-back")
        )

    assert status["dagId"] == SHARED_IN_PLACE_RESTORE_DAG_ID
    assert status["instance"] == "db-1"  # the VM restored into is the source itself
    assert dag_in(gcs_bucket, "db-back") is None
