"""`python -m bench restore`: how long a restore (and a drill) waits on Composer before Compute Engine sees it,
by the path earlier versions took (a DAG file of its own) and by today's (a run of a shipped DAG), in one run.

Each timing profile gets its own local stack (devstack/stack.py: the storage emulator as the bucket, the Compute
Engine simulator, a real Airflow 3 whose folders follow the bucket, kmock, and the controller as its own
process), with Composer's waits modelled (devstack/composer_timing.py): the bucket -> Airflow sync delay and the
DAG processor's listing interval, set as the real Airflow's own option. In it: the wordpress example policy, one
backup of wordpress-1-vm, and the shipped restore and drill DAGs in Airflow (installed once per environment, as
on Composer); then, one after the other, alternating which path goes first:

1. ``--repeat`` restores by each path, each into a VM of its own name. Now: a VMRestore created as `kubectl apply`
   does (through the Kubernetes API); the controller starts it as a signed run of the shipped restore DAG.
   Before: bench/restore_legacy.py does what earlier versions' controller did at that apply (a DAG file of the
   restore's own, uploaded, then triggered once Airflow has parsed it).
2. ``--drill-repeat`` drills by each path, each from a policy without spec.verification: spec.verification
   applied (`kubectl apply`), then `vmbackupctl verify`. Now: it annotates the policy and the controller starts a
   run of the shipped drill DAG. Before: the policy's own drill DAG file, then a trigger retried until accepted.

Every time is from the apply. The run's creation is its ``queued_at`` in Airflow; the first Compute Engine write
and the new VM's RUNNING come from the simulator's own records (its call log, and the end of the new VM's
instances.insert operation, which ends as the VM becomes RUNNING), never from polling the VM. The floor
(bench/restore_report.restore_floor) is computed from the profile.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.restore_legacy import LegacyPath, LegacyRun
from bench.restore_report import PATHS, PER_RESTORE_DAG, SHIPPED_DAG, ProfileResult, Sample, render_table, restore_floor
from devstack.airflow_rest import parse_time
from devstack.composer_timing import ComposerTiming
from devstack.stack import BUCKET, PROJECT, LocalStack, example_policies, wait_until

POLICY = "wordpress"  # crds/examples/wordpress.yaml: wordpress-1-vm in us-central1-c
NAMESPACE = "default"
ZONE = "us-central1-c"
SOURCE_VM = "wordpress-1-vm"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROFILES: dict[str, ComposerTiming] = {
    "none": ComposerTiming.fast(),  # no modelled wait
    "short": ComposerTiming(sync_delay_seconds=20, dag_list_interval_seconds=30, min_file_process_interval_seconds=30),
    "composer": ComposerTiming.composer(),  # 240 s sync (ESTIMATE), 300 s listing (Airflow's default)
}
DRILL = {"schedule": "0 3 * * 0", "network": "default"}  # a weekly drill; the bench starts one at once
RESTORE_NAMES = {PER_RESTORE_DAG: "bench-file-restore", SHIPPED_DAG: "bench-restore"}


class RestoreBench:
    """One profile: one stack, one backup, then the restores and the drills by both paths."""

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
        try:
            assert self.stack.kubeconfig is not None
            self.api: Any = client.CustomObjectsApi(config.new_client_from_config(str(self.stack.kubeconfig)))
            self.legacy = LegacyPath(self.stack, self.api, NAMESPACE, POLICY, self.within)
        except BaseException:
            self.stack.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.legacy.close()
        finally:
            self.stack.stop()

    # -- set-up ----------------------------------------------------------------------------------------

    def back_up_once(self) -> None:
        """The example policy, its DAG in Airflow, one backup, the shipped DAGs in Airflow: a restore's start."""
        from vmbackup.model.drill import SHARED_DRILL_DAG_ID
        from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL, dag_id_for
        from vmbackup.model.restore import SHARED_RESTORE_DAG_ID

        doc = next(d for d in example_policies() if d["metadata"]["name"] == POLICY)
        self.api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, self.stack.as_created(doc))
        for dag_id in (dag_id_for(NAMESPACE, POLICY), SHARED_RESTORE_DAG_ID, SHARED_DRILL_DAG_ID):
            self._wait_for_dag(dag_id)
        self.echo(f"{self.profile}: the policy's and the shipped DAGs are in Airflow; one backup now")
        code, output = self.vmbackupctl("backup-now", POLICY, "-n", NAMESPACE, "--wait", "--timeout", "1500")
        if code != 0:
            raise RuntimeError(f"the backup to restore from failed ({code}):\n{output}")

    def _wait_for_dag(self, dag_id: str) -> None:
        assert self.stack.airflow is not None
        airflow = self.stack.airflow
        wait_until(lambda: airflow.api.dag(dag_id), within=self.within, what=f"DAG {dag_id} in Airflow", interval=2)

    def vmbackupctl(self, *argv: str) -> tuple[int, str]:
        from controller.vmbackupctl.__main__ import main as vmbackupctl

        out = io.StringIO()
        with self.stack.cli_environment(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = vmbackupctl(list(argv))
        return code, out.getvalue()

    # -- restores --------------------------------------------------------------------------------------

    def restore(self, name: str, path: str) -> Sample:
        applied = time.time()
        if path == PER_RESTORE_DAG:
            run = self.legacy.start_restore(name)
            self.legacy.restore_done(run)
            done = time.time()
            self._check_file(run)
            self.legacy.bucket.delete_dag(run.dag_id)  # as deleting its VMRestore did; nothing else waits for it
            dag_id, run_id = run.dag_id, run.run_id
        else:
            status = self._shipped_restore(name)
            done = time.time()
            dag_id, run_id = str(status["dagId"]), str(status["runId"])
        return self._sample("restore", path, applied, done, (dag_id, run_id), instance=name)

    def _shipped_restore(self, name: str) -> dict[str, Any]:
        """A VMRestore created as `kubectl apply` does; the controller starts it; its status once it ended."""
        from controller.bucket import dag_object_name
        from vmbackup.model.policy import API_GROUP, API_VERSION
        from vmbackup.model.restore import KIND, PLURAL, TERMINAL_PHASES, restore_dag_id_for, shared_restore_dag_id

        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"policyName": POLICY},
        }
        self.api.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, self.stack.as_created(body))

        def finished() -> dict[str, Any] | None:
            obj = self.api.get_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, name)
            status = obj.get("status") or {}
            return status if status.get("phase") in TERMINAL_PHASES else None

        status: dict[str, Any] = wait_until(finished, within=self.within, what=f"VMRestore {name}", interval=1.0)
        if status.get("phase") != "Succeeded":
            raise RuntimeError(f"VMRestore {name} ended {status.get('phase')}: {status.get('message')}")
        own_file = (
            self.stack.storage_client().bucket(BUCKET).get_blob(dag_object_name(restore_dag_id_for(NAMESPACE, name)))
        )
        if status.get("dagId") != shared_restore_dag_id(False) or own_file is not None:
            raise RuntimeError(f"VMRestore {name} did not run in the shipped DAG: dagId {status.get('dagId')}")
        return status

    # -- drills ----------------------------------------------------------------------------------------

    def drill(self, path: str) -> Sample:
        """From a policy without spec.verification: apply it, then ask for a drill now; until it is reported."""
        from vmbackup.model.drill import SHARED_DRILL_DAG_ID, drill_dag_id_for

        before = self._verification().get("time")
        applied = time.time()
        self._set_verification(DRILL)
        legacy: LegacyRun | None = None
        if path == PER_RESTORE_DAG:
            legacy = self.legacy.start_drill()
        else:
            code, output = self.vmbackupctl("verify", POLICY, "-n", NAMESPACE)
            if code != 0:
                raise RuntimeError(f"vmbackupctl verify exited {code}: {output}")

        def reported() -> dict[str, Any] | None:
            shown = self._verification()
            return shown if shown.get("time") and shown.get("time") != before else None

        shown = wait_until(reported, within=self.within, what="the drill's result in the policy status", interval=1.0)
        done = time.time()
        if shown.get("result") != "Succeeded":
            raise RuntimeError(f"the drill ended {shown.get('result')}: {shown.get('message')}")
        if legacy is not None:
            self._check_file(legacy)
            run = (legacy.dag_id, legacy.run_id)
        elif self.legacy.bucket.has_dag(drill_dag_id_for(NAMESPACE, POLICY)):
            raise RuntimeError("measured as the shipped drill DAG, but the policy's own drill DAG file is there")
        else:
            run = (SHARED_DRILL_DAG_ID, str(shown.get("startedRun")))
        sample = self._sample("drill", path, applied, done, run, instance=None)
        self._set_verification(None)
        if legacy is not None:
            self.legacy.retire(legacy)  # so that the next drill's file is new to Airflow again
        return sample

    def _verification(self) -> dict[str, Any]:
        from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL

        obj = self.api.get_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, POLICY)
        return dict((obj.get("status") or {}).get("verification") or {})

    def _set_verification(self, value: dict[str, Any] | None) -> None:
        from vmbackup.model.policy import API_GROUP, API_VERSION, PLURAL

        patch = {"spec": {"verification": value}}
        self.api.patch_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, POLICY, patch)

    # -- records ---------------------------------------------------------------------------------------

    def _check_file(self, run: LegacyRun) -> None:
        """The baseline ran from its own file to the end: nothing (such as today's controller) removed it."""
        if not self.legacy.has_file(run):
            raise RuntimeError(f"{run.dag_id}'s own DAG file is gone before its run was reported done")

    def _sample(
        self, kind: str, path: str, applied: float, done: float, run: tuple[str, str], instance: str | None
    ) -> Sample:
        """Times from Airflow's run record and the simulator's own records: its call log and the VM's insert."""
        assert self.stack.compute is not None
        assert self.stack.airflow is not None
        queued = _epoch(self.stack.airflow.api.request("GET", f"/dags/{run[0]}/dagRuns/{run[1]}")["queued_at"])
        writes = [c for c in self.stack.compute.calls if c["time"] >= applied and c["http_method"] in WRITE_METHODS]
        if not writes:
            raise RuntimeError(f"{kind} ({path}): no Compute Engine write after the apply")
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
            raise RuntimeError(f"{kind} ({path}): no new VM became RUNNING after the apply")
        running = min(_epoch(op["endTime"]) for op in inserts)
        return Sample(
            kind,
            path,
            queued - applied,
            first["time"] - applied,
            str(first["method"]),
            running - applied,
            done - applied,
        )

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


