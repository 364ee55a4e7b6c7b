"""One replica under the Lease: follow until the Lease is ours, only then start kopf; exit at once on losing it.

Losing the Lease ends the process with LOST_LEASE_EXIT_CODE right away, without kopf's graceful stop (which
lets running handlers finish): the next leader may start LEASE_DURATION - RENEW_DEADLINE seconds later, and
nothing of ours may still run then. The pod restarts and follows, as client-go's users do on OnStoppedLeading.
A signal stops kopf gracefully instead, and the Lease is released afterwards (client-go's ReleaseOnCancel),
so a rolling update hands over at the next retry period.

kopf runs --standalone here: the Lease already decides who acts, and kopf's peering would only add a second,
later decision (it pauses after reacting) and delay a takeover by its own record's lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

import kopf
from aiohttp import web

from controller.config import ControllerConfig
from controller.leader import LeaderElector, LeaseTimings
from controller.lease_api import KubernetesLeaseApi
from controller.metrics import ControllerMetrics

logger = logging.getLogger(__name__)

LOST_LEASE_EXIT_CODE = 3
READINESS_PATH = "/readyz"


def replica_identity() -> str:
    """The pod's name (POD_ID, set by the chart) plus a random suffix: a restarted pod is a new candidate."""
    return f"{os.environ.get('POD_ID') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def lease_timings(config: ControllerConfig) -> LeaseTimings:
    return LeaseTimings(
        duration=config.lease_duration_seconds,
        renew_deadline=config.lease_renew_deadline_seconds,
        retry_period=config.lease_retry_period_seconds,
    )


class Health:
    """Liveness and readiness of a replica, leader or follower, on the port kopf's liveness endpoint would use.

    Live: the event loop answers, and a leader has renewed within the lease duration (client-go's healthz
    check: a leader that should have quit is restarted). Ready: a leader whose kopf is up, or a follower that
    heard from the API server within the lease duration. Readiness is not leadership: with leadership the
    PodDisruptionBudget would count only the leader as healthy and block every drain of its node.
    """

    def __init__(self, elector: LeaderElector, operator_ready: asyncio.Event) -> None:
        self.elector = elector
        self.operator_ready = operator_ready

    def role(self) -> str:
        return "leader" if self.elector.is_leader else f"follower of {self.elector.holder or 'nobody'}"

    def live(self) -> bool:
        return not self.elector.is_leader or self.elector.renewed_within(self.elector.timings.duration)

    def ready(self) -> bool:
        if self.elector.is_leader:
            return self.operator_ready.is_set() and self.live()
        contact = self.elector.last_contact
        return contact is not None and asyncio.get_running_loop().time() - contact <= self.elector.timings.duration

    async def serve(self, endpoint: str) -> web.AppRunner:
        """Serve GET <endpoint's path> (liveness) and GET /readyz on the endpoint's host and port."""
        url = urlsplit(endpoint)

        async def answer(ok: bool) -> web.Response:
            return web.Response(status=200 if ok else 503, text=self.role() + "\n")

        app = web.Application()
        app.router.add_get(url.path or "/healthz", lambda _: answer(self.live()))
        app.router.add_get(READINESS_PATH, lambda _: answer(self.ready()))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, url.hostname, url.port).start()
        return runner


async def lead_then_operate(config: ControllerConfig, kopf_options: dict[str, Any], metrics: ControllerMetrics) -> None:
    """Follow until the Lease is ours, then run kopf until a signal; release the Lease after kopf stopped."""
    if not config.lease_name:
        raise ValueError("lead_then_operate needs VMBACKUP_LEASE_NAME")
    timings = lease_timings(config)
    api = KubernetesLeaseApi.connect(config.lease_name, config.lease_namespace, timeout=timings.renew_deadline / 2)
    elector = LeaderElector(api, replica_identity(), timings, clock=asyncio.get_running_loop().time)
    stop, operator_ready = asyncio.Event(), asyncio.Event()
    health = Health(elector, operator_ready)
    runner = await health.serve(config.liveness_endpoint) if config.liveness_endpoint else None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # while following; kopf installs its own once it runs
    metrics.leader.set(0)
    try:
        if not await elector.acquire(stop):
            return  # stopped while following: nothing to hand over
        metrics.leader.set(1)
        # Renewing starts before kopf: on exit kopf waits 5 s for every task born while it ran.
        holding = asyncio.create_task(elector.hold(), name="lease renewal")
        forwarding = asyncio.create_task(forward_early_signal(stop, operator_ready), name="early signal")
        # No stop_flag: kopf stops on SIGTERM/SIGINT itself, and a stop flag it never sees set would be a task
        # it waits 5 s for on exit (its "stop-flag waiter"), delaying the release.
        operator = asyncio.create_task(kopf.operator(ready_flag=operator_ready, **kopf_options))
        done, _ = await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
        if operator not in done:
            exit_at_once(metrics)
        holding.cancel()
        forwarding.cancel()
        await elector.release()
        metrics.leader.set(0)
        operator.result()  # kopf's own failure, if it failed
    finally:
        if runner is not None:
            await runner.cleanup()


async def forward_early_signal(stop: asyncio.Event, operator_ready: asyncio.Event) -> None:
    """A signal that came before kopf installed its own handlers set only our flag: hand it to kopf now."""
    await operator_ready.wait()
    if stop.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


def exit_at_once(metrics: ControllerMetrics) -> None:
    """Stop acting now: no graceful stop, no cleanup handler; the pod restarts and follows."""
    metrics.leader.set(0)
    logger.critical("Lost the Lease: exiting at once (code %d) so that nothing of ours runs on", LOST_LEASE_EXIT_CODE)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(LOST_LEASE_EXIT_CODE)
