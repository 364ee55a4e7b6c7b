"""`python -m bench controller`: the controller at 1,000 policies, every figure measured in one run.

Real parts only: kmock serving our CRDs on loopback (devstack/kube_local.py), the storage emulator as
the Composer bucket (gcp-storage-emulator: single-threaded, so bucket-bound figures are pessimistic),
a real Airflow 3 behind a counting proxy, and the controller as its own process (`python -m controller`)
configured by VMBACKUP_* as the Helm chart does. Phases, in order:

1. 10 policies in their own namespace, their own controller: Airflow requests per status cycle.
2. 1,000 policies created as fast as kmock takes them: time until all their DAGs are in the bucket,
   then Airflow requests per status cycle, then the one-change -> DAG-in-bucket latency, peak RSS.
3. The controller is stopped and started again with the same 1,000 policies: DAG uploads (from its
   metric and from the bucket's object generations) and the time to settle.

A status cycle is the interval between two increments of ``vmbackup_airflow_polls_total``; requests are
counted at the proxy and attributed to the cycle in whose window they arrive. Airflow does not parse
the 1,000 DAG files (its dags folder is not fed from the bucket: that would take minutes on 2 cores), so
its DAG list is empty and every per-policy unpause is a 404 the controller retries at each status tick;
those retries are reported on their own row. kmock keeps only its newest requests for assertions
(see bound_kmock_history): its objects and watches are untouched, its cost per request stays constant.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from bench.controller_parts import ControllerProcess, CountingProxy, KubeApi, bound_kmock_history, wait_for
from bench.controller_report import CHANGE_DEADLINE_SECONDS, SMALL_POLICIES, CycleCount, Results, render_table
from controller.bucket import dag_object_name
from devstack.airflow_local import LocalAirflow, free_port
from devstack.kube_local import LocalKubernetes
from vmbackup.model.policy import dag_id_for, parse_policy

PROJECT = "demo-project"
BUCKET = "bench-composer-bucket"
NAMESPACE = "bench"
SMALL_NAMESPACE = "bench-small"


@dataclass(frozen=True)
class AirflowEndpoint:
    """An Airflow that is already running (tests pass their session's); None makes the bench start one."""

    url: str
    username: str
    password: str
    auth_mode: str  # jwt (Airflow 3) | basic (Airflow 2)


@dataclass
class Options:
    policies: int = 1000
    changes: int = 50
    poll_interval: float = 15.0
    cycles: int = 3
    json_path: Path | None = None
    change_deadline: float = CHANGE_DEADLINE_SECONDS


def policy_spec(index: int, schedule: str = "0 2 * * *") -> dict[str, Any]:
    return {
        "project": PROJECT,
        "instances": [{"name": f"vm-{index:04d}", "zone": "us-central1-a"}],
        "schedule": schedule,
        "timezone": "Etc/UTC",
        "consistency": "stop",
        "retention": {"count": 7},
    }


def policy_name(index: int) -> str:
    return f"policy-{index:04d}"


def change_schedule(change: int) -> str:
    """A schedule no policy had before (they start at 02:00), different for each change."""
    return f"{change % 60} {3 + change // 60 % 20} * * *"


class Bench:
    def __init__(self, options: Options, airflow: AirflowEndpoint | None, echo: Callable[[str], None]) -> None:
        self.options = options
        self.given_airflow = airflow
        self.echo = echo
        self.results = Results(
            options.policies, options.poll_interval, options.changes, change_deadline=options.change_deadline
        )
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-controller-"))
        self._stack = contextlib.ExitStack()

    # -- infrastructure ------------------------------------------------------------------------------

    def start(self) -> None:
        port = free_port()
        storage_server = create_server("127.0.0.1", port, in_memory=True)
        storage_server.start()
        self._stack.callback(storage_server.stop)
        self.storage_url = f"http://127.0.0.1:{port}"
        self._stack.enter_context(_environment("STORAGE_EMULATOR_HOST", self.storage_url))
        self.storage = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
        self.bucket = self.storage.create_bucket(BUCKET)
        self.echo(f"bucket      gs://{BUCKET} at {self.storage_url} (gcp-storage-emulator, single-threaded)")

        self.airflow = self.given_airflow or self._start_airflow()
        self.proxy = CountingProxy(self.airflow.url)
        self.proxy.start()
        self._stack.callback(self.proxy.stop)
        self.echo(f"airflow     {self.airflow.url}, counted through {self.proxy.url}")

        self.kube, self.kubeconfig = self.start_kubernetes("main")

    def start_kubernetes(self, label: str) -> tuple[KubeApi, Path]:
        """A kmock of its own per controller: kmock cannot list namespaces, so controllers run cluster-wide."""
        bound_kmock_history()  # else kmock's cost per request grows with every request it ever served
        kube = LocalKubernetes()
        kube_url = kube.start()
        self._stack.callback(kube.stop)
        kubeconfig = self.workdir / f"kubeconfig-{label}"
        kubeconfig.write_text(kube.kubeconfig())
        api = KubeApi(kube_url)
        self._stack.callback(api.close)
        self.echo(f"kubernetes  kmock at {kube_url} ({label})")
        return api, kubeconfig

    def _start_airflow(self) -> AirflowEndpoint:
        dags = self.workdir / "airflow-dags"
        dags.mkdir()
        self.echo("airflow     starting a real Airflow (first start migrates its database)...")
        local = LocalAirflow(dags_folder=dags, home=self.workdir / "airflow-home", parallelism=2)
        local.start()
        self._stack.callback(local.cleanup)
        return AirflowEndpoint(local.url, local.username, local.password, "jwt" if local.major >= 3 else "basic")

    def stop(self) -> None:
        self._stack.close()

    def controller(self, kubeconfig: Path, label: str) -> ControllerProcess:
        tenancy = {"namespaces": {ns: {"projects": [PROJECT]} for ns in (NAMESPACE, SMALL_NAMESPACE)}}
        env = {
            "KUBECONFIG": str(kubeconfig),
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "VMBACKUP_BUCKET": BUCKET,
            "VMBACKUP_AIRFLOW_URL": self.proxy.url,
            "VMBACKUP_AIRFLOW_AUTH": self.airflow.auth_mode,
            "VMBACKUP_AIRFLOW_USERNAME": self.airflow.username,
            "VMBACKUP_AIRFLOW_PASSWORD": self.airflow.password,
            "VMBACKUP_TENANCY": json.dumps(tenancy),
            "VMBACKUP_POLL_INTERVAL": str(self.options.poll_interval),
            "VMBACKUP_LOG_FORMAT": "plain",
        }
        process = ControllerProcess(env, self.workdir / f"controller-{label}.log")
        self._stack.callback(process.stop)
        return process.start()

    # -- measurements --------------------------------------------------------------------------------

    def dags_in_bucket(self, namespace: str) -> dict[str, int]:
        """Object name -> generation of the namespace's DAG files."""
        prefix = dag_object_name(dag_id_for(namespace, "")).removesuffix(".py")
        return {blob.name: int(blob.generation) for blob in self.storage.list_blobs(BUCKET, prefix=prefix)}

    @staticmethod
    def create_policies(kube: KubeApi, namespace: str, count: int) -> None:
        for index in range(count):
            kube.create_policy(namespace, policy_name(index), policy_spec(index))

    def wait_for_uploads(self, process: ControllerProcess, count: int) -> None:
        wait_for(
            lambda: process.metric("vmbackup_uploads_total", kind="dag") >= count,
            within=max(120, count * 0.5),
            what=f"{count} DAG uploads",
            interval=0.05,
            alive=process,
        )

    def wait_for_first_unpauses(self, process: ControllerProcess, since: float, count: int) -> None:
        """Each new policy's reconcile tries one unpause after its upload; a cycle counted before those answers
        would count them as status-tick retries (a loaded machine answers them late)."""
        wait_for(
            lambda: self.proxy.count_since("pause", since) >= count,
            within=max(120, count * 0.5),
            what=f"{count} first unpause attempts",
            interval=0.05,
            alive=process,
        )

    def count_cycles(self, process: ControllerProcess, cycles: int) -> list[CycleCount]:
        """Requests at the proxy between consecutive poll increments, for ``cycles`` whole cycles."""
        marks: list[float] = []
        last = process.metric("vmbackup_airflow_polls_total")
        deadline = time.monotonic() + (cycles + 2) * self.options.poll_interval * 2 + 60
        while len(marks) < cycles + 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cycles} status cycles not seen within the deadline")
            process.check_alive()
            polls = process.metric("vmbackup_airflow_polls_total")
            if polls != last:
                marks.append(time.monotonic())
                last = polls
            time.sleep(0.05)
        counts = []
        for start, end in itertools.pairwise(marks):
            window = self.proxy.between(start, end)
            kinds = [r.kind for r in window]
            counts.append(
                CycleCount(
                    poll=kinds.count("poll"),
                    pause=kinds.count("pause"),
                    other=len(kinds) - kinds.count("poll") - kinds.count("pause"),
                )
            )
        return counts

    def change_latencies(self) -> None:
        """Patch one policy's schedule, then poll its DAG object until its MD5 changes."""
        n = self.options.policies
        for change in range(self.options.changes):
            index = change % n
            name = policy_name(index)
            blob_name = dag_object_name(dag_id_for(NAMESPACE, name))
            before = self.bucket.get_blob(blob_name)
            assert before is not None, f"{blob_name} is not in the bucket"
            generation = 2 + change // n
            started = time.monotonic()
            self.kube.patch_spec(NAMESPACE, name, {"schedule": change_schedule(change)}, generation)
            deadline = started + self.options.change_deadline
            while True:
                blob = self.bucket.get_blob(blob_name)
                if blob is not None and blob.md5_hash != before.md5_hash:
                    self.results.latencies.append(time.monotonic() - started)
                    break
                if time.monotonic() > deadline:
                    self.results.missed_changes += 1
                    break
                time.sleep(0.005)

    # -- the run ---------------------------------------------------------------------------------------

    def run(self) -> Results:
        options, results = self.options, self.results
        parse_policy(NAMESPACE, policy_name(0), policy_spec(0))  # a broken spec fails here, not in the controller

        self.echo(f"phase 1     {SMALL_POLICIES} policies, their own controller: requests per status cycle")
        small_kube, small_kubeconfig = self.start_kubernetes("small")
        small = self.controller(small_kubeconfig, "small")
        small.wait_live()
        created = time.monotonic()
        self.create_policies(small_kube, SMALL_NAMESPACE, SMALL_POLICIES)
        self.wait_for_uploads(small, SMALL_POLICIES)
        self.wait_for_first_unpauses(small, created, SMALL_POLICIES)
        results.cycles_small = self.count_cycles(small, options.cycles)
        small.stop()

        self.echo(f"phase 2     {options.policies} policies applied to a running controller")
        first = self.controller(self.kubeconfig, "first")
        first.wait_live()
        started = time.monotonic()
        self.create_policies(self.kube, NAMESPACE, options.policies)
        self.wait_for_uploads(first, options.policies)
        wait_for(
            lambda: len(self.dags_in_bucket(NAMESPACE)) >= options.policies,
            within=60,
            what="all DAG files listed in the bucket",
            interval=0.1,
        )
        results.apply_seconds = time.monotonic() - started
        self.echo(f"            all {options.policies} DAGs in the bucket after {results.apply_seconds:.1f}s")
        self.wait_for_first_unpauses(first, started, options.policies)
        results.cycles_large = self.count_cycles(first, options.cycles)
        self.echo(f"            {options.cycles} status cycles counted; now {options.changes} spec changes")
        self.change_latencies()
        results.peak_rss_mib = first.peak_rss_mib()
        first.stop()

        self.echo("phase 3     restart with the same policies")
        generations = self.dags_in_bucket(NAMESPACE)
        started = time.monotonic()
        second = self.controller(self.kubeconfig, "restart")
        wait_for(
            lambda: _metrics_answer(second) and second.metric("vmbackup_reconciles_total") >= options.policies,
            within=max(120, options.policies * 0.5),
            what=f"{options.policies} resume reconciles",
            interval=0.05,
            alive=second,
        )
        results.restart_settle_seconds = time.monotonic() - started
        _wait_quiet(second)
        results.restart_dag_uploads = int(second.metric("vmbackup_uploads_total", kind="dag"))
        after = self.dags_in_bucket(NAMESPACE)
        results.restart_rewritten_objects = sum(1 for name, gen in after.items() if generations.get(name) != gen)
        results.restart_peak_rss_mib = second.peak_rss_mib()
        second.stop()
        return results


