"""`vmbackupctl restore`: one VMRestore per request, never two VMs, and a wait that ends with the restore."""

from __future__ import annotations

import asyncio

import kmock

from tests.controller.vmbackupctl.test_commands import cluster, put_policy, succeeded_status, vmbackupctl  # noqa: F401 (fixture)
from tests.fixtures.kube import RESTORES, stored

RESTORES_URL = "/apis/vmbackup.dev/v1alpha1/namespaces/shop/vmrestores"


def restores(kube: kmock.KubernetesEmulator) -> dict[str, dict]:
    return {key[-1]: obj for key, obj in kube.objects.items() if key[0] == RESTORES}


def restore_stored(kube: kmock.KubernetesEmulator, name: str) -> dict:
    return dict(kube.objects[RESTORES, "shop", name])


async def test_restore_creates_a_vmrestore_for_the_policy(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl(
        "restore", "wordpress", "-n", "shop", "--instance", "wordpress-1-vm", "--snapshot", "wp-snap-1", "--as", "wp-2"
    )

    assert result.code == 0, result.stderr
    assert restore_stored(cluster, "wp-2")["spec"] == {
        "policyName": "wordpress",
        "instance": "wordpress-1-vm",
        "snapshot": "wp-snap-1",
        "targetName": "wp-2",
    }
    assert "vmrestore shop/wp-2 created" in result.stdout


async def test_restore_of_an_unknown_policy_exits_3_and_creates_nothing(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
) -> None:
    result = await vmbackupctl("restore", "nope", "-n", "shop", "--as", "wp-2")

    assert result.code == 3
    assert restores(cluster) == {}


async def test_restoring_twice_under_one_name_creates_one_vmrestore(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    first = await vmbackupctl("restore", "wordpress", "-n", "shop", "--as", "wp-2")
    again = await vmbackupctl("restore", "wordpress", "-n", "shop", "--as", "wp-2")

    assert (first.code, again.code) == (0, 0)
    assert "already exists" in again.stdout
    assert list(restores(cluster)) == ["wp-2"]


async def test_restore_wait_exits_0_when_the_vm_is_restored(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    cli = asyncio.create_task(vmbackupctl("restore", "wordpress", "-n", "shop", "--as", "wp-2", "--wait"))

    await as_the_controller_restores(cluster, {"phase": "Succeeded", "instance": "wp-2", "snapshots": ["s-1"]})
    result = await cli

    assert result.code == 0, result.stderr
    assert "Succeeded: instance wp-2 from snapshot(s) s-1" in result.stdout


async def test_restore_wait_exits_1_when_the_restore_fails(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    cli = asyncio.create_task(vmbackupctl("restore", "wordpress", "-n", "shop", "--as", "wp-2", "--wait"))

    await as_the_controller_restores(cluster, {"phase": "Failed", "message": "instance wp-2 already exists"})
    result = await cli

    assert result.code == 1
    assert "Failed: instance wp-2 already exists" in result.stdout


async def test_restore_wait_says_what_the_restore_waits_for_and_since_when(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())
    cli = asyncio.create_task(vmbackupctl("restore", "wordpress", "-n", "shop", "--as", "wp-2", "--wait"))
    waiting = {
        "phase": "Pending",
        "waitingFor": "the restore DAG vmbackup_restore to reach Airflow",
        "waitingSince": "2026-12-07T03:00:00Z",
    }

    await as_the_controller_says(cluster, waiting)
    await as_the_controller_restores(cluster, {"phase": "Succeeded", "instance": "wp-2", "snapshots": ["s-1"]})
    result = await cli

    assert result.code == 0, result.stderr
    assert (
        "vmrestore shop/wp-2: Pending: waiting for the restore DAG vmbackup_restore to reach Airflow "
        "(since 2026-12-07T03:00:00Z)" in result.stderr
    )


async def as_the_controller_says(kube: kmock.KubernetesEmulator, status: dict) -> None:
    """Set the status, then wait until the CLI has read the restore since (it polls)."""
    from tests.fixtures.kube import eventually

    await eventually(lambda: ("shop", "wp-2") in {k[1:] for k in kube.objects if k[0] == RESTORES})
    async with kube.patch(f"{RESTORES_URL}/wp-2", json={"status": status}) as response:
        assert response.status == 200, await response.text()
    seen = reads_of_wp2(kube)
    await eventually(lambda: reads_of_wp2(kube) > seen, what="vmbackupctl read the restore again")


def reads_of_wp2(kube: kmock.KubernetesEmulator) -> int:
    return sum(1 for request in kube[kmock.method.GET] if str(request.url.path).endswith("/vmrestores/wp-2"))


async def as_the_controller_restores(kube: kmock.KubernetesEmulator, final: dict) -> None:
    from tests.fixtures.kube import eventually

    await eventually(lambda: ("shop", "wp-2") in {k[1:] for k in kube.objects if k[0] == RESTORES})
    for status in ({"phase": "CreatingDisks"}, final):
        async with kube.patch(f"{RESTORES_URL}/wp-2", json={"status": status}) as response:
            assert response.status == 200, await response.text()
    assert stored  # the shared helpers stay importable here
