"""`make demo` end to end, as a user runs it: the demo's own flow on the stack `python -m devstack` starts.

No KUBECONFIG, so the Kubernetes API is the local one; the demo applies the examples, backs up wordpress-1-vm,
restores it into a new VM with `vmbackupctl restore --wait`, and prints that VM. Then the user's own tools look:
the real kubectl lists the VMRestore, and the Compute Engine simulator holds the VM, made from the backup.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.__main__ import DEMO_POLICY, DEMO_WAIT_SECONDS, RESTORED_VM, parse_args, run_demo
from devstack.stack import PROJECT, LocalStack
from tests.fixtures.rbac import ChartRbac, controller_requests
from vmbackup.model import labels

# The demo waits up to DEMO_WAIT_SECONDS for the DAG, the backup and the restore each (a loaded 2-core machine
# took minutes per Airflow task); the test's bound covers all three and the stack's start.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3 * DEMO_WAIT_SECONDS + 900)]

SOURCE_VM, ZONE = "wordpress-1-vm", "us-central1-c"


@dataclass(frozen=True)
class DemoRun:
    stack: LocalStack
    exit_code: int
    printed: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`python -m devstack --once` with the demo's own settings, in this process so the stack can be inspected."""
    args = parse_args(["--once", "--ignore-kubeconfig", "--state-dir", str(tmp_path_factory.mktemp("demo"))])
    printed = io.StringIO()
    with LocalStack(state_dir=args.state_dir, time_scale=args.time_scale, use_kubeconfig=False, echo=print) as stack:
        with contextlib.redirect_stdout(printed):
            code = run_demo(stack, once=True)
        yield DemoRun(stack, code, printed.getvalue())


def test_the_demo_backs_up_and_restores_wordpress(demo: DemoRun) -> None:
    namespace, _ = DEMO_POLICY

    assert demo.exit_code == 0, demo.printed + "\ncontroller log:\n" + demo.stack.controller_log_tail(60)
    assert f"vmrestore {namespace}/{RESTORED_VM}: Succeeded: instance {RESTORED_VM}" in demo.printed


def test_the_demo_prints_the_restored_vm_running(demo: DemoRun) -> None:
    rows = [line.split() for line in demo.printed.splitlines() if line.startswith(f"{RESTORED_VM} ")]

    assert len(rows) == 1, demo.printed
    assert rows[0][1:2] == [ZONE]
    assert "RUNNING" in rows[0]


def test_the_restored_vm_is_made_from_the_backups_snapshot(demo: DemoRun) -> None:
    compute = demo.stack.compute
    assert compute is not None
    ours = {
        s["name"]
        for s in compute.snapshots(PROJECT)
        if (s.get("labels") or {}).get(labels.POLICY_NAME) == DEMO_POLICY[1]
    }

    restored = compute.instance(PROJECT, ZONE, RESTORED_VM)
    boot_disk = compute.disk(PROJECT, ZONE, restored["disks"][0]["source"].rsplit("/", 1)[-1])

    assert restored["status"] == "RUNNING"
    assert boot_disk["sourceSnapshot"].rsplit("/", 1)[-1] in ours
    assert compute.instance(PROJECT, ZONE, SOURCE_VM)["status"] == "RUNNING"  # the source is never touched
    assert compute.violations == []


def test_kubectl_lists_the_restore_against_the_demos_api(demo: DemoRun, kubectl_bin: Path) -> None:
    assert demo.stack.kubeconfig is not None

    listed = subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(demo.stack.kubeconfig), "get", "vmrestores", "-A"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert listed.returncode == 0, listed.stderr
    assert RESTORED_VM in listed.stdout


def test_the_controller_never_met_an_api_error(demo: DemoRun) -> None:
    assert demo.stack.controller_log is not None
    log = demo.stack.controller_log.read_text(errors="replace")

    assert "JsonPatchTestFailed" not in log
    assert "Failed to post an event" not in log


def test_the_controller_asked_only_for_what_the_chart_grants(demo: DemoRun, chart_rbac: ChartRbac) -> None:
    made = controller_requests(demo.stack.kube_requests())

    assert made, "the controller made no request to the local Kubernetes API"
    assert not chart_rbac.denied(made), "the chart does not allow: " + "; ".join(map(str, chart_rbac.denied(made)))
