"""The commands: each takes parsed arguments, prints its result and returns an exit code (or raises CliError)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from controller.vmbackupctl import render
from controller.vmbackupctl.errors import ExitCode, Failed, UsageError
from controller.vmbackupctl.kube import Policy, PolicyStore
from vmbackup.model.policy import BACKUP_NOW_ANNOTATION

TERMINAL_RUN_STATES = {"success": "succeeded", "failed": "failed"}
REFUSED_RESULTS = ("Invalid", "Refused")
WAIT_POLL_SECONDS = 1.0


class Session:
    """What every command shares: the parsed flags, where output goes, the cluster, and the clock."""

    def __init__(
        self,
        args: argparse.Namespace,
        stdout: TextIO,
        stderr: TextIO,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        stdin: TextIO | None = None,
    ) -> None:
        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin if stdin is not None else sys.stdin
        self.clock = clock
        self._store: PolicyStore | None = None

    @property
    def store(self) -> PolicyStore:
        if self._store is None:
            self._store = PolicyStore(kubeconfig=self.args.kubeconfig, context=self.args.context)
        return self._store

    @property
    def namespace(self) -> str:
        return str(self.args.namespace or self.store.default_namespace)

    def out(self, text: str) -> None:
        print(text, file=self.stdout)

    def note(self, text: str) -> None:
        print(text, file=self.stderr)

    def ask(self, prompt: str) -> str:
        """One line typed by the user after the prompt (on stderr, so stdout stays data); '' at end of input."""
        print(prompt, end="", file=self.stderr, flush=True)
        return self.stdin.readline().strip()

    def policy(self) -> Policy:
        return self.store.get(self.namespace, self.args.policy)

    def emit(self, data: Any, output: str) -> bool:
        """Print data as JSON or YAML when asked; False when the caller prints its own table."""
        if output == "json":
            self.out(render.as_json(data))
            return True
        if output == "yaml":
            self.out(render.as_yaml(data))
            return True
        return False


# ---- get / describe ------------------------------------------------------------------------------


def get(session: Session) -> int:
    args = session.args
    if args.policy and args.all_namespaces:
        raise UsageError("a policy name cannot be combined with -A/--all-namespaces; use -n NAMESPACE")
    if args.policy:
        policies = [session.policy()]
        if session.emit(policies[0], args.output):
            return ExitCode.OK
    else:
        namespace = None if args.all_namespaces else session.namespace
        policies = session.store.list(namespace)
        if session.emit(render.as_list(policies), args.output):
            return ExitCode.OK
        if not policies:
            where = "any namespace" if namespace is None else f"{namespace} namespace"
            session.note(f"No resources found in {where}.")
            return ExitCode.OK
    wide = args.output == "wide"
    session.out(render.policy_table(policies, session.clock(), all_namespaces=args.all_namespaces, wide=wide))
    return ExitCode.OK


def describe(session: Session) -> int:
    obj = session.policy()
    session.out(render.describe(obj, session.clock()))
    if not session.args.no_report:
        session.out("\n".join(_report_section(session, obj)))
    return ExitCode.OK


def _report_section(session: Session, obj: Policy) -> list[str]:
    """The last run's report from the bucket, or one line saying why there is none."""
    from controller.vmbackupctl.logs import load_config
    from controller.vmbackupctl.reports import ReportUnavailable, read_last_report, report_lines

    try:
        config = load_config(target_overrides(session.args), session.args.airflow_auth)
        return report_lines(read_last_report(config, obj))
    except UsageError as exc:
        return [f"Run Report:  unavailable: {exc.message}"]
    except ReportUnavailable as exc:
        return [f"Run Report:  {render.NONE} ({exc})"]


# ---- backup-now ----------------------------------------------------------------------------------


def backup_now(session: Session, sleep: Callable[[float], None] = time.sleep) -> int:
    """Ask the controller for a run now; with --wait, follow the policy's status until that run ends."""
    args = session.args
    before = session.policy()
    status = before.get("status") or {}
    result = status.get("result")
    if result in REFUSED_RESULTS:
        raise Failed(f"{_ref(before)} is {result}, so no run can start: {_ready_message(status)}")
    if (before.get("spec") or {}).get("suspend") is True:
        session.note(
            f"warning: {_ref(before)} is suspended; Airflow will not start the run until spec.suspend is false"
        )
    previous_run = (status.get("lastRun") or {}).get("runId")
    session.store.request_backup(session.namespace, args.policy, session.clock())
    if not args.wait:
        session.out(
            f"{_ref(before)}: backup requested (the controller triggers it and removes {BACKUP_NOW_ANNOTATION})"
        )
        return ExitCode.OK
    session.note(f"{_ref(before)}: backup requested; waiting up to {args.timeout:g}s for the run to finish")
    deadline = time.monotonic() + args.timeout
    announced: str | None = None
    while True:
        obj = session.policy()
        status = obj.get("status") or {}
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        last_run = status.get("lastRun") or {}
        run_id = last_run.get("runId")
        if BACKUP_NOW_ANNOTATION not in annotations and status.get("result") in REFUSED_RESULTS:
            raise Failed(f"{_ref(obj)} became {status['result']}, no run started: {_ready_message(status)}")
        if run_id and run_id != previous_run:
            if run_id != announced:
                session.note(f"run {run_id}: {last_run.get('state')}")
                announced = run_id
            state = str(last_run.get("state") or "").lower()
            if state in TERMINAL_RUN_STATES:
                return _report_run(session, obj, last_run, state)
        if time.monotonic() >= deadline:
            waiting_for = f"run {announced} to finish" if announced else "the controller to start the run"
            raise Failed(
                f"timed out after {args.timeout:g}s waiting for {waiting_for}; it goes on: "
                f"check later with `{args.prog} describe {args.policy} -n {session.namespace}`"
            )
        sleep(WAIT_POLL_SECONDS)


