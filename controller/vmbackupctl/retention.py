"""``vmbackupctl retention POLICY [--at TIME] [--spec FILE]``: the prune step's verdict on every snapshot of a policy.

Like Proxmox's prune simulator, but on the real snapshots and with the prune step's own code
(vmbackup.backup.retention_inputs.policy_verdicts): each snapshot kept or deleted, and the rule that decided.
``--spec`` previews a retention before it is applied; ``--at`` evaluates at another time.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from controller.vmbackupctl import render
from controller.vmbackupctl.commands import Session
from controller.vmbackupctl.errors import ExitCode, UsageError
from vmbackup.model.policy import KIND, BackupPolicy, PolicyError, parse_policy
from vmbackup.model.retention import Verdict

HEADERS = ["NAME", "INSTANCE", "SRC_DISK", "CREATED", "STATUS", "ACTION", "RULE"]


def retention(session: Session) -> int:
    from controller.vmbackupctl.snapshots import policy_snapshot_resources
    from vmbackup.backup.retention_inputs import policy_verdicts  # google-cloud-compute: only for this command

    args = session.args
    policy = _spec_file_policy(session, Path(args.spec)) if args.spec else _cluster_policy(session)
    tz = zoneinfo.ZoneInfo(policy.spec.timezone)
    at = _evaluation_time(args.at, tz) if args.at else session.clock()
    found = policy_snapshot_resources(policy.spec.snapshot_project, policy.namespace, policy.name)
    verdicts = policy_verdicts(found, policy, at)
    if session.emit([_as_data(v) for v in verdicts], args.output):
        return ExitCode.OK
    ref = f"{policy.namespace}/{policy.name}"
    if not verdicts:
        session.note(f"No snapshots of {ref} in project {policy.spec.snapshot_project}.")
        return ExitCode.OK
    session.out(render.table(HEADERS, [_cells(v, tz) for v in verdicts], style="gcloud"))
    deleted = sum(not v.keep for v in verdicts)
    source = f"spec from {args.spec}" if args.spec else "the policy's spec"
    session.note(
        f"{len(verdicts) - deleted} kept, {deleted} to delete at {at.astimezone(tz):%Y-%m-%d %H:%M %Z} "
        f"({policy.spec.timezone}), by {source}: {'; '.join(policy.spec.retention.phrases())}"
    )
    return ExitCode.OK


def _cluster_policy(session: Session) -> BackupPolicy:
    obj = session.policy()
    try:
        return parse_policy(session.namespace, session.args.policy, dict(obj.get("spec") or {}))
    except PolicyError as exc:
        raise UsageError(f"{session.namespace}/{session.args.policy} has an invalid spec: {exc}") from None


def _spec_file_policy(session: Session, path: Path) -> BackupPolicy:
    """The policy as it would be once FILE is applied: a VMBackupPolicy manifest or a bare spec."""
    try:
        doc: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--spec {path}: cannot read it as YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"--spec {path}: expected a {KIND} manifest or its spec, a mapping")
    spec = doc.get("spec") if doc.get("kind") == KIND else doc
    named = (doc.get("metadata") or {}).get("name") if doc.get("kind") == KIND else None
    if named and named != session.args.policy:
        raise UsageError(f"--spec {path}: it is policy {named!r}, not {session.args.policy!r}; name the same policy")
    namespace = session.args.namespace or (doc.get("metadata") or {}).get("namespace") or session.namespace
    try:
        return parse_policy(str(namespace), session.args.policy, dict(spec or {}))
    except PolicyError as exc:
        raise UsageError(f"--spec {path}: {exc}") from None


def _evaluation_time(text: str, tz: zoneinfo.ZoneInfo) -> datetime:
    """ISO 8601; without an offset, in the policy's time zone."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not an ISO 8601 time; e.g. 2026-12-24T02:00 (the policy's time zone) or "
            "2026-12-24T01:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def _rule(verdict: Verdict) -> str:
    return f"{verdict.rule} {verdict.period}".strip()


def _cells(verdict: Verdict, tz: zoneinfo.ZoneInfo) -> list[str]:
    snap = verdict.snapshot
    return [
        snap.name,
        snap.instance or render.NONE,
        snap.disk.split("/", 1)[-1],
        f"{snap.created.astimezone(tz):%Y-%m-%d %H:%M %Z}",
        snap.status,
        "keep" if verdict.keep else "delete",
        _rule(verdict),
    ]


def _as_data(verdict: Verdict) -> dict[str, Any]:
    snap = verdict.snapshot
    return {
        "name": snap.name,
        "instance": snap.instance,
        "disk": snap.disk,
        "run": snap.run,
        "created": snap.created.isoformat(),
        "status": snap.status,
        "action": "keep" if verdict.keep else "delete",
        "rule": verdict.rule,
        "period": verdict.period,
    }
