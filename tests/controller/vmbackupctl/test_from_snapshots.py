"""`vmbackupctl restore --from-snapshots`: the cluster and Airflow are gone; the CLI lists the runs from the snapshots
(Compute Engine simulator) and their reports (storage emulator), and restores the VM itself. The snapshots and
reports come from a real backup run (dag.test()); then no Kubernetes at all (KUBECONFIG names no file)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from controller.vmbackupctl.__main__ import main
from tests.controller.vmbackupctl.test_commands import CliResult
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import ZONE, RecoveryStack

pytestmark = pytest.mark.airflow

T4 = "nvidia-tesla-t4"
FROM_SNAPSHOTS = ("restore", "db", "--from-snapshots", "--project", GCE_PROJECT)


@pytest.fixture
def disaster(stack: RecoveryStack, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Backed up twice, then the VM, its data disk and the cluster are gone; the newest run's label."""
    policy = stack.policy()
    stack.back_up(policy)
    stack.back_up(policy)
    stack.delete_instance("db-1")
    stack.delete_disk("db-1-data")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-cluster"))
    newest = max(stack.sim.snapshots(GCE_PROJECT), key=lambda s: s["creationTimestamp"])
    return str(newest["labels"]["vmbackup-run"])


def vmbackupctl(*argv: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(""))
    return CliResult(code, out.getvalue(), err.getvalue())


def test_the_list_shows_each_run_with_its_report(stack: RecoveryStack, disaster: str) -> None:
    result = vmbackupctl(*FROM_SNAPSHOTS, "--list", "--bucket", stack.bucket.name)

    assert result.code == 0, result.stderr
    assert result.lines[0].split() == ["RUN", "INSTANCE", "CREATED", "SNAPSHOTS", "STATUS", "REPORT"]
    assert len(result.lines) == 3  # two runs, newest first
    assert result.lines[1].split()[0] == disaster
    assert result.lines[1].split()[3:] == ["2", "READY", "READY"]
    assert "read 2 run report(s)" in result.stderr
    assert [k for k in stack.sim.world.instances if k[2].startswith("db-1")] == []  # --list restores nothing


def test_the_newest_complete_run_is_restored_without_kubernetes(stack: RecoveryStack, disaster: str) -> None:
    result = vmbackupctl(*FROM_SNAPSHOTS, "--bucket", stack.bucket.name)

    assert result.code == 0, result.stderr
    name = f"db-1-{disaster}"
    vm = stack.sim.instance(GCE_PROJECT, ZONE, name)
    assert vm["status"] == "RUNNING"
    assert vm["machineType"].endswith("/machineTypes/n2-standard-4")  # from the snapshots' record
    assert [d["deviceName"] for d in vm["disks"]] == ["persistent-disk-0", "data"]
    assert f"restored: instance {name} (project {GCE_PROJECT}, zone {ZONE}) from run {disaster}" in result.stdout
    assert f"disk {name}: READY" in result.stderr


def test_running_it_again_after_an_interruption_finishes_the_same_restore(stack: RecoveryStack, disaster: str) -> None:
    first = vmbackupctl(*FROM_SNAPSHOTS)
    name = f"db-1-{disaster}"
    stack.delete_instance(name)  # as if interrupted before the VM was made: its disks are still there
    stack.sim.wait_idle()

    again = vmbackupctl(*FROM_SNAPSHOTS)

    assert (first.code, again.code) == (0, 0), again.stderr
    assert f"disk db-1-{disaster}-db-1-data: adopted" in again.stderr
    assert stack.sim.instance(GCE_PROJECT, ZONE, name)["status"] == "RUNNING"
    assert sorted(k[2] for k in stack.sim.world.instances if k[2].startswith("db-1-")) == [name]


