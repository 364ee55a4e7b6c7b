"""Replicas on a Lease: only the holder ever acts; a killed leader is taken over once the Lease expires, a
stopped one hands over at once.

Each replica is `python -m controller` with the settings the chart gives it (replicaCount: 2: the Lease's name,
namespace and client-go's timings), against kmock serving Leases with resourceVersions as an API server does
(tests/fixtures/leases.py), and the Cloud Storage emulator as the bucket. Which replica acted is read from its
log (kopf's lines, the upload line that names the DAG) once the test is over, and from its `vmbackup_leader`
gauge sampled throughout. Takeover times are printed, not asserted (docs/benchmarks.md, "High availability: takeover",
has the figures); the bounds below only keep a broken election from hanging the suite. Tests that do not time
a lease expiry give the replicas STEADY_LEASE timings, so that a loaded machine cannot make the leader miss its
renew deadline (and exit) while the test relies on it leading.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import storage

from controller.replica import LOST_LEASE_EXIT_CODE
from devstack.gce_simulator import ComputeSimulator
from devstack.kube_local import LocalKubernetes
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import policy_object, policy_url
from tests.fixtures.leases import lease_url, taken_by
from tests.fixtures.rbac import ChartRbac, controller_requests
from tests.fixtures.replicas import Replica, Watch, lease_spec, start_replica
from tests.fixtures.tools import Helm, TemplateResult
from tests.fixtures.waits import wait_until
from vmbackup.model.policy import dag_id_for

NAMESPACE = "shop"
SPEC = {"project": "shop-prod-1", "instances": [{"name": "web-1", "zone": "us-central1-a"}], "schedule": "0 2 * * *"}
CHART_VALUES = {"replicaCount": 2}
BOUND = 180  # a generous failure bound on a busy 2-core machine, not the expectation
KOPF_LINE = " kopf."  # every kopf logger (kopf.objects, kopf.activities, ...) in the plain log format
SCAN_LINE = "coverage: "  # controller/coverage_scan.py logs each scan (and each project it cannot list) so
# The chart's retry period (2 s: a release is still taken at the follower's next try), three times its lease duration
# and renew deadline: the leader may go 30 s without renewing (each Lease request may take 15 s), not 10 s.
STEADY_LEASE = {"VMBACKUP_LEASE_DURATION": "45", "VMBACKUP_LEASE_RENEW_DEADLINE": "30"}

Start = Callable[..., Replica]  # (pod, extra environment variables=None) -> the started replica


@pytest.fixture
def kube(lease_server: LocalKubernetes) -> LocalKubernetes:
    return lease_server


@pytest.fixture
def chart(helm: Helm) -> TemplateResult:
    return helm.template(values=CHART_VALUES)


@pytest.fixture
def chart_env(chart: TemplateResult) -> dict[str, str]:
    """The Deployment's VMBACKUP_LEASE_* variables: the replicas elect exactly as the chart makes them."""
    (container,) = chart.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("VMBACKUP_LEASE_")}


