"""`python -m bench restore`: how long a restore (and a drill) waits on Composer before Compute Engine sees it.

Each timing profile gets its own local stack (devstack/stack.py: the storage emulator as the bucket, the Compute
Engine simulator, a real Airflow 3 whose folders follow the bucket, kmock, and the controller as its own
process), with Composer's waits modelled (devstack/composer_timing.py): the bucket -> Airflow sync delay and the
DAG processor's listing interval, set as the real Airflow's own option. In it: the wordpress example policy and
one backup of wordpress-1-vm, then

1. ``--repeat`` VMRestores of it, one after the other, each created as `kubectl apply` does (through the
   Kubernetes API, to the controller), each restoring into a VM of its own name;
2. one drill: spec.verification added to the policy (`kubectl apply`), then `vmbackupctl verify` at once: it only
   annotates the policy, and the controller starts the drill as a run of the shared drill DAG (shipped with the
   plugins), so nothing waits for a DAG file of the drill's own.

Every time is from the apply. The first Compute Engine write and the new VM's RUNNING come from the simulator's
own records (its call log, and the end of the new VM's instances.insert operation, which ends as the VM becomes
RUNNING), never from polling the VM. The floor (bench/restore_report.restore_floor) is computed from the profile.

``--path`` says which restore path the figures are for. The controller under test takes one: today's, a DAG
file per VMRestore; or issue 24's, a DAG shipped once with the plugins and run through the REST API (the
restore-dag branch, found by ``vmbackup.model.restore.SHARED_RESTORE_DAG_ID``). A path this checkout does not
take is skipped with a message saying so, never measured as the other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.restore_report import PATHS, PER_RESTORE_DAG, SHIPPED_DAG, ProfileResult, Sample, render_table, restore_floor
from devstack.airflow_rest import parse_time
from devstack.composer_timing import ComposerTiming
from devstack.stack import PROJECT, LocalStack, example_policies, wait_until

POLICY = "wordpress"  # crds/examples/wordpress.yaml: wordpress-1-vm in us-central1-c
NAMESPACE = "default"
ZONE = "us-central1-c"
SOURCE_VM = "wordpress-1-vm"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROFILES: dict[str, ComposerTiming] = {
    "none": ComposerTiming.fast(),  # the tests' profile: no modelled wait
    "short": ComposerTiming(sync_delay_seconds=20, dag_list_interval_seconds=30, min_file_process_interval_seconds=30),
    "composer": ComposerTiming.composer(),  # 240 s sync (ESTIMATE), 300 s listing (Airflow's default)
}
DRILL = {"schedule": "0 3 * * 0", "network": "default"}  # a weekly drill; the bench starts one at once


def shipped_dag_available() -> bool:
    """True when this checkout's controller runs restores through the shipped DAG (the restore-dag branch)."""
    import vmbackup.model.restore as restore_model

    return hasattr(restore_model, "SHARED_RESTORE_DAG_ID")


def path_taken() -> str:
    return SHIPPED_DAG if shipped_dag_available() else PER_RESTORE_DAG


def skip_message(path: str) -> str:
    if path == SHIPPED_DAG:
        return (
            "the shipped restore DAG path (issue 24, branch restore-dag) is not in this checkout: its controller "
            "still renders a DAG file per VMRestore; merge that branch and run again for its column"
        )
    return (
        "this checkout's controller no longer renders a DAG file per VMRestore (it uses the shipped DAG); today's "
        "column is in docs/benchmarks.md under its date"
    )


