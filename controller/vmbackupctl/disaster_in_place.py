"""`vmbackupctl restore --from-snapshots --in-place`: the VM itself gets disks made from its snapshots, from here.

For when Kubernetes and Airflow are gone but the VM is not (its data is bad): the backup runs are read from the
snapshots as for a new-VM disaster restore (disaster.py), the user confirms as for a VMRestore (restores.py), and
then the in-place restore DAG's own steps run here, each one printed: the plan (restore/in_place.py), the disks
(restore/execute.py), the swap and, after a failure, putting the original disks back (restore/in_place_swap.py).

What the DAG guarantees holds here too, and for a command a person runs:
- Ctrl-C or any error while the VM is being changed: its original disks go back and it is started again (if it
  was running) before the command ends. The Compute Engine operation in flight is let finish first (Compute
  Engine goes on with it), and a second Ctrl-C meanwhile is only noted: stopping then would leave the VM stopped.
- Killed (or the connection lost) midway: the same command run again finishes the restore. The restore's name
  (`<instance>-<run>-in-place`, or --as) and its lock run (IN_PLACE_RUN_ID) are the same on every try, so the
  second run knows the VM as its own; each restored disk records the disk it replaces; the VM's stopped-by mark
  says the restore owes it a start.
- Nothing is deleted unless --delete-replaced-disks: after a failure the restored disks stay (the next try adopts
  them), and the replaced disks stay, labelled.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from controller.vmbackupctl.disaster import FLAGS_HINT, chosen_run, policy_spec, restored_name
from controller.vmbackupctl.errors import ExitCode, Failed, UsageError
from controller.vmbackupctl.restores import ask_to_replace, run_lines
from controller.vmbackupctl.snapshots import compute_error
from vmbackup.compute.hook import ComputeEngineHook, OperationRef
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import PolicyError, parse_policy
from vmbackup.model.restore import IN_PLACE, RESTORE_LABEL, Restore, parse_restore
from vmbackup.restore import in_place_swap
from vmbackup.restore.execute import create_disks
from vmbackup.restore.in_place import plan_in_place
from vmbackup.restore.plan import RestorePlan, RestoreProblemError

if TYPE_CHECKING:
    from google.cloud import compute_v1

    from controller.vmbackupctl.cli_session import Session
    from controller.vmbackupctl.disaster import BackupRun
    from vmbackup.restore.in_place_swap import Say

IN_PLACE_RUN_ID = "from-snapshots"  # the run of the lock it holds the VM with: the same on every try
NAME_TAG = "-in-place"
PUT_BACK_TRIES = 3  # <instance>-<run>-in-place: not the name a new-VM restore of that run takes
RERUN = (
    "  - interrupted (Ctrl-C), it puts the original disks back too; killed or disconnected midway, run this same\n"
    "    command again: it finishes the restore."
)


class WatchedHook(ComputeEngineHook):
    """The hook of a restore run from here: it knows the operation it waits for. After Ctrl-C Compute Engine goes on
    with that operation, so putting the VM back waits for it first (a disk still being attached is then there)."""

    waiting: OperationRef | None = None

    def wait_done(self, ref: OperationRef, timeout_seconds: float) -> compute_v1.Operation:
        self.waiting = ref
        op = super().wait_done(ref, timeout_seconds)
        self.waiting = None
        return op

    def let_finish(self, timeout_seconds: float) -> None:
        """Wait for the operation an interruption (or an error) left in flight; how it ends does not matter here."""
        ref, self.waiting = self.waiting, None
        if ref is not None:
            with contextlib.suppress(Exception):
                super().wait_done(ref, timeout_seconds)


def restore_in_place_from_snapshots(session: Session, hook: WatchedHook) -> int:
    """List the runs, pick one, confirm, and restore the VM in place here; ExitCode.OK once it has the disks."""
    args = session.args
    chosen = chosen_run(session, hook)
    if chosen is None:
        return ExitCode.OK
    namespace, run = chosen
    restore = _restore(args, namespace, run)
    zone = str(run.zone)  # (policy_spec refused a run of several zones)
    _require_vm(hook, restore, zone)
    heading = f"In-place restore of VM {run.instance} (project {restore.project}, zone {zone}) from run {run.run}"
    ask_to_replace(session, run.instance, heading, restore.marker, [RERUN, *run_lines(run)])
    session.note(
        f"restoring {run.instance} in place from run {run.run} (restore {restore.name}; run the same "
        "command again to resume)"
    )
    try:
        plan, settled = run_in_place(restore, hook, session.note)
    except RestoreProblemError as exc:
        raise Failed(f"{exc}; nothing was changed") from None
    session.out(_outcome(plan, settled))
    return ExitCode.OK


def run_in_place(restore: Restore, hook: WatchedHook, say: Say) -> tuple[RestorePlan, dict[str, Any]]:
    """Plan, make the disks, swap them in (the original disks put back after any failure or Ctrl-C), settle: the
    plan and what settling did. Raises Failed (or KeyboardInterrupt) once the VM is put back."""
    assert restore.spec.in_place is not None
    plan = plan_in_place(restore, hook, IN_PLACE_RUN_ID)
    for disk in plan["disks"]:
        was = disk["replaces"]["disk"] if "replaces" in disk else "(none)"
        say(f"device {disk['device_name']}: {was} -> {disk['name']} (from snapshot {disk['snapshot']})")
    if plan["done"] and not in_place_swap.holds(hook, plan):
        say(f"instance {plan['target']} has the restored disks already: nothing to do")
        return plan, {"restored": True, "replaced": [o["disk"] for o in plan["in_place"]["originals"]]}
    try:
        create_disks(hook, plan["disks"], restore.spec.timeouts.disks_seconds, say)
    except KeyboardInterrupt:
        say(f"interrupted before {plan['target']} was changed; the disks made so far are kept: run again to go on")
        raise
    except RestoreProblemError:
        raise
    except Exception as exc:
        raise Failed(
            f"{exc}; {plan['target']} was not changed, the disks made so far are kept: run the same command again "
            "to go on"
        ) from None
    seconds = restore.spec.in_place.swap_seconds
    try:
        in_place_swap.replace_disks(hook, plan, seconds, say)
    except BaseException as exc:  # KeyboardInterrupt too: the VM must not stay stopped
        _put_back(hook, plan, seconds, say, exc)
    try:
        return plan, in_place_swap.settle(hook, plan, swapped=True, seconds=seconds, say=say)
    except Exception as exc:
        raise Failed(
            f"{plan['target']} runs with the restored disks, but labelling the replaced disks or letting go of it "
            f"failed: {exc}; run the same command again to finish"
        ) from None


def _put_back(hook: WatchedHook, plan: RestorePlan, seconds: int, say: Say, cause: BaseException) -> NoReturn:
    """After `cause` midway: the original disks back, the VM started again; then Failed, or the KeyboardInterrupt."""
    interrupted = isinstance(cause, KeyboardInterrupt)
    why = "interrupted" if interrupted else str(cause) or type(cause).__name__
    target = plan["target"]
    say(f"{why}: putting {target} back as it was (this can take minutes)")
    with _interrupts_noted(say):
        hook.let_finish(seconds)
        done = _converge_back(hook, plan, seconds, say, why)
    kept = f"the disks made from the snapshots are kept ({RESTORE_LABEL}={plan['marker']})"
    back = (
        f"{target} was put back as it was (its original disks attached, started again if it was running); {kept}"
        if done["rolled_back"]
        else f"{target} was not changed; {kept}"
    )
    if interrupted:
        say(f"{back}: run the same command again to restore it")
        raise KeyboardInterrupt
    raise Failed(f"{why}; {back}: run the same command again to try again")


def _converge_back(hook: WatchedHook, plan: RestorePlan, seconds: int, say: Say, why: str) -> dict[str, Any]:
    """put_back, read afresh and tried again after an error: an interruption during a call leaves an operation this
    command never learnt the name of, which may change the VM after put_back read it (then a device is "in use")."""
    deadline = time.monotonic() + seconds
    for attempt in range(1, PUT_BACK_TRIES + 1):
        try:
            return in_place_swap.put_back(hook, plan, deadline, say)
        except Exception as exc:
            if attempt == PUT_BACK_TRIES or time.monotonic() >= deadline:
                raise Failed(
                    f"{why}; putting {plan['target']} back failed too: {exc}. Run the same command again: it "
                    "finishes the restore (or puts the original disks back if that fails again)"
                ) from None
            say(f"putting {plan['target']} back: {exc}; reading it again and going on")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _interrupts_noted(say: Say) -> Iterator[None]:
    """While the VM is put back, Ctrl-C is noted, not obeyed: stopping then would leave it stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def noted(signum: int, frame: Any) -> None:
        say("Ctrl-C: still putting the VM back (stopping now would leave it stopped); please wait")

    previous = signal.signal(signal.SIGINT, noted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _restore(args: Any, namespace: str, run: BackupRun) -> Restore:
    """The in-place restore these flags ask for, validated by the same model as a VMRestore."""
    name = args.as_name or restored_name(run.instance, run.run, NAME_TAG)
    policy = parse_policy(namespace, args.policy, policy_spec(args.project, run))
    spec = {
        "policyName": args.policy,
        "instance": run.instance,
        "snapshotRun": run.run,
        "mode": IN_PLACE,
        "inPlace": {"confirmReplaceDisks": True, "deleteReplacedDisks": bool(args.delete_replaced_disks)},
    }
    try:
        return parse_restore(namespace, name, spec, policy)
    except PolicyError as exc:
        raise UsageError("; ".join(f"{f}: {m}" for f, m in exc.problems) + f" ({FLAGS_HINT})") from None


def _require_vm(hook: ComputeEngineHook, restore: Restore, zone: str) -> None:
    """Before the prompt: an in-place restore needs the VM (a gone one comes back as a new VM)."""
    try:
        found = hook.find_instance(restore.project, zone, restore.instance)
    except Exception as exc:
        raise compute_error(exc, "Compute Engine", restore.project) from None
    if found is None:
        raise UsageError(
            f"instance {restore.instance} no longer exists in zone {zone} of project {restore.project}, so there "
            "are no disks to replace: drop --in-place to restore it as a new VM"
        )


def _outcome(plan: RestorePlan, settled: dict[str, Any]) -> str:
    swapped = ", ".join(f"{d['device_name']} <- {d['name']} (snapshot {d['snapshot']})" for d in plan["disks"])
    replaced = sorted(settled.get("replaced") or [])
    deleted = sorted(settled.get("deleted_replaced") or [])
    what = (
        f"replaced disks deleted: {', '.join(deleted)}"
        if deleted
        else f"replaced disks kept, labelled {vmlabels.REPLACED_BY}={plan['marker']}: {', '.join(replaced) or '-'}"
    )
    return (
        f"restored in place: instance {plan['target']} (project {plan['project']}, zone {plan['zone']}) from run "
        f"{plan['run']}: {swapped}; {what}"
    )
