"""`vmbackupctl restore` with placement flags: the VMRestore it creates puts the new VM in another project and zone,
on the named network; an in-place restore refuses them."""

from __future__ import annotations

import kmock

from tests.controller.vmbackupctl.test_commands import cluster, put_policy, succeeded_status, vmbackupctl  # noqa: F401 (fixture)
from tests.controller.vmbackupctl.test_restore import restore_stored, restores

PLACEMENT = (
    "--target-project",
    "shop-dr",
    "--target-zone",
    "europe-west1-b",
    "--network",
    "dr-net",
    "--subnet",
    "dr-subnet",
)


async def test_the_flags_become_the_vmrestores_target_fields(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl("restore", "wordpress", "-n", "shop", "--as", "wp-dr", *PLACEMENT)

    assert result.code == 0, result.stderr
    assert restore_stored(cluster, "wp-dr")["spec"] == {
        "policyName": "wordpress",
        "targetName": "wp-dr",
        "targetProject": "shop-dr",
        "targetZone": "europe-west1-b",
        "overrides": {"networkInterfaces": [{"network": "dr-net", "subnetwork": "dr-subnet"}]},
    }


async def test_an_in_place_restore_refuses_placement_flags(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl("restore", "wordpress", "-n", "shop", "--in-place", "--yes", *PLACEMENT)

    assert result.code == 2
    assert "an in-place restore keeps the VM where it is" in result.stderr
    assert restores(cluster) == {}
