"""`vmbackupctl restore --from-snapshots --in-place`: the cluster and Airflow are gone, the VM is not; the CLI gives it
disks made from its snapshots itself, with the in-place restore DAG's own steps (Compute Engine simulator, the real
google-cloud-compute client). The snapshots come from a real backup run (dag.test()) of db-1 (a boot disk db-1 at
device persistent-disk-0, a data disk db-1-data at device data); then no Kubernetes at all (KUBECONFIG names no
file). Interrupted and killed runs are the CLI as a separate process, stopped midway by a signal.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from controller.vmbackupctl.__main__ import main
from devstack.gce_simulator import Fault
from tests.controller.vmbackupctl.test_commands import CliResult
from tests.fixtures.gce import GCE_PROJECT, step_until
from tests.fixtures.recovery import ZONE, RecoveryStack
from tests.fixtures.tools import REPO_ROOT
from tests.fixtures.waits import wait_until
from vmbackup.model import labels as vmlabels
from vmbackup.model.restore import RESTORE_LABEL

# Not marked airflow: the CLI under test never runs under Airflow (only the backup of its setup does, through
# dag.test()), so the Airflow 2.10 pass has nothing to add here.

IN_PLACE = ("restore", "db", "--from-snapshots", "--project", GCE_PROJECT, "--in-place")
ORIGINALS = {"persistent-disk-0": ("db-1", True), "data": ("db-1-data", False)}
# The first attach (the new boot disk's) takes this much longer: the CLI is stopped while Compute Engine still works
# on it, however late a loaded machine lets the test send the signal; the test then ends the attach itself
# (`finish_the_attach`). The CLI cannot get past that attach before it ends, so the signal always lands there.
ATTACH_SECONDS = 600.0


@pytest.fixture
def run(stack: RecoveryStack, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """db-1 backed up once and RUNNING, the cluster gone; the run's label."""
    stack.back_up(stack.policy())
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-cluster"))
    stack.sim.clear_calls()
    (run,) = {s["labels"][vmlabels.RUN] for s in stack.sim.snapshots(GCE_PROJECT) if vmlabels.RUN in s["labels"]}
    return str(run)


def restore_name(run: str) -> str:
    return f"db-1-{run}-in-place"


def restored(run: str) -> dict[str, tuple[str, bool]]:
    return {"persistent-disk-0": (f"{restore_name(run)}-db-1", True), "data": (f"{restore_name(run)}-db-1-data", False)}


def vmbackupctl(*argv: str, typed: str = "") -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(typed))
    return CliResult(code, out.getvalue(), err.getvalue())


def disks_of(stack: RecoveryStack) -> dict[str, tuple[str, bool]]:
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")
    return {d["deviceName"]: (d["source"].rsplit("/", 1)[-1], d["boot"]) for d in vm["disks"]}


