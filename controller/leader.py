"""Leader election on a coordination.k8s.io/v1 Lease: client-go's algorithm (tools/leaderelection), in asyncio.

Why a Lease in front of kopf: kopf's peering pauses a replica only after it has seen the other one, so two
replicas may both act for a moment. A replica that must hold the Lease before kopf even starts never acts
while it follows.

The rules are client-go's (leaderelection.go: tryAcquireOrRenew, renew, release):

- A follower takes the Lease when its holder is empty, or when the record it observed has not changed for
  leaseDurationSeconds, measured on the follower's own clock from when it saw the change (so clock skew
  between nodes does not matter, only their rates).
- Every write carries the resourceVersion that was read: of two followers racing for an expired Lease the
  API server accepts one and answers 409 Conflict to the other.
- The leader renews every retry period and gives up once it could not renew for the renew deadline, which is
  shorter than the lease duration: it stops before anybody else may start.
- On a clean stop the leader releases the Lease (ReleaseOnCancel: empty holder, leaseDurationSeconds 1), so a
  follower takes over at its next try instead of waiting for the Lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.config import LEASE_JITTER_FACTOR

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LeaseTimings:
    """client-go's LeaseDuration, RenewDeadline and RetryPeriod, in seconds (defaults: controller.config)."""

    duration: float
    renew_deadline: float
    retry_period: float


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec (client-go's LeaderElectionRecord)."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LeaseRecord:
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


@dataclasses.dataclass(frozen=True)
class ObservedLease:
    """The Lease as the API server returned it: its record, and the metadata a write must carry back."""

    record: LeaseRecord
    metadata: Mapping[str, Any]

    @property
    def resource_version(self) -> str:
        return str(self.metadata.get("resourceVersion", ""))


class LeaseApi(Protocol):
    """Reads and writes the one Lease (controller.lease_api has the Kubernetes one)."""

    async def get(self) -> ObservedLease | None:
        """The Lease, or None when there is none; raises on any other failure."""

    async def create(self, record: LeaseRecord) -> ObservedLease:
        """Create the Lease; raises when it exists (409) or on any other failure."""

    async def update(self, record: LeaseRecord, previous: ObservedLease) -> ObservedLease:
        """Replace the Lease's spec; raises 409 when it changed since ``previous`` was read."""


def micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime (RFC 3339 with microseconds, UTC), what acquireTime and renewTime hold."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """One candidate for the Lease. ``acquire`` waits until it leads; ``hold`` returns when it stops leading."""

    def __init__(
        self,
        api: LeaseApi,
        identity: str,
        timings: LeaseTimings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.identity = identity
        self.timings = timings
        self._clock = clock
        self._observed: ObservedLease | None = None
        self._observed_at = 0.0  # our clock when the observed record last changed
        self._renewed_at: float | None = None  # our clock at our last successful write as the holder
        self.last_contact: float | None = None  # our clock at the API server's last answer

    @property
    def is_leader(self) -> bool:
        return self._observed is not None and self._observed.record.holder == self.identity

    @property
    def holder(self) -> str:
        """Who holds the Lease as far as this candidate knows ("" when nobody)."""
        return self._observed.record.holder if self._observed else ""

    def renewed_within(self, seconds: float) -> bool:
        """Whether this leader renewed recently (client-go's healthz Check for a leader that should have quit)."""
        return self._renewed_at is not None and self._clock() - self._renewed_at <= seconds

    async def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew); True when this candidate holds the Lease afterwards."""
        now = micro_time(datetime.now(UTC))
        ours = LeaseRecord(self.identity, int(self.timings.duration), now, now)
        observed = self._observed
        if observed is not None and self.is_leader and self._valid():  # fast path: renew what we last wrote
            kept = dataclasses.replace(
                ours, acquire_time=observed.record.acquire_time, transitions=observed.record.transitions
            )
            if await self._write(self.api.update(kept, observed)):
                return True
        try:
            current = await self.api.get()
        except Exception as exc:
            logger.warning("Could not read the Lease: %s", exc)
            return False
        self.last_contact = self._clock()
        if current is None:
            return await self._write(self.api.create(ours))
        if self._observed is None or current.record != self._observed.record:
            self._observe(current)
        else:
            self._observed = current  # same record, newer metadata: keep when it was first seen
        if current.record.holder and self._valid() and not self.is_leader:
            return False
        if self.is_leader:
            ours = dataclasses.replace(
                ours, acquire_time=current.record.acquire_time, transitions=current.record.transitions
            )
        else:
            ours = dataclasses.replace(ours, transitions=current.record.transitions + 1)
        return await self._write(self.api.update(ours, current))

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every retry period (with client-go's jitter) until this candidate leads; False when stopped first."""
        logger.info("Waiting for the Lease as %s", self.identity)
        reported = ""
        while not stop.is_set():
            if await self.try_acquire_or_renew():
                logger.info("Acquired the Lease as %s", self.identity)
                return True
            if self.holder != reported:
                reported = self.holder
                logger.info("The Lease is held by %s: following", reported or "nobody")
            period = self.timings.retry_period * random.uniform(1.0, LEASE_JITTER_FACTOR)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
        return False

    async def hold(self) -> None:
        """Renew every retry period; return once renewing failed for the renew deadline (leadership is lost)."""
        while True:
            await asyncio.sleep(self.timings.retry_period)
            deadline = (self._renewed_at or self._clock()) + self.timings.renew_deadline
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    logger.error("Could not renew the Lease for %ss: no longer the leader", self.timings.renew_deadline)
                    return
                try:
                    if await asyncio.wait_for(self.try_acquire_or_renew(), timeout=remaining):
                        break
                except TimeoutError:
                    continue
                if not self.is_leader and self.holder:
                    logger.error("The Lease is now held by %s: no longer the leader", self.holder)
                    return
                await asyncio.sleep(min(self.timings.retry_period, max(deadline - self._clock(), 0)))

    async def release(self) -> bool:
        """Give the Lease up at once (client-go's ReleaseOnCancel): empty holder, leaseDurationSeconds 1.

        A renewal still in flight when hold() was cancelled (its request runs on in its thread) may land after
        the record we observed, and the API server then refuses our write (409). If the Lease, read again,
        still names us, that renewal was ours: release the record it wrote.
        """
        observed = self._observed
        if observed is None or not self.is_leader:
            return True
        if not await self._write_released(observed):
            try:
                current = await self.api.get()
            except Exception as exc:
                logger.warning("Could not read the Lease: %s", exc)
                return False
            if current is None or current.record.holder != self.identity or not await self._write_released(current):
                return False
        self._renewed_at = None
        logger.info("Released the Lease")
        return True

    async def _write_released(self, observed: ObservedLease) -> bool:
        now = micro_time(datetime.now(UTC))
        released = LeaseRecord("", 1, now, now, observed.record.transitions)
        return await self._write(self.api.update(released, observed))

    async def _write(self, write: Any) -> bool:
        """Run one create or update; on success observe what we wrote (client-go's setObservedRecord)."""
        try:
            written: ObservedLease = await write
        except Exception as exc:
            logger.info("Could not write the Lease: %s", exc)
            return False
        self.last_contact = self._clock()
        self._observe(written)
        if written.record.holder == self.identity:
            self._renewed_at = self._observed_at
        return True

    def _observe(self, lease: ObservedLease) -> None:
        self._observed = lease
        self._observed_at = self._clock()

    def _valid(self) -> bool:
        """The observed record has not outlived its duration yet, on our clock (client-go's isLeaseValid)."""
        observed = self._observed
        return observed is not None and self._observed_at + observed.record.duration_seconds > self._clock()
