"""End to end on the local stack (the one `make demo` starts): policy -> DAG -> run -> snapshots -> status.

Every part is real and runs as it does in production, but for Google's services: kmock serves the
Kubernetes API, the controller runs as its own process, a real Airflow (scheduler, executor,
triggerer) runs the rendered DAG against the Compute Engine simulator, and Airflow's folders follow
the storage emulator's bucket the way Composer's follow its bucket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from controller.reconciler import BACKUP_NOW_ANNOTATION
from devstack.gce_simulator import Fault
from devstack.stack import BUCKET, PROJECT, LocalStack
from tests.fixtures.rbac import ChartRbac, controller_requests
from tests.fixtures.waits import wait_until
from vmbackup.backup.down_window import EARLIER_TRY_NOTE
from vmbackup.model import labels
from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL, dag_id_for

# A whole backup on a 2-core machine running a second copy of the suite took over 600 s (each Airflow 3 task took
# 1-3 minutes to start); a deadline only bounds a broken run, so the run's wait and the test's own bound are wide.
RUN_TIMEOUT = 1500
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(RUN_TIMEOUT + 600)]  # + the stack's start in the first test

NAMESPACE = "default"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        state_dir=tmp_path_factory.mktemp("stack"),
        time_scale=0.02,
        poll_interval=2.0,
        use_kubeconfig=False,
        echo=lambda line: None,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def policies(stack: LocalStack) -> client.CustomObjectsApi:
    assert stack.kubeconfig is not None
    return client.CustomObjectsApi(config.new_client_from_config(str(stack.kubeconfig)))


def apply_policy(stack: LocalStack, api: client.CustomObjectsApi, name: str) -> None:
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "VMBackupPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "project": PROJECT,
            "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
            "schedule": "0 2 * * *",
            "consistency": "stop",
            "retention": {"count": 3},
        },
    }
    api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, body)


def apply_scheduled_policy(
    stack: LocalStack, api: client.CustomObjectsApi, name: str, slot: datetime, **spec: Any
) -> None:
    """A daily policy whose one slot is ``slot`` and that was created an hour before it.

    Its DAG reaches Airflow after that slot, so the scheduler runs the slot at once (catchup off still runs the
    latest past slot): the late start that the run's own slot check must catch.
    """
    created = slot - timedelta(hours=1)
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "VMBackupPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": f"{created:%Y-%m-%dT%H:%M:%SZ}"},
        "spec": {
            "project": PROJECT,
            "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
            "schedule": f"{slot.minute} {slot.hour} * * *",
            "consistency": "stop",
            "retention": {"count": 3},
            **spec,
        },
    }
    api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, body)


def minutes_ago(minutes: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes)


def compute_writes(stack: LocalStack, since: float) -> list[str]:
    """The Compute Engine calls since ``since`` that change something (operation waits are reads)."""
    assert stack.compute is not None
    return [
        str(c["method"])
        for c in stack.compute.calls
        if float(c["time"]) >= since and c["http_method"] != "GET" and not str(c["method"]).endswith(".wait")
    ]


def settled_result(api: client.CustomObjectsApi, name: str, result: str, within: float = RUN_TIMEOUT) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = get_policy(api, name).get("status") or {}
        return status if status.get("result") == result else None

    found: dict[str, Any] = wait_until(reached, within=within, what=f"{name}'s result {result}", interval=1)
    return found


def get_policy(api: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    result: dict[str, Any] = api.get_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, name)
    return result


def dag_object_exists(stack: LocalStack, name: str) -> bool:
    return bool(stack.storage_client().bucket(BUCKET).blob(f"dags/{dag_id_for(NAMESPACE, name)}.py").exists())


def back_up_now(stack: LocalStack, api: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    """Ask for a backup as a user would (the annotation) and wait until the status reports the run's end."""
    assert stack.airflow is not None
    wait_until(lambda: stack.airflow.api.dag(dag_id_for(NAMESPACE, name)), within=180, what="Airflow parsed the DAG")
    api.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, NAMESPACE, PLURAL, name, {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: "1"}}}
    )

    def finished() -> dict[str, Any] | None:
        status = get_policy(api, name).get("status") or {}
        last_run = status.get("lastRun") or {}
        return status if last_run.get("state") in ("success", "failed") else None

    status: dict[str, Any] = wait_until(finished, within=RUN_TIMEOUT, what=f"{name}'s run in its status", interval=1)
    return status


def wordpress_status(stack: LocalStack) -> str:
    assert stack.compute is not None
    return str(stack.compute.instance(PROJECT, "us-central1-c", "wordpress-1-vm")["status"])


