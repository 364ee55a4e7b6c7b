"""The controller end to end: kopf against kmock (the Kubernetes API) and the Cloud Storage emulator (the bucket).

Airflow is configured at an address where nothing listens: the controller must keep serving and say so.
"""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.bucket import package_files
from controller.config import ControllerConfig
from controller.handlers import FINALIZER
from dags_templates.render import render_dag
from tests.controller.conftest import NAMESPACE, condition, create_policy, patch_policy, status_of
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import events_for, eventually, offline_config, policy_url, stored
from vmbackup.model.policy import parse_policy

NAME = "web"
DAG_ID = "vmbackup__shop__web"
DAG_OBJECT = f"dags/{DAG_ID}.py"
OTHER_BUCKET = "shop-own-composer-bucket"
OTHER_AIRFLOW = f"http://127.0.0.1:{free_port()}"  # nothing listens here
TENANCY = {
    "namespaces": {
        "shop": {
            "projects": ["shop-prod-1"],
            "backupProjects": ["shop-backups-1"],
            "composerTargets": [{"bucket": OTHER_BUCKET, "airflowUri": OTHER_AIRFLOW}],
        }
    }
}
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
    "retention": {"count": 7},
}

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def config(gcs_bucket: storage.Bucket) -> ControllerConfig:
    return offline_config(gcs_bucket.name, TENANCY)  # nothing listens at its Airflow address


def dag_in(bucket: storage.Bucket) -> str | None:
    blob = bucket.get_blob(DAG_OBJECT)
    return None if blob is None else blob.download_as_text()


async def test_a_new_policy_gets_its_dag_in_the_bucket(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)

        source = await eventually(lambda: dag_in(gcs_bucket), what="DAG uploaded")
        status = await eventually(lambda: status_of(kube, NAME).get("dagHash") and status_of(kube, NAME))

    created = stored(kube, NAMESPACE, NAME)["metadata"]["creationTimestamp"]
    assert source == render_dag(parse_policy(NAMESPACE, NAME, SPEC, generation=1, created=created))
    assert status["dagId"] == DAG_ID
    assert status["dagHash"] == gcs_bucket.get_blob(DAG_OBJECT).metadata["vmbackup-content-hash"]
    assert status["observedGeneration"] == 1


