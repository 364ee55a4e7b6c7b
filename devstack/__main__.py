"""`python -m devstack` (`make demo`): Composer-in-a-box, a VM backed up by policy and restored, then keep running.

It applies the example policies, asks for one backup of the classic WordPress VM now, and shows what a
user would see: the policy table as `kubectl get vmbackuppolicies` prints it and the snapshots as
`gcloud compute snapshots list` prints them. Then it restores that VM from its snapshot into a new VM with
`vmbackupctl restore --wait` and shows the new VM as `gcloud compute instances list` prints it. Schedules
keep firing until Ctrl-C, which stops every process it started.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.vmbackupctl import render
from devstack.cluster import api_client, apply_examples
from devstack.composer_timing import ComposerTiming
from devstack.stack import PROJECT, LocalStack, PortInUseError, StackPorts, default_state_dir, wait_until
from vmbackup.model.policy import API_GROUP, API_VERSION, dag_id_for
from vmbackup.model.restore import PLURAL as RESTORES

DEMO_POLICY = ("default", "wordpress")
RESTORED_VM = "wordpress-restored"  # the new VM (and VMRestore) the demo's restore creates
# How long the demo waits for its backup and its restore: each takes a minute or two, but Airflow 3 tasks on a
# loaded 2-core machine took 1-3 minutes each to start (tests/devstack/test_local_stack_e2e.py).
DEMO_WAIT_SECONDS = 1800
INTERRUPTED = 130  # vmbackupctl's (and the shell's) exit code for Ctrl-C


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=default_state_dir(), help="where the stack keeps its files")
    parser.add_argument(
        "--time-scale", type=float, default=0.2, help="Compute Engine speed: 1.0 = realistic timings (default 0.2)"
    )
    for name in ("bucket", "compute", "airflow", "kubernetes"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help=f"port of the {name} endpoint (default: free)")
    parser.add_argument(
        "--ignore-kubeconfig", action="store_true", help="use the local kmock API even when KUBECONFIG is set"
    )
    parser.add_argument("--once", action="store_true", help="stop after the first backup is shown (for scripts)")
    add_timing_arguments(parser)
    args = parser.parse_args(argv)
    try:
        timing_from(args)
    except ValueError as exc:
        parser.error(f"--sync-delay / --dag-list-interval: {exc}")
    return args


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """--composer-timing and its two parts (devstack/composer_timing.py cites each default)."""
    composer = ComposerTiming.composer()
    parser.add_argument(
        "--composer-timing",
        action="store_true",
        help=f"model Cloud Composer's waits: {composer.describe()} (default: new DAGs appear within seconds)",
    )
    parser.add_argument(
        "--sync-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"bucket -> Airflow sync delay (Composer: {composer.sync_delay_seconds:g}; default 0)",
    )
    parser.add_argument(
        "--dag-list-interval",
        type=int,
        default=None,
        metavar="SECONDS",
        help=f"Airflow's [dag_processor] refresh_interval (Composer: {composer.dag_list_interval_seconds}; default "
        f"{ComposerTiming.fast().dag_list_interval_seconds})",
    )


def timing_from(args: argparse.Namespace) -> ComposerTiming:
    """The profile the flags ask for: --composer-timing's (or the fast one), each part overridable."""
    base = ComposerTiming.composer() if args.composer_timing else ComposerTiming.fast()
    return ComposerTiming(
        sync_delay_seconds=base.sync_delay_seconds if args.sync_delay is None else args.sync_delay,
        dag_list_interval_seconds=base.dag_list_interval_seconds
        if args.dag_list_interval is None
        else args.dag_list_interval,
        min_file_process_interval_seconds=base.min_file_process_interval_seconds,
    )


def show(stack: LocalStack, *argv: str) -> int:
    from controller.vmbackupctl.__main__ import main as vmbackupctl

    print(f"\n$ vmbackupctl {' '.join(argv)}")
    with stack.cli_environment():
        code = vmbackupctl(list(argv))
    if code == INTERRUPTED:  # Ctrl-C while the CLI waited: it reported it; the demo stops too
        raise KeyboardInterrupt
    return code