def _report_run(session: Session, obj: Policy, last_run: dict[str, Any], state: str) -> int:
    run_id = last_run.get("runId")
    duration = last_run.get("durationSeconds")
    took = f" in {render.human_duration(float(duration))}" if duration is not None else ""
    if state == "success":
        snapshots = (obj.get("status") or {}).get("lastSnapshots") or []
        listed = f": {len(snapshots)} snapshot(s) {', '.join(snapshots)}" if snapshots else ""
        session.out(f"{_ref(obj)}: run {run_id} succeeded{took}{listed}")
        return ExitCode.OK
    step = f" at {last_run['failedStep']}" if last_run.get("failedStep") else ""
    message = f": {last_run['message']}" if last_run.get("message") else ""
    session.out(f"{_ref(obj)}: run {run_id} failed{step}{took}{message}")
    return ExitCode.FAILED


def _ref(obj: Policy) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _ready_message(status: dict[str, Any]) -> str:
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return str(ready.get("message") or "see `vmbackupctl describe`")


# ---- snapshots -----------------------------------------------------------------------------------


def snapshots(session: Session) -> int:
    from controller.vmbackupctl.snapshots import list_policy_snapshots, snapshot_table

    obj = session.policy()
    spec = obj.get("spec") or {}
    # A policy with a backup project (spec.snapshot.project) writes, prunes and restores its snapshots there.
    project = (spec.get("snapshot") or {}).get("project") or spec.get("project")
    if not project:
        raise UsageError(f"{_ref(obj)} names no spec.project, so there is no project to list snapshots in")
    rows = list_policy_snapshots(str(project), session.namespace, session.args.policy)
    if session.emit([row.raw for row in rows], session.args.output):
        return ExitCode.OK
    if not rows:
        session.note(f"No snapshots of {_ref(obj)} in project {project}.")
        return ExitCode.OK
    session.out(snapshot_table(rows, wide=session.args.output == "wide"))
    return ExitCode.OK


# ---- coverage --------------------------------------------------------------------------------------


def coverage(session: Session) -> int:
    """Every VM of the granted projects and zones with the policies protecting it; a summary on stderr."""
    from controller.vmbackupctl.coverage import (
        compute_coverage,
        coverage_data,
        coverage_table,
        load_map,
        protectors_of,
    )

    args = session.args
    tenancy_map = load_map(args.tenancy)
    namespace = None if args.all_namespaces else session.namespace
    protectors, notes = protectors_of(session.store.list(namespace))
    for note in notes:
        session.note(f"warning: {note}")
    found = compute_coverage(tenancy_map, namespace, protectors)
    if session.emit(coverage_data(found, unprotected_only=args.unprotected), args.output):
        return ExitCode.OK
    if not found.scopes:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        session.note(f"The tenancy map grants no project to {where}.")
        return ExitCode.OK
    session.out(coverage_table(found, unprotected_only=args.unprotected))
    counts = found.unprotected_by_project()
    whose = "every namespace's policies" if namespace is None else f"the policies of namespace {namespace} only"
    session.note(
        f"{sum(counts.values())} of {len(found.rows)} VMs unprotected in {len(counts)} project(s), counting {whose}"
    )
    return ExitCode.OK


# ---- logs ------------------------------------------------------------------------------------------


def logs(session: Session) -> int:
    from controller.airflow_link import make_airflow_client
    from controller.vmbackupctl.logs import (
        fetch_run_logs,
        format_run_logs,
        load_config,
        policy_dag_id,
        resolve_target,
    )

    args = session.args
    config = load_config(target_overrides(args), args.airflow_auth)
    obj = session.policy()
    dag_id = policy_dag_id(session.namespace, args.policy)

    async def run() -> int:
        target = await resolve_target(config, session.namespace, dict(obj.get("spec") or {}))
        async with make_airflow_client(target.airflow_url, target.auth) as client:
            result = await fetch_run_logs(client, dag_id, args.run, args.task)
        session.out(format_run_logs(result))
        return ExitCode.OK

    return asyncio.run(run())