def alternating(paths: Sequence[str], repeat: int) -> Iterator[tuple[int, str]]:
    """(i, path) for each repeat and path, the paths' order swapped every other repeat (drift hits both alike)."""
    for i in range(repeat):
        for path in paths if i % 2 == 0 else list(reversed(paths)):
            yield i, path


def run_profile(
    profile: str,
    paths: Sequence[str],
    repeat: int,
    time_scale: float,
    poll_interval: float,
    drill_repeat: int,
    echo: Callable[[str], None],
) -> ProfileResult:
    """Each requested path's restores and drills, measured on one stack."""
    result = ProfileResult(profile, asdict(PROFILES[profile]), floor_seconds=0.0, load_average=[os.getloadavg()[0]])
    with RestoreBench(profile, time_scale, poll_interval, echo) as bench:
        result.floor_seconds = bench.floor()
        bench.back_up_once()
        for i, path in alternating(paths, repeat):
            sample = bench.restore(f"{RESTORE_NAMES[path]}-{i + 1}", path)
            echo(
                f"{profile}: restore {i + 1} ({path}): first write {sample.first_write:.1f} s, RUNNING {sample.running:.1f} s"
            )
            result.samples.append(sample)
        for i, path in alternating(paths, drill_repeat):
            sample = bench.drill(path)
            echo(
                f"{profile}: drill {i + 1} ({path}): first write {sample.first_write:.1f} s, RUNNING {sample.running:.1f} s"
            )
            result.samples.append(sample)
    result.load_average.append(os.getloadavg()[0])
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench restore", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", action="append", choices=sorted(PROFILES), help="timing profile(s) (default: short, composer)"
    )
    parser.add_argument("--path", choices=[*PATHS, "both"], default="both", help="restore path(s) (default both)")
    parser.add_argument("--repeat", type=int, default=3, help="restores per path and profile (default 3)")
    parser.add_argument(
        "--drill-repeat", type=int, default=None, help="drills per path and profile (default: --repeat)"
    )
    parser.add_argument("--time-scale", type=float, default=0.2, help="Compute Engine speed (default 0.2)")
    parser.add_argument(
        "--poll-interval", type=float, default=60.0, help="the controller's VMBACKUP_POLL_INTERVAL (default 60, Helm's)"
    )
    parser.add_argument("--no-drill", action="store_true", help="restores only (--drill-repeat 0)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(list(argv))
    args.drill_repeat = 0 if args.no_drill else (args.repeat if args.drill_repeat is None else args.drill_repeat)
    if args.repeat < 1 or args.drill_repeat < 0 or args.time_scale <= 0 or args.poll_interval <= 0:
        parser.error("--repeat must be at least 1, --drill-repeat 0 or more, --time-scale and --poll-interval positive")
    args.profile = args.profile or ["short", "composer"]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    paths = list(PATHS) if args.path == "both" else [args.path]
    results = []
    for profile in args.profile:
        print(f"== profile {profile}: {PROFILES[profile].describe()}", flush=True)
        result = run_profile(profile, paths, args.repeat, args.time_scale, args.poll_interval, args.drill_repeat, print)
        results.append(result)
        print(render_table(result) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    return 0