async def test_a_spec_change_re_renders_the_dag(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        first = await eventually(lambda: dag_in(gcs_bucket))

        await patch_policy(kube, NAME, {"metadata": {"generation": 2}, "spec": {"schedule": "30 4 * * *"}})

        second = await eventually(lambda: (dag_in(gcs_bucket) or first) != first and dag_in(gcs_bucket))
        await eventually(lambda: status_of(kube, NAME).get("observedGeneration") == 2)
    created = stored(kube, NAMESPACE, NAME)["metadata"]["creationTimestamp"]
    expected = parse_policy(NAMESPACE, NAME, {**SPEC, "schedule": "30 4 * * *"}, generation=2, created=created)
    assert second == render_dag(expected)


async def test_a_restart_with_nothing_changed_uploads_nothing(kube, operator, gcs_client, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        await eventually(lambda: status_of(kube, NAME).get("dagHash"))
    generations = {b.name: b.generation for b in gcs_client.list_blobs(gcs_bucket.name)}

    async with operator() as restarted:
        await eventually(lambda: restarted.metrics.value("vmbackup_reconciles_total", {"result": "Ready"}) >= 1)

        assert restarted.metrics.value("vmbackup_uploads_total", {"kind": "dag"}) == 0
        assert restarted.metrics.value("vmbackup_uploads_total", {"kind": "plugin"}) == 0
    assert {b.name: b.generation for b in gcs_client.list_blobs(gcs_bucket.name)} == generations


async def test_deleting_a_policy_removes_its_dag_and_releases_the_finalizer(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        await eventually(lambda: dag_in(gcs_bucket))
        assert FINALIZER in stored(kube, NAMESPACE, NAME)["metadata"]["finalizers"]

        async with kube.delete(policy_url(NAMESPACE, NAME)):
            pass

        await eventually(lambda: kube.objects["vmbackup.dev/v1alpha1/vmbackuppolicies", NAMESPACE, NAME].deleted)
    assert dag_in(gcs_bucket) is None


async def test_a_policy_deleted_while_the_controller_was_down_is_cleaned_up_on_start(
    kube, operator, gcs_bucket
) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        await eventually(lambda: dag_in(gcs_bucket))
    async with kube.delete(policy_url(NAMESPACE, NAME)):
        pass  # held by the finalizer while nobody handles it

    async with operator():
        await eventually(lambda: kube.objects["vmbackup.dev/v1alpha1/vmbackuppolicies", NAMESPACE, NAME].deleted)

    assert dag_in(gcs_bucket) is None


async def test_an_invalid_spec_is_reported_and_nothing_is_uploaded(kube, operator, gcs_bucket) -> None:
    bad = {**SPEC, "schedule": "every night"}
    async with operator():
        await create_policy(kube, NAME, bad)

        ready = await eventually(lambda: condition(kube, NAME, "Ready"))
        events = await eventually(lambda: [e for e in events_for(kube, NAME) if e["reason"] == "InvalidSpec"])

    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.schedule" in ready["message"]
    assert status_of(kube, NAME)["result"] == "Invalid"
    assert events[0]["type"] == "Warning"
    assert "spec.schedule" in events[0]["message"]
    assert dag_in(gcs_bucket) is None


async def test_a_restart_does_not_repeat_the_warning_for_a_known_problem(kube, operator) -> None:
    def warnings() -> list[dict[str, Any]]:
        return [e for e in events_for(kube, NAME) if e["reason"] == "InvalidSpec"]

    async with operator():
        await create_policy(kube, NAME, {**SPEC, "schedule": "every night"})
        await eventually(warnings)
        # kopf patches the status after the handler returns (and the Event can come first): the restart's only
        # memory of the warning is this stored condition, so it must be there before the operator stops.
        await eventually(lambda: condition(kube, NAME, "Ready").get("reason") == "InvalidSpec")
    async with operator() as restarted:
        await eventually(lambda: restarted.metrics.value("vmbackup_reconciles_total", {"result": "Invalid"}) >= 1)
        # A repeated warning would only be queued by now (kopf posts Events in the background and drops the queue
        # when it stops). kopf posts one object's Events in order: once the fix's Event is there, so is any repeat.
        await patch_policy(kube, NAME, {"metadata": {"generation": 2}, "spec": {"schedule": SPEC["schedule"]}})
        await eventually(lambda: [e for e in events_for(kube, NAME) if e["reason"] == "DagUploaded"])

    assert len(warnings()) == 1


async def test_a_spec_turning_invalid_keeps_the_last_good_dag(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        good = await eventually(lambda: dag_in(gcs_bucket))

        await patch_policy(kube, NAME, {"metadata": {"generation": 2}, "spec": {"retention": {"count": 0}}})

        await eventually(lambda: status_of(kube, NAME).get("result") == "Invalid")
    assert dag_in(gcs_bucket) == good


async def test_a_retention_rung_finer_than_the_schedule_is_invalid_and_keeps_the_last_good_dag(
    kube, operator, gcs_bucket
) -> None:
    """A check CEL cannot make (a cron schedule, not a preset): the controller names the field and the fix."""
    async with operator():
        await create_policy(kube, NAME, SPEC)
        good = await eventually(lambda: dag_in(gcs_bucket))

        change = {"schedule": "0 */2 * * *", "retention": {"hourly": 24}}
        await patch_policy(kube, NAME, {"metadata": {"generation": 2}, "spec": change})

        ready = await eventually(
            lambda: status_of(kube, NAME).get("result") == "Invalid" and condition(kube, NAME, "Ready")
        )
    assert ready["message"].startswith("spec.retention: hourly: 24 keeps the newest snapshot of each hour")
    assert "remove hourly (use count for a number of runs) or schedule more often" in ready["message"]
    assert dag_in(gcs_bucket) == good


async def test_a_project_not_granted_to_the_namespace_is_refused(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, {**SPEC, "project": "billing-prod-1"})

        ready = await eventually(lambda: condition(kube, NAME, "Ready"))
        events = await eventually(lambda: [e for e in events_for(kube, NAME) if e["reason"] == "TargetNotAllowed"])

    assert (ready["status"], ready["reason"]) == ("False", "TargetNotAllowed")
    assert "billing-prod-1" in ready["message"]
    assert status_of(kube, NAME)["result"] == "Refused"
    assert events[0]["type"] == "Warning"
    assert dag_in(gcs_bucket) is None


async def test_a_backup_project_not_granted_to_the_namespace_is_refused_and_nothing_uploaded(
    kube, operator, gcs_bucket
) -> None:
    async with operator():
        await create_policy(kube, NAME, {**SPEC, "snapshot": {"project": "billing-backups-1"}})

        ready = await eventually(lambda: condition(kube, NAME, "Ready"))

    assert (ready["status"], ready["reason"]) == ("False", "TargetNotAllowed")
    assert ready["message"].startswith("spec.snapshot.project 'billing-backups-1' is not granted")
    assert "namespaces.shop.backupProjects" in ready["message"]
    assert status_of(kube, NAME)["result"] == "Refused"
    assert dag_in(gcs_bucket) is None


async def test_a_granted_backup_project_gets_its_dag_in_the_bucket(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, {**SPEC, "snapshot": {"project": "shop-backups-1"}})

        dag = await eventually(lambda: dag_in(gcs_bucket))
    assert "shop-backups-1" in dag


async def test_moving_a_policy_to_a_refused_project_removes_its_dag(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        await eventually(lambda: dag_in(gcs_bucket))

        await patch_policy(kube, NAME, {"metadata": {"generation": 2}, "spec": {"project": "billing-prod-1"}})

        await eventually(lambda: status_of(kube, NAME).get("result") == "Refused")
    assert dag_in(gcs_bucket) is None


async def test_a_policy_can_target_its_own_composer_bucket(kube, operator, gcs_client, gcs_bucket) -> None:
    other = gcs_client.bucket(OTHER_BUCKET)
    if not other.exists():
        other = gcs_client.create_bucket(OTHER_BUCKET)
    for blob in gcs_client.list_blobs(OTHER_BUCKET):
        blob.delete()
    composer = {"bucket": OTHER_BUCKET, "airflowUri": OTHER_AIRFLOW}

    async with operator():
        await create_policy(kube, NAME, {**SPEC, "composer": composer})
        await eventually(lambda: status_of(kube, NAME).get("dagHash"))

    names = {b.name for b in gcs_client.list_blobs(OTHER_BUCKET)}
    assert DAG_OBJECT in names
    assert f"plugins/vmbackup/{next(iter(package_files()))}" in names
    assert dag_in(gcs_bucket) is None


async def test_start_up_syncs_the_plugin_package(kube, operator, gcs_client, gcs_bucket) -> None:
    gcs_bucket.blob("plugins/vmbackup/stale.py").upload_from_string("# from an older release")

    async with operator() as controller:
        await eventually(lambda: controller.metrics.value("vmbackup_uploads_total", {"kind": "plugin"}) > 0)

        names = {b.name for b in gcs_client.list_blobs(gcs_bucket.name, prefix="plugins/")}
    assert names == {f"plugins/vmbackup/{rel}" for rel in package_files()}


async def test_unreachable_airflow_is_reported_and_the_controller_keeps_serving(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)

        reachable = await eventually(lambda: condition(kube, NAME, "AirflowReachable"))
        await create_policy(kube, "db", SPEC)
        await eventually(lambda: status_of(kube, "db").get("dagHash"))

    assert reachable["status"] == "False"
    assert "127.0.0.1" in reachable["message"]
    assert condition(kube, NAME, "Ready")["status"] == "Unknown"


async def test_polls_that_change_nothing_do_not_patch_the_status(kube, operator) -> None:
    def status_patches() -> int:
        return sum(1 for req in kube[kmock.method.PATCH] if str(req.url.path).endswith(f"/{NAME}/status"))

    async with operator() as controller:
        await create_policy(kube, NAME, SPEC)
        await eventually(lambda: condition(kube, NAME, "AirflowReachable"))
        # The create handler's own status write may land after the first poll's: count from when kopf has
        # recorded the handler as done (its last-handled annotation is written after the handler's patch).
        await eventually(lambda: stored(kube, NAMESPACE, NAME)["metadata"].get("annotations"))
        # Two more polls after that, so every write the start-up caused (on a loaded machine some land late) is in
        # before counting: a poll is counted before its refresh patches, so only the next poll (the next run of the
        # one policy's timer) says the previous refresh's patch, a correction of a late write, has landed.
        started = controller.metrics.value("vmbackup_airflow_polls_total", {"outcome": "unreachable"})
        await eventually(
            lambda: controller.metrics.value("vmbackup_airflow_polls_total", {"outcome": "unreachable"}) >= started + 2
        )
        patches = status_patches()
        assert patches > 0
        polls = controller.metrics.value("vmbackup_airflow_polls_total", {"outcome": "unreachable"})

        await eventually(
            lambda: controller.metrics.value("vmbackup_airflow_polls_total", {"outcome": "unreachable"}) >= polls + 3
        )

        assert status_patches() == patches