def target_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"composer_environment": args.composer_environment, "bucket": args.bucket, "airflow_url": args.airflow_url}


# ---- restore -------------------------------------------------------------------------------------

RESTORE_DONE_PHASES = ("Succeeded", "Failed")


def restore(session: Session, sleep: Callable[[float], None] = time.sleep) -> int:
    """Create a VMRestore from a policy's snapshots (idempotent by name); with --wait, follow it to the end.
    --in-place first has the user confirm that the VM's disks are replaced (restores.confirm_in_place)."""
    from controller.restore_request import placement_spec, restore_object
    from controller.vmbackupctl.restores import confirm_in_place

    args = session.args
    if (args.yes or args.delete_replaced_disks) and not args.in_place:
        raise UsageError("--yes and --delete-replaced-disks are for an in-place restore: add --in-place, or drop them")
    if args.from_snapshots:
        return _restore_from_snapshots(session)
    if args.project or args.run or args.list:
        raise UsageError("--project, --run and --list are for --from-snapshots (a VMRestore takes --snapshot)")
    placement = placement_spec(args)
    if placement and args.in_place:
        raise UsageError("an in-place restore keeps the VM where it is: drop --target-*, --network, --subnet, ...")
    policy = session.policy()  # a clear "not found" (exit 3) before anything is created
    instance, as_name = confirm_in_place(session, policy) if args.in_place else (args.instance, args.as_name)
    body = restore_object(
        session.namespace,
        args.policy,
        instance=instance,
        snapshot=args.snapshot,
        as_name=as_name,
        in_place=args.in_place,
        delete_replaced=args.delete_replaced_disks,
        placement=placement,
    )
    obj, created = session.store.create_restore(body)
    name = obj["metadata"]["name"]
    ref = f"vmrestore {session.namespace}/{name}"
    if created:
        how = f" (in place: VM {instance} gets the restored disks)" if args.in_place else ""
        session.out(f"{ref} created from policy {_ref(policy)}{how}")
    else:
        session.out(f"{ref} already exists; following it (a restore is never run twice)")
    if not args.wait:
        session.out(f"watch it with: kubectl get vmrestore {name} -n {session.namespace}")
        return ExitCode.OK
    deadline = time.monotonic() + args.timeout
    announced = None
    while True:
        status = obj.get("status") or {}
        phase = status.get("phase") or "Pending"
        progress = restore_progress(phase, status)
        if progress != announced:
            session.note(f"{ref}: {progress}")
            announced = progress
        if phase in RESTORE_DONE_PHASES:
            return _report_restore(session, ref, status)
        if time.monotonic() >= deadline:
            raise Failed(f"timed out after {args.timeout:g}s with {ref} {progress}; it goes on")
        sleep(WAIT_POLL_SECONDS)
        obj = session.store.get_restore(session.namespace, name)


def restore_progress(phase: str, status: dict[str, Any]) -> str:
    """The phase, and what the restore waits for since when (the controller's status.waitingFor/waitingSince)."""
    waiting = status.get("waitingFor")
    if not waiting:
        return phase
    since = status.get("waitingSince")
    return f"{phase}: waiting for {waiting}" + (f" (since {since})" if since else "")


def _restore_from_snapshots(session: Session) -> int:
    """Without Kubernetes or Airflow: from the snapshots (and the bucket's reports), restored from here, as a new VM
    or (--in-place) into the VM itself."""
    from controller.restore_request import placement_spec
    from controller.vmbackupctl.disaster import restore_from_snapshots
    from controller.vmbackupctl.disaster_in_place import WatchedHook, restore_in_place_from_snapshots
    from vmbackup.compute.hook import ComputeEngineHook

    args = session.args
    if args.wait or args.snapshot:
        raise UsageError("--from-snapshots restores from here and waits itself: drop --wait/--snapshot (pick --run)")
    if not args.project:
        raise UsageError("--from-snapshots needs --project: the policy's project, where its snapshots are")
    if args.in_place and placement_spec(args):
        raise UsageError("an in-place restore keeps the VM where it is: drop --target-*, --network, --subnet, ...")
    if args.in_place:
        return restore_in_place_from_snapshots(session, WatchedHook())
    return restore_from_snapshots(session, ComputeEngineHook())


def _report_restore(session: Session, ref: str, status: dict[str, Any]) -> int:
    if status.get("phase") == "Succeeded":
        session.out(
            f"{ref}: Succeeded: instance {status.get('instance')} from snapshot(s) "
            f"{', '.join(status.get('snapshots') or []) or status.get('snapshot') or '?'}"
        )
        return ExitCode.OK
    session.out(f"{ref}: Failed: {status.get('message') or 'see kubectl describe'}")
    return ExitCode.FAILED
