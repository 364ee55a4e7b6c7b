"""Pacing of Compute Engine calls: per project and quota group, at most a budget of calls per quota window.

Compute Engine counts calls "per-project", per quota group, in synchronized per-minute intervals: "if a project
reaches a quota limit at 10:00:15, the quota refills at the start of the next synchronized interval, such as
10:01:00" ("Compute Engine rate quotas", https://cloud.google.com/compute/api-quota). A Composer environment calls
from several processes and pods (the triggerer, each worker), so the budget is kept where they all reach: the
environment's bucket (docs/design/rate-quotas.md).

**The bucket ledger.** A process claims tokens in blocks: it writes an object named with its claimed total,
``vmbackup-rate-budget/{project}/{group}/{window}/{process}-{total}``, then lists that window's objects and sums
every other process's highest claim. Over the budget, it takes back what does not fit (writes the lower total,
deletes the higher). Each object has one writer, so no compare-and-swap is needed: gcp-storage-emulator, the
tests' bucket, ignores ``ifGenerationMatch`` (tests/plugins/vmbackup/compute/test_rate_budget.py shows it), and
with one writer per object the scheme needs only what Cloud Storage documents as strongly consistent, "read-after-
write" and "object listing" ("Cloud Storage consistency", https://cloud.google.com/storage/docs/consistency). Of two
processes claiming at once, the one that lists last sees the other's claim, since each writes before it lists; so
the claims kept never sum over the budget (a race can only make both take back, never both overrun). A block left
unused expires with its window; a process deletes its objects of earlier windows; those of a process that died
stay (a lifecycle rule on the prefix removes them).

Without a bucket, an in-process ledger counts for the process alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from vmbackup.settings import AirflowSettings

log = logging.getLogger(__name__)

PREFIX = "vmbackup-rate-budget"

# Groups and their default per-minute quota per project, from Google's "Compute Engine rate quotas" table of global
# metrics (https://cloud.google.com/compute/api-quota): read_requests ("global *.get methods"), list_requests
# ("global *.list methods"), operation_read_requests (operations get), default ("Queries", the mutating methods), each
# 1500 requests per minute; global_resource_write_requests (snapshots.insert, snapshots.delete, snapshots.setLabels,
# images.*, machineImages.*): 1500 is an ESTIMATE (the figure was cut off in the copy read). Zonal and regional
# writes: the page lists groups of their own; their names and 1500 are NOT VERIFIED (as the simulator's quotas.py).
# operations.wait is counted with the operation reads (ESTIMATE).
DEFAULT_BUDGETS: dict[str, int] = {
    "read_requests": 1500,
    "list_requests": 1500,
    "operation_read_requests": 1500,
    "default": 1500,
    "global_resource_write_requests": 1500,
    "zonal_write_requests": 1500,
    "regional_write_requests": 1500,
}

# The group of every method the hook calls; methods not listed (a later addition) get one by their verb (group_of).
METHOD_GROUPS: dict[str, str] = {
    "instances.get": "read_requests",
    "instances.getSerialPortOutput": "read_requests",
    "disks.get": "read_requests",
    "snapshots.get": "read_requests",
    "instantSnapshots.get": "read_requests",
    "regionInstantSnapshots.get": "read_requests",
    "instances.list": "list_requests",
    "disks.list": "list_requests",
    "snapshots.list": "list_requests",
    "instantSnapshots.list": "list_requests",
    "regionInstantSnapshots.list": "list_requests",
    "zoneOperations.get": "operation_read_requests",
    "zoneOperations.wait": "operation_read_requests",
    "globalOperations.get": "operation_read_requests",
    "globalOperations.wait": "operation_read_requests",
    "regionOperations.get": "operation_read_requests",
    "regionOperations.wait": "operation_read_requests",
    "snapshots.insert": "global_resource_write_requests",
    "snapshots.delete": "global_resource_write_requests",
    "snapshots.setLabels": "global_resource_write_requests",
    "instances.stop": "zonal_write_requests",
    "instances.start": "zonal_write_requests",
    "instances.setLabels": "zonal_write_requests",
    "instances.insert": "zonal_write_requests",
    "instances.delete": "zonal_write_requests",
    "instances.attachDisk": "zonal_write_requests",
    "instances.detachDisk": "zonal_write_requests",
    "disks.createSnapshot": "zonal_write_requests",
    "disks.insert": "zonal_write_requests",
    "disks.delete": "zonal_write_requests",
    "disks.setLabels": "zonal_write_requests",
    "instantSnapshots.insert": "zonal_write_requests",
    "instantSnapshots.delete": "zonal_write_requests",
    "regionInstantSnapshots.insert": "regional_write_requests",
    "regionInstantSnapshots.delete": "regional_write_requests",
}


def group_of(method: str) -> str:
    """The quota group a method's calls count in (METHOD_GROUPS, else by its collection and verb)."""
    if method in METHOD_GROUPS:
        return METHOD_GROUPS[method]
    collection, _, verb = method.partition(".")
    if collection.endswith("Operations"):
        return "operation_read_requests"
    if verb in ("list", "aggregatedList"):
        return "list_requests"
    if verb.startswith("get"):
        return "read_requests"
    return "regional_write_requests" if collection.startswith("region") else "zonal_write_requests"


