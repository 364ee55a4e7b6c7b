"""The shared restore DAGs on real Airflow against the Compute Engine simulator: a run's restore is its signed conf.

A conf the controller signed for the run restores the VM; an unsigned, changed, re-used or expired one fails in
the first task before any Compute Engine call (the simulator's call log stays empty), and writes no report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from dags_templates.render_restore import SHARED_DAG_FILE_ID, shared_restore_dag_source
from tests.fixtures.clock_steps import retaining
from tests.plugins.vmbackup.restore.test_dag_run import (
    NAMESPACE,
    POLICY_SPEC,
    PROJECT,
    ZONE,
    RestoreRun,
    insert_running_until_looked_at,
    restore_env,
    seed_run,
)
from vmbackup.model.policy import parse_policy
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import Restore, parse_restore, shared_restore_dag_id
from vmbackup.model.run_signature import SIGNING_KEY_ENV, sign_run_conf
from vmbackup.restore import steps

pytestmark = pytest.mark.airflow
__all__ = ["restore_env"]  # the fixture, shared with the restore tests of per-restore DAG files

KEY = "k" * 64
Signer = Callable[[Restore, str], dict[str, Any]]


def signed(restore: Restore, run_id: str, *, key: str = KEY, expires_in: float = 600) -> dict[str, Any]:
    """The conf the controller gives a run of this restore."""
    return sign_run_conf(
        key.encode(),
        dag_id=shared_restore_dag_id(restore.in_place),
        run_id=run_id,
        payload=restore.to_json(),
        expires_at=int(time.time() + expires_in),
    )


@pytest.fixture
def shared_restore(restore_env: Any, airflow_dags: Any, gcs_bucket: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run one restore through the shared DAG with the conf `sign(restore, run_id)` (the controller's by default)."""
    monkeypatch.setenv(SIGNING_KEY_ENV, KEY)
    airflow_dags.write_dag(SHARED_DAG_FILE_ID, shared_restore_dag_source())

    def run(name: str = "db-restored", sign: Signer = signed, wait_mode: str = "reschedule", **spec: Any) -> RestoreRun:
        policy = parse_policy(NAMESPACE, "db", POLICY_SPEC)
        restore = parse_restore(NAMESPACE, name, {"policyName": "db", **spec}, policy)
        restore = restore.model_copy(update={"wait_mode": wait_mode})
        outcome = airflow_dags.run_with_conf(shared_restore_dag_id(restore.in_place), lambda rid: sign(restore, rid))
        blob = gcs_bucket.blob(restore_report_object_name(NAMESPACE, name))
        report = RestoreReport.model_validate(json.loads(blob.download_as_text())) if blob.exists() else None
        return RestoreRun(outcome.state, outcome.task_states, report)

    return run


def assert_refused(run: RestoreRun, gce_sim: Any) -> None:
    assert run.state == "failed", run.task_states
    assert run.task_states[steps.PLAN] == "failed"
    assert gce_sim.calls == []  # not one Compute Engine call, let alone a write
    assert run.report is None  # nor a report in another VMRestore's name


def test_a_signed_restore_runs_in_the_shared_dag(shared_restore: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "r1")

    run = shared_restore()

    assert run.state == "success", run.task_states
    assert gce_sim.instance(PROJECT, ZONE, "db-restored")["status"] == "RUNNING"
    assert run.report is not None
    assert run.report.phase == "Succeeded"
    assert run.report.dag_id == shared_restore_dag_id(False)


def test_a_restore_signed_for_a_triggerer_waits_in_it(shared_restore: Any, gce_sim: Any, gce_clients: Any) -> None:
    gce_sim.set_profile(retaining())
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    with insert_running_until_looked_at(gce_sim, "db-deferred"):
        run = shared_restore("db-deferred", wait_mode="deferrable")

    assert run.state == "success", run.task_states
    (insert,) = [
        op["name"]
        for op in gce_sim.operations()
        if op["operationType"] == "insert" and op.get("targetLink", "").endswith("/instances/db-deferred")
    ]
    on_insert = [c["method"] for c in gce_sim.calls if c["params"].get("operation") == insert]
    assert on_insert[:1] == ["zoneOperations.get"]  # the sensor looked once, then deferred to the trigger
    assert "zoneOperations.wait" in on_insert[1:]


def test_a_signed_in_place_restore_runs_in_its_shared_dag(shared_restore: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "r1")

    run = shared_restore("db-rollback", mode="InPlace", inPlace={"confirmReplaceDisks": True})

    assert run.state == "success", run.task_states
    assert run.report is not None
    assert run.report.dag_id == shared_restore_dag_id(True)


def test_an_unsigned_conf_is_refused_before_any_compute_engine_call(
    shared_restore: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    run = shared_restore(sign=lambda restore, run_id: {"payload": restore.to_json()})

    assert_refused(run, gce_sim)


def test_a_changed_field_is_refused_before_any_compute_engine_call(
    shared_restore: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    def tampered(restore: Restore, run_id: str) -> dict[str, Any]:
        conf = signed(restore, run_id)
        conf["payload"] = conf["payload"].replace('"instance":"db-1"', '"instance":"db-2"')
        return conf

    run = shared_restore(sign=tampered)

    assert_refused(run, gce_sim)


def test_a_conf_signed_for_another_run_is_refused(shared_restore: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    run = shared_restore(sign=lambda restore, run_id: signed(restore, "vmrestore__another-uid"))

    assert_refused(run, gce_sim)


def test_a_conf_signed_with_another_key_is_refused(shared_restore: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    run = shared_restore(sign=lambda restore, run_id: signed(restore, run_id, key="x" * 64))

    assert_refused(run, gce_sim)


def test_an_expired_conf_is_refused_before_any_compute_engine_call(
    shared_restore: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    run = shared_restore(sign=lambda restore, run_id: signed(restore, run_id, expires_in=-1))

    assert_refused(run, gce_sim)


def test_without_the_key_in_the_environment_every_run_is_refused(
    shared_restore: Any, gce_sim: Any, gce_clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()
    monkeypatch.delenv(SIGNING_KEY_ENV)

    run = shared_restore()

    assert_refused(run, gce_sim)
