"""Leader election on a Lease: client-go's rules, against kmock serving Leases as an API server does.

The candidates are LeaderElectors with the real Kubernetes client (controller.lease_api) talking to kmock over
HTTP; the local API server gives Leases resourceVersions and refuses stale writes (devstack/kube_apiserver.py).
FAST timings make an expiry the test waits for short. A leader that must keep renewing gets STEADY ones, whose
renew deadline a loaded machine cannot make it miss; a follower that must see the Lease outlive its duration
runs on a SteppedClock the test moves, not on the machine's time. Deadlines only keep a broken election from
hanging the suite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from controller.leader import LeaderElector, LeaseRecord, LeaseTimings, micro_time
from controller.lease_api import KubernetesLeaseApi, LeaseConflictError
from devstack.kube_local import LocalKubernetes
from tests.fixtures.kube import eventually
from tests.fixtures.leases import lease_url, taken_by

FAST = LeaseTimings(duration=3, renew_deadline=2, retry_period=0.25)
STEADY = LeaseTimings(duration=30, renew_deadline=20, retry_period=1)
RENEWALS = 5  # renewals a follower must see without taking the Lease: five lease durations on its clock

Candidate = Callable[..., LeaderElector]  # (identity, timings=FAST, clock=time.monotonic) -> a candidate


class SteppedClock:
    """A candidate's clock that moves only when the test moves it, so that its view of expiry is the test's."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kube(lease_server: LocalKubernetes) -> LocalKubernetes:
    return lease_server


@pytest.fixture
def api(lease_api: KubernetesLeaseApi) -> KubernetesLeaseApi:
    return lease_api


@pytest.fixture
def candidate(api: KubernetesLeaseApi) -> Candidate:
    def make(identity: str, timings: LeaseTimings = FAST, clock: Callable[[], float] = time.monotonic) -> LeaderElector:
        return LeaderElector(api, identity, timings, clock=clock)

    return make


async def lease(api: KubernetesLeaseApi) -> LeaseRecord:
    found = await api.get()
    assert found is not None
    return found.record


async def renewed_since(api: KubernetesLeaseApi, renew_time: str | None) -> str:
    """Wait for the holder's next renewal: a renewTime other than ``renew_time``."""

    async def changed() -> str | None:
        now = (await lease(api)).renew_time
        return now if now != renew_time else None

    renewed: str = await eventually(changed, what="the leader renews the Lease")
    return renewed


async def test_the_first_candidate_creates_the_lease_and_leads(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    first = candidate("a")
    assert await first.try_acquire_or_renew()
    record = await lease(api)
    assert (record.holder, record.duration_seconds, record.transitions) == ("a", 3, 0)
    assert record.acquire_time == record.renew_time
    assert record.renew_time is not None
    assert first.is_leader


async def test_a_follower_never_leads_while_the_leader_renews(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    clock = SteppedClock()
    leader, follower = candidate("a", STEADY), candidate("b", FAST, clock)
    assert await leader.try_acquire_or_renew()
    renewing = asyncio.create_task(leader.hold())
    assert not await follower.try_acquire_or_renew()
    for _ in range(RENEWALS):
        # Read after the follower's last read, so the renewal awaited is one the follower has not seen yet.
        await renewed_since(api, (await lease(api)).renew_time)
        clock.now += STEADY.duration  # had the follower missed the renewal, the Lease would now be expired for it
        assert not await follower.try_acquire_or_renew()
        assert follower.holder == "a"
    assert not renewing.done()
    renewing.cancel()
    assert leader.is_leader
    assert (await lease(api)).holder == "a"


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


async def test_a_release_after_an_unobserved_renewal_of_its_own_still_releases(
    candidate: Candidate, api: KubernetesLeaseApi
) -> None:
    leader = candidate("a")
    assert await leader.try_acquire_or_renew()
    read = await api.get()
    assert read is not None
    # A renewal hold() sent before it was cancelled, landing after the elector stopped reading answers.
    await api.update(dataclasses.replace(read.record, renew_time=micro_time(datetime.now(UTC))), read)
    assert await leader.release()
    released = await lease(api)
    assert (released.holder, released.duration_seconds) == ("", 1)


async def test_a_leader_never_releases_a_lease_another_one_holds(candidate: Candidate, api: KubernetesLeaseApi) -> None:
    leader = candidate("a")
    assert await leader.try_acquire_or_renew()
    read = await api.get()
    assert read is not None
    await api.update(LeaseRecord("b", 3), read)
    assert not await leader.release()
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
    clock = SteppedClock()
    racers = [candidate("b", FAST, clock), candidate("c", FAST, clock)]
    for racer in racers:
        assert not await racer.try_acquire_or_renew()  # both observe a's record ...
    clock.now += FAST.duration  # ... which then expires for both
    won = await asyncio.gather(*(racer.try_acquire_or_renew() for racer in racers))
    assert sorted(won) == [False, True]
    assert (await lease(api)).holder == ("b" if won[0] else "c")


async def test_a_leader_stops_leading_when_another_holds_the_lease(
    candidate: Candidate, kube: LocalKubernetes, caplog: pytest.LogCaptureFixture
) -> None:
    leader = candidate("a", STEADY)
    assert await leader.try_acquire_or_renew()
    renewing = asyncio.create_task(leader.hold())
    url = lease_url(kube.url)
    # e.g. after a network partition; a 409 means the leader renewed in between: read again
    await eventually(lambda: asyncio.to_thread(taken_by, url, "intruder"), what="the Lease taken by an intruder")
    await eventually(renewing.done, what="the leader gives up")
    # Because it saw the intruder, not because its renew deadline passed.
    assert "The Lease is now held by intruder" in caplog.text
    assert "Could not renew the Lease" not in caplog.text
    assert leader.holder == "intruder"
    assert not leader.is_leader


async def test_a_leader_that_cannot_renew_stops_after_the_renew_deadline(
    candidate: Candidate, kube: LocalKubernetes
) -> None:
    leader = candidate("a")
    assert await leader.try_acquire_or_renew()
    renewing = asyncio.create_task(leader.hold())
    kube.stop()  # the API server is gone
    await eventually(renewing.done, what="the leader gives up")