class Ledger(Protocol):
    def grant(self, project: str, group: str, window: int, want: int, limit: int) -> int:
        """Up to `want` more tokens of (project, group) in `window`, never past `limit` in all; 0 when none left."""
        ...


class ProcessLedger:
    """Counts this process's calls only."""

    def __init__(self) -> None:
        self._used: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def grant(self, project: str, group: str, window: int, want: int, limit: int) -> int:
        with self._lock:
            current, used = self._used.get((project, group), (window, 0))
            used = used if current == window else 0
            granted = max(0, min(want, limit - used))
            self._used[(project, group)] = (window, used + granted)
            return granted


class BucketLedger:
    """Claims shared through a bucket, one writer per object (the module's docstring)."""

    def __init__(self, bucket: Any, process_id: str | None = None) -> None:
        self._bucket = bucket  # a google.cloud.storage Bucket, or a callable making one (on first use)
        self.process_id = process_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._claims: dict[tuple[str, str], tuple[int, int]] = {}  # (project, group) -> (window, claimed total)

    @property
    def bucket(self) -> Any:
        if callable(self._bucket):
            self._bucket = self._bucket()
        return self._bucket

    def _name(self, project: str, group: str, window: int, total: int) -> str:
        return f"{PREFIX}/{project}/{group}/{window}/{self.process_id}-{total}"

    def _others(self, project: str, group: str, window: int) -> int:
        highest: dict[str, int] = {}
        for blob in self.bucket.client.list_blobs(self.bucket, prefix=f"{PREFIX}/{project}/{group}/{window}/"):
            process, _, total = blob.name.rsplit("/", 1)[-1].rpartition("-")
            if process != self.process_id and total.isdigit():
                highest[process] = max(highest.get(process, 0), int(total))
        return sum(highest.values())

    def _delete(self, name: str) -> None:
        from google.api_core import exceptions as gexc

        with contextlib.suppress(gexc.NotFound):
            self.bucket.blob(name).delete()

    def grant(self, project: str, group: str, window: int, want: int, limit: int) -> int:
        earlier_window, mine = self._claims.get((project, group), (window, 0))
        if earlier_window != window:
            if mine:
                self._delete(self._name(project, group, earlier_window, mine))
            mine = 0
        asked = mine + want
        self.bucket.blob(self._name(project, group, window, asked)).upload_from_string(b"")
        granted = max(0, min(want, limit - self._others(project, group, window) - mine))
        kept = mine + granted
        if kept != asked:  # take back what does not fit: the lower total first, so a claim stays visible
            if kept:
                self.bucket.blob(self._name(project, group, window, kept)).upload_from_string(b"")
            self._delete(self._name(project, group, window, asked))
        if mine and kept != mine:
            self._delete(self._name(project, group, window, mine))
        self._claims[(project, group)] = (window, kept)
        return granted


