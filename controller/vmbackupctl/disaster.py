"""`vmbackupctl restore --from-snapshots`: bring a VM back when its cluster (and Airflow) are gone too.

Every snapshot names its policy, VM, disk and run in its labels and records the VM's configuration in its
description (vmbackup.model.backup_record), and each run's report is in the bucket. So with only Compute Engine
(and, optionally, the bucket) this lists the backup runs of a policy's VM, picks one (the newest whose snapshots
are all READY, or --run), and runs the very restore plan and Compute Engine steps the restore DAG runs
(vmbackup.restore.execute), here, printing each step. Names are deterministic (the VM: `<instance>-<run>` unless
--as), and what an earlier try created carries the restore's label, so running the same command again after an
interruption finishes the restore instead of starting a second one. Nothing is ever deleted. With --in-place the VM
itself gets the restored disks instead (disaster_in_place.py).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from controller.restore_request import placement_spec
from controller.vmbackupctl import render
from controller.vmbackupctl.errors import ExitCode, Failed, NotFound, UsageError
from controller.vmbackupctl.snapshots import compute_error
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import GCE_NAME_PATTERN, PolicyError, parse_policy
from vmbackup.model.report import REPORTS_PREFIX, RunReport
from vmbackup.model.restore import parse_restore
from vmbackup.model.retention import parse_timestamp

if TYPE_CHECKING:
    from google.cloud import compute_v1

    from controller.vmbackupctl.cli_session import Session
    from vmbackup.compute.hook import ComputeEngineHook


@dataclasses.dataclass
class BackupRun:
    """One backup run of one VM, as its snapshots (and its report, when the bucket has it) tell."""

    run: str  # the vmbackup-run label value
    instance: str
    created: str  # the newest snapshot's creationTimestamp
    snapshots: list[compute_v1.Snapshot]
    report: str | None = None  # the run report's result for this VM (None: no report read)

    @property
    def ready(self) -> bool:
        return all(s.status == "READY" for s in self.snapshots)

    @property
    def complete(self) -> bool:
        """Every snapshot READY, and the report (when read) does not say this VM's backup failed."""
        return self.ready and self.report in (None, "READY")

    @property
    def source_project(self) -> str | None:
        """The backed-up VM's project, from the snapshots' source disks (a backup project keeps them elsewhere)."""
        found = {
            p[p.index("projects") + 1] for p in (s.source_disk.split("/") for s in self.snapshots) if "projects" in p
        }
        return found.pop() if len(found) == 1 else None

    @property
    def zone(self) -> str | None:
        zones = {p[p.index("zones") + 1] for p in (s.source_disk.split("/") for s in self.snapshots) if "zones" in p}
        return zones.pop() if len(zones) == 1 else None


def backup_runs(
    hook: ComputeEngineHook, project: str, namespace: str | None, policy: str
) -> dict[str, list[BackupRun]]:
    """namespace -> the policy's backup runs per VM there, newest first (every namespace when None)."""
    wanted = {vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE, vmlabels.POLICY_NAME: policy}
    if namespace is not None:
        wanted[vmlabels.POLICY_NAMESPACE] = namespace
    grouped: dict[tuple[str, str, str], list[compute_v1.Snapshot]] = {}
    for snap in hook.list_snapshots(project, wanted):
        key = tuple(snap.labels.get(k, "") for k in (vmlabels.POLICY_NAMESPACE, vmlabels.INSTANCE, vmlabels.RUN))
        grouped.setdefault(key, []).append(snap)  # type: ignore[arg-type]
    found: dict[str, list[BackupRun]] = {}
    for (ns, instance, run), snaps in grouped.items():
        created = max(s.creation_timestamp for s in snaps)
        found.setdefault(ns, []).append(BackupRun(run, instance, created, sorted(snaps, key=lambda s: s.name)))
    for runs in found.values():
        runs.sort(key=lambda r: parse_timestamp(r.created), reverse=True)
    return found


def add_reports(runs: list[BackupRun], bucket_name: str, namespace: str, policy: str) -> int:
    """Each run's result for its VM from the run reports in the bucket; how many reports were read."""
    from google.cloud import storage

    from vmbackup.model.identifiers import run_hash

    by_run = {(r.run, r.instance): r for r in runs}
    read = 0
    for blob in storage.Client().list_blobs(bucket_name, prefix=f"{REPORTS_PREFIX}/{namespace}/{policy}/"):
        if blob.name.endswith("/latest.json"):
            continue
        report = RunReport.model_validate_json(blob.download_as_bytes())
        read += 1
        for result in report.instances:
            found = by_run.get((run_hash(report.dag_id, report.run_id), result.instance))
            if found is not None:
                bad = [d for d in result.disks if d.state != "READY"]
                found.report = "READY" if not bad and not result.error else f"{report.result}: {_why(result)}"
    return read


def _why(result: Any) -> str:
    bad = [f"{d.disk} {d.state}" for d in result.disks if d.state != "READY"]
    return str(result.error or ", ".join(bad) or "failed")


def runs_table(runs: list[BackupRun]) -> str:
    rows = [
        [
            r.run,
            r.instance,
            r.created,
            str(len(r.snapshots)),
            "READY" if r.ready else "NOT READY",
            r.report or render.NONE,
        ]
        for r in runs
    ]
    return render.table(["RUN", "INSTANCE", "CREATED", "SNAPSHOTS", "STATUS", "REPORT"], rows, style="gcloud")


