"""``vmbackupctl verify``: a restore drill on demand is an annotation on the policy (kmock is the cluster; the test
plays the controller, which starts the drill and fills status.verification: tests/controller/
test_drill_runs_with_airflow.py). No Airflow is configured at all: verify needs none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kmock
import pytest

from tests.controller.vmbackupctl.test_commands import SPEC, ago, put_policy, vmbackupctl
from tests.fixtures.kube import eventually, stored
from vmbackup.model.policy import VERIFY_NOW_ANNOTATION

VERIFICATION = {"schedule": "0 4 * * 0", "network": "drills"}
DRILLED = {**SPEC, "verification": VERIFICATION}
EARLIER = {"time": ago(days=7), "result": "Succeeded", "startedRun": "vmdrill__shop__drilled__scheduled-1"}


@pytest.fixture
def cluster(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> kmock.KubernetesEmulator:
    for variable in ("VMBACKUP_BUCKET", "VMBACKUP_AIRFLOW_URL", "VMBACKUP_COMPOSER_ENVIRONMENT"):
        monkeypatch.delenv(variable, raising=False)
    put_policy(kube, "shop", "wordpress", spec=SPEC)
    put_policy(kube, "shop", "drilled", spec=DRILLED, status={"verification": EARLIER})
    return kube


def annotations(kube: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    return dict(stored(kube, "shop", name)["metadata"].get("annotations") or {})


async def test_verify_asks_the_controller_through_the_annotation(cluster: kmock.KubernetesEmulator) -> None:
    result = await vmbackupctl("verify", "drilled", "-n", "shop")

    assert result.code == 0, result.stderr
    assert f"shop/drilled: restore drill requested (the controller starts it and removes {VERIFY_NOW_ANNOTATION})" in (
        result.stdout
    )
    assert annotations(cluster, "drilled")[VERIFY_NOW_ANNOTATION].endswith("Z")  # when it was asked


async def wait_while_the_controller_drills(
    cluster: kmock.KubernetesEmulator, verification: dict[str, Any]
) -> tuple[Any, str]:
    """Run `verify drilled --wait`; once the annotation is there, write the status the controller would."""
    cli = asyncio.create_task(vmbackupctl("verify", "drilled", "-n", "shop", "--wait", "--timeout", "120"))
    value = await eventually(lambda: annotations(cluster, "drilled").get(VERIFY_NOW_ANNOTATION), within=60)
    started = {**EARLIER, "startedRun": "vmdrill__shop__drilled__requested-0123456789abcdef"}
    # The controller removed the annotation when it started the drill; the drill report then filled the status.
    put_policy(cluster, "shop", "drilled", spec=DRILLED, status={"verification": {**started, **verification}})
    return await cli, value


async def test_verify_wait_exits_0_when_the_drill_verified_the_backup(cluster: kmock.KubernetesEmulator) -> None:
    result, _ = await wait_while_the_controller_drills(
        cluster,
        {
            "time": ago(seconds=0),
            "result": "Succeeded",
            "lastVerifiedRun": "r0123456789a",
            "bootSeconds": 31.4,
            "message": "guest ok",
        },
    )

    assert result.code == 0, result.stderr
    assert "shop/drilled: verified run r0123456789a, RUNNING after 31.4 s: guest ok" in result.stdout


async def test_verify_wait_exits_1_when_the_drill_failed(cluster: kmock.KubernetesEmulator) -> None:
    result, _ = await wait_while_the_controller_drills(
        cluster, {"time": ago(seconds=0), "result": "Failed", "message": "guest check timed out"}
    )

    assert result.code == 1
    assert "shop/drilled: restore drill failed: guest check timed out" in result.stdout


async def test_a_policy_without_verification_is_refused_naming_the_field(cluster: kmock.KubernetesEmulator) -> None:
    result = await vmbackupctl("verify", "wordpress", "-n", "shop")

    assert result.code == 1
    assert "shop/wordpress has no spec.verification" in result.stderr
    assert VERIFY_NOW_ANNOTATION not in annotations(cluster, "wordpress")


async def test_a_refused_policy_gets_no_request(cluster: kmock.KubernetesEmulator) -> None:
    put_policy(cluster, "shop", "drilled", spec=DRILLED, status={"result": "Refused"})

    result = await vmbackupctl("verify", "drilled", "-n", "shop")

    assert result.code == 1
    assert "shop/drilled is Refused, so no drill can start" in result.stderr
    assert VERIFY_NOW_ANNOTATION not in annotations(cluster, "drilled")


@pytest.mark.usefixtures("cluster")
async def test_an_unknown_policy_is_exit_3() -> None:
    result = await vmbackupctl("verify", "nope", "-n", "shop")

    assert result.code == 3