def test_an_older_run_is_restored_into_another_project_and_region(stack: RecoveryStack, disaster: str) -> None:
    older = next(
        s["labels"]["vmbackup-run"] for s in stack.sim.snapshots(GCE_PROJECT) if s["labels"]["vmbackup-run"] != disaster
    )
    placement = (
        "--target-project",
        "dr-project",
        "--target-zone",
        "europe-west1-b",
        "--network",
        "dr-net",
        "--subnet",
        "dr-subnet",
    )

    result = vmbackupctl(*FROM_SNAPSHOTS, "--run", older, "--as", "db-dr", *placement)

    assert result.code == 0, result.stderr
    vm = stack.sim.instance("dr-project", "europe-west1-b", "db-dr")
    assert vm["status"] == "RUNNING"
    assert vm["networkInterfaces"][0]["subnetwork"].endswith("/regions/europe-west1/subnetworks/dr-subnet")
    assert "accessConfigs" not in vm["networkInterfaces"][0]


def test_another_project_without_a_network_is_refused_naming_the_flag(stack: RecoveryStack, disaster: str) -> None:
    result = vmbackupctl(*FROM_SNAPSHOTS, "--target-project", "dr-project")

    assert result.code == 2
    assert "spec.overrides.networkInterfaces: required with spec.targetProject dr-project" in result.stderr
    assert "--network" in result.stderr
    assert [k for k in stack.sim.world.disks if k[0] == "dr-project"] == []


def test_snapshots_kept_in_a_backup_project_restore_the_vm_into_its_own_project(
    stack: RecoveryStack, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = stack.policy(snapshot={"project": "demo-backups"})
    stack.back_up(policy)
    stack.delete_instance("db-1")
    stack.delete_disk("db-1-data")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-cluster"))

    result = vmbackupctl("restore", "db", "--from-snapshots", "--project", "demo-backups", "--as", "db-back")

    assert result.code == 0, result.stderr
    assert stack.sim.instance(GCE_PROJECT, ZONE, "db-back")["status"] == "RUNNING"
    disk = stack.sim.disk(GCE_PROJECT, ZONE, "db-back")
    assert "/projects/demo-backups/global/snapshots/" in disk["sourceSnapshot"]


@pytest.fixture
def gpu_disaster(stack: RecoveryStack, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """An inference VM with one T4, backed up; then the VM and the cluster are gone. The run's label."""
    stack.sim.add_instance(GCE_PROJECT, ZONE, "infer-1", machine_type="n1-standard-8", guest_accelerators={T4: 1})
    stack.back_up(stack.policy("infer", instances=[{"name": "infer-1", "zone": ZONE}]))
    stack.delete_instance("infer-1")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-cluster"))
    return str(stack.sim.snapshots(GCE_PROJECT)[0]["labels"]["vmbackup-run"])


def test_a_lost_gpu_vm_is_restored_with_its_gpus(stack: RecoveryStack, gpu_disaster: str) -> None:
    result = vmbackupctl("restore", "infer", "--from-snapshots", "--project", GCE_PROJECT)

    assert result.code == 0, result.stderr
    vm = stack.sim.instance(GCE_PROJECT, ZONE, f"infer-1-{gpu_disaster}")
    assert vm["status"] == "RUNNING"
    [gpu] = vm["guestAccelerators"]
    assert (gpu["acceleratorType"].rsplit("/", 1)[-1], gpu["acceleratorCount"]) == (T4, 1)  # from the record
    assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_a_target_zone_without_the_gpu_is_refused_before_any_disk(stack: RecoveryStack, gpu_disaster: str) -> None:
    stack.sim.world.withdrawn_accelerator_types["europe-west1-b"] = {T4}
    placement = ("--target-zone", "europe-west1-b", "--network", "default", "--subnet", "default")

    result = vmbackupctl("restore", "infer", "--from-snapshots", "--project", GCE_PROJECT, *placement)

    assert result.code != 0
    assert f"spec.targetZone: zone europe-west1-b (project {GCE_PROJECT}) does not offer GPU {T4}" in result.stderr
    assert "--target-zone" in result.stderr
    assert [k for k in stack.sim.world.disks if k[1] == "europe-west1-b"] == []
