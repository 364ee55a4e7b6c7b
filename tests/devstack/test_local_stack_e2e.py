"""End to end on the local stack (the one `make demo` starts): policy -> DAG -> run -> snapshots -> status.

Every part is real and runs as it does in production, but for Google's services: kmock serves the
Kubernetes API, the controller runs as its own process, a real Airflow (scheduler, executor,
triggerer) runs the rendered DAG against the Compute Engine simulator, and Airflow's folders follow
the storage emulator's bucket the way Composer's follow its bucket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from controller.reconciler import BACKUP_NOW_ANNOTATION
from devstack.airflow_local import AirflowApiError
from devstack.gce_simulator import Fault
from devstack.stack import BUCKET, PROJECT, LocalStack, wait_until
from tests.fixtures.rbac import ChartRbac, controller_requests
from vmbackup.model import labels
from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL, dag_id_for
from vmbackup.model.report import RunReport, latest_report_object_name

pytestmark = pytest.mark.e2e

NAMESPACE = "default"
RUN_TIMEOUT = 600  # a whole backup on a busy 2-core machine; the simulator's time is scaled down


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


def apply_policy(
    stack: LocalStack,
    api: client.CustomObjectsApi,
    name: str,
    created: datetime | None = None,
    **spec: Any,
) -> None:
    """Create a stop-mode policy of wordpress-1-vm; `created` back-dates it (a DAG that reaches Airflow late)."""
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if created is not None:
        metadata["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "VMBackupPolicy",
        "metadata": metadata,
        "spec": {
            "project": PROJECT,
            "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
            "schedule": "0 2 * * *",
            "consistency": "stop",
            "retention": {"count": 3},
            **spec,
        },
    }
    api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, stack.as_created(body))


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
    wait_until(lambda: dag_object_exists(stack, "wordpress"), within=60, what="the DAG in the bucket")
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
    wait_until(lambda: not dag_object_exists(stack, "wordpress"), within=60, what="the DAG removed from the bucket")
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
    assert "snapshot" in (status["lastRun"].get("failedStep") or ""), status["lastRun"]
    assert "Quota 'SNAPSHOTS' exceeded" in status["lastRun"]["message"]
    assert wordpress_status(stack) == "RUNNING"


def test_the_stack_writes_an_env_file_for_the_cli(stack: LocalStack) -> None:
    env = Path(stack.state_dir / "env").read_text()
    assert "export KUBECONFIG=" in env
    assert "export VMBACKUP_AIRFLOW_URL=" in env


# -- the real scheduler: a slot that passed before its DAG reached Airflow, a slot run by a fresh metadata DB ----

READS = ("get", "list", "aggregatedList", "wait")


def past_slot() -> tuple[datetime, str]:
    """A slot four minutes ago and an hourly schedule with it: with catchup off, Airflow runs it at once."""
    slot = (datetime.now(UTC) - timedelta(minutes=4)).replace(second=0, microsecond=0)
    return slot, f"{slot.minute} * * * *"


def missed_status(api: client.CustomObjectsApi, name: str, reason: str) -> dict[str, Any]:
    def missed() -> dict[str, Any] | None:
        status = get_policy(api, name).get("status") or {}
        return status if (status.get("lastMissedSlot") or {}).get("reason") == reason else None

    found: dict[str, Any] = wait_until(missed, within=RUN_TIMEOUT, what=f"{name}'s slot missed ({reason})", interval=1)
    return found


def writes_to(stack: LocalStack, instance: str) -> list[str]:
    assert stack.compute is not None
    return [
        c["method"]
        for c in stack.compute.calls
        if c["method"].rsplit(".", 1)[-1] not in READS and instance in str(c.get("params"))
    ]


def test_a_dag_that_reaches_airflow_after_its_slot_touches_no_vm(
    stack: LocalStack, policies: client.CustomObjectsApi
) -> None:
    """Created before its slot, seen by Airflow only after it: the scheduler runs the slot late, the run reads only."""
    assert stack.compute is not None
    slot, schedule = past_slot()
    stack.compute.clear_calls()
    apply_policy(
        stack, policies, "latecomer", created=slot - timedelta(minutes=2), schedule=schedule, startingDeadlineSeconds=60
    )

    status = missed_status(policies, "latecomer", "Late")

    assert status["result"] == "Missed", status
    assert "spec.startingDeadlineSeconds" in status["lastMissedSlot"]["message"]
    assert status["lastMissedSlot"]["time"].startswith(slot.strftime("%Y-%m-%dT%H:%M"))
    assert writes_to(stack, "wordpress-1-vm") == []
    assert wordpress_status(stack) == "RUNNING"


def forget_history(stack: LocalStack, dag_id: str) -> set[str]:
    """Airflow forgets the DAG and its runs, as a new metadata DB would; the DAG processor parses it again.

    Returns the runs it forgot (run id and queue time)."""
    assert stack.airflow is not None
    api = stack.airflow.api
    ran = {r["dag_run_id"] + r["queued_at"] for r in api.dag_runs(dag_id)}

    def forgotten() -> bool:
        try:
            api.request("DELETE", f"/dags/{dag_id}")
        except AirflowApiError as exc:
            if "-> 404" not in str(exc) and "-> 409" not in str(exc):  # 409: a task still running; ask again
                raise
        runs = api.dag_runs(dag_id) if api.dag(dag_id) else []
        return not any(r["dag_run_id"] + r["queued_at"] in ran for r in runs)

    wait_until(forgotten, within=120, what=f"Airflow forgot {dag_id}'s runs", interval=2)
    return ran


def latest_report(stack: LocalStack, name: str) -> RunReport:
    blob = stack.storage_client().bucket(BUCKET).blob(latest_report_object_name(NAMESPACE, name))
    return RunReport.model_validate(json.loads(blob.download_as_text()))


@pytest.mark.timeout(2 * RUN_TIMEOUT)  # two scheduled runs of one slot, with a DAG parse between them
def test_the_same_slot_on_a_fresh_airflow_metadata_db_stops_no_vm(
    stack: LocalStack, policies: client.CustomObjectsApi
) -> None:
    """The slot runs once; Airflow then forgets the DAG and its runs (as a new metadata DB would) and runs the slot
    again: that run finds the slot's snapshots and stops nothing."""
    assert stack.compute is not None
    assert stack.airflow is not None
    slot, schedule = past_slot()
    stack.compute.clear_calls()
    apply_policy(
        stack,
        policies,
        "onceperslot",
        created=slot - timedelta(minutes=2),
        schedule=schedule,
        startingDeadlineSeconds=3600,
    )
    dag_id = dag_id_for(NAMESPACE, "onceperslot")

    def backed_up() -> dict[str, Any] | None:
        status = get_policy(policies, "onceperslot").get("status") or {}
        return status if (status.get("lastRun") or {}).get("state") == "success" else None

    first = wait_until(backed_up, within=RUN_TIMEOUT, what="the slot's first run", interval=1)
    assert first["result"] == "Succeeded", first
    assert writes_to(stack, "wordpress-1-vm").count("instances.stop") == 1

    forgot = forget_history(stack, dag_id)

    def ran_again() -> list[dict[str, Any]]:
        assert stack.airflow is not None
        runs = stack.airflow.api.dag_runs(dag_id) if stack.airflow.api.dag(dag_id) else []
        return [
            r for r in runs if r["dag_run_id"] + r["queued_at"] not in forgot and r["state"] in ("success", "failed")
        ]

    (again,) = wait_until(ran_again, within=RUN_TIMEOUT, what="the slot's run on the fresh history", interval=1)
    report = latest_report(stack, "onceperslot")

    assert again["dag_run_id"] == f"scheduled__{slot.isoformat()}", again  # the same slot, run a second time
    assert report.missed is not None, report
    assert report.missed.reason == "AlreadyBackedUp"
    assert writes_to(stack, "wordpress-1-vm").count("instances.stop") == 1
    assert wordpress_status(stack) == "RUNNING"
    assert missed_status(policies, "onceperslot", "AlreadyBackedUp")["result"] == "Missed"  # the same run id, seen anew


def test_the_controller_asked_only_for_what_the_chart_grants(stack: LocalStack, chart_rbac: ChartRbac) -> None:
    """Last in this module: every request the controller process made in the tests above (kmock kept them)."""
    made = controller_requests(stack.kube_requests())

    assert made, "the controller made no request to the local Kubernetes API"
    assert not chart_rbac.denied(made), "the chart does not allow: " + "; ".join(map(str, chart_rbac.denied(made)))