def show_restored_vm(stack: LocalStack, namespace: str, name: str) -> None:
    """The VM a VMRestore made, as `gcloud compute instances list` shows it, with the snapshot of each disk."""
    assert stack.kubeconfig is not None
    assert stack.compute is not None
    objects = client.CustomObjectsApi(api_client(stack.kubeconfig))
    restore = cast(
        dict[str, Any], objects.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, RESTORES, name)
    )
    status = restore.get("status") or {}
    instance, zone = status.get("instance"), status.get("zone")
    print(f"\n$ gcloud compute instances list --filter=name={instance}   # answered by the Compute Engine simulator")
    if not instance or not zone:
        print(f"vmrestore {namespace}/{name} names no instance yet (status: {status})")
        return
    vm = stack.compute.instance(PROJECT, zone, instance)
    disks = []
    for attached in vm.get("disks") or []:
        disk_name = str(attached.get("source", "")).rsplit("/", 1)[-1]
        snapshot = str(stack.compute.disk(PROJECT, zone, disk_name).get("sourceSnapshot") or "").rsplit("/", 1)[-1]
        disks.append(f"{disk_name} (from {snapshot or 'no snapshot'})")
    machine_type = str(vm.get("machineType", "")).rsplit("/", 1)[-1]
    row = [instance, zone, machine_type, str(vm.get("status", "?")), ", ".join(disks)]
    print(render.table(["NAME", "ZONE", "MACHINE_TYPE", "STATUS", "DISKS"], [row], style="gcloud"))


def run_demo(stack: LocalStack, once: bool) -> int:
    print("\n== applying the example policies (crds/examples/)")
    assert stack.kubeconfig is not None
    apply_examples(api_client(stack.kubeconfig))
    namespace, name = DEMO_POLICY
    dag_id = dag_id_for(namespace, name)
    assert stack.airflow is not None
    print(f"\n== waiting for the controller to put {dag_id} in the bucket and Airflow to parse it")
    wait_until(
        lambda: stack.airflow is not None and stack.airflow.api.dag(dag_id),
        within=DEMO_WAIT_SECONDS + stack.timing.worst_case_seconds,
        what=f"DAG {dag_id} in Airflow (controller log: {stack.controller_log})",
        interval=1.0,
    )
    print(f"Airflow has {dag_id}: {stack.airflow.url}/dags/{dag_id}")
    print("\n== one backup now: stop wordpress-1-vm, snapshot its disk, start it again")
    timeout = str(DEMO_WAIT_SECONDS)
    result = show(stack, "backup-now", name, "-n", namespace, "--wait", "--timeout", timeout)
    show(stack, "get", "-A")
    show(stack, "snapshots", name, "-n", namespace)
    if result == 0:
        print(f"\n== restore: a new VM {RESTORED_VM} from that snapshot (wordpress-1-vm is not touched)")
        result = show(stack, "restore", name, "-n", namespace, "--as", RESTORED_VM, "--wait", "--timeout", timeout)
        show_restored_vm(stack, namespace, RESTORED_VM)
    print(
        f"\nThe stack keeps running and schedules keep firing. In another shell: `source {stack.state_dir}/env`, "
        f"then `vmbackupctl get -A`, `kubectl get vmrestores -A`, `vmbackupctl describe {name}`, "
        f"`vmbackupctl logs {name}`."
    )
    if once:
        return result
    print("Press Ctrl-C to stop every process this started.")
    while True:
        time.sleep(5)
        if not stack.controller_running():
            print("the controller exited; its log ends with:\n" + stack.controller_log_tail(), file=sys.stderr)
            return 1


def api_refusal(exc: BaseException) -> str:
    """A Kubernetes API error in one line (status, reason, the server's message) instead of the client's dump."""
    if not isinstance(exc, ApiException):
        return ""
    try:
        message = json.loads(exc.body or "{}").get("message") or ""
    except ValueError:
        message = str(exc.body or "")
    return f"the Kubernetes API refused a request: {exc.status} {exc.reason}: {message}".rstrip(": ")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM and Ctrl-C stop the stack the same way: through every cleanup


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # even when started from a script that ignores SIGINT
    args = parse_args(argv)
    ports = StackPorts(
        bucket=args.bucket_port, compute=args.compute_port, airflow=args.airflow_port, kubernetes=args.kubernetes_port
    )
    print("== starting Composer-in-a-box on 127.0.0.1")
    stack = LocalStack(
        state_dir=args.state_dir,
        ports=ports,
        time_scale=args.time_scale,
        use_kubeconfig=not args.ignore_kubeconfig,
        timing=timing_from(args),
    )
    try:
        with stack:
            return run_demo(stack, args.once)
    except PortInUseError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        details: Any = stack.controller_log_tail()
        print(f"devstack: {api_refusal(exc) or exc}", file=sys.stderr)
        if details:
            print(f"controller log tail:\n{details}", file=sys.stderr)
        return 1
    finally:
        print("== stopped every process the demo started")


if __name__ == "__main__":
    sys.exit(main())
