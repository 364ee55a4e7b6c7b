"""The VMBackupPolicy model: the single definition shared by the controller and the DAG factory.

The controller validates a custom resource's spec with it before anything is rendered; the rendered
DAG carries the validated policy as JSON and the factory parses it again with the same model, so the
two sides can never disagree about what a field means. Field names are the CRD's (camelCase).

This module imports neither Airflow nor Kubernetes: it must load in the controller image, in
Composer's workers and in tests alike. Parts live in their own modules by concern (crd_base, cron, stop_options,
verification, composer_target); the names callers import from here are re-exported (``import X as X``).
"""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vmbackup.model.composer_target import ComposerTarget
from vmbackup.model.crd_base import (
    CLOCK_PATTERN,
    DNS_LABEL_PATTERN,
    MAX_UNAVAILABLE_PERCENT_PATTERN,
    PROJECT_PATTERN,
    CrdModel,
    GceName,
    LabelKey,
    LabelValue,
    PolicyError,
    TierName,
    Zone,
    problems_from,
    shown,
)
from vmbackup.model.crd_base import COMPOSER_ENVIRONMENT_PATTERN as COMPOSER_ENVIRONMENT_PATTERN
from vmbackup.model.crd_base import GCE_NAME_PATTERN as GCE_NAME_PATTERN
from vmbackup.model.crd_base import LABEL_KEY_PATTERN as LABEL_KEY_PATTERN
from vmbackup.model.crd_base import LABEL_VALUE_PATTERN as LABEL_VALUE_PATTERN
from vmbackup.model.crd_base import ZONE_PATTERN as ZONE_PATTERN
from vmbackup.model.cron import checked_schedule, cron_of
from vmbackup.model.cron import cron_problem as cron_problem
from vmbackup.model.retention_spec import DEFAULT_COUNT, rung_schedule_problem
from vmbackup.model.retention_spec import Retention as Retention
from vmbackup.model.rpo import RPO_DESCRIPTION, RPO_PATTERN, checked_rpo
from vmbackup.model.slots import CronSlots, Window, parse_clock, schedule_rate_problem
from vmbackup.model.snapshot_settings import MAX_USER_LABELS as MAX_USER_LABELS
from vmbackup.model.snapshot_settings import RESERVED_LABEL_PREFIX as RESERVED_LABEL_PREFIX
from vmbackup.model.snapshot_settings import SnapshotMethod as SnapshotMethod
from vmbackup.model.snapshot_settings import SnapshotSettings
from vmbackup.model.stop_options import StopOptions
from vmbackup.model.verification import Verification

API_GROUP = "vmbackup.dev"
API_VERSION = "v1alpha1"
KIND = "VMBackupPolicy"
PLURAL = "vmbackuppolicies"
BACKUP_NOW_ANNOTATION = "vmbackup.dev/backup-now"  # asks the controller for a run now; it removes the annotation
VERIFY_NOW_ANNOTATION = "vmbackup.dev/verify-now"  # asks for a restore drill now; removed once the drill started
DAG_ID_PREFIX = "vmbackup__"  # every policy's DAG id starts with it (dag_id_for)

MAX_UNAVAILABLE_VMS = 10000  # no tier holds more VMs than a selector can resolve


# How late a stop-mode run may start by default: Composer's DAG sync (3-5 min), a busy scheduler and a worker
# scaled up from zero make minutes of lateness normal; past a quarter of an hour the VM would go down at a time
# its owner did not choose (docs/design/schedule-slots.md, "Late runs, maintenance windows and one backup per slot").
STOP_MODE_STARTING_DEADLINE_SECONDS = 900
# How long a stop step waits for a VM another run holds (docs/design/overlapping-policies.md): a stop-mode backup of
# another policy usually gives the VM back within minutes; a longer hold is a long upload-free stop or a restore.
DEFAULT_LOCK_WAIT_SECONDS = 300
MIN_STARTING_DEADLINE_SECONDS = 60  # Airflow's scheduler needs seconds to start a run; less would miss every slot
MAX_STARTING_DEADLINE_SECONDS = 86400
ConsistencyMode = Literal["stop", "none", "guestFlush"]
# How the DAG's operation sensors wait. A property of the Airflow environment, not of the policy: the controller
# picks it for the environment it uploads to (controller/wait_mode.py) and the rendered DAG carries it as data.
WaitMode = Literal["reschedule", "deferrable"]
WAIT_MODES: tuple[WaitMode, ...] = ("reschedule", "deferrable")


