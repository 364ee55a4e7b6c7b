"""`vmbackupctl retention`: every snapshot of a policy with keep/delete and the deciding rule, from the Compute Engine
simulator and a kmock cluster; --at and --spec; bad input refused naming the fix, nothing deleted."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmock
import pytest
import yaml

from controller.vmbackupctl.errors import ExitCode
from devstack.gce_simulator import ComputeSimulator
from tests.controller.vmbackupctl.test_backends import compute  # noqa: F401 - the fixture
from tests.controller.vmbackupctl.test_commands import SPEC, put_policy, vmbackupctl
from tests.fixtures.gce import GCE_PROJECT, GceClients
from vmbackup.model import labels

DAYS = 10
PREVIEWED = {**SPEC, "project": GCE_PROJECT, "timezone": "Europe/Berlin", "retention": {"count": 2, "weekly": 1}}


@pytest.fixture
def history(kube: kmock.KubernetesEmulator, kubeconfig: Path, compute: GceClients, gce_sim: ComputeSimulator) -> float:  # noqa: F811
    """shop/wordpress with a snapshot of wordpress-1-vm at noon UTC on each of the last DAYS days; returns now."""
    put_policy(kube, "shop", "wordpress", spec=PREVIEWED)
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    ours = {
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
        labels.POLICY_NAMESPACE: "shop",
        labels.POLICY_NAME: "wordpress",
        labels.INSTANCE: "wordpress-1-vm",
    }
    for day in range(1, DAYS + 1):
        created = (noon - timedelta(days=day)).timestamp()
        name = f"wp-{day}d"
        gce_sim.add_snapshot(GCE_PROJECT, "us-central1-c", "wordpress-1-vm", name, created=created, labels=ours)
    gce_sim.add_snapshot(
        GCE_PROJECT, "us-central1-c", "wordpress-1-vm", "by-hand", created=time.time() - 99 * 86400, labels={}
    )
    return time.time()


@pytest.mark.usefixtures("history")
async def test_the_table_names_each_snapshot_with_its_action_and_rule() -> None:
    result = await vmbackupctl("retention", "wordpress", "-n", "shop")
    assert result.code == ExitCode.OK, result.stderr
    assert result.lines[0].split() == ["NAME", "INSTANCE", "SRC_DISK", "CREATED", "STATUS", "ACTION", "RULE"]
    names = [line.split()[0] for line in result.lines[1:]]
    assert names == [f"wp-{d}d" for d in range(1, DAYS + 1)]  # newest first; never the hand-made one
    assert all(" keep " in line for line in result.lines[1:3])
    assert "count" in result.lines[1]
    assert sum(" delete " in line for line in result.lines) >= DAYS - 3
    assert result.stderr.startswith(f"{DAYS - sum(' delete ' in line for line in result.lines)} kept, ")


@pytest.mark.usefixtures("history")
async def test_json_gives_the_rule_and_the_period() -> None:
    result = await vmbackupctl("retention", "wordpress", "-n", "shop", "-o", "json")
    verdicts = json.loads(result.stdout)
    weekly = [v for v in verdicts if v["rule"] == "weekly"]
    assert all(v["period"].count("-W") == 1 for v in weekly)
    assert {v["action"] for v in verdicts} == {"keep", "delete"}


@pytest.mark.usefixtures("history")
async def test_at_an_earlier_time_the_newer_snapshots_did_not_exist_yet() -> None:
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = await vmbackupctl("retention", "wordpress", "-n", "shop", "--at", three_days_ago, "-o", "json")
    rules = {v["name"]: (v["action"], v["rule"]) for v in json.loads(result.stdout)}
    assert rules["wp-1d"] == rules["wp-2d"] == ("keep", "createdAfterEvaluation")
    assert rules["wp-4d"] == ("keep", "count")


@pytest.mark.usefixtures("history")
async def test_a_changed_spec_is_previewed_before_it_is_applied(tmp_path: Path) -> None:
    manifest = tmp_path / "wordpress.yaml"
    changed = {**PREVIEWED, "retention": {"daily": 30}}
    manifest.write_text(yaml.safe_dump({"kind": "VMBackupPolicy", "metadata": {"name": "wordpress"}, "spec": changed}))
    result = await vmbackupctl("retention", "wordpress", "-n", "shop", "--spec", str(manifest))
    assert result.code == ExitCode.OK, result.stderr
    assert " delete " not in result.stdout
    assert f"by spec from {manifest}" in result.stderr


@pytest.mark.usefixtures("history")
async def test_a_bad_spec_is_refused_naming_the_field_and_nothing_is_deleted(
    tmp_path: Path, gce_sim: ComputeSimulator
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump({**PREVIEWED, "retention": {"daily": 0}}))
    result = await vmbackupctl("retention", "wordpress", "-n", "shop", "--spec", str(manifest))
    assert result.code == ExitCode.USAGE
    assert "spec.retention.daily: daily: 0 would keep nothing by this rule; set daily to 1 or more" in result.stderr
    assert len(gce_sim.snapshots(GCE_PROJECT)) == DAYS + 1
    assert not [c for c in gce_sim.calls if c["method"] == "snapshots.delete"]


@pytest.mark.usefixtures("history")
async def test_a_time_that_is_not_iso_8601_is_a_usage_error() -> None:
    result = await vmbackupctl("retention", "wordpress", "-n", "shop", "--at", "next friday")
    assert result.code == ExitCode.USAGE
    assert "--at 'next friday' is not an ISO 8601 time" in result.stderr


async def test_a_policy_with_a_backup_project_is_previewed_on_its_snapshots_there(
    kube: kmock.KubernetesEmulator,
    kubeconfig: Path,
    compute: GceClients,  # noqa: F811
    gce_sim: ComputeSimulator,
) -> None:
    put_policy(kube, "shop", "vault", spec={**PREVIEWED, "snapshot": {"project": "shop-backups"}})
    ours = {
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
        labels.POLICY_NAMESPACE: "shop",
        labels.POLICY_NAME: "vault",
        labels.INSTANCE: "wordpress-1-vm",
    }
    for day, into in ((1, "shop-backups"), (2, "shop-backups"), (3, None)):
        created = time.time() - day * 86400
        name = f"wp-{day}d"
        gce_sim.add_snapshot(
            GCE_PROJECT, "us-central1-c", "wordpress-1-vm", name, created=created, labels=ours, snapshot_project=into
        )

    result = await vmbackupctl("retention", "vault", "-n", "shop")

    assert result.code == ExitCode.OK, result.stderr
    assert [line.split()[0] for line in result.lines[1:]] == ["wp-1d", "wp-2d"]  # not the one in the workload project
