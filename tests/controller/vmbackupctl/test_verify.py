"""``vmbackupctl verify``: a restore drill on demand, against kmock (the cluster) and an Airflow that is down."""

from __future__ import annotations

from pathlib import Path

import kmock
import pytest

from tests.controller.vmbackupctl.test_commands import SPEC, put_policy, vmbackupctl
from tests.fixtures.gcs import free_port

VERIFICATION = {"schedule": "0 4 * * 0", "network": "drills"}


@pytest.fixture
def cluster(kube: kmock.KubernetesEmulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_policy(kube, "shop", "wordpress", spec=SPEC)
    put_policy(kube, "shop", "drilled", spec={**SPEC, "verification": VERIFICATION})
    monkeypatch.setenv("VMBACKUP_BUCKET", "composer-bucket")
    monkeypatch.setenv("VMBACKUP_AIRFLOW_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("VMBACKUP_AIRFLOW_AUTH", "none")


@pytest.mark.usefixtures("cluster")
async def test_a_policy_without_verification_is_refused_naming_the_field() -> None:
    result = await vmbackupctl("verify", "wordpress", "-n", "shop")

    assert result.code == 1
    assert "shop/wordpress has no spec.verification" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_an_unreachable_airflow_is_exit_4() -> None:
    result = await vmbackupctl("verify", "drilled", "-n", "shop", "--wait")

    assert result.code == 4
    assert "cannot reach Airflow" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_an_unknown_policy_is_exit_3() -> None:
    result = await vmbackupctl("verify", "nope", "-n", "shop")

    assert result.code == 3
