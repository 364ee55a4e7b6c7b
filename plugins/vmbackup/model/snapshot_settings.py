"""spec.snapshot: how each snapshot is cut (method), what it is (type), where it is stored (storage location and
project) and the labels it carries.

Split out of policy.py (which re-exports these names). A separate backup project (`project`) keeps the backups out
of reach of whoever owns the workload project: Google's ransomware guidance puts the backups in "a dedicated,
restricted Google Cloud project" apart from the workload projects, "so even if a 'Spoke' project is compromised, the
attacker does not have inherent access to the 'Hub' project where the recovery data is stored", and separates the
duties of who backs up from who deletes ("Best practices for protecting against ransomware with Backup and DR",
https://cloud.google.com/backup-disaster-recovery/docs/concepts/best-practices-ransomware). Compute Engine writes a
snapshot into another project with snapshots.insert, its sourceDisk naming the disk in the workload project
(https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/insert: "supports more features, such as creating
snapshots in a project different from the source disk project").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from vmbackup.model.crd_base import PROJECT_PATTERN, STORAGE_LOCATION_PATTERN, CrdModel, LabelKey, LabelValue

# Labels our own snapshots carry; keep clear of them in user labels.
RESERVED_LABEL_PREFIX = "vmbackup-"
MAX_USER_LABELS = 48  # Compute Engine allows 64 labels per resource; we add a few of our own.

# How the point in time is cut: standard (a snapshot of the disk) or instant (an instant snapshot, converted to a
# standard snapshot once the VM runs again). docs/design/instant-snapshots.md says why standard is the default.
SnapshotMethod = Literal["standard", "instant"]
# Snapshot.snapshotType of the compute v1 API. "Standard snapshots have faster data recovery times than archive
# snapshots. Archive snapshots have the longest data recovery times, but offer the most cost efficient storage"
# ("Data recovery time", https://cloud.google.com/compute/docs/disks/snapshots); docs/policies.md has the billing.
SnapshotType = Literal["STANDARD", "ARCHIVE"]
STANDARD_TYPE: SnapshotType = "STANDARD"
ARCHIVE_TYPE: SnapshotType = "ARCHIVE"
# The GFS rungs of spec.retention (retention_spec.RUNG_NAMES, which a test holds this to).
RungName = Literal["hourly", "daily", "weekly", "monthly", "yearly"]

ProjectId = Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)]


class SnapshotSettings(CrdModel):
    """Properties of every snapshot the policy creates."""

    method: SnapshotMethod = Field(
        default="standard",
        description="standard: snapshot each disk (a stopped VM waits while the snapshot is CREATING); instant: "
        "an instant snapshot of each disk (seconds), converted to a standard snapshot after the VM is started "
        "again, then deleted.",
    )
    type: SnapshotType | None = Field(
        default=None,
        description="STANDARD or ARCHIVE (Compute Engine's snapshotType): an archive snapshot costs less to keep and "
        "is slower to restore, for backups kept long and rarely read. ARCHIVE needs method standard. "
        "Default: STANDARD.",
    )
    archive_rungs: list[RungName] | None = Field(
        default=None,
        min_length=1,
        max_length=5,
        description="GFS rungs of spec.retention whose snapshots are cut as ARCHIVE, e.g. [monthly, yearly]: a "
        "scheduled run whose slot is the last of its month (of its year, ...) in spec.timezone by spec.schedule "
        "cuts ARCHIVE snapshots, as that is the snapshot the rung keeps; every other run cuts spec.snapshot.type. "
        "Each must be set in spec.retention; needs method standard.",
    )
    project: ProjectId | None = Field(
        default=None,
        description="Google Cloud project the snapshots are written to, listed, restored from and pruned in, e.g. a "
        "backup project the workload project's owners cannot delete from. The namespace must be granted it in the "
        "tenancy map (namespaces.<ns>.backupProjects). Default: spec.project.",
    )
    storage_location: Annotated[str, StringConstraints(pattern=STORAGE_LOCATION_PATTERN)] | None = Field(
        default=None,
        description="Cloud Storage multi-region (us, eu, asia) or region (e.g. us-central1) the snapshots are "
        "stored in (Compute Engine's storageLocations). Default: Compute Engine's choice, near the disk.",
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=MAX_USER_LABELS, description="Extra labels set on every snapshot."
    )

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in labels if k.startswith(RESERVED_LABEL_PREFIX))
        if reserved:
            raise ValueError(
                f"label keys starting with {RESERVED_LABEL_PREFIX!r} are reserved for the operator: "
                f"rename {', '.join(reserved)}"
            )
        return labels

    @field_validator("type")
    @classmethod
    def _archive_is_cut_by_standard(cls, value: SnapshotType | None, info: ValidationInfo) -> SnapshotType | None:
        if value == ARCHIVE_TYPE and info.data.get("method") == "instant":
            raise ValueError(
                "type ARCHIVE cannot be used with method instant: the instant method exists for a short down "
                "window and a fast restore, an archive snapshot for long, rarely read retention with the slowest "
                "restore. Set spec.snapshot.method to standard, or spec.snapshot.type to STANDARD"
            )
        return value

    @field_validator("archive_rungs")
    @classmethod
    def _archive_rungs_are_cut_by_standard(
        cls, rungs: list[RungName] | None, info: ValidationInfo
    ) -> list[RungName] | None:
        if rungs is not None and len(set(rungs)) != len(rungs):
            raise ValueError("rungs must be unique; remove the repeated one")
        if rungs is not None and info.data.get("method") == "instant":
            raise ValueError(
                "archiveRungs cannot be used with method instant (an ARCHIVE snapshot needs method standard): set "
                "spec.snapshot.method to standard, or remove spec.snapshot.archiveRungs"
            )
        return rungs

    @property
    def snapshot_type(self) -> SnapshotType:
        """The snapshotType every snapshot of the policy is created with (None in the spec: STANDARD)."""
        return self.type or STANDARD_TYPE

    @property
    def where_and_what(self) -> bool:
        """Whether the spec says anything about the snapshots' type or project (shown by describe and the DAG)."""
        return bool(self.project or self.type or self.archive_rungs)

    def kind(self) -> str:
        """The snapshots' type for people, e.g. "STANDARD, ARCHIVE for the snapshots the monthly rung keeps"."""
        if not self.archive_rungs:
            return self.snapshot_type
        verb = "rungs keep" if len(self.archive_rungs) > 1 else "rung keeps"
        return f"{self.snapshot_type}, ARCHIVE for the snapshots the {', '.join(self.archive_rungs)} {verb}"
