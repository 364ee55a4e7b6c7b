"""What the commands print: kubectl-shaped tables and ages, describe's sections, JSON and YAML.

Pure functions of the objects and ``now``, so the output is the same whatever backend produced them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from controller.conditions import VM_LEFT_STOPPED, find_condition, rfc3339
from vmbackup.model.policy import BACKUP_NOW_ANNOTATION, BackupPolicy, PolicyError, parse_policy

NONE = "<none>"
LEFT_STOPPED_MARKER = " (VM left stopped)"  # after RESULT in `get` while VMLeftStopped is True
# describe's notes on the consistency mode, one line each (docs/design/preflight-checks.md).
STOCKOUT_RISK = (
    "a VM that consumes no reservation may not start again during a zone stockout; the product keeps retrying "
    "(keeper) - set spec.stop.requireReservation to refuse such VMs"
)
RESERVATION_REQUIRED = "VMs that consume no reservation are skipped (spec.stop.requireReservation)"
LOCAL_SSD_SKIPPED = (
    "VMs with a Local SSD are skipped (spec.stop.discardLocalSsd true stops them, discarding the Local SSD's data)"
)
LOCAL_SSD_DISCARDED = (
    "VMs with a Local SSD are stopped and their Local SSD's data is discarded (spec.stop.discardLocalSsd)"
)
GUEST_FLUSH_RISK = (
    "Windows guests flush through VSS; a Linux guest only with snapshots enabled in its guest agent's configuration, "
    "which the Compute Engine API does not show - without it every run fails for that VM and the run report names "
    "the fix"
)
KUBECTL_MIN_WIDTH = 10  # kubectl's tabwriter: minimum cell width 10, padding 3
KUBECTL_PADDING = 3
GCLOUD_PADDING = 2


# ---- generic output -----------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, style: str = "kubectl") -> str:
    """Left-aligned columns as kubectl (tabwriter 10/3) or gcloud (2 spaces) print them."""
    min_width, padding = (KUBECTL_MIN_WIDTH, KUBECTL_PADDING) if style == "kubectl" else (0, GCLOUD_PADDING)
    all_rows = [list(headers), *[list(r) for r in rows]]
    widths = [max(min_width, max(len(r[i]) for r in all_rows) + padding) for i in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def as_json(data: Any) -> str:
    return json.dumps(data, indent=4, sort_keys=False, default=str)


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")


def as_list(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The envelope kubectl prints for several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {"resourceVersion": ""}}


# ---- times ----------------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """kubectl's duration.HumanDuration: 45s, 3m20s, 25m, 5h10m, 30h, 3d4h, 40d, 2y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(value: Any, now: datetime, missing: str = NONE) -> str:
    """A date column as kubectl shows it: the time since."""
    moment = parse_time(value)
    return missing if moment is None else human_duration((now - moment).total_seconds())


def when(value: Any, now: datetime) -> str:
    """A timestamp for people: the value and how far it is, e.g. '2026-11-25T02:00:41Z (5h ago)'."""
    moment = parse_time(value)
    if moment is None:
        return NONE
    delta = (now - moment).total_seconds()
    relative = f"in {human_duration(-delta)}" if delta < -1 else f"{human_duration(delta)} ago"
    return f"{rfc3339(moment)} ({relative})"


# ---- get -------------------------------------------------------------------------------------------


