"""vmbackupctl against a Kubernetes API (kmock) holding VMBackupPolicies with the controller's status.

The CLI's real ``main()`` runs in a worker thread (kmock serves from the test's event loop) with the
official Kubernetes client reading the kubeconfig the ``kubeconfig`` fixture writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from controller.vmbackupctl import render
from controller.vmbackupctl.__main__ import main
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import POLICIES, eventually, policy_object, policy_url, stored

BACKUP_NOW = "vmbackup.dev/backup-now"
SPEC: dict[str, Any] = {
    "project": "demo-project",
    "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
    "schedule": "0 2 * * *",
    "timezone": "Europe/Paris",
    "retention": {"count": 7},
}


# ---- harness (also used by test_backends.py) -------------------------------------------


@dataclasses.dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


async def vmbackupctl(*argv: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, list(argv), stdout=out, stderr=err)
    return CliResult(code, out.getvalue(), err.getvalue())


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def put_policy(
    kube: kmock.KubernetesEmulator,
    namespace: str,
    name: str,
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """A policy as the API server holds it once the controller has written its status."""
    metadata.setdefault("creationTimestamp", ago(days=3, minutes=1))
    obj = policy_object(namespace, name, spec or SPEC, **metadata)
    if status is not None:
        obj["status"] = status
    kube.objects[POLICIES, namespace, name] = obj
    return obj


def succeeded_status(**overrides: Any) -> dict[str, Any]:
    status = {
        "observedGeneration": 1,
        "dagId": "vmbackup__shop__wordpress",
        "result": "Succeeded",
        "lastSnapshotTime": ago(hours=5, minutes=10, seconds=30),
        "lastSnapshots": ["wordpress-1-vm-20261125-0200-3f9a1c2b"],
        "nextRun": "2026-11-26T01:00:00Z",
        "lastRun": {"runId": "scheduled__2026-11-25T01:00:00+00:00", "state": "success", "durationSeconds": 41.0},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "DagLoaded", "message": "DAG uploaded and loaded by Airflow"}
        ],
    }
    status.update(overrides)
    return status


FAILED_RUN = {
    "runId": "manual__2026-11-25T09:12:00+00:00",
    "state": "failed",
    "startTime": "2026-11-25T09:12:01Z",
    "endTime": "2026-11-25T09:14:30Z",
    "durationSeconds": 149.0,
    "failedStep": "tier_web.stop",
    "message": "web-1 did not stop within 600s",
}


@pytest.fixture
def cluster(kube: kmock.KubernetesEmulator, kubeconfig: Path) -> kmock.KubernetesEmulator:
    """kmock as the cluster of the current kubeconfig context (KUBECONFIG points at it)."""
    return kube


# ---- get ---------------------------------------------------------------------------------------------


async def test_get_prints_the_printer_columns_like_kubectl(cluster: kmock.KubernetesEmulator) -> None:
    rpo_met = {"objective": "26h", "compliance": "Met", "instances": []}
    put_policy(cluster, "shop", "wordpress", status=succeeded_status(recoveryPoint=rpo_met))
    put_policy(cluster, "shop", "db", spec={**SPEC, "schedule": "@hourly"})

    result = await vmbackupctl("get", "-n", "shop")

    assert result.code == 0, result.stderr
    assert result.lines == [
        "NAME        SCHEDULE    LAST SNAPSHOT   RESULT      NEXT RUN               RPO       AGE",
        "db          @hourly                                                                  3d",
        "wordpress   0 2 * * *   5h10m           Succeeded   2026-11-26T01:00:00Z   Met       3d",
    ]


async def test_get_all_namespaces_adds_the_namespace_column(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    put_policy(cluster, "blog", "ghost", status=succeeded_status(result="Failed"))

    result = await vmbackupctl("get", "-A")

    assert result.code == 0, result.stderr
    assert [line.split()[:2] for line in result.lines] == [
        ["NAMESPACE", "NAME"],
        ["blog", "ghost"],
        ["shop", "wordpress"],
    ]
    assert "Failed" in result.lines[1]


async def test_get_wide_shows_suspend_and_the_dag(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(
        cluster, "shop", "wordpress", spec={**SPEC, "suspend": True}, status=succeeded_status(result="Suspended")
    )
    put_policy(cluster, "shop", "new")

    result = await vmbackupctl("get", "-n", "shop", "-o", "wide")

    assert result.lines[0].split()[-2:] == ["SUSPEND", "DAG"]
    assert result.lines[1].split()[-1] == "3d"  # new: not reconciled yet, suspend unset
    assert result.lines[2].split()[-2:] == ["true", "vmbackup__shop__wordpress"]


async def test_get_json_is_a_list_of_the_objects_as_stored(cluster: kmock.KubernetesEmulator) -> None:
    stored_policy = put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl("get", "-n", "shop", "-o", "json")

    data = json.loads(result.stdout)
    assert data["kind"] == "List"
    assert [item["status"] for item in data["items"]] == [stored_policy["status"]]


async def test_get_one_policy_as_yaml_is_the_object(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl("get", "wordpress", "-n", "shop", "-o", "yaml")

    data = yaml.safe_load(result.stdout)
    assert (data["metadata"]["name"], data["spec"]["schedule"], data["status"]["result"]) == (
        "wordpress",
        "0 2 * * *",
        "Succeeded",
    )


@pytest.mark.usefixtures("cluster")
async def test_get_in_an_empty_namespace_says_so_and_succeeds() -> None:
    result = await vmbackupctl("get", "-n", "empty")

    assert (result.code, result.stdout, result.stderr) == (0, "", "No resources found in empty namespace.\n")


async def test_namespace_defaults_to_the_contexts(cluster: kmock.KubernetesEmulator, tmp_path: Path) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    kubeconfig = tmp_path / "shop-kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{cluster.url!s}'}}}}]\n"
        "contexts: [{name: other, context: {cluster: kmock, user: u}},"
        " {name: shop, context: {cluster: kmock, user: u, namespace: shop}}]\n"
        "users: [{name: u, user: {}}]\n"
    )

    result = await vmbackupctl("get", "--kubeconfig", str(kubeconfig), "--context", "shop")

    assert [line.split()[0] for line in result.lines] == ["NAME", "wordpress"]


# ---- describe ----------------------------------------------------------------------------------------


async def test_describe_of_a_failed_run_shows_the_failed_step_and_why(cluster: kmock.KubernetesEmulator) -> None:
    status = succeeded_status(result="Failed", lastRun=FAILED_RUN)
    status["conditions"].append(
        {"type": "LastBackupSucceeded", "status": "False", "reason": "RunFailed", "message": "failed at tier_web.stop"}
    )
    put_policy(cluster, "shop", "wordpress", status=status)

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert result.code == 0, result.stderr
    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in result.lines if ":" in line}
    assert fields["Result"] == "Failed"
    assert fields["Failed Step"] == "tier_web.stop"
    assert fields["Message"] == "web-1 did not stop within 600s"
    assert fields["Duration"] == "2m29s"
    assert any(line.split()[:3] == ["LastBackupSucceeded", "False", "RunFailed"] for line in result.lines)


async def test_describe_summarises_the_spec(cluster: kmock.KubernetesEmulator) -> None:
    spec = {
        "project": "demo-project",
        "selector": {"zones": ["us-central1-a", "us-central1-b"], "matchLabels": {"app": "shop"}, "tierLabel": "tier"},
        "tiers": ["web", "app", "db"],
        "schedule": "30 1 * * *",
        "timezone": "Europe/Paris",
        "consistency": "guestFlush",
        "retention": {"count": 14, "maxAgeDays": 30},
    }
    put_policy(cluster, "shop", "shop", spec=spec)

    result = await vmbackupctl("describe", "shop", "-n", "shop")

    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in result.lines if ":" in line}
    assert fields["Selector"] == "labels app=shop in us-central1-a, us-central1-b (tier from label tier)"
    assert fields["Tiers"].startswith("web -> app -> db")
    assert fields["Schedule"] == "30 1 * * * (Europe/Paris)"
    assert fields["Consistency"] == "guestFlush"
    assert fields["Retention"] == (
        "keep the newest 14 per disk and all younger than 30 days; always the newest 1 complete run(s) of each VM"
    )
    assert fields["Result"].startswith("<none>")


def described_fields(result: CliResult) -> dict[str, str]:
    return {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in result.lines if ":" in line}


async def test_describe_shows_each_vms_recovery_point(cluster: kmock.KubernetesEmulator) -> None:
    point = {
        "objective": "26h",
        "compliance": "Breached",
        "instances": [{"instance": "wordpress-1-vm", "zone": "us-central1-c", "compliance": "Breached"}],
    }
    put_policy(cluster, "shop", "wordpress", spec={**SPEC, "rpo": "26h"}, status=succeeded_status(recoveryPoint=point))

    fields = described_fields(await vmbackupctl("describe", "wordpress", "-n", "shop", "--no-report"))

    assert fields["RPO"] == "Breached (objective 26h)"
    assert fields["wordpress-1-vm (us-central1-c)"] == "Breached: no good backup"


async def test_describe_says_where_the_snapshots_live_and_which_are_archive(cluster: kmock.KubernetesEmulator) -> None:
    snapshot = {"project": "shop-backups", "archiveRungs": ["monthly"], "storageLocation": "eu"}
    put_policy(cluster, "shop", "vault", spec={**SPEC, "retention": {"daily": 7, "monthly": 12}, "snapshot": snapshot})

    result = await vmbackupctl("describe", "vault", "-n", "shop")

    assert described_fields(result)["Snapshots"] == (
        "STANDARD, ARCHIVE for the snapshots the monthly rung keeps in project shop-backups, eu"
    )


async def test_describe_of_a_stop_mode_policy_states_the_stockout_risk(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress")

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert described_fields(result)["Stop Mode"] == render.STOCKOUT_RISK
    assert "spec.stop.requireReservation to refuse such VMs" in render.STOCKOUT_RISK


async def test_describe_says_local_ssd_vms_are_skipped_by_default(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress")

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    stop_mode = next(i for i, line in enumerate(result.lines) if line.strip().startswith("Stop Mode:"))
    assert result.lines[stop_mode + 1].strip() == render.LOCAL_SSD_SKIPPED


async def test_describe_of_a_policy_that_requires_reservations_says_so(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(
        cluster, "shop", "wordpress", spec={**SPEC, "stop": {"requireReservation": True, "discardLocalSsd": True}}
    )

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert described_fields(result)["Stop Mode"] == render.RESERVATION_REQUIRED
    assert render.STOCKOUT_RISK not in result.stdout
    assert render.LOCAL_SSD_DISCARDED in result.stdout


async def test_describe_of_a_guest_flush_policy_says_what_the_api_cannot_check(
    cluster: kmock.KubernetesEmulator,
) -> None:
    put_policy(cluster, "shop", "wordpress", spec={**SPEC, "consistency": "guestFlush"})

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert described_fields(result)["Guest Flush"].startswith("Windows guests flush through VSS")
    assert "Stop Mode" not in result.stdout


async def test_describe_of_an_invalid_spec_names_the_field(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", spec={**SPEC, "schedule": "every night"})

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert result.code == 0
    assert "spec.schedule: 'every night' must have 5 fields" in result.stdout


@pytest.mark.usefixtures("cluster")
async def test_unknown_policy_is_exit_3_with_one_line() -> None:
    result = await vmbackupctl("describe", "nope", "-n", "shop")

    assert result.code == 3
    assert result.stderr == 'vmbackupctl: error: VMBackupPolicy "nope" in namespace "shop" not found\n'


# ---- backup-now --------------------------------------------------------------------------------------


async def test_backup_now_sets_the_annotation_the_controller_acts_on(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl("backup-now", "wordpress", "-n", "shop")

    assert result.code == 0, result.stderr
    assert BACKUP_NOW in stored(cluster, "shop", "wordpress")["metadata"]["annotations"]
    assert "backup requested" in result.stdout


async def as_the_controller_runs(kube: kmock.KubernetesEmulator, last_run: dict[str, Any], **status: Any) -> None:
    """What the controller does after a backup-now: trigger, drop the annotation, then report the run."""
    await eventually(lambda: BACKUP_NOW in (stored(kube, "shop", "wordpress")["metadata"].get("annotations") or {}))
    running = {"runId": last_run["runId"], "state": "running"}
    await patch(kube, {"metadata": {"annotations": {BACKUP_NOW: None}}, "status": {"lastRun": running}})
    await patch(kube, {"status": {"lastRun": last_run, **status}})


async def patch(kube: kmock.KubernetesEmulator, body: dict[str, Any]) -> None:
    async with kube.patch(policy_url("shop", "wordpress"), json=body) as response:
        assert response.status == 200, await response.text()


async def test_backup_now_wait_exits_0_when_the_run_succeeds(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    new_run = {"runId": "manual__2026-11-25T10:00:00+00:00", "state": "success", "durationSeconds": 41.0}
    cli = asyncio.create_task(vmbackupctl("backup-now", "wordpress", "-n", "shop", "--wait", "--timeout", "60"))

    await as_the_controller_runs(cluster, new_run, result="Succeeded", lastSnapshots=["wordpress-1-vm-new"])
    result = await cli

    assert result.code == 0, result.stderr
    assert result.stdout == (
        "shop/wordpress: run manual__2026-11-25T10:00:00+00:00 succeeded in 41s: 1 snapshot(s) wordpress-1-vm-new\n"
    )


async def test_backup_now_wait_exits_1_when_the_run_fails(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    cli = asyncio.create_task(vmbackupctl("backup-now", "wordpress", "-n", "shop", "--wait"))

    await as_the_controller_runs(cluster, FAILED_RUN, result="Failed")
    result = await cli

    assert result.code == 1
    assert "failed at tier_web.stop in 2m29s: web-1 did not stop within 600s" in result.stdout


async def test_backup_now_wait_gives_up_at_the_timeout_with_exit_1(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl("backup-now", "wordpress", "-n", "shop", "--wait", "--timeout", "0.5")

    assert result.code == 1
    assert "timed out after 0.5s waiting for the controller to start the run" in result.stderr


async def test_backup_now_of_an_invalid_policy_fails_without_asking(cluster: kmock.KubernetesEmulator) -> None:
    status = {
        "result": "Invalid",
        "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "spec.project: bad"}],
    }
    put_policy(cluster, "shop", "wordpress", status=status)

    result = await vmbackupctl("backup-now", "wordpress", "-n", "shop")

    assert result.code == 1
    assert result.stderr == "vmbackupctl: error: shop/wordpress is Invalid, so no run can start: spec.project: bad\n"
    assert BACKUP_NOW not in (stored(cluster, "shop", "wordpress")["metadata"].get("annotations") or {})


@pytest.mark.usefixtures("cluster")
async def test_backup_now_of_an_unknown_policy_is_exit_3() -> None:
    result = await vmbackupctl("backup-now", "nope", "-n", "shop")

    assert result.code == 3


# ---- failures and usage ------------------------------------------------------------------------------


async def test_kubernetes_unreachable_is_exit_4_naming_the_server(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "down"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: down\n"
        f"clusters: [{{name: down, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: down, context: {cluster: down, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )

    result = await vmbackupctl("get", "--kubeconfig", str(kubeconfig))

    assert result.code == 4
    assert result.stderr.startswith(f"vmbackupctl: error: cannot reach the Kubernetes API at http://127.0.0.1:{port}")
    assert result.stderr.count("\n") == 1


async def test_forbidden_is_exit_4_with_the_permission_to_check(cluster: kmock.KubernetesEmulator) -> None:
    forbidden = 'vmbackuppolicies.vmbackup.dev is forbidden: User "jane" cannot list resource "vmbackuppolicies"'
    cluster[f"get {policy_url('shop')}"] << 403 << {"kind": "Status", "code": 403, "message": forbidden}

    result = await vmbackupctl("get", "-n", "shop")

    assert result.code == 4
    assert forbidden in result.stderr
    assert "kubectl auth can-i list vmbackuppolicies.vmbackup.dev" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_unknown_context_is_exit_4_with_the_fix() -> None:
    result = await vmbackupctl("get", "--context", "nowhere")

    assert result.code == 4
    assert "--context" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_name_with_all_namespaces_is_a_usage_error() -> None:
    result = await vmbackupctl("get", "wordpress", "-A")

    assert result.code == 2
    assert "-A" in result.stderr


def test_help_documents_the_exit_codes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "controller.vmbackupctl", "--help"], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0
    assert "3  not found" in done.stdout
    assert "4  a backend is unreachable" in done.stdout


def test_an_unknown_command_is_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "controller.vmbackupctl", "restore-everything"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2
    assert "invalid choice" in done.stderr
