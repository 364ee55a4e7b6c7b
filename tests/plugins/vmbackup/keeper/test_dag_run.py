"""The keeper DAG as a rendered file builds it, run with dag.test() on the real Airflow against the simulator."""

from __future__ import annotations

import json

import pytest
from google.cloud import storage

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.airflow_env import AirflowDags
from tests.fixtures.gce import GCE_PROJECT
from tests.plugins.vmbackup.vm.left_stopped import ZONE, left_stopped_by
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model.keeper_report import KEEPER_DAG_ID, KEEPER_REPORT_OBJECT, KeeperReport

pytestmark = pytest.mark.airflow

SOURCE = """# The keeper's Airflow DAG, as the vmkeeper template renders it (Airflow parses files naming airflow and dag).
import json

from vmbackup.keeper.dag import build_keeper_dag

CONFIG = {config!r}
dag = build_keeper_dag(json.loads(CONFIG))
"""


def test_a_keeper_run_starts_a_vm_left_stopped_and_writes_its_report(
    gce_sim: ComputeSimulator,
    gcs_bucket: storage.Bucket,
    airflow_dags: AirflowDags,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in {
        "VMBACKUP_COMPUTE_ENDPOINT": gce_sim.base_url,
        "VMBACKUP_RETRY_DELAY_SECONDS": "0",
        "VMBACKUP_RETRY_BASE_SECONDS": "0.01",
        "GCS_BUCKET": gcs_bucket.name,
    }.items():
        monkeypatch.setenv(key, value)
    hook = ComputeEngineHook(endpoint=gce_sim.base_url)
    left_stopped_by(hook, "rold")
    config = json.dumps({"projects": [GCE_PROJECT], "schedule": "*/5 * * * *"})
    airflow_dags.write(f"{KEEPER_DAG_ID}.py", SOURCE.format(config=config))
    outcome = airflow_dags.run(KEEPER_DAG_ID)
    report = KeeperReport.model_validate(json.loads(gcs_bucket.blob(KEEPER_REPORT_OBJECT).download_as_text()))
    assert outcome.state == "success", outcome.task_states
    assert report.projects == [GCE_PROJECT]
    assert [e.instance for e in report.started] == ["db-1"]
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").status == "RUNNING"


def test_the_keeper_dag_runs_one_at_a_time_without_catchup(airflow_dags: AirflowDags) -> None:
    config = json.dumps({"projects": [GCE_PROJECT], "schedule": "*/10 * * * *"})
    airflow_dags.write(f"{KEEPER_DAG_ID}.py", SOURCE.format(config=config))
    dag = airflow_dags.dagbag().get_dag(KEEPER_DAG_ID)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert [t.task_id for t in dag.tasks] == ["keep_stopped_vms"]