def started_cli(*argv: str) -> subprocess.Popen[str]:
    """The CLI as a user runs it: its own process (this one's environment: the simulator, no cluster)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'plugins'}"}
    command = [sys.executable, "-m", "controller.vmbackupctl", *argv]
    return subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def attach_started(stack: RecoveryStack) -> bool:
    """The CLI asked for its first attach (the boot disk's, slowed down): the VM is stopped, its disks detached."""
    return any(c["method"] == "instances.attachDisk" and c["status"] == 200 for c in stack.sim.calls)


def attach_in_flight(stack: RecoveryStack) -> bool:
    return any(op["operationType"] == "attachDisk" and op["status"] != "DONE" for op in stack.sim.operations())


def finish_the_attach(stack: RecoveryStack) -> None:
    """End the slowed attach now: no more slow attaches, and the simulator's clock stepped until it is DONE (the
    timers due before it, purges of operations done earlier, fire on the way)."""
    stack.sim.clear_faults()
    with stack.sim.clock_held() as step:
        step_until(step, lambda: not attach_in_flight(stack), "the attach DONE")


def test_typing_the_vm_name_gives_it_the_restored_disks(stack: RecoveryStack, run: str) -> None:
    before = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")

    result = vmbackupctl(*IN_PLACE, typed="db-1\n")

    assert result.code == 0, result.stderr
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")
    assert (vm["id"], vm["status"]) == (before["id"], "RUNNING")
    assert disks_of(stack) == restored(run)
    for original, _ in ORIGINALS.values():
        disk = stack.sim.disk(GCE_PROJECT, ZONE, original)
        assert (disk["users"], disk["labels"].get(vmlabels.REPLACED_BY)) == ([], f"shop_{restore_name(run)}")
    assert vmlabels.LOCK not in vm["labels"]
    assert stack.sim.check_left_stopped() == []
    assert f"restored in place: instance db-1 (project {GCE_PROJECT}, zone {ZONE}) from run {run}" in result.stdout
    for step in ("Type the VM name (db-1)", "stopping", "attaching disk", "instance db-1: RUNNING"):
        assert step in result.stderr


def test_another_answer_changes_nothing(stack: RecoveryStack, run: str) -> None:
    before = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")

    result = vmbackupctl(*IN_PLACE, typed="y\n")

    assert result.code == 2
    assert "not confirmed (got 'y'); nothing was changed" in result.stderr
    assert stack.sim.instance(GCE_PROJECT, ZONE, "db-1") == before
    assert stack.sim.call_counts().get("disks.insert", 0) == 0


def test_the_replaced_disks_are_deleted_only_when_asked(stack: RecoveryStack, run: str) -> None:
    result = vmbackupctl(*IN_PLACE, "--yes", "--delete-replaced-disks")

    assert result.code == 0, result.stderr
    assert disks_of(stack) == restored(run)
    assert [k for k in stack.sim.world.disks if k[2] in ("db-1", "db-1-data")] == []
    assert "replaced disks deleted: db-1, db-1-data" in result.stdout


def test_a_failure_midway_puts_the_original_disks_back_and_starts_the_vm(stack: RecoveryStack, run: str) -> None:
    # The new boot disk is attached, the new data disk is not: the VM is stopped with half its disks swapped.
    stack.sim.inject(
        Fault(
            method="instances.attachDisk", action="operation_error", message="Quota 'DISKS' exceeded.", after=1, times=1
        )
    )

    result = vmbackupctl(*IN_PLACE, "--yes")

    assert result.code == 1
    assert "Quota 'DISKS' exceeded." in result.stderr
    assert "db-1 was put back as it was" in result.stderr
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")
    assert (vm["status"], disks_of(stack)) == ("RUNNING", ORIGINALS)
    assert vmlabels.LOCK not in vm["labels"]
    assert stack.sim.check_left_stopped() == []
    kept = {k[2]: d.labels.get(RESTORE_LABEL) for k, d in stack.sim.world.disks.items() if k[2].startswith("db-1-r")}
    assert kept == {name: f"shop_{restore_name(run)}" for name, _ in restored(run).values()}  # nothing deleted


def test_ctrl_c_midway_puts_the_original_disks_back_and_starts_the_vm(stack: RecoveryStack, run: str) -> None:
    stack.sim.inject(Fault.slow("instances.attachDisk", ATTACH_SECONDS, times=None))
    cli = started_cli(*IN_PLACE, "--yes")
    wait_until(lambda: attach_started(stack) or cli.poll() is not None, within=180, what="the first attach")

    cli.send_signal(signal.SIGINT)  # pending in the CLI before it can see the attach end: it obeys it there
    finish_the_attach(stack)  # which the rollback waits for; its own attaches are not slowed
    _, stderr = cli.communicate(timeout=600)

    assert cli.returncode == 130, stderr
    assert "interrupted: putting db-1 back as it was" in stderr
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")
    assert (vm["status"], disks_of(stack)) == ("RUNNING", ORIGINALS)
    assert vmlabels.LOCK not in vm["labels"]
    assert stack.sim.check_left_stopped() == []


def test_running_it_again_after_it_was_killed_midway_finishes_the_restore(stack: RecoveryStack, run: str) -> None:
    stack.sim.inject(Fault.slow("instances.attachDisk", ATTACH_SECONDS, times=None))
    cli = started_cli(*IN_PLACE, "--yes")
    wait_until(lambda: attach_started(stack) or cli.poll() is not None, within=180, what="the first attach")
    cli.kill()
    cli.communicate(timeout=60)
    finish_the_attach(stack)  # Compute Engine finishes what the CLI asked for; the second run's are not slowed
    assert stack.sim.wait_idle(timeout=60)
    # Left stopped, held by the restore, its boot disk swapped.
    assert stack.sim.instance(GCE_PROJECT, ZONE, "db-1")["status"] == "TERMINATED"
    assert disks_of(stack)["persistent-disk-0"] == restored(run)["persistent-disk-0"]

    again = vmbackupctl(*IN_PLACE, "--yes")

    assert again.code == 0, again.stderr
    assert f"device data: db-1-data -> {restore_name(run)}-db-1-data" in again.stderr
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")
    assert (vm["status"], disks_of(stack)) == ("RUNNING", restored(run))
    assert vmlabels.LOCK not in vm["labels"]
    assert stack.sim.check_left_stopped() == []
    for original, _ in ORIGINALS.values():
        assert stack.sim.disk(GCE_PROJECT, ZONE, original)["labels"].get(vmlabels.REPLACED_BY) == (
            f"shop_{restore_name(run)}"
        )


def test_running_it_again_after_it_succeeded_changes_nothing(stack: RecoveryStack, run: str) -> None:
    first = vmbackupctl(*IN_PLACE, "--yes")

    again = vmbackupctl(*IN_PLACE, "--yes")

    assert (first.code, again.code) == (0, 0), again.stderr
    assert "has the restored disks already: nothing to do" in again.stderr
    done = [c["method"] for c in stack.sim.calls if c["status"] == 200]
    assert (done.count("disks.insert"), done.count("instances.attachDisk"), done.count("instances.stop")) == (2, 2, 1)


def test_a_vm_that_is_gone_is_refused_naming_the_new_vm_restore(stack: RecoveryStack, run: str) -> None:
    stack.delete_instance("db-1")

    result = vmbackupctl(*IN_PLACE, "--yes")

    assert result.code == 2
    assert "instance db-1 no longer exists" in result.stderr
    assert "drop --in-place to restore it as a new VM" in result.stderr
    assert stack.sim.call_counts().get("disks.insert", 0) == 0