class RestoreBench:
    """One profile: one stack, one backup, then the restores and the drill."""

    def __init__(self, profile: str, time_scale: float, poll_interval: float, echo: Callable[[str], None]) -> None:
        self.profile = profile
        self.timing = PROFILES[profile]
        self.echo = echo
        self.stack = LocalStack(
            state_dir=Path(tempfile.mkdtemp(prefix="bench-restore-")),
            time_scale=time_scale,
            poll_interval=poll_interval,
            use_kubeconfig=False,
            timing=self.timing,
            echo=lambda line: echo(f"  {line}"),
        )
        self.within = 900 + 2 * self.timing.worst_case_seconds  # a broken run's bound, not an expectation

    def __enter__(self) -> RestoreBench:
        from kubernetes import client, config

        self.stack.start()
        assert self.stack.kubeconfig is not None
        self.api = client.CustomObjectsApi(config.new_client_from_config(str(self.stack.kubeconfig)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()

    # -- set-up ----------------------------------------------------------------------------------------

    def back_up_once(self) -> None:
        """The example policy, its DAG in Airflow, one backup: what a restore restores from."""
        from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL, dag_id_for

        doc = next(d for d in example_policies() if d["metadata"]["name"] == POLICY)
        self.api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, self.stack.as_created(doc))
        dag_id = dag_id_for(NAMESPACE, POLICY)
        assert self.stack.airflow is not None
        airflow = self.stack.airflow
        wait_until(lambda: airflow.api.dag(dag_id), within=self.within, what=f"DAG {dag_id} in Airflow", interval=2)
        self.echo(f"{self.profile}: {dag_id} is in Airflow; one backup now")
        code, output = self.vmbackupctl("backup-now", POLICY, "-n", NAMESPACE, "--wait", "--timeout", "1500")
        if code != 0:
            raise RuntimeError(f"the backup to restore from failed ({code}):\n{output}")

    def vmbackupctl(self, *argv: str) -> tuple[int, str]:
        from controller.vmbackupctl.__main__ import main as vmbackupctl

        out = io.StringIO()
        with self.stack.cli_environment(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = vmbackupctl(list(argv))
        return code, out.getvalue()

    # -- the measured requests -------------------------------------------------------------------------

    def restore(self, name: str, path: str) -> Sample:
        from vmbackup.model.policy import API_GROUP, API_VERSION
        from vmbackup.model.restore import KIND, PLURAL, TERMINAL_PHASES, restore_dag_id_for

        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"policyName": POLICY},
        }
        applied = time.time()
        self.api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, self.stack.as_created(body))

        def finished() -> dict[str, Any] | None:
            obj = self.api.get_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, name)
            status = obj.get("status") or {}
            return status if status.get("phase") in TERMINAL_PHASES else None

        status = wait_until(finished, within=self.within, what=f"VMRestore {name} finished", interval=1.0)
        done = time.time()
        if status.get("phase") != "Succeeded":
            raise RuntimeError(f"VMRestore {name} ended {status.get('phase')}: {status.get('message')}")
        self._check_path(path, restore_dag_id_for(NAMESPACE, name))
        return self._sample("restore", path, applied, done, instance=name)

    def drill(self, path: str) -> Sample:
        from vmbackup.model.drill import drill_dag_id_for
        from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL

        applied = time.time()
        self.api.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, NAMESPACE, PLURAL, POLICY, {"spec": {"verification": DRILL}}
        )
        code, output = self.vmbackupctl("verify", POLICY, "-n", NAMESPACE)
        if code != 0:
            raise RuntimeError(f"vmbackupctl verify exited {code}: {output}")

        def verified() -> dict[str, Any] | None:
            obj = self.api.get_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, POLICY)
            shown = (obj.get("status") or {}).get("verification") or {}
            return shown if shown.get("time") else None

        shown = wait_until(verified, within=self.within, what="the drill's result in the policy status", interval=1.0)
        if shown.get("result") != "Succeeded":
            raise RuntimeError(f"the drill ended {shown.get('result')}: {shown.get('message')}")
        done = time.time()
        self._check_path(path, drill_dag_id_for(NAMESPACE, POLICY))
        return self._sample("drill", path, applied, done, instance=None)

    def _check_path(self, path: str, own_dag_id: str) -> None:
        """The path is what the bucket shows, not what the bench assumed: a DAG file of its own, or none."""
        from controller.bucket import dag_object_name
        from devstack.stack import BUCKET

        own_file = self.stack.storage_client().bucket(BUCKET).get_blob(dag_object_name(own_dag_id)) is not None
        if own_file != (path == PER_RESTORE_DAG):
            raise RuntimeError(
                f"measured as {path}, but {own_dag_id}'s own DAG file is {'' if own_file else 'not '}there"
            )

    def _sample(self, kind: str, path: str, applied: float, done: float, instance: str | None) -> Sample:
        """Times from the simulator's own records: its call log and the new VM's insert operation."""
        assert self.stack.compute is not None
        writes = [c for c in self.stack.compute.calls if c["time"] >= applied and c["http_method"] in WRITE_METHODS]
        if not writes:
            raise RuntimeError(f"{kind}: no Compute Engine write after the apply")
        first = min(writes, key=lambda c: c["time"])
        inserts = [
            op
            for op in self.stack.compute.operations()
            if op.get("operationType") == "insert"
            and "/instances/" in str(op.get("targetLink"))
            and (instance is None or str(op.get("targetLink")).endswith(f"/instances/{instance}"))
            and op.get("endTime")
            and _epoch(op["insertTime"]) >= applied
        ]
        if not inserts:
            raise RuntimeError(f"{kind}: no new VM became RUNNING after the apply")
        running = min(_epoch(op["endTime"]) for op in inserts)
        return Sample(kind, path, first["time"] - applied, str(first["method"]), running - applied, done - applied)

    def floor(self) -> float:
        assert self.stack.compute is not None
        vm = self.stack.compute.instance(PROJECT, ZONE, SOURCE_VM)
        sizes = [
            int(self.stack.compute.disk(PROJECT, ZONE, d["source"].rsplit("/", 1)[-1])["sizeGb"]) for d in vm["disks"]
        ]
        return restore_floor(self.stack.compute.profile, sizes)