def _metrics_answer(process: ControllerProcess) -> bool:
    try:
        process.samples()
    except Exception:
        return False
    return True


def _wait_quiet(process: ControllerProcess, quiet_seconds: float = 2.0) -> None:
    """Idle: no reconcile and no upload for ``quiet_seconds`` (so late uploads would still be counted)."""

    def reading() -> tuple[float, float]:
        return process.metric("vmbackup_reconciles_total"), process.metric("vmbackup_uploads_total")

    last, since = reading(), time.monotonic()
    deadline = since + 60
    while time.monotonic() - since < quiet_seconds and time.monotonic() < deadline:
        time.sleep(0.2)
        now = reading()
        if now != last:
            last, since = now, time.monotonic()


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    import os

    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench controller", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=1000, help="number of VMBackupPolicies (default 1000)")
    parser.add_argument("--changes", type=int, default=50, help="spec changes timed for the latency (default 50)")
    parser.add_argument("--poll-interval", type=float, default=15.0, help="controller's status poll, s (default 15)")
    parser.add_argument("--cycles", type=int, default=3, help="status cycles counted per phase (default 3)")
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the raw figures here")
    args = parser.parse_args(argv)
    if args.policies < 1 or args.changes < 1 or args.cycles < 1 or args.poll_interval <= 0:
        parser.error("--policies, --changes, --cycles and --poll-interval must be positive")
    return Options(args.policies, args.changes, args.poll_interval, args.cycles, args.json_path)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(options: Options, airflow: AirflowEndpoint | None = None, echo: Callable[[str], None] = print) -> Results:
    """Start the parts, measure, stop them; the work directory (logs) is kept only when something failed."""
    bench = Bench(options, airflow, echo)
    try:
        bench.start()
        results = bench.run()
    except BaseException:
        echo(f"controller logs kept in {bench.workdir}")
        raise
    finally:
        bench.stop()
    shutil.rmtree(bench.workdir, ignore_errors=True)
    return results


def main(argv: Sequence[str]) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so a stopped bench still stops Airflow and the controllers
    started = time.monotonic()
    results = run(options)
    print()
    print(f"Controller benchmark: {options.policies} policies, status poll every {options.poll_interval:g} s,")
    print(f"measured in one run of {time.monotonic() - started:.0f} s on this machine")
    print()
    print(render_table(results))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(asdict(results), indent=2, default=str) + "\n")
    return 0