def pick_run(runs: list[BackupRun], wanted: str | None, instance: str) -> BackupRun:
    """--run, or the newest complete run; Failed naming the choice when there is none."""
    if wanted is not None:
        named = next((r for r in runs if r.run == wanted), None)
        if named is None:
            raise NotFound(f"--run {wanted}: no snapshot of {instance} from that run; pick one of the list above")
        if not named.ready:
            raise Failed(f"--run {wanted}: not every snapshot of it is READY; pick another run")
        return named
    complete = [r for r in runs if r.complete]
    if not complete:
        raise Failed(f"no complete backup run of {instance} (every snapshot READY); pick one with --run")
    return complete[0]


def restore_spec(args: Any, run: BackupRun, name: str) -> dict[str, Any]:
    """The VMRestore spec these flags ask for (validated by the same model as a VMRestore)."""
    spec = {"policyName": args.policy, "instance": run.instance, "snapshotRun": run.run, "targetName": name}
    return {**spec, **placement_spec(args)}


def restored_name(instance: str, run: str, tag: str = "") -> str:
    """`<instance>-<run><tag>`: the same on every try of one restore, so a second try finishes the first."""
    tail = f"-{run}{tag}"
    name = f"{instance[: 63 - len(tail)].rstrip('-')}{tail}"
    return name if re.fullmatch(GCE_NAME_PATTERN, name) else f"vm-{name}"[:63].rstrip("-")


def restore_from_snapshots(session: Session, hook: ComputeEngineHook) -> int:
    """List the runs, pick one, restore it here; ExitCode.OK once the VM is up."""
    from vmbackup.restore.execute import restore_now
    from vmbackup.restore.plan import RestoreProblemError

    args = session.args
    chosen = chosen_run(session, hook)
    if chosen is None:
        return ExitCode.OK
    namespace, run = chosen
    name = args.as_name or restored_name(run.instance, run.run)
    policy = parse_policy(namespace, args.policy, policy_spec(args.project, run))
    try:
        restore = parse_restore(namespace, name, restore_spec(args, run, name), policy)
    except PolicyError as exc:
        raise UsageError("; ".join(f"{f}: {m}" for f, m in exc.problems) + f" ({FLAGS_HINT})") from None
    session.note(f"restoring {run.instance} from run {run.run} as {name} (run the same command again to resume)")
    try:
        plan = restore_now(restore, hook, session.note)
    except RestoreProblemError as exc:
        raise Failed(f"{exc} ({FLAGS_HINT}); nothing was deleted") from None
    session.out(
        f"restored: instance {plan['target']} (project {plan['project']}, zone {plan['zone']}) from run {run.run}: "
        + ", ".join(f"{d['name']} <- {d['snapshot']}" for d in plan["disks"])
    )
    return ExitCode.OK


FLAGS_HINT = "flags: --target-project, --target-zone, --network, --subnet, --external-ip, --machine-type, --as"


def policy_spec(project: str, run: BackupRun) -> dict[str, Any]:
    """What the restore model needs of the (gone) policy: the VM, its project, and where its snapshots are (--project;
    a backup project when the snapshots' source disks name another project)."""
    if run.zone is None:
        raise Failed(f"the snapshots of run {run.run} come from several zones; restore it through a VMRestore")
    vm_project = run.source_project or project
    spec: dict[str, Any] = {"project": vm_project, "instances": [{"name": run.instance, "zone": run.zone}]}
    if vm_project != project:
        spec["snapshot"] = {"project": project}
    return spec


def chosen_run(session: Session, hook: ComputeEngineHook) -> tuple[str, BackupRun] | None:
    """The VM's runs, printed, and the one to restore with its namespace (None for --list: the list was all)."""
    namespace, runs = runs_of_vm(session, hook)
    session.out(runs_table(runs))
    run = pick_run(runs, session.args.run, runs[0].instance)
    return None if session.args.list else (namespace, run)


def runs_of_vm(session: Session, hook: ComputeEngineHook) -> tuple[str, list[BackupRun]]:
    """The namespace and the chosen VM's runs, newest first (reports added when --bucket is given)."""
    args = session.args
    try:
        by_namespace = backup_runs(hook, args.project, args.namespace, args.policy)
    except Exception as exc:
        raise compute_error(exc, "Compute Engine", args.project) from None
    if not by_namespace:
        where = f"namespace {args.namespace}" if args.namespace else "any namespace"
        raise NotFound(f"no snapshot of policy {args.policy} ({where}) in project {args.project}; check --project/-n")
    if len(by_namespace) > 1:
        raise UsageError(f"policy {args.policy} has snapshots in namespaces {', '.join(sorted(by_namespace))}; pass -n")
    namespace, runs = next(iter(by_namespace.items()))
    instances = sorted({r.instance for r in runs})
    instance = args.instance or (instances[0] if len(instances) == 1 else None)
    if instance is None:
        raise UsageError(f"policy {args.policy} backed up several VMs ({', '.join(instances)}); pass --instance")
    runs = [r for r in runs if r.instance == instance]
    if not runs:
        raise NotFound(f"no snapshot of {instance} by policy {namespace}/{args.policy}; one of: {', '.join(instances)}")
    if args.bucket:
        read = add_reports(runs, args.bucket, namespace, args.policy)
        session.note(f"read {read} run report(s) from gs://{args.bucket}")
    return namespace, runs
