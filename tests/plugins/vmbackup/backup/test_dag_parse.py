"""Rendered DAGs load in a real DagBag (Airflow 3 and 2.10) with the shape the policy asks for."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dags_templates.render import render_dag
from tests.fixtures.airflow_env import AirflowDags
from vmbackup.model.policy import BackupPolicy, parse_policy

pytestmark = pytest.mark.airflow

POLICIES = {
    "explicit": {
        "project": "demo-project",
        "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
        "schedule": "0 2 * * *",
        "timezone": "Europe/Paris",
    },
    "selector-tiers": {
        "project": "demo-project",
        "selector": {"zones": ["us-central1-c"], "matchLabels": {"app": "shop"}, "tierLabel": "tier"},
        "tiers": ["web", "app", "db"],
        "schedule": "@daily",
    },
    "crash-consistent": {
        "project": "demo-project",
        "instances": [{"name": "db-1", "zone": "us-central1-c", "disks": ["db-1-data"]}],
        "consistency": "none",
        "retention": {"maxAgeDays": 30},
        "snapshot": {"labels": {"team": "payments"}, "storageLocation": "us"},
    },
    "instant": {
        "project": "demo-project",
        "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
        "snapshot": {"method": "instant"},
    },
}


def policy(name: str) -> BackupPolicy:
    return parse_policy("team-a", name, POLICIES[name])


@pytest.fixture(scope="module")
def loaded(airflow_home: Any) -> Any:
    dags = AirflowDags(airflow_home)
    dags.clear()
    for name in POLICIES:
        dags.write_dag(policy(name).dag_id, render_dag(policy(name)))
    return dags.dagbag()


def test_every_rendered_dag_loads_without_import_errors(loaded: Any) -> None:
    assert loaded.import_errors == {}
    assert {policy(n).dag_id for n in POLICIES} <= set(loaded.dag_ids)


def test_dag_runs_on_the_policy_cron_in_its_timezone(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    timetable = dag.timetable
    expression = getattr(timetable, "expression", None) or timetable._expression  # 3.x / 2.10
    timezone = getattr(timetable, "timezone", None) or timetable._timezone
    assert expression == "0 2 * * *"
    assert "Europe/Paris" in str(getattr(timezone, "name", timezone))
    assert dag.start_date.utcoffset() is not None


def test_dag_never_catches_up_and_runs_one_at_a_time(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    assert dag.catchup is False
    assert dag.max_active_runs == 1


def test_dag_is_tagged_and_documented(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    assert {"vmbackup", "namespace:team-a", "policy:explicit"} <= set(dag.tags)
    assert "wordpress-1-vm" in dag.doc_md


def test_stop_mode_gives_each_tier_its_down_window(loaded: Any) -> None:
    dag = loaded.dags[policy("selector-tiers").dag_id]
    for tier in ("web", "app"):
        for step in ("go_down", "come_up", "wait_snapshots_ready"):
            assert f"tier_{tier}.{step}" in dag.task_ids
    assert {"tier_db.down_window", "tier_db.wait_snapshots_ready"} <= set(dag.task_ids)


def test_tiers_stop_in_order_and_start_in_reverse(loaded: Any) -> None:
    dag = loaded.dags[policy("selector-tiers").dag_id]
    assert "tier_web.go_down" in dag.get_task("tier_app.go_down").upstream_task_ids
    assert "tier_app.go_down" in dag.get_task("tier_db.down_window").upstream_task_ids
    assert "tier_db.down_window" in dag.get_task("tier_app.come_up").upstream_task_ids
    assert "tier_app.come_up" in dag.get_task("tier_web.come_up").upstream_task_ids


def test_crash_consistent_mode_never_stops_a_vm(loaded: Any) -> None:
    dag = loaded.dags[policy("crash-consistent").dag_id]
    assert not [t for t in dag.task_ids if t.endswith((".stop", ".start"))]
    assert "restore_instances" not in dag.task_ids


def test_instant_snapshots_are_converted_after_the_down_window_and_deleted_after_the_ready_wait(loaded: Any) -> None:
    dag = loaded.dags[policy("instant").dag_id]
    convert = dag.get_task("instances.convert_instant_snapshots")
    assert "instances.down_window" in convert.upstream_task_ids
    assert str(convert.trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    assert "instances.convert_instant_snapshots" in dag.get_task("instances.wait_snapshots_ready").upstream_task_ids
    delete = dag.get_task("instances.delete_instant_snapshots")
    assert delete.upstream_task_ids - {"instances_targets"} == {"instances.wait_snapshots_ready"}
    assert str(delete.trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    assert "instances.delete_instant_snapshots" in dag.get_task("prune_snapshots").upstream_task_ids


def test_the_upload_wait_of_an_instant_backup_follows_only_the_conversion(loaded: Any) -> None:
    """A window that failed for one VM of a batch still leaves the others' snapshots converted and waited for."""
    dag = loaded.dags[policy("instant").dag_id]
    ready = dag.get_task("instances.wait_snapshots_ready")
    assert ready.upstream_task_ids - {"instances_targets"} == {"instances.convert_instant_snapshots"}


