"""Leader election on a Lease: client-go's rules, against kmock serving Leases as an API server does.

The candidates are LeaderElectors with the real Kubernetes client (controller.lease_api) talking to kmock over
HTTP; the local API server gives Leases resourceVersions and refuses stale writes (devstack/kube_apiserver.py).
Timings are short so that expiry fits in a test; the deadlines only keep a broken election from hanging the suite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from controller.leader import LeaderElector, LeaseRecord, LeaseTimings
from controller.lease_api import KubernetesLeaseApi, LeaseConflictError
from devstack.kube_local import LocalKubernetes
from tests.fixtures.kube import eventually

FAST = LeaseTimings(duration=3, renew_deadline=2, retry_period=0.25)

Candidate = Callable[[str], LeaderElector]


@pytest.fixture
def kube(lease_server: LocalKubernetes) -> LocalKubernetes:
    return lease_server


@pytest.fixture
def api(lease_api: KubernetesLeaseApi) -> KubernetesLeaseApi:
    return lease_api


@pytest.fixture
def candidate(api: KubernetesLeaseApi) -> Candidate:
    return lambda identity: LeaderElector(api, identity, FAST)


async def lease(api: KubernetesLeaseApi) -> LeaseRecord:
    found = await api.get()
    assert found is not None
    return found.record


async def test_the_first_candidate_creates_the_lease_and_leads(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    first = candidate("a")
    assert await first.try_acquire_or_renew()
    record = await lease(api)
    assert (record.holder, record.duration_seconds, record.transitions) == ("a", 3, 0)
    assert record.acquire_time == record.renew_time
    assert record.renew_time is not None
    assert first.is_leader


async def test_a_follower_never_leads_while_the_leader_renews(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    leader, follower = candidate("a"), candidate("b")
    assert await leader.try_acquire_or_renew()
    renewing = asyncio.create_task(leader.hold())
    first_renewal = (await lease(api)).renew_time
    until = time.monotonic() + 3 * FAST.duration  # three lease durations, well past one expiry
    while time.monotonic() < until:
        assert not await follower.try_acquire_or_renew()
        await asyncio.sleep(FAST.retry_period)
    assert not renewing.done()
    renewing.cancel()
    assert (await lease(api)).holder == "a"
    assert (await lease(api)).renew_time != first_renewal
    assert follower.holder == "a"


async def test_a_follower_takes_the_lease_once_it_expired(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    leader, follower = candidate("a"), candidate("b")
    assert await leader.try_acquire_or_renew()  # and never renews: as if killed
    started = time.monotonic()
    assert await follower.acquire(asyncio.Event())
    assert time.monotonic() - started >= FAST.duration  # measured from when the follower saw the record
    record = await lease(api)
    assert (record.holder, record.transitions) == ("b", 1)


async def test_a_released_lease_is_taken_at_the_next_try(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    leader, follower = candidate("a"), candidate("b")
    assert await leader.try_acquire_or_renew()
    assert not await follower.try_acquire_or_renew()
    assert await leader.release()
    released = await lease(api)
    assert (released.holder, released.duration_seconds) == ("", 1)
    assert await follower.try_acquire_or_renew()
    assert (await lease(api)).holder == "b"


async def test_a_write_with_a_stale_resource_version_is_refused(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    assert await candidate("a").try_acquire_or_renew()
    read = await api.get()
    assert read is not None
    await api.update(LeaseRecord("b", 3), read)  # b wins the race ...
    with pytest.raises(LeaseConflictError):
        await api.update(LeaseRecord("c", 3), read)  # ... c wrote what it read before: refused
    assert (await lease(api)).holder == "b"


async def test_of_two_followers_racing_for_an_expired_lease_one_wins(
    candidate: Candidate, api: KubernetesLeaseApi
) -> None:
    assert await candidate("a").try_acquire_or_renew()
    racers = [candidate("b"), candidate("c")]
    for racer in racers:
        assert not await racer.try_acquire_or_renew()  # both observe a's record ...
    await asyncio.sleep(FAST.duration + 0.5)  # ... which then expires for both
    won = await asyncio.gather(*(racer.try_acquire_or_renew() for racer in racers))
    assert sorted(won) == [False, True]
    assert (await lease(api)).holder == ("b" if won[0] else "c")


async def test_a_leader_stops_leading_when_another_holds_the_lease(
    candidate: Candidate, api: KubernetesLeaseApi
) -> None:
    leader = candidate("a")
    assert await leader.try_acquire_or_renew()
    renewing = asyncio.create_task(leader.hold())
    read = await api.get()
    assert read is not None
    await api.update(LeaseRecord("intruder", 3), read)  # e.g. after a network partition
    await eventually(renewing.done, within=FAST.renew_deadline + 10, what="the leader gives up")
    assert not leader.is_leader


async def test_a_leader_that_cannot_renew_stops_after_the_renew_deadline(
    candidate: Candidate, kube: LocalKubernetes
) -> None:
    leader = candidate("a")
    assert await leader.try_acquire_or_renew()
    renewing = asyncio.create_task(leader.hold())
    kube.stop()  # the API server is gone
    await eventually(renewing.done, within=FAST.renew_deadline + 20, what="the leader gives up")
