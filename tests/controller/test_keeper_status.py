"""The VMLeftStopped condition from a keeper report, and the keeper's settings (pure parts of controller/keeper.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.conditions import VM_LEFT_STOPPED
from controller.config import ConfigError, ControllerConfig
from controller.keeper import left_stopped_condition
from controller.metrics import ControllerMetrics
from dags_templates.render_keeper import KEEPER_DAG_ID
from vmbackup.model.keeper_report import KEEPER_REPORT_OBJECT, KeeperReport, LeftStoppedInstance

MINE = ("shop-prod-1", "us-central1-a", "web-1")


def entry(**extra: Any) -> LeftStoppedInstance:
    values: dict[str, Any] = {
        "project": MINE[0],
        "zone": MINE[1],
        "instance": MINE[2],
        "stopped_by": "h",
        "status": "TERMINATED",
    }
    return LeftStoppedInstance(**{**values, **extra})


def report(**lists: list[LeftStoppedInstance]) -> KeeperReport:
    return KeeperReport(written_at=datetime.now(UTC), projects=["shop-prod-1"], **lists)


def test_a_vm_of_another_policy_leaves_this_one_false() -> None:
    other = entry(instance="db-1", namespace="shop", policy="db")

    condition = left_stopped_condition(report(left_stopped=[other]), "shop", "web", "shop-prod-1", {MINE}, "")

    assert (condition.status, condition.reason) == ("False", "NoneLeftStopped")


def test_a_listed_vm_without_a_named_policy_is_owned_by_the_policy_listing_it() -> None:
    condition = left_stopped_condition(report(left_stopped=[entry()]), "shop", "web", "shop-prod-1", {MINE}, "")

    assert (condition.status, condition.reason) == ("True", "WaitingToStart")


def test_a_waiting_vm_stays_true_when_the_report_is_stale_and_says_so() -> None:
    condition = left_stopped_condition(report(left_stopped=[entry()]), "shop", "web", "shop-prod-1", {MINE}, "stale!")

    assert condition.status == "True"
    assert condition.message.endswith("(stale!)")


def test_a_project_the_keeper_did_not_check_is_unknown() -> None:
    condition = left_stopped_condition(report(), "shop", "web", "shop-prod-2", set(), "")

    assert (condition.status, condition.reason) == ("Unknown", "ProjectNotChecked")


def test_the_keeper_settings_come_from_the_environment() -> None:
    config = ControllerConfig.from_env(
        {
            "VMBACKUP_KEEPER_SCHEDULE": "*/5 * * * *",
            "VMBACKUP_KEEPER_READ_INTERVAL": "30",
            "VMBACKUP_KEEPER_STALE_AFTER": "4",
        }
    )

    assert (config.keeper_schedule, config.keeper_read_interval_seconds, config.keeper_stale_after_intervals) == (
        "*/5 * * * *",
        30.0,
        4.0,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KEEPER_SCHEDULE", "every ten minutes"), ("KEEPER_READ_INTERVAL", "0"), ("KEEPER_STALE_AFTER", "0.5")],
)
def test_a_bad_keeper_setting_stops_the_controller_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"VMBACKUP_{variable}"):
        ControllerConfig.from_env({f"VMBACKUP_{variable}": value})


def test_the_docs_document_the_keepers_names() -> None:
    readme = (Path(__file__).parents[2] / "docs" / "operations" / "vms-left-stopped.md").read_text()
    metrics = ControllerMetrics()
    keeper_metrics = [
        metrics.vms_left_stopped,
        metrics.vm_left_stopped_since,
        metrics.keeper_report_age,
        metrics.keeper_interval,
    ]
    names = [family.name for metric in keeper_metrics for family in metric.describe()]
    for name in [*names, VM_LEFT_STOPPED, "VMBackupKeeperStale", f"dags/{KEEPER_DAG_ID}.py", KEEPER_REPORT_OBJECT]:
        assert f"`{name}" in readme, name
