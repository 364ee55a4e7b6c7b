"""The shared drill DAG refuses every run the controller did not sign for it, on real Airflow against the simulator.

An unsigned, changed, re-used, expired or wrongly keyed conf fails the first task (plan) before any Compute Engine
call; the teardown then has no policy and no plan and deletes nothing (a drill VM left by an earlier drill stays
for that policy's next real drill), and no drill report is written in any policy's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dags_templates.render_drill import SHARED_DRILL_DAG_FILE_ID, shared_drill_dag_source
from tests.fixtures.airflow_env import DagRunOutcome
from tests.fixtures.recovery import ZONE, RecoveryStack
from tests.plugins.vmbackup.drill.test_dag_run import VERIFICATION, signed, stack
from vmbackup.drill.operators import PLAN_TASK, REPORT_TASK, TEARDOWN_TASK
from vmbackup.model.drill import DRILL_LABEL, SHARED_DRILL_DAG_ID, drill_marker, drill_report_object_name
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.restore import RESTORE_LABEL
from vmbackup.model.run_signature import SIGNING_KEY_ENV

pytestmark = pytest.mark.airflow
__all__ = ["stack"]  # the fixture, shared with the drill runs

Signer = Callable[[BackupPolicy, str], dict[str, Any]]
LEFT_BY_AN_EARLIER_DRILL = "vmdrill-leftover"


@pytest.fixture
def drilled(stack: RecoveryStack) -> tuple[RecoveryStack, BackupPolicy]:
    """A backed-up policy, and a VM an earlier drill of it left (the teardown would delete it if it ran)."""
    policy = stack.policy(verification=VERIFICATION)
    stack.back_up(policy)
    marker = drill_marker(policy.namespace, policy.name)
    stack.sim.add_instance(
        policy.spec.project, ZONE, LEFT_BY_AN_EARLIER_DRILL, labels={RESTORE_LABEL: marker, DRILL_LABEL: marker}
    )
    stack.dags.write_dag(SHARED_DRILL_DAG_FILE_ID, shared_drill_dag_source())
    stack.sim.clear_calls()
    return stack, policy


def run(drilled: tuple[RecoveryStack, BackupPolicy], sign: Signer) -> DagRunOutcome:
    stack, policy = drilled
    outcome = stack.dags.run_with_conf(SHARED_DRILL_DAG_ID, lambda run_id: sign(policy, run_id))
    assert stack.sim.wait_idle(120)
    return outcome


def assert_refused(outcome: DagRunOutcome, drilled: tuple[RecoveryStack, BackupPolicy]) -> None:
    stack, policy = drilled
    assert outcome.state == "failed", outcome.task_states
    assert outcome.task_states[PLAN_TASK] == "failed"
    assert outcome.task_states[TEARDOWN_TASK] == "failed"  # refused too: it has no policy to delete anything of
    assert outcome.task_states[REPORT_TASK] == "failed"
    assert stack.sim.calls == []  # not one Compute Engine call, let alone a write
    assert stack.sim.instance(policy.spec.project, ZONE, LEFT_BY_AN_EARLIER_DRILL)["status"] == "RUNNING"
    assert not stack.bucket.blob(drill_report_object_name(policy.namespace, policy.name)).exists()


def test_an_unsigned_conf_is_refused_and_touches_nothing(drilled: tuple[RecoveryStack, BackupPolicy]) -> None:
    assert_refused(run(drilled, lambda policy, run_id: {"payload": policy.to_json()}), drilled)


def test_a_changed_policy_is_refused_and_touches_nothing(drilled: tuple[RecoveryStack, BackupPolicy]) -> None:
    def tampered(policy: BackupPolicy, run_id: str) -> dict[str, Any]:
        conf = signed(policy, run_id)
        conf["payload"] = conf["payload"].replace('"network":"drills"', '"network":"default"')
        assert conf["payload"] != policy.to_json()
        return conf

    assert_refused(run(drilled, tampered), drilled)


def test_a_conf_signed_for_another_run_is_refused(drilled: tuple[RecoveryStack, BackupPolicy]) -> None:
    assert_refused(run(drilled, lambda policy, run_id: signed(policy, "vmdrill__shop__db__requested-0")), drilled)


def test_a_conf_signed_with_another_key_is_refused(drilled: tuple[RecoveryStack, BackupPolicy]) -> None:
    assert_refused(run(drilled, lambda policy, run_id: signed(policy, run_id, key="x" * 64)), drilled)


def test_an_expired_conf_is_refused(drilled: tuple[RecoveryStack, BackupPolicy]) -> None:
    assert_refused(run(drilled, lambda policy, run_id: signed(policy, run_id, expires_in=-1)), drilled)


def test_without_the_key_in_the_environment_every_drill_is_refused(
    drilled: tuple[RecoveryStack, BackupPolicy], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SIGNING_KEY_ENV)

    assert_refused(run(drilled, signed), drilled)