class InstanceRef(CrdModel):
    """One VM named explicitly."""

    name: GceName = Field(description="Compute Engine instance name.")
    zone: Zone = Field(description="Zone of the instance, e.g. us-central1-c.")
    disks: list[GceName] | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Disk names to back up. Default: every persistent disk attached to the instance.",
    )
    tier: TierName | None = Field(
        default=None, description="Name of the tier (from spec.tiers) this instance belongs to."
    )

    @field_validator("disks")
    @classmethod
    def _unique_disks(cls, disks: list[str] | None) -> list[str] | None:
        if disks is not None and len(set(disks)) != len(disks):
            raise ValueError("disk names must be unique; remove the repeated name")
        return disks


class InstanceSelector(CrdModel):
    """VMs chosen by labels, resolved when each run starts so new VMs are picked up."""

    zones: list[Zone] = Field(min_length=1, max_length=64, description="Zones to search for instances.")
    match_labels: dict[LabelKey, LabelValue] = Field(
        min_length=1, max_length=32, description="Instances carrying all of these labels are backed up."
    )
    tier_label: LabelKey | None = Field(
        default=None,
        description="Label whose value names the instance's tier (one of spec.tiers). "
        "Instances whose value is not a listed tier are skipped and reported.",
    )

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, zones: list[str]) -> list[str]:
        if len(set(zones)) != len(zones):
            raise ValueError("zones must be unique; remove the repeated zone")
        return zones


class Timeouts(CrdModel):
    """How long each wait may take before the step fails (and a stopped VM is started again)."""

    stop_seconds: int = Field(default=600, ge=30, le=86400, description="Wait for a VM to stop.")
    snapshot_seconds: int = Field(
        default=1800, ge=30, le=86400, description="Wait for a snapshot to leave CREATING (VM may restart then)."
    )
    upload_seconds: int = Field(default=7200, ge=60, le=172800, description="Wait for a snapshot to be READY.")
    start_seconds: int = Field(default=600, ge=30, le=86400, description="Wait for a VM to start.")
    lock_wait_seconds: int = Field(
        default=DEFAULT_LOCK_WAIT_SECONDS,
        ge=0,
        le=86400,
        description="Wait for a VM that another policy's (or a restore's) run holds; after it, the VM is skipped "
        "(0: skip at once). Never past the starting deadline or the maintenance window.",
    )


class MaintenanceWindow(CrdModel):
    """When scheduled runs may touch VMs: every day from `start` for `durationMinutes`, in spec.timezone."""

    start: Annotated[str, StringConstraints(pattern=CLOCK_PATTERN)] = Field(
        description="Start of the window, HH:MM (24 h) in the policy's time zone."
    )
    duration_minutes: int = Field(ge=1, le=1440, description="Length of the window in minutes (1-1440).")

    def window(self) -> Window:
        clock = parse_clock(self.start)
        assert clock is not None  # validated
        return Window(clock, self.duration_minutes)


