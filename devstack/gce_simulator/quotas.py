"""Per-minute rate quotas per quota group and project, and the concurrent operations quota.

Sources:

- "Google enforces rate quotas at a per-minute interval for each group ... For example, if a project reaches a
  quota limit at 10:00:15, the quota refills at the start of the next synchronized interval, such as 10:01:00,
  rather than refilling immediately. If your project exceeds a rate quota, you receive a 403 error with the reason
  rateLimitExceeded" and "These quotas apply on a per-project basis ... Each group is counted separately"
  ("Compute Engine rate quotas", https://cloud.google.com/compute/api-quota). So a window is aligned to the wall
  clock (``floor(now / window)``), ``Profile.rate_quota_window_seconds`` (60) long, scaled by ``time_scale``.
  ``now`` is the simulator's wall clock (scheduler.py: ``time.time()``; while a test holds the clock it stands
  still, so the test's calls fall in one window, and moves only when the test advances it).
- Groups and default limits from that page's table of global metrics: ``read_requests`` ("global *.get methods"),
  ``list_requests`` ("global *.list methods"), ``operation_read_requests`` (operations get), ``default``
  ("Queries": the global mutating methods), each 1500 requests per minute per project; and
  ``global_resource_write_requests`` ("images.delete, images.deprecate, images.insert, images.setLabels,
  snapshots.delete, snapshots.insert, snapshots.setLabels, machineImages.insert and machineImages.delete"): its
  default figure was cut off in the copy read, 1500 is an ESTIMATE. The page lists zonal and regional groups of
  its own; NOT VERIFIED: their metric names here (``zonal_write_requests``, ``regional_write_requests``) and their
  limits (1500, ESTIMATE). ``operations.wait`` is counted with the operation reads (ESTIMATE).
- Concurrent operations: "Any API request that creates, modifies, or deletes a Compute Engine resource is subject
  to a concurrent operation limit check to ensure that the total number of in-flight operations at any point of
  time does not exceed the limit" ("Compute Engine concurrent operation quotas",
  https://cloud.google.com/compute/operations-quota). The error's metadata names the ``location``: "global |
  REGION" (same page), and its ``quotaMetric`` a global or a regional concurrent operations metric: so operations
  are counted per project and location, a zonal one in its zone's region, a global one (snapshots.insert) under
  ``global``. The limit, ``Profile.concurrent_operations_limit`` per project and location, is an ESTIMATE (the
  page names the metrics, the copy read gives no figure), and so is the regional metric's name
  (``regional_concurrent_operations``). A snapshot's operation is in flight until the snapshot is READY
  (snapshots.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict

from .errors import concurrent_operations_exceeded, rate_limit_exceeded
from .profile import Profile

# group -> (quota metric, quota limit name, default requests per minute per project)
RATE_GROUPS: dict[str, tuple[str, str, int]] = {
    "read_requests": ("compute.googleapis.com/read_requests", "ReadRequestsPerMinutePerProject", 1500),
    "list_requests": ("compute.googleapis.com/list_requests", "ListRequestsPerMinutePerProject", 1500),
    "operation_read_requests": (
        "compute.googleapis.com/operation_read_requests",
        "OperationReadRequestsPerMinutePerProject",
        1500,
    ),
    "default": ("compute.googleapis.com/default", "defaultPerMinutePerProject", 1500),
    "global_resource_write_requests": (
        "compute.googleapis.com/global_resource_write_requests",
        "GlobalResourceWriteRequestsPerMinutePerProject",
        1500,
    ),
    "zonal_write_requests": (
        "compute.googleapis.com/zonal_write_requests",
        "ZonalWriteRequestsPerMinutePerProject",
        1500,
    ),
    "regional_write_requests": (
        "compute.googleapis.com/regional_write_requests",
        "RegionalWriteRequestsPerMinutePerProject",
        1500,
    ),
}

GLOBAL_RESOURCE_WRITES = {"snapshots.insert", "snapshots.delete", "snapshots.setLabels"}


def quota_group(method: str) -> str:
    """The rate quota group an API method (``instances.stop``, ``zoneOperations.wait`` ...) is counted in."""
    collection, _, verb = method.partition(".")
    if collection.endswith("Operations"):
        return "operation_read_requests"
    if verb in ("list", "aggregatedList"):
        return "list_requests"
    if verb == "get" or verb.startswith("get"):
        return "read_requests"
    if method in GLOBAL_RESOURCE_WRITES:
        return "global_resource_write_requests"
    if collection.startswith("region"):
        return "regional_write_requests"
    return "zonal_write_requests"


class RateQuotas:
    """Counts calls per (project, group) in the current window; keeps the highest count per window seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: dict[tuple[str, str], tuple[int, int]] = {}  # (project, group) -> (window index, calls)
        self._peak: dict[tuple[str, str], int] = defaultdict(int)
        self.overrides: dict[str, int] = {}  # set through the control plane; beat the profile's

    def limit(self, profile: Profile, group: str) -> int:
        if group in self.overrides:
            return self.overrides[group]
        return int(profile.rate_quota_limits.get(group, RATE_GROUPS[group][2]))

    def charge(self, profile: Profile, project: str, method: str, now: float | None = None) -> None:
        """Count one call; raise the documented 403 if the group's quota for this window is used up."""
        group = quota_group(method)
        window = max(profile.scaled(profile.rate_quota_window_seconds), 1e-6)
        index = math.floor((time.time() if now is None else now) / window)
        limit = self.limit(profile, group)
        with self._lock:
            current, calls = self._window.get((project, group), (index, 0))
            if current != index:
                calls = 0
            if calls >= limit:
                self._window[(project, group)] = (index, calls)
                metric, limit_name, _ = RATE_GROUPS[group]
                raise rate_limit_exceeded(project, metric, limit_name)
            calls += 1
            self._window[(project, group)] = (index, calls)
            self._peak[(project, group)] = max(self._peak[(project, group)], calls)

    def usage(self) -> dict[str, dict[str, int]]:
        """project -> group -> the highest number of calls admitted in one window."""
        with self._lock:
            result: dict[str, dict[str, int]] = {}
            for (project, group), peak in sorted(self._peak.items()):
                result.setdefault(project, {})[group] = peak
            return result


def check_concurrent(profile: Profile, project: str, in_flight: int, operation_type: str, location: str) -> None:
    """Refuse a new mutating call when the project already has the limit of operations in flight."""
    limit = profile.concurrent_operations_limit
    if limit is not None and in_flight >= limit:
        raise concurrent_operations_exceeded(project, operation_type, location, limit)
