"""Two controller replicas against one Kubernetes API: exactly one acts; kill it and the other takes over.

Each replica is `python -m controller` as the chart runs it with replicaCount: 2 (kopf peering, its own
POD_ID), against kmock serving our CRDs and kopf's peering CRDs, and the Cloud Storage emulator as the bucket.
Which replica acted is read from its log (the upload line names the DAG). The takeover time is printed, not
asserted (README "High availability" has the figure); the bound below only keeps a broken takeover from
hanging the suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from google.cloud import storage

from devstack.kube_local import DEFAULT_CRDS, LocalKubernetes
from devstack.stack import wait_until
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import policy_object, policy_url
from tests.fixtures.rbac import ChartRbac, controller_requests
from tests.fixtures.tools import CHART_DIR, Helm
from vmbackup.model.policy import dag_id_for

NAMESPACE = "shop"
PEERING = "vmbackup"
LIFETIME = 15
SPEC = {"project": "shop-prod-1", "instances": [{"name": "web-1", "zone": "us-central1-a"}], "schedule": "0 2 * * *"}
TAKEOVER_BOUND = 180  # a generous failure bound on a busy 2-core machine, not the expectation


@pytest.fixture
def kube() -> Iterator[LocalKubernetes]:
    with LocalKubernetes(crd_paths=(*DEFAULT_CRDS, CHART_DIR / "crds" / "kopf-peerings.yaml")) as local:
        yield local


def post(kube: LocalKubernetes, path: str, body: dict[str, object]) -> None:
    async def send() -> None:
        async with aiohttp.ClientSession() as session, session.post(kube.url + path, json=body) as response:
            assert response.status in (200, 201), await response.text()

    asyncio.run(send())


@pytest.fixture
def replica(
    kube: LocalKubernetes, gcs_bucket: storage.Bucket, tmp_path: Path
) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes], Path]]]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig())
    post(kube, "/apis/kopf.dev/v1/clusterkopfpeerings", {"metadata": {"name": PEERING}})  # the chart creates it
    started: list[subprocess.Popen[bytes]] = []

    def start(pod: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{pod}.log"
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "POD_ID": pod,  # the chart sets it from the pod's name
            "VMBACKUP_BUCKET": gcs_bucket.name,
            "VMBACKUP_AIRFLOW_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: not needed here
            "VMBACKUP_AIRFLOW_AUTH": "none",
            "VMBACKUP_TENANCY": json.dumps({"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}),
            "VMBACKUP_PEERING": PEERING,
            "VMBACKUP_PEERING_LIFETIME": str(LIFETIME),
            "VMBACKUP_POLL_INTERVAL": "5",
            "VMBACKUP_METRICS_PORT": "0",
            "VMBACKUP_LIVENESS": "",
            "VMBACKUP_LOG_FORMAT": "plain",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "controller"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(process)
        return process, log

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def peers(kube: LocalKubernetes) -> dict[str, object]:
    """The replicas' records in the peering object (kopf keeps one per live replica in its status)."""

    async def read() -> dict[str, object]:
        url = f"{kube.url}/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return dict((await response.json()).get("status") or {})

    return asyncio.run(read())


def create_policy(kube: LocalKubernetes, name: str) -> None:
    body = policy_object(NAMESPACE, name, SPEC)
    post(kube, policy_url(NAMESPACE), body)


def uploaded(log: Path, name: str) -> bool:
    return f"{dag_id_for(NAMESPACE, name)}.py" in log.read_text(errors="replace")


def in_bucket(bucket: storage.Bucket, name: str) -> bool:
    return bucket.blob(f"dags/{dag_id_for(NAMESPACE, name)}.py").exists()


def test_one_replica_acts_and_the_other_takes_over_when_it_is_killed(
    kube: LocalKubernetes,
    replica: Callable[[str], tuple[subprocess.Popen[bytes], Path]],
    gcs_bucket: storage.Bucket,
    helm: Helm,
) -> None:
    first, first_log = replica("controller-a")
    create_policy(kube, "before")
    wait_until(lambda: in_bucket(gcs_bucket, "before"), within=120, what="the first replica acts")
    second, second_log = replica("controller-b")
    wait_until(lambda: "controller-b" in peers(kube), within=120, what="the second replica joins the peering")

    create_policy(kube, "while-both-run")
    wait_until(lambda: uploaded(first_log, "while-both-run"), within=60, what="the acting replica reconciles")
    assert not uploaded(second_log, "while-both-run")
    assert not uploaded(second_log, "before")

    first.send_signal(signal.SIGKILL)  # no goodbye in the peering: the survivor waits for the record to expire
    killed = time.monotonic()
    first.wait()
    create_policy(kube, "after-the-kill")
    wait_until(lambda: in_bucket(gcs_bucket, "after-the-kill"), within=TAKEOVER_BOUND, what="the takeover")
    takeover = time.monotonic() - killed
    print(f"takeover: {takeover:.1f} s from SIGKILL to the next policy's DAG in the bucket (lifetime {LIFETIME} s)")

    # The upload line is logged once the object is written: wait for it rather than race the log file.
    wait_until(lambda: uploaded(second_log, "after-the-kill"), within=30, what="the survivor logs its upload")
    assert not uploaded(first_log, "after-the-kill")
    assert second.poll() is None
    made = controller_requests(kube.served())
    rbac = ChartRbac.from_render(helm.template(values={"replicaCount": 2, "peering": {"name": PEERING}}))
    assert not rbac.denied(made), "the chart does not allow: " + "; ".join(map(str, rbac.denied(made)))
    peering_unused = [grant for grant in rbac.unused(made) if "kopf.dev" in grant]
    assert not peering_unused, "granted but never used: " + "; ".join(peering_unused)