@dataclass
class _Tokens:
    lock: threading.Lock = field(default_factory=threading.Lock)
    window: int = -1
    left: int = 0


class RateBudget:
    """take() before each call: returns when the call fits its group's budget in the current window."""

    def __init__(self, ledger: Ledger, budgets: dict[str, int], window_seconds: float, block: int = 10) -> None:
        self.ledger = ledger
        self.budgets = {**DEFAULT_BUDGETS, **budgets}
        self.window_seconds = window_seconds
        self.block = block
        self._tokens: dict[tuple[str, str], _Tokens] = {}
        self._lock = threading.Lock()
        self.waited_seconds = 0.0  # time calls spent waiting for a window (for logs and the benchmark)
        self._fallback = ProcessLedger()
        self.taken: Counter[tuple[str, str, int]] = Counter()
        self._ledger_down_in = -1  # the window in which the ledger last failed

    def _block_of(self, limit: int) -> int:
        """Tokens claimed at once: few enough that a block left unused does not starve the other processes."""
        return max(1, min(self.block, limit // 20))

    def take(self, project: str, method: str) -> None:
        group = group_of(method)
        limit = self.budgets.get(group, DEFAULT_BUDGETS["default"])
        with self._lock:
            tokens = self._tokens.setdefault((project, group), _Tokens())
        with tokens.lock:
            while True:
                now = time.time()
                window = int(now // self.window_seconds)
                if tokens.window != window:
                    tokens.window, tokens.left = window, 0
                if tokens.left <= 0:
                    tokens.left = self._grant(project, group, window, limit)
                if tokens.left > 0:
                    tokens.left -= 1
                    self._count(project, group, window)
                    return
                delay = (window + 1) * self.window_seconds - now + random.uniform(0, self.window_seconds * 0.05)
                log.info("%s budget of %s used up (%d a window); %s waits %.2fs", group, project, limit, method, delay)
                self.waited_seconds += delay
                time.sleep(delay)

    def _count(self, project: str, group: str, window: int) -> None:
        """Tokens taken per window (the last hour's), for logs, tests and the benchmark."""
        with self._lock:
            self.taken[(project, group, window)] += 1
            if len(self.taken) > 1000:
                horizon = window - int(3600 / self.window_seconds)
                for key in [k for k in self.taken if k[2] < horizon]:
                    del self.taken[key]

    def _grant(self, project: str, group: str, window: int, limit: int) -> int:
        if self._ledger_down_in != window:
            try:
                return self.ledger.grant(project, group, window, self._block_of(limit), limit)
            except Exception as exc:  # the bucket unreachable: pace this process alone for the window, not fail
                log.warning("rate budget ledger failed (%s); this process paces alone until the next window", exc)
                self._ledger_down_in = window
        return self._fallback.grant(project, group, window, self._block_of(limit), limit)


_BUDGETS: dict[tuple[Any, ...], RateBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(settings: AirflowSettings) -> RateBudget:
    """The process's one budget for these settings, shared by every hook (tasks, triggers, their threads)."""
    budgets = dict(settings.rate_budgets)
    key = (settings.rate_budget_bucket, tuple(sorted(budgets.items())), settings.quota_window_seconds)
    with _BUDGETS_LOCK:
        if key not in _BUDGETS:
            ledger: Ledger = ProcessLedger()
            bucket_name = settings.rate_budget_bucket
            if bucket_name:

                def bucket() -> Any:
                    from google.cloud import storage

                    return storage.Client().bucket(bucket_name)

                ledger = BucketLedger(bucket)
            _BUDGETS[key] = RateBudget(ledger, budgets, settings.quota_window_seconds)
        return _BUDGETS[key]