@pytest.fixture
def replica(
    kube: LocalKubernetes, gcs_bucket: storage.Bucket, chart_env: dict[str, str], tmp_path: Path
) -> Iterator[Start]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig())
    env = {
        **chart_env,
        "KUBECONFIG": str(kubeconfig),
        "VMBACKUP_BUCKET": gcs_bucket.name,
        "VMBACKUP_AIRFLOW_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: not needed here
        "VMBACKUP_AIRFLOW_AUTH": "none",
        "VMBACKUP_TENANCY": json.dumps({"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}),
        "VMBACKUP_POLL_INTERVAL": "5",
        "VMBACKUP_COVERAGE_INTERVAL": "0",  # no Compute Engine here, unless a test gives one
    }
    started: list[Replica] = []

    def start(pod: str, extra: dict[str, str] | None = None) -> Replica:
        started.append(start_replica(pod, tmp_path, {**env, **(extra or {})}))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def create_policy(kube: LocalKubernetes, name: str) -> None:
    request = urllib.request.Request(
        kube.url + policy_url(NAMESPACE),
        data=json.dumps(policy_object(NAMESPACE, name, SPEC)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


def in_bucket(bucket: storage.Bucket, name: str) -> bool:
    return bucket.blob(f"dags/{dag_id_for(NAMESPACE, name)}.py").exists()


def uploaded(replica: Replica, name: str) -> bool:
    return f"{dag_id_for(NAMESPACE, name)}.py" in replica.log_text()


def the_lease(kube: LocalKubernetes, chart_env: dict[str, str]) -> dict[str, Any]:
    """The Lease's spec ({} while there is none or the API server does not answer)."""
    return lease_spec(kube.url, chart_env["VMBACKUP_LEASE_NAMESPACE"], chart_env["VMBACKUP_LEASE_NAME"]) or {}


def holder(kube: LocalKubernetes, chart_env: dict[str, str]) -> str:
    return str(the_lease(kube, chart_env).get("holderIdentity") or "")


def renewed_by(kube: LocalKubernetes, chart_env: dict[str, str], pod: str, after: datetime) -> bool:
    """Whether ``pod`` holds the Lease and renewed it after ``after`` (renewTime is the holder's wall clock)."""
    spec = the_lease(kube, chart_env)
    held = str(spec.get("holderIdentity") or "").startswith(f"{pod}_")
    return held and spec.get("renewTime") is not None and datetime.fromisoformat(spec["renewTime"]) > after


def leader_and_follower(start: Start, watch: Watch, extra: dict[str, str] | None = None) -> tuple[Replica, Replica]:
    """a starts first and leads; b starts once a leads and is ready as its follower."""
    first = start("controller-a", extra)
    watch.replicas.append(first)
    wait_until(lambda: first.readiness() == "leader", within=BOUND, what="the first replica leads")
    second = start("controller-b", extra)
    watch.replicas.append(second)
    wait_until(
        lambda: (second.readiness() or "").startswith("follower of controller-a"),
        within=BOUND,
        what="the second replica follows",
    )
    return first, second


@pytest.fixture
def watch() -> Iterator[Watch]:
    sampling = Watch([]).start()
    yield sampling
    sampling.stop()


def never_acted(follower: Replica, watch: Watch, *policies: str) -> None:
    """Over the follower's whole life: kopf never ran, nothing uploaded, its gauge never said leader."""
    log = follower.log_text()
    assert "Waiting for the Lease" in log
    assert "Acquired the Lease" not in log
    assert KOPF_LINE not in log, "kopf ran in the follower"
    assert not [name for name in policies if uploaded(follower, name)]
    assert not watch.leading(follower.pod)


def test_only_the_lease_holder_ever_acts(
    kube: LocalKubernetes, replica: Start, watch: Watch, gcs_bucket: storage.Bucket, chart_env: dict[str, str]
) -> None:
    leader, follower = leader_and_follower(replica, watch, STEADY_LEASE)
    following = datetime.now(UTC)  # the follower has read the Lease by now
    policies = ("web", "db", "cache")
    for name in policies:
        create_policy(kube, name)
    for name in policies:
        wait_until(lambda name=name: in_bucket(gcs_bucket, name), within=BOUND, what=f"{name}'s DAG")
        wait_until(lambda name=name: uploaded(leader, name), what=f"the leader logs {name}'s upload")
    # A follower that wrongly took over would do so once the record it first saw was a lease duration old, at its
    # next try: wait until the leader still renews after that (and a few tries more), whatever the machine's pace.
    retry = float(chart_env["VMBACKUP_LEASE_RETRY_PERIOD"])
    expired = following + timedelta(seconds=float(STEADY_LEASE["VMBACKUP_LEASE_DURATION"]) + 3 * retry)
    wait_until(
        lambda: renewed_by(kube, chart_env, leader.pod, expired),
        within=2 * BOUND,
        interval=0.5,
        what="the leader renews a lease duration after the follower followed",
    )
    watch.stop()

    assert KOPF_LINE in leader.log_text()  # the marks never_acted looks for are there when a replica acts
    assert watch.leading(leader.pod)
    never_acted(follower, watch, *policies)
    assert holder(kube, chart_env).startswith("controller-a_")
    assert follower.process.poll() is None


def test_the_chart_allows_every_request_of_leader_and_follower(
    kube: LocalKubernetes, replica: Start, watch: Watch, gcs_bucket: storage.Bucket, chart: TemplateResult
) -> None:
    leader, _ = leader_and_follower(replica, watch)
    create_policy(kube, "web")
    wait_until(lambda: uploaded(leader, "web"), within=BOUND, what="the leader uploads")
    wait_until(lambda: in_bucket(gcs_bucket, "web"), what="the DAG in the bucket")

    rbac = ChartRbac.from_render(chart)

    def lease_unused() -> list[str]:
        made = controller_requests(kube.served())
        return [grant for grant in rbac.unused(made) if "coordination.k8s.io" in grant]

    # The leader's first renewal (an update) comes one retry period after it acquired the Lease, which on a
    # fast run is after the upload: wait for it rather than assume the test outlasts it.
    try:
        wait_until(lambda: not lease_unused(), within=BOUND, interval=0.5, what="the leader renews its Lease")
    except TimeoutError:
        pytest.fail("granted but never used: " + "; ".join(lease_unused()))
    made = controller_requests(kube.served())
    assert not rbac.denied(made), "the chart does not allow: " + "; ".join(map(str, rbac.denied(made)))


def test_a_killed_leader_is_taken_over_once_the_lease_expires(
    kube: LocalKubernetes, replica: Start, watch: Watch, gcs_bucket: storage.Bucket, chart_env: dict[str, str]
) -> None:
    leader, follower = leader_and_follower(replica, watch)
    leader.process.send_signal(signal.SIGKILL)  # no release: the follower waits for the Lease to expire
    killed = time.monotonic()
    leader.process.wait()
    create_policy(kube, "after-the-kill")
    wait_until(lambda: holder(kube, chart_env).startswith("controller-b_"), within=BOUND, what="the takeover")
    acquired = time.monotonic() - killed
    wait_until(lambda: in_bucket(gcs_bucket, "after-the-kill"), within=BOUND, what="the new leader acts")
    acted = time.monotonic() - killed
    print(
        f"takeover after SIGKILL: Lease taken {acquired:.1f} s, next policy's DAG in the bucket {acted:.1f} s "
        f"(lease duration {chart_env['VMBACKUP_LEASE_DURATION']} s)"
    )
    wait_until(lambda: uploaded(follower, "after-the-kill"), what="the new leader logs its upload")
    assert not uploaded(leader, "after-the-kill")


def test_a_stopped_leader_releases_the_lease_and_hands_over_at_once(
    kube: LocalKubernetes, replica: Start, watch: Watch, gcs_bucket: storage.Bucket, chart_env: dict[str, str]
) -> None:
    # Steady timings: the leader must still lead at the SIGTERM, and the release's request may take 15 s.
    leader, _ = leader_and_follower(replica, watch, STEADY_LEASE)
    leader.process.send_signal(signal.SIGTERM)  # a rolling update or a drain
    stopped = time.monotonic()
    wait_until(lambda: holder(kube, chart_env).startswith("controller-b_"), within=BOUND, what="the handover")
    handed = time.monotonic() - stopped
    assert leader.process.wait(timeout=BOUND) == 0
    print(f"handover after SIGTERM: Lease taken {handed:.1f} s, old process gone {time.monotonic() - stopped:.1f} s")
    assert "Released the Lease" in leader.log_text()  # taken because released, not because it expired
    create_policy(kube, "after-the-handover")
    wait_until(lambda: in_bucket(gcs_bucket, "after-the-handover"), within=BOUND, what="the new leader acts")


def test_a_leader_that_loses_the_lease_exits_at_once(
    kube: LocalKubernetes, replica: Start, watch: Watch, chart_env: dict[str, str]
) -> None:
    leader = replica("controller-a")
    wait_until(lambda: leader.readiness() == "leader", within=BOUND, what="the replica leads")
    url = lease_url(kube.url, chart_env["VMBACKUP_LEASE_NAMESPACE"], chart_env["VMBACKUP_LEASE_NAME"])
    # e.g. the leader was cut off and another one took over; a 409 means the leader renewed in between: read again
    wait_until(lambda: taken_by(url, "intruder"), within=BOUND, what="the Lease taken by an intruder")
    assert leader.process.wait(timeout=BOUND) == LOST_LEASE_EXIT_CODE
    assert "Lost the Lease" in leader.log_text()


def test_only_the_leader_scans_coverage(replica: Start, watch: Watch, gce_sim: ComputeSimulator) -> None:
    coverage = {"VMBACKUP_COVERAGE_INTERVAL": "1", "VMBACKUP_COMPUTE_ENDPOINT": gce_sim.base_url}
    leader, follower = leader_and_follower(replica, watch, {**coverage, **STEADY_LEASE})
    # Three scans of the leader, a second apart: time enough for a follower that wrongly scanned to have done so.
    wait_until(lambda: leader.log_text().count(SCAN_LINE) >= 3, within=BOUND, what="three coverage scans")
    watch.stop()

    assert SCAN_LINE not in follower.log_text()
    never_acted(follower, watch)
