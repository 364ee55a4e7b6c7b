"""The leader's slow coverage timer: list the granted projects' VMs, count those no active policy protects.

Runs as one background task of the controller, started by kopf's startup handler and cancelled by its cleanup,
so only while this replica leads (controller/replica.py starts kopf only then). Each cycle lists every granted
project once with instances.aggregatedList (controller/compute_inventory.py: one call per page, each within the
rate budget) and sets ``vmbackup_unprotected_vms{project}`` and the scan's time. A project whose listing fails
keeps its last count and its old scan time (the alert on a stale scan says so); the next cycle tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from controller.compute_inventory import InstanceLister
from controller.coverage import Coverage, Protector, Vm, coverage, granted_scopes
from controller.metrics import ControllerMetrics
from controller.status import PolicyState
from controller.tenancy import Tenancy

logger = logging.getLogger(__name__)

FIRST_SCAN_DELAY_SECONDS = 60.0


class CoverageScan:
    def __init__(
        self,
        tenancy: Tenancy,
        lister: InstanceLister,
        metrics: ControllerMetrics,
        protectors: Callable[[], Iterable[Protector]],
        *,
        interval_seconds: float,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.tenancy = tenancy
        self.lister = lister
        self.metrics = metrics
        self.protectors = protectors
        self.interval_seconds = interval_seconds
        self.namespaces = namespaces or None  # None: every namespace the map names
        self.latest: Coverage | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the timer (no map, or an interval of 0: nothing to scan)."""
        if self._task is None and self.tenancy.map is not None and self.interval_seconds > 0:
            self._task = asyncio.create_task(self._run(), name="coverage-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # Not at once: a new leader's policies are still being resumed, and a scan that saw none of them would
        # count every VM unprotected. One interval (at most FIRST_SCAN_DELAY_SECONDS) later they are known.
        await asyncio.sleep(min(self.interval_seconds, FIRST_SCAN_DELAY_SECONDS))
        while True:
            try:
                await self.scan_once()
            except Exception:  # a bug must not end the timer silently: log it, try again next cycle
                logger.exception("coverage scan failed")
            await asyncio.sleep(self.interval_seconds)

    async def scan_once(self) -> Coverage | None:
        """One cycle: every granted project listed once; the gauges of the projects listed set."""
        if self.tenancy.map is None:
            return None
        protectors = list(self.protectors())
        scopes = granted_scopes(self.tenancy.map, self.namespaces, protectors)
        vms: list[Vm] = []
        listed: set[str] = set()
        for scope in scopes:
            try:
                vms.extend(await asyncio.to_thread(self.lister.list_instances, scope.project))
            except Exception as exc:  # Compute Engine refused or is unreachable: keep the last count
                logger.warning("coverage: cannot list the instances of project %s: %s", scope.project, exc)
                continue
            listed.add(scope.project)
        found = coverage([s for s in scopes if s.project in listed], vms, protectors)
        now = time.time()
        for project, count in found.unprotected_by_project().items():
            self.metrics.unprotected_vms.labels(project).set(count)
            self.metrics.coverage_scan_time.labels(project).set(now)
        self.metrics.forget_projects_except({s.project for s in scopes})
        self.latest = found
        logger.info(
            "coverage: %d VMs in %d projects, %d unprotected", len(found.rows), len(listed), len(found.unprotected())
        )
        return found


def protectors_of(states: Iterable[PolicyState]) -> list[Protector]:
    """The controller's policies as coverage sees them: the last valid spec of each (its DAG is the one that runs).

    A refused policy's DAG was removed, and a suspended one's is paused: both are listed but protect nothing.
    """
    found = []
    for state in states:
        if state.policy is None:
            continue
        reason = "suspended" if state.suspend else ("refused" if state.outcome == "Refused" else "")
        found.append(Protector(state.namespace, state.name, state.policy.spec, reason))
    return found