def test_standard_snapshots_have_no_conversion_steps(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    assert not [t for t in dag.task_ids if t.endswith(("convert_instant_snapshots", "delete_instant_snapshots"))]


def test_upload_wait_reschedules_with_the_policy_timeout(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    ready = dag.get_task("instances.wait_snapshots_ready")
    assert ready.mode == "reschedule"
    assert ready.timeout == 7200


def test_report_runs_whatever_happened_before(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    assert str(dag.get_task("report").trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    tiered = loaded.dags[policy("selector-tiers").dag_id]
    assert str(tiered.get_task("tier_web.come_up").trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")


def test_first_scheduled_run_is_the_first_after_the_policy_was_created(airflow_home: Any) -> None:
    """Applying a 02:00 policy at 14:00 must not stop its VMs at once for the 02:00 run it "missed"."""
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable  # the scheduler's own (core) timetable

    # The scheduler compares with the wall clock (catchup off: the latest slot before now), so "now" is real here.
    applied = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    paris = ZoneInfo("Europe/Paris")
    local = applied.astimezone(paris)
    day = local.date() if local.time() < time(2) else local.date() + timedelta(days=1)
    expected = datetime.combine(day, time(2), tzinfo=paris).astimezone(UTC)
    created = parse_policy("team-a", "explicit", POLICIES["explicit"], created=applied.isoformat())
    dags = AirflowDags(airflow_home)
    dags.clear()
    dags.write_dag(created.dag_id, render_dag(created))
    dag = dags.dagbag().dags[created.dag_id]

    first = CronTriggerTimetable("0 2 * * *", timezone="Europe/Paris").next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=False),
    )
    assert first is not None
    assert first.run_after == expected  # the next 02:00 in Paris, not the one before the policy existed


def test_a_suspended_policy_is_paused_from_its_first_parse(airflow_home: Any) -> None:
    suspended = parse_policy("team-a", "explicit", {**POLICIES["explicit"], "suspend": True})
    dags = AirflowDags(airflow_home)
    dags.clear()
    dags.write_dag(suspended.dag_id, render_dag(suspended))
    assert dags.dagbag().dags[suspended.dag_id].is_paused_upon_creation is True


def test_the_down_window_looks_at_a_stopped_vm_every_second(loaded: Any) -> None:
    """A stop or a CREATING snapshot lasts seconds: a 30 s look would add up to 30 s of downtime to each backup."""
    dag = loaded.dags[policy("explicit").dag_id]
    assert dag.get_task("instances.down_window").poll_seconds == 1
    assert dag.get_task("instances.wait_snapshots_ready").poke_interval == 30


@pytest.fixture
def rendered_for_a_triggerer(airflow_home: Any) -> Any:
    """The explicit policy's DAG as the controller renders it for an Airflow with a live triggerer."""
    deferrable = policy("explicit").waiting("deferrable")
    dags = AirflowDags(airflow_home)
    dags.clear()
    dags.write_dag(deferrable.dag_id, render_dag(deferrable))
    return dags.dagbag().dags[deferrable.dag_id]


def test_the_down_window_is_deferred_in_a_dag_rendered_for_a_triggerer(rendered_for_a_triggerer: Any) -> None:
    dag = rendered_for_a_triggerer
    assert dag.get_task("instances.down_window").deferrable is True
    assert dag.get_task("instances.wait_snapshots_ready").deferrable is True
    assert "deferrable sensors" in dag.doc_md


def test_without_a_triggerer_the_down_window_is_one_task(loaded: Any) -> None:
    dag = loaded.dags[policy("explicit").dag_id]
    assert dag.get_task("instances.down_window").deferrable is False
    assert "reschedule-mode sensors" in dag.doc_md


def test_a_lost_down_window_is_retried_within_seconds(loaded: Any) -> None:
    """A retry (a worker lost, or Airflow's spurious 'state mismatch' on a resumed task) must not add a minute."""
    dag = loaded.dags[policy("explicit").dag_id]
    assert dag.get_task("instances.down_window").retry_delay.total_seconds() == 1
    assert dag.get_task("instances.wait_snapshots_ready").retry_delay.total_seconds() == 60
