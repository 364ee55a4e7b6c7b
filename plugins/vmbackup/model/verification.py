"""spec.verification: restore drills, their schedule and the guest check. Split out of policy.py by concern."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from vmbackup.model.crd_base import CrdModel, GceName, Zone
from vmbackup.model.cron import checked_schedule


class GuestCheck(CrdModel):
    """Proof the restored guest booted: its serial console output matches a regular expression."""

    serial_port_regex: str = Field(
        min_length=1, max_length=1000, description="Regular expression searched in the serial port output."
    )
    port: int = Field(default=1, ge=1, le=4, description="Serial port (1-4).")
    timeout_seconds: int = Field(default=600, ge=30, le=7200, description="How long to wait for a match.")

    @field_validator("serial_port_regex")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc}); e.g. 'login: $'") from None
        return pattern


class Verification(CrdModel):
    """Restore drills: on their own schedule, the newest READY run is restored into a throwaway VM (no external
    IP, labelled as a drill), checked, and deleted again."""

    schedule: str = Field(max_length=100, description="Cron expression or preset of the drills (not the backups').")
    instance: GceName | None = Field(default=None, description="Instance to verify; default: the policy's only one.")
    zone: Zone | None = Field(default=None, description="Its zone, when the policy selects instances by label.")
    network: GceName = Field(default="default", description="VPC network of the drill VM (isolate it here).")
    subnetwork: GceName | None = Field(default=None, description="Subnetwork (needed for custom-mode VPCs).")
    network_tags: list[GceName] = Field(default_factory=list, max_length=64, description="Network tags of the VM.")
    machine_type: GceName | None = Field(default=None, description="Machine type; default: the source VM's.")
    boot_timeout_seconds: int = Field(default=900, ge=60, le=7200, description="Wait for disks and RUNNING.")
    guest_check: GuestCheck | None = Field(default=None, description="Optional check of the guest's console.")

    _valid_schedule = field_validator("schedule")(lambda cls, value: checked_schedule(value))
