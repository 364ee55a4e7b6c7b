"""A replica's health under the Lease: followers are live and ready, a leader is ready once its kopf runs.

Readiness is not leadership (controller/replica.py says why): these run a real LeaderElector against kmock
serving Leases (tests/fixtures/leases.py) and ask the Health endpoints over HTTP.
"""

from __future__ import annotations

import asyncio

import aiohttp

from controller.leader import LeaderElector, LeaseTimings
from controller.lease_api import KubernetesLeaseApi
from controller.replica import READINESS_PATH, Health
from tests.fixtures.gcs import free_port

# Health counts a leader's renewal and a follower's contact as recent within the lease duration: a long one, so
# that no check here can come after that window closed, however slow the machine (none of them waits for it).
TIMINGS = LeaseTimings(duration=600, renew_deadline=400, retry_period=2)


def health_of(elector: LeaderElector) -> Health:
    return Health(elector, asyncio.Event())


async def test_a_follower_that_reads_the_lease_is_live_and_ready(lease_api: KubernetesLeaseApi) -> None:
    leader = LeaderElector(lease_api, "a", TIMINGS, clock=asyncio.get_running_loop().time)
    follower = LeaderElector(lease_api, "b", TIMINGS, clock=asyncio.get_running_loop().time)
    assert await leader.try_acquire_or_renew()
    assert not await follower.try_acquire_or_renew()
    health = health_of(follower)
    assert health.live()
    assert health.ready()
    assert health.role() == "follower of a"


async def test_a_candidate_that_never_reached_the_api_server_is_not_ready(lease_api: KubernetesLeaseApi) -> None:
    health = health_of(LeaderElector(lease_api, "b", TIMINGS, clock=asyncio.get_running_loop().time))
    assert health.live()
    assert not health.ready()


async def test_a_leader_is_ready_only_once_its_controller_runs(lease_api: KubernetesLeaseApi) -> None:
    leader = LeaderElector(lease_api, "a", TIMINGS, clock=asyncio.get_running_loop().time)
    assert await leader.try_acquire_or_renew()
    health = health_of(leader)
    assert not health.ready()
    health.operator_ready.set()
    assert health.ready()
    assert health.role() == "leader"


async def test_the_endpoints_answer_over_http_with_the_role(lease_api: KubernetesLeaseApi) -> None:
    leader = LeaderElector(lease_api, "a", TIMINGS, clock=asyncio.get_running_loop().time)
    assert await leader.try_acquire_or_renew()
    health = health_of(leader)
    port = free_port()
    runner = await health.serve(f"http://127.0.0.1:{port}/healthz")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as live:
                assert (live.status, await live.text()) == (200, "leader\n")
            async with session.get(f"http://127.0.0.1:{port}{READINESS_PATH}") as ready:
                assert ready.status == 503  # kopf has not started yet
    finally:
        await runner.cleanup()
