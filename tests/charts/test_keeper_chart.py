"""The chart's keeper settings reach the controller, and the schema refuses a bad one (the real helm)."""

from __future__ import annotations

import json

from controller.config import ControllerConfig
from tests.fixtures.tools import Helm


def test_the_keeper_values_reach_the_controller(helm: Helm) -> None:
    keeper = {"schedule": "*/5 * * * *", "readIntervalSeconds": 30, "staleAfterIntervals": 4}
    render = helm.template(values={"keeper": keeper})

    config = ControllerConfig.from_env(render.controller_settings())

    assert config.keeper_schedule == "*/5 * * * *"
    assert config.keeper_read_interval_seconds == 30
    assert config.keeper_stale_after_intervals == 4


def test_the_default_keeper_runs_every_ten_minutes(helm: Helm) -> None:
    config = ControllerConfig.from_env(helm.template().controller_settings())

    assert config.keeper_schedule == ControllerConfig().keeper_schedule == "*/10 * * * *"


def test_the_schema_refuses_a_keeper_schedule_that_is_not_cron(helm: Helm) -> None:
    result = helm.template("--set", "keeper.schedule=hourly", check=False)

    assert result.returncode != 0
    assert "/keeper/schedule" in result.stderr


def test_the_dashboard_shows_vms_left_stopped_and_the_keeper_report_age(helm: Helm) -> None:
    render = helm.template(values={"metrics": {"grafanaDashboard": {"enabled": True}}})
    (config_map,) = [doc for doc in render.of_kind("ConfigMap") if doc["metadata"]["name"].endswith("-dashboard")]
    (text,) = config_map["data"].values()
    exprs = [t["expr"] for panel in json.loads(text)["panels"] for t in panel["targets"]]

    assert any("vmbackup_vm_left_stopped_since_timestamp_seconds" in e for e in exprs)
    assert any("vmbackup_keeper_report_age_seconds" in e for e in exprs)
