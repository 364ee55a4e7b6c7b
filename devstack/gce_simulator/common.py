"""Helpers every module of the simulator shares; it sits below all of them and imports none of them but the leaf
modules ``errors`` and ``filters``: resource links and references, timestamps, fingerprints, ids, the resource name
and label rules, and ``filter`` parsing answered as Compute Engine's 400."""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError
from .filters import FilterError, compile_filter

API_PREFIX = "https://www.googleapis.com/compute/v1/"


def rfc3339(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds")


def fingerprint(data: Any) -> str:
    digest = hashlib.sha256(repr(sorted(data.items()) if isinstance(data, dict) else data).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def new_id() -> str:
    """A resource's numeric ``id`` (uint64, as a string in JSON)."""
    return str(random.randint(10**18, 2**63 - 1))


# The prefix is lazy-optional: a partial reference projects/P/global/snapshots/S must keep its project P (a greedy
# prefix swallowed "projects/P/global/", and the reference fell back to the request's project).
_RESOURCE_REF = re.compile(
    r"(?:.*?/)??(?:projects/(?P<project>[^/]+)/)?(?:zones/(?P<zone>[^/]+)/|regions/(?P<region>[^/]+)/|global/)?"
    r"(?P<collection>disks|snapshots|instances|instantSnapshots|reservations|networks|subnetworks|acceleratorTypes)"
    r"/(?P<name>[^/?]+)$"
)


def parse_ref(ref: str) -> dict[str, str | None]:
    """Full URL or partial reference (projects/p/zones/z/disks/d, regions/r/disks/d, global/snapshots/s, a name)."""
    match = _RESOURCE_REF.match(ref)
    if not match:
        return {"project": None, "zone": None, "region": None, "collection": None, "name": ref.rsplit("/", 1)[-1]}
    return match.groupdict()


def compile_query_filter(filter_text: str | None) -> Callable[[dict[str, Any]], bool]:
    """A list call's ``filter`` as a predicate; a filter that does not parse is Compute Engine's 400."""
    try:
        return compile_filter(filter_text)
    except FilterError as exc:
        raise ApiError(400, "invalid", f"Invalid value for field 'filter': '{filter_text}'. {exc}") from exc


def required_name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not name:
        raise ApiError(400, "required", "Required field 'resource.name' not specified")
    return str(name)


def already_exists(path: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def check_name(name: str) -> None:
    """Compute Engine's resource name rule (RFC 1035), answered as its 400."""
    if not _NAME.fullmatch(name):
        raise ApiError(
            400,
            "invalid",
            f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
            "'[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?'",
        )


_LABEL_KEY = re.compile(r"[a-z][-_a-z0-9]{0,62}")
_LABEL_VALUE = re.compile(r"[-_a-z0-9]{0,63}")


def validate_labels(values: dict[str, str]) -> None:
    if len(values) > 64:
        raise ApiError(400, "invalid", "Too many labels: at most 64 are allowed")
    for key, value in values.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'labels': '{key}={value}'. Label keys and values must match "
                "[a-z][-_a-z0-9]{0,62} and [-_a-z0-9]{0,63}",
            )


def body_labels(body: dict[str, Any]) -> dict[str, str]:
    """A request body's ``labels``, as strings and validated."""
    labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
    validate_labels(labels)
    return labels