def policy_table(policies: Sequence[Mapping[str, Any]], now: datetime, *, all_namespaces: bool, wide: bool) -> str:
    """The printer columns of the CRD, in kubectl's layout (NAMESPACE with -A; VM LEFT STOPPED, SUSPEND, DAG with
    -o wide). A policy whose VM this product stopped and could not start yet has RESULT marked (LEFT_STOPPED_MARKER).

    Unset fields are blank cells, as kubectl leaves them for a custom resource's printer columns.
    """
    headers = ["NAME", "SCHEDULE", "LAST SNAPSHOT", "RESULT", "NEXT RUN", "RPO", "AGE"]
    if wide:
        headers += ["VM LEFT STOPPED", "SUSPEND", "DAG"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for obj in policies:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        left_stopped = str((find_condition(status.get("conditions"), VM_LEFT_STOPPED) or {}).get("status") or "")
        row = [
            str(meta.get("name")),
            str(spec.get("schedule") or ""),
            age(status.get("lastSnapshotTime"), now, missing=""),
            str(status.get("result") or "") + (LEFT_STOPPED_MARKER if left_stopped == "True" else ""),
            str(status.get("nextRun") or ""),
            str((status.get("recoveryPoint") or {}).get("compliance") or ""),
            age(meta.get("creationTimestamp"), now, missing=""),
        ]
        if wide:
            suspend = spec.get("suspend")
            row += [left_stopped, "" if suspend is None else str(bool(suspend)).lower(), str(status.get("dagId") or "")]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace")))
        rows.append(row)
    return table(headers, rows)


# ---- describe ------------------------------------------------------------------------------------


def describe(obj: Mapping[str, Any], now: datetime) -> str:
    """kubectl-describe-like sections: identity, spec summary, status, last run, snapshots, conditions."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    out = _Fields()
    out.add("Name", name)
    out.add("Namespace", namespace)
    out.add("Created", when(meta.get("creationTimestamp"), now))
    annotations = meta.get("annotations") or {}
    if BACKUP_NOW_ANNOTATION in annotations:
        out.add("Backup Requested", f"{annotations[BACKUP_NOW_ANNOTATION]} (waiting for the controller)")
    try:
        policy: BackupPolicy | None = parse_policy(namespace, name, dict(spec), int(meta.get("generation") or 0))
        problems: list[tuple[str, str]] = []
    except PolicyError as exc:
        policy, problems = None, exc.problems
    out.section("Spec")
    if policy is not None:
        _spec_summary(out, policy)
    else:
        out.add("Invalid", "; ".join(f"{f}: {m}" for f, m in problems), indent=1)
        out.add("Schedule", _schedule(spec.get("schedule") or "@daily", spec.get("timezone") or "Etc/UTC"), indent=1)
    _status_section(out, meta, status, now)
    _last_run_section(out, status.get("lastRun") or {}, now)
    snapshots = status.get("lastSnapshots") or []
    out.section("Last Snapshots", inline=NONE if not snapshots else None)
    for snapshot in snapshots:
        out.line(f"  {snapshot}")
    _conditions_section(out, status.get("conditions") or [], now)
    return out.text()


def _status_section(out: _Fields, meta: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> None:
    out.section("Status")
    if not status:
        out.add("Result", "<none> (the controller has not reconciled this policy yet)", indent=1)
    else:
        out.add("Result", str(status.get("result") or NONE), indent=1)
        generation, observed = meta.get("generation"), status.get("observedGeneration")
        if generation is not None and observed is not None and observed != generation:
            out.add("Observed Generation", f"{observed} (spec is at {generation}: not reconciled yet)", indent=1)
        out.add("DAG", str(status.get("dagId") or NONE), indent=1)
        out.add("Last Snapshot", when(status.get("lastSnapshotTime"), now), indent=1)
        out.add("Next Run", _next_run(status.get("nextRun"), now), indent=1)
        point = status.get("recoveryPoint") or {}
        if point:
            out.add("RPO", f"{point.get('compliance')} (objective {point.get('objective')})", indent=1)
            for vm in point.get("instances") or []:
                newest = when(vm.get("newestGoodBackup"), now) if vm.get("newestGoodBackup") else "no good backup"
                out.add(f"{vm.get('instance')} ({vm.get('zone')})", f"{vm.get('compliance')}: {newest}", indent=2)


def _last_run_section(out: _Fields, last_run: Mapping[str, Any], now: datetime) -> None:
    if last_run:
        out.section("Last Run")
        out.add("Run ID", str(last_run.get("runId") or NONE), indent=1)
        out.add("State", str(last_run.get("state") or NONE), indent=1)
        out.add("Started", when(last_run.get("startTime"), now), indent=1)
        out.add("Ended", when(last_run.get("endTime"), now), indent=1)
        if last_run.get("durationSeconds") is not None:
            out.add("Duration", human_duration(float(last_run["durationSeconds"])), indent=1)
        if last_run.get("failedStep"):
            out.add("Failed Step", str(last_run["failedStep"]), indent=1)
        if last_run.get("message"):
            out.add("Message", str(last_run["message"]), indent=1)


def _conditions_section(out: _Fields, conditions: Sequence[Mapping[str, Any]], now: datetime) -> None:
    out.section("Conditions", inline=NONE if not conditions else None)
    if conditions:
        rows = [
            [
                str(c.get("type")),
                str(c.get("status")),
                str(c.get("reason") or ""),
                age(c.get("lastTransitionTime"), now),
                str(c.get("message") or ""),
            ]
            for c in conditions
        ]
        table_text = table(["Type", "Status", "Reason", "Age", "Message"], rows, style="gcloud")
        for line in table_text.splitlines():
            out.line(f"  {line}")


def _spec_summary(out: _Fields, policy: BackupPolicy) -> None:
    spec = policy.spec
    out.add("Project", spec.project, indent=1)
    if spec.instances is not None:
        targets = []
        for inst in spec.instances:
            text = f"{inst.name} ({inst.zone})"
            if inst.tier:
                text += f" tier {inst.tier}"
            if inst.disks:
                text += f" disks {', '.join(inst.disks)}"
            targets.append(text)
        out.add("Instances", targets, indent=1)
    elif spec.selector is not None:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(spec.selector.match_labels.items()))
        text = f"labels {labels} in {', '.join(spec.selector.zones)}"
        if spec.selector.tier_label:
            text += f" (tier from label {spec.selector.tier_label})"
        out.add("Selector", text, indent=1)
    if spec.tiers:
        out.add("Tiers", " -> ".join(spec.tiers) + " (stop order; start in reverse)", indent=1)
    out.add("Schedule", _schedule(spec.schedule, spec.timezone), indent=1)
    out.add("Consistency", spec.consistency, indent=1)
    for label, lines in _consistency_notes(policy):
        out.add(label, lines, indent=1)
    out.add("Retention", _retention(policy), indent=1)
    settings = spec.snapshot
    if settings.storage_location or settings.labels or settings.where_and_what:
        where = settings.storage_location or "default location"
        labels = ", ".join(f"{k}={v}" for k, v in sorted(settings.labels.items()))
        kind = f"{settings.kind()} in project {spec.snapshot_project}, " if settings.where_and_what else ""
        out.add("Snapshots", kind + where + (f", labels {labels}" if labels else ""), indent=1)
    out.add("Suspend", str(spec.suspend).lower(), indent=1)
    composer = spec.composer
    if composer is None:
        target = "the controller's default"
    elif composer.environment:
        target = composer.environment
    else:
        target = f"gs://{composer.bucket} + {composer.airflow_uri}"
    out.add("Composer", target, indent=1)


def _consistency_notes(policy: BackupPolicy) -> list[tuple[str, list[str]]]:
    """What the consistency mode risks and what spec.stop decides about it (docs/design/preflight-checks.md)."""
    spec = policy.spec
    if spec.consistency == "guestFlush":
        return [("Guest Flush", [GUEST_FLUSH_RISK])]
    if spec.consistency != "stop":
        return []
    reservation = RESERVATION_REQUIRED if spec.stop.require_reservation else STOCKOUT_RISK
    local_ssd = LOCAL_SSD_DISCARDED if spec.stop.discard_local_ssd else LOCAL_SSD_SKIPPED
    return [("Stop Mode", [reservation, local_ssd])]


def _schedule(schedule: str, timezone: str) -> str:
    return f"{schedule} ({timezone})"


def _retention(policy: BackupPolicy) -> str:
    retention = policy.spec.retention
    guard = f"; always the newest {retention.last_successful} complete run(s) of each VM"
    return "keep " + " and ".join(retention.phrases()) + guard


def _next_run(value: Any, now: datetime) -> str:
    return when(value, now) if parse_time(value) else str(value or NONE)


class _Fields:
    """kubectl describe's 'Label:   value' blocks, values aligned per block."""

    def __init__(self) -> None:
        self._lines: list[str | tuple[int, str, list[str]]] = []

    def add(self, label: str, value: str | list[str], indent: int = 0) -> None:
        values = value if isinstance(value, list) else [value]
        self._lines.append((indent, label, values or [NONE]))

    def section(self, title: str, inline: str | None = None) -> None:
        self._lines.append(f"{title}:" + (f"  {inline}" if inline else ""))

    def line(self, text: str) -> None:
        self._lines.append(text)

    def text(self) -> str:
        width = max((len(item[1]) + 2 * item[0] for item in self._lines if isinstance(item, tuple)), default=0)
        out = []
        for item in self._lines:
            if isinstance(item, str):
                out.append(item)
                continue
            indent, label, values = item
            head = f"{'  ' * indent}{label}:".ljust(width + 3)
            out.append(head + values[0])
            out.extend(" " * len(head) + more for more in values[1:])
        return "\n".join(out)
