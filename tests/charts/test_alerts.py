"""The chart's PrometheusRule, rendered by the real helm and exercised by the real promtool.

Each case feeds promtool input series (its notation: 'a+bxN' is N+1 samples from a, stepping b; '_'
a missing sample) and says which alerts fire at the evaluation time: once firing, once not.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.tools import Helm
from vmbackup.model.labels import STOPPED_AT, STOPPED_BY

POLICY = {"namespace": "shop", "name": "web"}
JOB = "vmbackup-vmbackup-operator-metrics"  # the metrics Service of release "vmbackup" (tests/fixtures/tools.py)
DAY = 86400


@pytest.fixture(scope="module")
def rule_file(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    render = helm.template(values={"metrics": {"prometheusRule": {"enabled": True}}})
    path = tmp_path_factory.mktemp("rules") / "vmbackup-rules.yaml"
    path.write_text(yaml.safe_dump(render.one("PrometheusRule")["spec"]))
    return path


@pytest.fixture(scope="module")
def rules(rule_file: Path) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in yaml.safe_load(rule_file.read_text())["groups"] for rule in group["rules"]}


def selector(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


PROJECT = {"project": "shop-prod-1"}
LEFT_STOPPED = "vmbackup_vms_left_stopped" + selector(PROJECT)
BUCKET = {"bucket": "us-central1-composer-bucket"}
KEEPER_AGE = "vmbackup_keeper_report_age_seconds" + selector(BUCKET)
VM = {"instance": "web-1", "zone": "us-central1-a"}
UNPROTECTED = "vmbackup_unprotected_vms" + selector(PROJECT)
SCANNED = "vmbackup_coverage_scan_timestamp_seconds" + selector(PROJECT)  # 900 s interval: stale after 45 min


@dataclass
class Case:
    alert: str
    series: dict[str, str]  # series selector -> promtool values
    at: str  # evaluation time
    fires_for: list[dict[str, str]] = field(default_factory=list)  # each firing alert's own labels
    interval: str = "1m"


def policy_series(metric: str, **extra: str) -> str:
    return metric + selector({**POLICY, **extra})


CASES = {
    "failed run fires": Case(
        "VMBackupFailed", {policy_series("vmbackup_failed_runs_total"): "0x5 1x10"}, "10m", [POLICY]
    ),
    "failed run on a counter that starts at 1 fires": Case(
        "VMBackupFailed", {policy_series("vmbackup_failed_runs_total"): "_x5 1x10"}, "10m", [POLICY]
    ),
    "failure over an hour ago is quiet": Case(
        "VMBackupFailed", {policy_series("vmbackup_failed_runs_total"): "0x5 1x130"}, "130m"
    ),
    "no failure is quiet": Case("VMBackupFailed", {policy_series("vmbackup_failed_runs_total"): "0x30"}, "30m"),
    "stale success fires": Case(
        "VMBackupMissing",
        {
            policy_series("vmbackup_last_success_timestamp_seconds"): "0x1500",
            policy_series("vmbackup_schedule_interval_seconds"): f"{DAY}x1500",
        },
        "49h",
        [POLICY],
        interval="2m",
    ),
    "fresh success is quiet": Case(
        "VMBackupMissing",
        {
            # Succeeds every 2 minutes: the value is the time of the sample.
            policy_series("vmbackup_last_success_timestamp_seconds"): "0+600x1500",
            policy_series("vmbackup_schedule_interval_seconds"): f"{DAY}x1500",
        },
        "49h",
        interval="2m",
    ),
    "weekend gap of a weekday schedule is quiet": Case(
        "VMBackupMissing",
        {
            policy_series("vmbackup_last_success_timestamp_seconds"): "0x1500",
            policy_series("vmbackup_schedule_interval_seconds"): f"{3 * DAY}x1500",
        },
        "49h",
        interval="2m",
    ),
    "never succeeded fires from creation": Case(
        "VMBackupMissing",
        {
            policy_series("vmbackup_policy_created_timestamp_seconds"): "0x1500",
            policy_series("vmbackup_schedule_interval_seconds"): f"{DAY}x1500",
        },
        "49h",
        [POLICY],
        interval="2m",
    ),
    "suspended policy is quiet": Case(
        "VMBackupMissing",
        {
            policy_series("vmbackup_last_success_timestamp_seconds"): "0x1500",
            policy_series("vmbackup_policy_created_timestamp_seconds"): "0x1500",
        },
        "49h",
        interval="2m",
    ),
    "missed slot fires with its reason": Case(
        "VMBackupSlotMissed",
        {policy_series("vmbackup_missed_runs_total", reason="Late"): "_x5 1x10"},
        "10m",
        [{**POLICY, "reason": "Late"}],
    ),
    "no missed slot is quiet": Case(
        "VMBackupSlotMissed", {policy_series("vmbackup_missed_runs_total", reason="Late"): "0x30"}, "30m"
    ),
    "failed drill fires": Case(
        "VMBackupRestoreDrillFailed",
        {policy_series("vmbackup_restore_drills_total", result="Failed"): "0x5 1x10"},
        "10m",
        [POLICY],
    ),
    "succeeded drill is quiet": Case(
        "VMBackupRestoreDrillFailed",
        {
            policy_series("vmbackup_restore_drills_total", result="Succeeded"): "0x5 1x10",
            policy_series("vmbackup_restore_drills_total", result="Failed"): "0x15",
        },
        "10m",
    ),
    "controller down fires": Case("VMBackupControllerDown", {f'up{{job="{JOB}"}}': "0x10"}, "10m", [{}]),
    "controller never scraped fires": Case("VMBackupControllerDown", {'up{job="something-else"}': "1x10"}, "10m", [{}]),
    "controller up is quiet": Case("VMBackupControllerDown", {f'up{{job="{JOB}"}}': "1x10"}, "10m"),
    "one replica up of two is quiet": Case(
        "VMBackupControllerDown",
        {f'up{{job="{JOB}", pod="a"}}': "1x10", f'up{{job="{JOB}", pod="b"}}': "0x10"},
        "10m",
    ),
    "airflow unreachable fires": Case(
        "VMBackupAirflowUnreachable", {policy_series("vmbackup_airflow_reachable"): "0x15"}, "15m", [POLICY]
    ),
    "airflow back within minutes is quiet": Case(
        "VMBackupAirflowUnreachable", {policy_series("vmbackup_airflow_reachable"): "0x5 1x10"}, "15m"
    ),
    "VM left stopped fires": Case("VMLeftStopped", {LEFT_STOPPED: "0x2 1x10"}, "12m", [PROJECT]),
    "VM started again clears": Case("VMLeftStopped", {LEFT_STOPPED: "1x10 0x5"}, "15m"),
    "VM started within minutes is quiet": Case("VMLeftStopped", {LEFT_STOPPED: "0x2 1x2 0x10"}, "10m"),
    "stale keeper report fires": Case(
        "VMBackupKeeperStale",
        {KEEPER_AGE: "0+60x90", f"vmbackup_keeper_interval_seconds{selector(BUCKET)}": "600x90"},
        "90m",
        [BUCKET],
    ),
    "RPO breached fires per VM": Case(
        "VMBackupRPOBreached", {policy_series("vmbackup_rpo_breached", **VM): "0x2 1x10"}, "12m", [{**POLICY, **VM}]
    ),
    "RPO met again clears": Case(
        "VMBackupRPOBreached", {policy_series("vmbackup_rpo_breached", **VM): "1x10 0x5"}, "15m"
    ),
    "unprotected VMs fire after an hour": Case("VMBackupUnprotectedVMs", {UNPROTECTED: "2x70"}, "70m", [PROJECT]),
    "a VM protected within the hour is quiet": Case("VMBackupUnprotectedVMs", {UNPROTECTED: "1x30 0x40"}, "70m"),
    "every VM protected is quiet": Case("VMBackupUnprotectedVMs", {UNPROTECTED: "0x70"}, "70m"),
    "stale coverage scan fires": Case("VMBackupCoverageStale", {SCANNED: "0x80"}, "80m", [PROJECT]),
    "fresh coverage scan is quiet": Case("VMBackupCoverageStale", {SCANNED: "0+60x80"}, "80m"),
    "fresh keeper report is quiet": Case(
        "VMBackupKeeperStale",
        {KEEPER_AGE: "300x90", f"vmbackup_keeper_interval_seconds{selector(BUCKET)}": "600x90"},
        "90m",
    ),
}


def test_promtool_accepts_the_rules(promtool_bin: Path, rule_file: Path) -> None:
    done = subprocess.run([str(promtool_bin), "check", "rules", str(rule_file)], capture_output=True, text=True)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout


def test_every_alert_has_a_runbook(rules: dict[str, dict[str, Any]]) -> None:
    assert set(rules) == {case.alert for case in CASES.values()}
    for alert, rule in rules.items():
        assert rule["annotations"]["runbook"].startswith("1. "), alert
        assert rule["labels"]["severity"] in ("critical", "warning"), alert


def test_the_left_stopped_runbook_names_the_mark(rules: dict[str, dict[str, Any]]) -> None:
    runbook = rules["VMLeftStopped"]["annotations"]["runbook"]

    assert f"labels.{STOPPED_BY}:*" in runbook
    assert f"--labels={STOPPED_BY},{STOPPED_AT}" in runbook


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_alert(
    case: Case, promtool_bin: Path, rule_file: Path, rules: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    rule = rules[case.alert]
    test = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": case.interval,
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": case.at,
                        "alertname": case.alert,
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, **rule["labels"]},
                                "exp_annotations": filled(rule["annotations"], labels),
                            }
                            for labels in case.fires_for
                        ],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump(test))

    done = subprocess.run([str(promtool_bin), "test", "rules", str(test_file)], capture_output=True, text=True)

    assert done.returncode == 0, done.stdout + done.stderr


def filled(annotations: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    """The annotations as Prometheus expands them for an alert with these labels."""
    return {
        key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        for key, text in annotations.items()
    }