class PolicySpec(CrdModel):
    """The spec of a VMBackupPolicy."""

    project: Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)] = Field(
        description="Google Cloud project that owns the instances."
    )
    instances: list[InstanceRef] | None = Field(
        default=None, min_length=1, max_length=500, description="Instances to back up (or use selector)."
    )
    selector: InstanceSelector | None = Field(
        default=None, description="Choose instances by label at run time (or use instances)."
    )
    tiers: list[TierName] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="Application tiers in stop order: every VM of a tier stops before any VM of the next; "
        "VMs start again in reverse order.",
    )
    max_unavailable: int | str | None = Field(
        default=None,
        description="Rolling tiers: at most this many VMs of each tier (or of all VMs, without tiers) are down at "
        "once, as a number (e.g. 1) or a percentage of the tier's VMs rounded down, at least 1 (e.g. '50%'). "
        "Default: all VMs of a tier at once.",
    )
    schedule: str = Field(
        default="@daily", max_length=100, description="Cron expression (5 fields) or @hourly/@daily/@weekly/@monthly."
    )
    timezone: str = Field(default="Etc/UTC", max_length=64, description="IANA time zone of the schedule.")
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=MIN_STARTING_DEADLINE_SECONDS,
        le=MAX_STARTING_DEADLINE_SECONDS,
        description="How late after its slot a scheduled run may still start (Kubernetes CronJob's meaning); a "
        f"later run touches no VM and is recorded as missed. Default: {STOP_MODE_STARTING_DEADLINE_SECONDS} "
        "in stop mode, no limit otherwise. backup-now runs are not limited.",
    )
    maintenance_window: MaintenanceWindow | None = Field(
        default=None,
        description="Scheduled runs that start outside this daily window touch no VM and are recorded as missed.",
    )
    consistency: ConsistencyMode = Field(
        default="stop",
        description="stop: stop the VM, snapshot, start it (consistent); none: crash-consistent snapshot of the "
        "running VM; guestFlush: application-consistent snapshot through the guest agent (VM keeps running).",
    )
    stop: StopOptions = Field(default_factory=StopOptions, description="Stop mode: Local SSD and reservation checks.")
    retention: Retention = Field(
        default_factory=lambda: Retention(count=DEFAULT_COUNT),
        description="What to keep (docs/retention.md): count, maxAgeDays and the GFS rungs, in any mix.",
    )
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings, description="Snapshot properties.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Step timeouts.")
    suspend: bool = Field(default=False, description="Pause scheduled runs (history is kept).")
    composer: ComposerTarget | None = Field(default=None, description="Per-policy Composer target override.")
    verification: Verification | None = Field(default=None, description="Scheduled restore drills.")
    rpo: Annotated[str | None, AfterValidator(checked_rpo)] = Field(
        default=None, pattern=RPO_PATTERN, max_length=20, description=RPO_DESCRIPTION
    )

    _valid_schedule = field_validator("schedule")(lambda cls, value: checked_schedule(value))

    @field_validator("schedule")
    @classmethod
    def _within_snapshot_rate(cls, schedule: str) -> str:
        problem = schedule_rate_problem(schedule, cron_of(schedule))
        if problem:
            raise ValueError(problem)
        return schedule

    @field_validator("max_unavailable")
    @classmethod
    def _unavailable_is_a_count_or_percent(cls, value: int | str | None) -> int | str | None:
        fix = (
            f"use a whole number of VMs from 1 to {MAX_UNAVAILABLE_VMS} (e.g. 1) or a percentage from 1% to 100% "
            "(e.g. '50%')"
        )
        if value is None:
            return None
        if isinstance(value, bool) or (isinstance(value, int) and not 1 <= value <= MAX_UNAVAILABLE_VMS):
            raise ValueError(f"{value!r} is not a number of VMs; {fix}")
        if isinstance(value, str) and not re.fullmatch(MAX_UNAVAILABLE_PERCENT_PATTERN, value):
            raise ValueError(f"{shown(value)} is not a number of VMs or a percentage; {fix}")
        return value

    def unavailable_cap(self, size: int) -> int:
        """How many of a tier's `size` VMs may be down at once: maxUnavailable, a percentage rounded down (as
        Kubernetes rounds a Deployment's), never less than 1; all of them by default."""
        value = self.max_unavailable
        if value is None:
            return max(1, size)
        if isinstance(value, str):
            return max(1, size * int(value.rstrip("%")) // 100)
        return max(1, min(value, size))

    @field_validator("maintenance_window")
    @classmethod
    def _window_fits_schedule(cls, window: MaintenanceWindow | None, info: ValidationInfo) -> MaintenanceWindow | None:
        schedule = info.data.get("schedule")
        if window is None or schedule is None:
            return window
        slots = CronSlots.parse(cron_of(schedule))
        gap = int(slots.shortest_gap().total_seconds() // 60)
        if window.duration_minutes > gap:
            raise ValueError(
                f"durationMinutes {window.duration_minutes} is longer than the {gap} minutes between slots of "
                f"{schedule!r}: a window that long cannot tell one slot from the next; shorten it to at most {gap}"
            )
        if not window.window().holds_a_slot_of(slots):
            raise ValueError(
                f"no slot of {schedule!r} falls in {window.window()}: every run would be missed; move the window "
                "or the schedule"
            )
        return window

    @field_validator("retention")
    @classmethod
    def _rungs_fit_schedule(cls, retention: Retention, info: ValidationInfo) -> Retention:
        schedule = info.data.get("schedule")
        if schedule is not None and retention.rungs():
            problem = rung_schedule_problem(retention, schedule, CronSlots.parse(cron_of(schedule)).closest_slots())
            if problem:
                raise ValueError(problem)
        return retention

    @field_validator("snapshot")
    @classmethod
    def _archive_rungs_are_kept(cls, snapshot: SnapshotSettings, info: ValidationInfo) -> SnapshotSettings:
        retention = info.data.get("retention")
        unset = [r for r in snapshot.archive_rungs or [] if retention is not None and getattr(retention, r) is None]
        if unset:
            raise ValueError(
                f"archiveRungs names {', '.join(unset)}, which spec.retention does not set: no snapshot is kept by "
                f"it; set spec.retention.{unset[0]} or remove {unset[0]} from spec.snapshot.archiveRungs"
            )
        return snapshot

    @field_validator("snapshot")
    @classmethod
    def _method_fits_consistency(cls, snapshot: SnapshotSettings, info: ValidationInfo) -> SnapshotSettings:
        if snapshot.method == "instant" and info.data.get("consistency") == "guestFlush":
            raise ValueError(
                "method instant cannot be used with consistency guestFlush: Compute Engine's instant snapshots "
                "(compute v1) take no guest flush. Set snapshot.method to standard, or consistency to stop"
            )
        return snapshot

    @field_validator("stop")
    @classmethod
    def _stop_needs_stop_mode(cls, stop: StopOptions, info: ValidationInfo) -> StopOptions:
        consistency = info.data.get("consistency")
        if stop.any_set and consistency not in (None, "stop"):
            raise ValueError(
                f"stop.discardLocalSsd and stop.requireReservation apply only to consistency stop (this policy's is "
                f"{consistency}, which never stops a VM): set them to false, or set consistency to stop"
            )
        return stop

    @property
    def snapshot_project(self) -> str:
        """Where the policy's snapshots live: spec.snapshot.project (a backup project), else spec.project."""
        return self.snapshot.project or self.project

    @property
    def effective_starting_deadline(self) -> int | None:
        """The deadline a scheduled run is held to (seconds after its slot), None for no limit."""
        if self.starting_deadline_seconds is not None:
            return self.starting_deadline_seconds
        return STOP_MODE_STARTING_DEADLINE_SECONDS if self.consistency == "stop" else None

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, tz: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", tz):
            raise ValueError(f"{tz!r} is not an IANA time zone name (e.g. Europe/Paris)")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as Europe/Paris") from None
        return tz

    @model_validator(mode="after")
    def _cross_field(self) -> PolicySpec:
        if (self.instances is None) == (self.selector is None):
            raise ValueError("set exactly one of instances or selector")
        if self.tiers is not None and len(set(self.tiers)) != len(self.tiers):
            raise ValueError("tiers: names must be unique")
        if self.instances is not None:
            seen: set[tuple[str, str]] = set()
            for inst in self.instances:
                key = (inst.zone, inst.name)
                if key in seen:
                    raise ValueError(f"instances: {inst.name} in {inst.zone} is listed twice")
                seen.add(key)
                if self.tiers is None and inst.tier is not None:
                    raise ValueError(f"instances: {inst.name} names tier {inst.tier!r} but spec.tiers is not set")
                if self.tiers is not None and inst.tier not in self.tiers:
                    raise ValueError(
                        f"instances: {inst.name} must name one of the tiers {self.tiers} (got {inst.tier!r})"
                    )
        if self.selector is not None and self.tiers is not None and self.selector.tier_label is None:
            raise ValueError("selector.tierLabel is required when tiers are set with a selector")
        if self.selector is not None and self.selector.tier_label is not None and self.tiers is None:
            raise ValueError("selector.tierLabel needs spec.tiers")
        return self


class BackupPolicy(CrdModel):
    """A validated policy with its identity: what a rendered DAG carries as data."""

    namespace: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
    generation: int = 0
    # When the resource was created (set by the API server). Scheduled runs start after it: applying a
    # policy at 14:00 with a 02:00 schedule must not stop the VM at once for the 02:00 run it "missed".
    created: datetime | None = None
    # "deferrable" only where the environment runs a triggerer: a deferred task in an environment without one
    # never resumes, and its VM would wait, stopped, for the sensor's timeout.
    wait_mode: WaitMode = "reschedule"
    spec: PolicySpec

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.namespace, self.name)

    def to_json(self) -> str:
        """Canonical JSON (stable key order, ASCII only): hashed by the controller, embedded in the DAG."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BackupPolicy:
        return cls.model_validate_json(text)

    def waiting(self, mode: WaitMode) -> BackupPolicy:
        """This policy as it is rendered for an environment whose sensors wait in `mode`."""
        return self if mode == self.wait_mode else self.model_copy(update={"wait_mode": mode})


def dag_id_for(namespace: str, name: str) -> str:
    return f"{DAG_ID_PREFIX}{namespace}__{name}"


def parse_policy(
    namespace: str, name: str, spec: dict[str, Any], generation: int = 0, created: str | datetime | None = None
) -> BackupPolicy:
    """Validate a custom resource's spec (`created`: its metadata.creationTimestamp); raise PolicyError naming each
    bad field."""
    problems: list[tuple[str, str]] = []
    if not re.fullmatch(DNS_LABEL_PATTERN, name or ""):
        problems.append(
            ("metadata.name", "must be a DNS label of at most 63 characters (lowercase letters, digits and '-')")
        )
    if problems:
        raise PolicyError(problems)
    try:
        return BackupPolicy.model_validate(
            {
                "namespace": namespace,
                "name": name,
                "generation": generation,
                "created": created,
                "spec": PolicySpec.model_validate(spec),
            }
        )
    except ValidationError as exc:
        raise PolicyError(problems_from(exc)) from None
