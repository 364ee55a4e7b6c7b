"""The plumbing every CRD-shaped model shares: Compute Engine's name patterns, the camelCase base model, the string
types built on the patterns, and how a pydantic error becomes a problem that names the field and the fix.

Split out of policy.py (which holds the VMBackupPolicy spec itself); restore.py and verification.py use it too.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

# Compute Engine resource names (RFC 1035 labels), zones, projects and labels.
GCE_NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
ZONE_PATTERN = r"^[a-z]+-[a-z]+[0-9]+-[a-z]$"
PROJECT_PATTERN = r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$"
LABEL_KEY_PATTERN = r"^[a-z][-_a-z0-9]{0,62}$"
LABEL_VALUE_PATTERN = r"^[-_a-z0-9]{0,63}$"
# Where a standard or archive snapshot is stored: "one Cloud Storage multi-regional location, such as asia, or one Cloud
# Storage regional location, such as asia-south1" ("About archive and standard disk snapshots", storage location,
# https://cloud.google.com/compute/docs/disks/snapshots); the API field is Snapshot.storageLocations. A zone is none.
STORAGE_LOCATION_PATTERN = r"^(asia|eu|us|[a-z]+-[a-z]+[0-9]+)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
COMPOSER_ENVIRONMENT_PATTERN = r"^projects/[^/]+/locations/[^/]+/environments/[^/]+$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MAX_UNAVAILABLE_PERCENT_PATTERN = r"^([1-9][0-9]?|100)%$"
RPO_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"  # a duration CEL's duration() reads, in h, m and s only

GceName = Annotated[str, StringConstraints(pattern=GCE_NAME_PATTERN, max_length=63)]
Zone = Annotated[str, StringConstraints(pattern=ZONE_PATTERN, max_length=63)]
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN, max_length=63)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]
TierName = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]


class CrdModel(BaseModel):
    """CRD-shaped: camelCase on the wire, unknown fields refused (a typo must not pass silently)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, str_strip_whitespace=False
    )


class PolicyError(ValueError):
    """A policy that cannot be used, with every problem named by its field path and how to fix it."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.problems]


def problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        path = "spec"
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            message = "unknown field; check the spelling against `kubectl explain vmbackuppolicy.spec`"
        elif err["type"] == "string_pattern_mismatch":
            pattern = err["ctx"]["pattern"]
            message = f"{shown(err.get('input'))} is not {PATTERN_MEANING.get(pattern, 'valid')} ({pattern})"
        problems.append((path, message))
    return problems


PATTERN_MEANING = {
    GCE_NAME_PATTERN: "a Compute Engine name: 1-63 lowercase letters, digits or '-', starting with a letter",
    ZONE_PATTERN: "a zone name such as us-central1-c",
    PROJECT_PATTERN: "a project ID: 6-30 lowercase letters, digits or '-', starting with a letter",
    LABEL_KEY_PATTERN: "a label key: lowercase letters, digits, '-' or '_', starting with a letter",
    LABEL_VALUE_PATTERN: "a label value: up to 63 lowercase letters, digits, '-' or '_'",
    STORAGE_LOCATION_PATTERN: "a snapshot storage location: a Cloud Storage multi-region (us, eu or asia) or a region "
    "such as us-central1 (a zone such as us-central1-a is not one: use its region)",
    DNS_LABEL_PATTERN: "a DNS label: lowercase letters, digits and '-'",
    COMPOSER_ENVIRONMENT_PATTERN: "projects/PROJECT/locations/REGION/environments/NAME",
    CLOCK_PATTERN: "a time of day, HH:MM in 24 h (e.g. '01:30')",
    RPO_PATTERN: "a duration in hours, minutes and seconds such as 24h, 90m or 1h30m (no days, no sign)",
}


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