def _epoch(rfc3339: str) -> float:
    moment = parse_time(rfc3339)
    assert moment is not None
    return moment.timestamp()


def run_profile(
    profile: str,
    paths: Sequence[str],
    repeat: int,
    time_scale: float,
    poll_interval: float,
    drill: bool,
    echo: Callable[[str], None],
) -> ProfileResult:
    """Every requested path this checkout takes, measured on one stack; the others recorded as skipped."""
    taken = path_taken()
    result = ProfileResult(profile, asdict(PROFILES[profile]), floor_seconds=0.0)
    result.skipped = [skip_message(path) for path in paths if path != taken]
    if taken not in paths:
        return result
    with RestoreBench(profile, time_scale, poll_interval, echo) as bench:
        result.floor_seconds = bench.floor()
        bench.back_up_once()
        for i in range(repeat):
            sample = bench.restore(f"bench-restore-{i + 1}", taken)
            echo(f"{profile}: restore {i + 1}: first write {sample.first_write:.1f} s, RUNNING {sample.running:.1f} s")
            result.samples.append(sample)
        if drill:
            sample = bench.drill(taken)
            echo(f"{profile}: drill: first write {sample.first_write:.1f} s, RUNNING {sample.running:.1f} s")
            result.samples.append(sample)
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench restore", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", action="append", choices=sorted(PROFILES), help="timing profile(s) (default: short, composer)"
    )
    parser.add_argument("--path", choices=[*PATHS, "both"], default="both", help="restore path (default both)")
    parser.add_argument("--repeat", type=int, default=3, help="restores per profile, for the spread (default 3)")
    parser.add_argument("--time-scale", type=float, default=0.2, help="Compute Engine speed (default 0.2)")
    parser.add_argument(
        "--poll-interval", type=float, default=60.0, help="the controller's VMBACKUP_POLL_INTERVAL (default 60, Helm's)"
    )
    parser.add_argument("--no-drill", action="store_true", help="restores only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(list(argv))
    if args.repeat < 1 or args.time_scale <= 0 or args.poll_interval <= 0:
        parser.error("--repeat must be at least 1, --time-scale and --poll-interval positive")
    args.profile = args.profile or ["short", "composer"]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    paths = list(PATHS) if args.path == "both" else [args.path]
    results = []
    for profile in args.profile:
        print(f"== profile {profile}: {PROFILES[profile].describe()}", flush=True)
        result = run_profile(
            profile, paths, args.repeat, args.time_scale, args.poll_interval, not args.no_drill, echo=print
        )
        results.append(result)
        print(render_table(result) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    return 0