def test_a_policy_backs_up_its_vm_and_deleting_it_keeps_the_snapshots(
    stack: LocalStack, policies: client.CustomObjectsApi
) -> None:
    assert stack.compute is not None
    apply_policy(stack, policies, "wordpress")
    wait_until(lambda: dag_object_exists(stack, "wordpress"), what="the DAG in the bucket")
    dag_file = stack.storage_client().bucket(BUCKET).blob(f"dags/{dag_id_for(NAMESPACE, 'wordpress')}.py")
    assert '"waitMode":"deferrable"' in dag_file.download_as_text()  # the stack's Airflow runs a triggerer

    status = back_up_now(stack, policies, "wordpress")

    assert status["result"] == "Succeeded", status
    taken = set(status["lastSnapshots"])
    assert taken
    ours = {
        s["name"]: s
        for s in stack.compute.snapshots(PROJECT)
        if (s.get("labels") or {}).get(labels.POLICY_NAME) == "wordpress"
    }
    assert taken <= set(ours)
    assert all(ours[name]["status"] == "READY" for name in taken)
    assert wordpress_status(stack) == "RUNNING"
    assert stack.compute.violations == []

    policies.delete_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, "wordpress")
    wait_until(lambda: not dag_object_exists(stack, "wordpress"), what="the DAG removed from the bucket")
    still_there = {s["name"] for s in stack.compute.snapshots(PROJECT)}
    assert taken <= still_there


def test_a_failed_run_says_which_step_failed_and_the_vm_runs_again(
    stack: LocalStack, policies: client.CustomObjectsApi
) -> None:
    assert stack.compute is not None
    stack.compute.inject(
        Fault.operation_error(
            "disks.createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS' exceeded. Limit: 0.0 globally.", times=None
        )
    )
    try:
        apply_policy(stack, policies, "wordpress-quota")
        status = back_up_now(stack, policies, "wordpress-quota")
    finally:
        stack.compute.clear_faults()

    assert status["result"] == "Failed", status
    assert status["lastRun"].get("failedStep") == "instances.down_window", status["lastRun"]
    message = status["lastRun"]["message"]  # the window's sub-step that met the error, then Compute Engine's words
    assert message.startswith("instances.down_window failed for wordpress-1-vm: wait_snapshots_taken: "), message
    # Compute Engine's words, or, where Airflow retried the step after a stale executor event ("state mismatch",
    # apache/airflow#71172), the retry's: it finds the first try's FAILED snapshots, which carry no reason.
    assert "Quota 'SNAPSHOTS' exceeded" in message or EARLIER_TRY_NOTE in message, message
    assert wordpress_status(stack) == "RUNNING"


def test_a_dag_that_reaches_airflow_after_its_slot_touches_no_vm_and_reads_missed(
    stack: LocalStack, policies: client.CustomObjectsApi
) -> None:
    since = time.time()
    slot = minutes_ago(20)  # later than the stop-mode default deadline when Airflow gets to run it

    apply_scheduled_policy(stack, policies, "wordpress-late", slot)
    status = settled_result(policies, "wordpress-late", "Missed")

    assert status["lastMissedSlot"]["reason"] == "Late", status
    assert "spec.startingDeadlineSeconds" in status["lastMissedSlot"]["message"]
    assert status["lastMissedSlot"]["time"] == f"{slot:%Y-%m-%dT%H:%M:%SZ}"
    assert compute_writes(stack, since) == []
    assert wordpress_status(stack) == "RUNNING"


def test_a_slot_backed_up_once_is_not_run_again_by_an_airflow_without_its_record(
    stack: LocalStack, policies: client.CustomObjectsApi
) -> None:
    assert stack.airflow is not None
    slot = minutes_ago(2)
    apply_scheduled_policy(stack, policies, "wordpress-once", slot, startingDeadlineSeconds=3600)
    first = settled_result(policies, "wordpress-once", "Succeeded")
    assert first["lastSnapshots"]
    since = time.time()

    dag_id = dag_id_for(NAMESPACE, "wordpress-once")
    stack.airflow.api.delete_dag(dag_id)  # Airflow forgets the slot's run, as a fresh metadata DB would
    try:
        again = settled_result(policies, "wordpress-once", "Missed")
    except TimeoutError as exc:
        runs = [(r["dag_run_id"], r["state"]) for r in stack.airflow.api.dag_runs(dag_id)]
        raise AssertionError(
            f"{exc}; Airflow's runs: {runs}; status: {get_policy(policies, 'wordpress-once').get('status')}"
        ) from exc

    assert again["lastMissedSlot"]["reason"] == "AlreadyBackedUp", again
    assert again["lastMissedSlot"]["time"] == f"{slot:%Y-%m-%dT%H:%M:%SZ}"
    assert compute_writes(stack, since) == []


def test_the_stack_writes_an_env_file_for_the_cli(stack: LocalStack) -> None:
    env = Path(stack.state_dir / "env").read_text()
    assert "export KUBECONFIG=" in env
    assert "export VMBACKUP_AIRFLOW_URL=" in env


def test_the_controller_asked_only_for_what_the_chart_grants(stack: LocalStack, chart_rbac: ChartRbac) -> None:
    """Last in this module: every request the controller process made in the tests above (kmock kept them)."""
    made = controller_requests(stack.kube_requests())

    assert made, "the controller made no request to the local Kubernetes API"
    assert not chart_rbac.denied(made), "the chart does not allow: " + "; ".join(map(str, chart_rbac.denied(made)))
