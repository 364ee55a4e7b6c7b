"""`vmbackupctl restore --in-place`: the confirmation a person gives before a VM's disks are replaced.

An InPlace restore stops a (production) VM and swaps its disks, so the CLI says exactly what will happen and
goes on only when the user types the VM's name, or passed --yes (scripts). Anything else changes nothing. The same
confirmation comes before `--from-snapshots --in-place` (disaster_in_place.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.restore_request import default_restore_name
from controller.vmbackupctl.errors import UsageError
from vmbackup.model import labels as vmlabels
from vmbackup.model.restore import restore_marker

if TYPE_CHECKING:
    from controller.vmbackupctl.cli_session import Session
    from controller.vmbackupctl.disaster import BackupRun
    from controller.vmbackupctl.kube import Policy


def in_place_instance(policy: Policy, instance: str | None) -> tuple[str, str | None]:
    """The VM an in-place restore replaces the disks of, and its zone when the policy lists it."""
    spec: dict[str, Any] = policy.get("spec") or {}
    listed = [(str(i.get("name")), i.get("zone")) for i in spec.get("instances") or []]
    name = (policy.get("metadata") or {}).get("name")
    if instance is None:
        if len(listed) != 1:
            which = ", ".join(n for n, _ in listed) or "selected by label"
            raise UsageError(f"--instance is required with --in-place: policy {name} backs up several VMs ({which})")
        return listed[0]
    zones = [z for n, z in listed if n == instance]
    return instance, zones[0] if len(zones) == 1 else None


def confirm_in_place(session: Session, policy: Policy) -> tuple[str, str]:
    """Print what an in-place restore replaces; once the user confirmed, (the VM, the VMRestore's name)."""
    args = session.args
    instance, zone = in_place_instance(policy, args.instance)
    name = args.as_name or default_restore_name(args.policy, instance, session.clock())
    project = (policy.get("spec") or {}).get("project")
    where = f"project {project}" + (f", zone {zone}" if zone else "")
    backup = f"snapshot {args.snapshot}'s run" if args.snapshot else "the newest backup run whose snapshots are READY"
    lines = _backup_lines(session, policy, instance)
    heading = f"In-place restore of VM {instance} ({where}) from {backup}"
    ask_to_replace(session, instance, heading, restore_marker(session.namespace, name), lines)
    return instance, name


def ask_to_replace(session: Session, instance: str, heading: str, marker: str, lines: list[str]) -> None:
    """Say what an in-place restore of `instance` does (after `heading`: which VM, where, from which run) and have
    the user type its name (or pass --yes); UsageError, nothing changed, otherwise. For the VMRestore and
    --from-snapshots alike."""
    args = session.args
    replaced = (
        "deleted once the VM runs with the restored ones (--delete-replaced-disks)"
        if args.delete_replaced_disks
        else f"kept, labelled {vmlabels.REPLACED_BY}={marker}"
    )
    session.note(
        f"{heading}:\n"
        f"  - {instance} is stopped (if running), every disk that run backed up is detached and replaced by a disk\n"
        "    made from its snapshot (same device name, same boot flag), and the VM is started again if it was running;\n"
        f"  - the replaced disks are {replaced};\n"
        "  - on a failure the original disks are put back and the VM is started again."
    )
    for line in lines:
        session.note(line)
    if args.yes:
        return
    typed = session.ask(f"Type the VM name ({instance}) to replace its disks, anything else to cancel: ")
    if typed != instance:
        got = f"got {typed!r}" if typed else "no answer"
        raise UsageError(
            f"in-place restore not confirmed ({got}); nothing was changed. Type {instance} at the prompt, or pass "
            "--yes to confirm without it"
        )


def run_lines(run: BackupRun) -> list[str]:
    """Which disks a backup run replaces, from its snapshots."""
    lines = [f"  run {run.run} (taken {run.created}) replaces:"]
    return lines + [f"    disk {s.source_disk.rsplit('/', 1)[-1]} <- snapshot {s.name}" for s in run.snapshots]


def _backup_lines(session: Session, policy: Policy, instance: str) -> list[str]:
    """Which disks the chosen run replaces, from its snapshots in Compute Engine; a line saying why not when they
    cannot be read (the restore itself re-checks everything)."""
    from controller.vmbackupctl.disaster import backup_runs
    from vmbackup.compute.hook import ComputeEngineHook

    project = str((policy.get("spec") or {}).get("project") or "")
    wanted = session.args.snapshot
    try:
        runs = backup_runs(ComputeEngineHook(max_attempts=1), project, session.namespace, session.args.policy)
    except Exception as exc:  # best effort: only what is shown before the prompt
        return [f"  (the snapshots could not be read from Compute Engine: {str(exc).splitlines()[0]})"]
    mine = [r for r in runs.get(session.namespace, []) if r.instance == instance]
    chosen = next((r for r in mine if wanted in (r.run, *(s.name for s in r.snapshots))), None) if wanted else None
    chosen = chosen or next((r for r in mine if r.ready and not wanted), None)
    if chosen is None:
        return ["  (no READY backup run of it found in Compute Engine: the restore will fail without changing it)"]
    return run_lines(chosen)
