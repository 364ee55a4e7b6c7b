"""``vmbackupctl verify POLICY --wait`` against a real Airflow 3 (the session's ``airflow standalone``) and kmock.

The CLI finds Airflow as the controller would, unpauses the drill DAG and triggers its run through Airflow's REST
API; the test then plays the controller, which fills status.verification from the drill report (that part is
tests/controller/test_drills.py; the drill DAG itself runs in tests/plugins/vmbackup/drill/test_dag_run.py). Here
the drill DAG is a one-task stand-in under the drill DAG's id, so the run Airflow starts finishes in seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kmock

from tests.controller.vmbackupctl.test_backends import (  # noqa: F401 (fixtures)
    airflow,
    airflow_settings,
    parsed_dag,
    until_airflow_says,
)
from tests.controller.vmbackupctl.test_commands import SPEC, ago, cluster, put_policy, vmbackupctl  # noqa: F401
from tests.fixtures.airflow_api import AirflowServer, dag_source
from vmbackup.model.drill import drill_dag_id_for

VERIFICATION = {"schedule": "0 4 * * 0", "network": "drills"}


async def drill_runs(server: AirflowServer, dag_id: str) -> list[str]:
    found = await asyncio.to_thread(server.get, f"/dags/{dag_id}/dagRuns")
    return [run["dag_run_id"] for run in (found or {}).get("dag_runs", [])]


async def verify_while_the_controller_reports(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
    server: AirflowServer,
    policy: str,
    verification: dict[str, Any],
) -> tuple[Any, list[str]]:
    """Run `verify POLICY --wait`; once Airflow has the drill run, write the status the controller would."""
    dag_id = drill_dag_id_for("shop", policy)
    await parsed_dag(server, dag_id, dag_source(dag_id, task_id="boot"))
    spec = {**SPEC, "verification": VERIFICATION}
    put_policy(
        cluster, "shop", policy, spec=spec, status={"verification": {"time": ago(days=7), "result": "Succeeded"}}
    )
    cli = asyncio.create_task(vmbackupctl("verify", policy, "-n", "shop", "--wait", "--timeout", "180"))

    async def triggered() -> list[str]:
        return await drill_runs(server, dag_id)

    await until_airflow_says(triggered, what=f"a run of {dag_id}")
    put_policy(cluster, "shop", policy, spec=spec, status={"verification": {"time": ago(seconds=0), **verification}})
    return await cli, await drill_runs(server, dag_id)


async def test_verify_wait_starts_the_drill_in_airflow_and_exits_0_when_it_verified(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
    airflow: AirflowServer,  # noqa: F811
) -> None:
    result, runs = await verify_while_the_controller_reports(
        cluster,
        airflow,
        "drilled",
        {"result": "Succeeded", "lastVerifiedRun": "r0123456789a", "bootSeconds": 31.4, "message": "guest ok"},
    )

    assert result.code == 0, result.stderr
    assert "shop/drilled: verified run r0123456789a, RUNNING after 31.4 s: guest ok" in result.stdout
    (run,) = runs
    assert run.startswith("manual__verify-")
    assert (await asyncio.to_thread(airflow.get, f"/dags/{drill_dag_id_for('shop', 'drilled')}"))["is_paused"] is False


async def test_verify_wait_exits_1_when_the_drill_failed(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
    airflow: AirflowServer,  # noqa: F811
) -> None:
    result, _ = await verify_while_the_controller_reports(
        cluster, airflow, "drilled-badly", {"result": "Failed", "message": "guest check timed out"}
    )

    assert result.code == 1
    assert "shop/drilled-badly: restore drill failed: guest check timed out" in result.stdout
