"""`vmbackupctl restore --in-place`: says what it replaces, and creates the VMRestore only once confirmed."""

from __future__ import annotations

import asyncio
import io
import time

import kmock
import pytest
import yaml

from controller.vmbackupctl.__main__ import main
from devstack.gce_simulator import ComputeSimulator
from tests.controller.vmbackupctl.test_commands import CliResult, cluster, put_policy, succeeded_status  # noqa: F401 (fixture)
from tests.controller.vmbackupctl.test_restore import restore_stored, restores
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.tools import REPO_ROOT, CustomResourceSchema
from vmbackup.model import labels

SCHEMA = CustomResourceSchema(yaml.safe_load((REPO_ROOT / "crds" / "vmrestores.yaml").read_text()))
IN_PLACE = ("restore", "wordpress", "-n", "shop", "--in-place", "--as", "wp-back")


async def vmbackupctl_typing(typed: str, *argv: str) -> CliResult:
    """The CLI with `typed` as what the user types at its prompt."""
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, list(argv), stdout=out, stderr=err, stdin=io.StringIO(typed))
    return CliResult(code, out.getvalue(), err.getvalue())


async def test_typing_the_vm_name_creates_a_confirmed_in_place_restore(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("wordpress-1-vm\n", *IN_PLACE)

    assert result.code == 0, result.stderr
    spec = {
        "policyName": "wordpress",
        "instance": "wordpress-1-vm",
        "mode": "InPlace",
        "inPlace": {"confirmReplaceDisks": True},
    }
    obj = restore_stored(cluster, "wp-back")
    assert obj["spec"] == spec
    assert (
        SCHEMA.errors(
            {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": "wp-back"}, "spec": spec}
        )
        == []
    )


async def test_the_prompt_says_which_vm_and_disks_are_replaced(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("wordpress-1-vm\n", *IN_PLACE)

    assert "In-place restore of VM wordpress-1-vm (project demo-project, zone us-central1-c)" in result.stderr
    assert "the replaced disks are kept, labelled vmbackup-replaced-by=shop_wp-back" in result.stderr
    assert "Type the VM name (wordpress-1-vm)" in result.stderr


async def test_another_answer_creates_nothing_and_names_the_flag(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("y\n", *IN_PLACE)

    assert result.code == 2
    assert "not confirmed (got 'y'); nothing was changed" in result.stderr
    assert "--yes" in result.stderr
    assert restores(cluster) == {}


async def test_no_input_at_all_is_not_a_confirmation(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("", *IN_PLACE)

    assert result.code == 2
    assert "not confirmed (no answer)" in result.stderr
    assert restores(cluster) == {}


async def test_yes_confirms_without_a_prompt(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("", *IN_PLACE, "--yes")

    assert result.code == 0, result.stderr
    assert "Type the VM name" not in result.stderr
    assert restore_stored(cluster, "wp-back")["spec"]["inPlace"] == {"confirmReplaceDisks": True}


async def test_delete_replaced_disks_asks_for_it_in_the_vmrestore_and_says_so(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
) -> None:
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("wordpress-1-vm\n", *IN_PLACE, "--delete-replaced-disks")

    assert result.code == 0, result.stderr
    assert restore_stored(cluster, "wp-back")["spec"]["inPlace"] == {
        "confirmReplaceDisks": True,
        "deleteReplacedDisks": True,
    }
    assert "the replaced disks are deleted once the VM runs with the restored ones" in result.stderr


async def test_yes_without_in_place_is_refused(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    put_policy(cluster, "shop", "wordpress", status=succeeded_status())

    result = await vmbackupctl_typing("", "restore", "wordpress", "-n", "shop", "--yes")

    assert result.code == 2
    assert "--yes and --delete-replaced-disks are for an in-place restore" in result.stderr
    assert restores(cluster) == {}


async def test_a_policy_of_several_vms_needs_the_instance(cluster: kmock.KubernetesEmulator) -> None:  # noqa: F811
    spec = {
        "project": "demo-project",
        "instances": [{"name": "web-1", "zone": "us-central1-c"}, {"name": "web-2", "zone": "us-central1-c"}],
        "schedule": "0 2 * * *",
    }
    put_policy(cluster, "shop", "wordpress", spec=spec, status=succeeded_status())

    result = await vmbackupctl_typing("web-1\n", *IN_PLACE)

    assert result.code == 2
    assert "--instance is required with --in-place" in result.stderr
    assert restores(cluster) == {}


async def test_the_prompt_lists_the_disks_the_newest_run_replaces(
    cluster: kmock.KubernetesEmulator,  # noqa: F811
    gce_sim: ComputeSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VMBACKUP_COMPUTE_ENDPOINT", gce_sim.base_url)
    spec = {"project": GCE_PROJECT, "instances": [{"name": "db-1", "zone": "us-central1-a"}], "schedule": "0 2 * * *"}
    put_policy(cluster, "shop", "db", spec=spec, status=succeeded_status())
    now = time.time()
    for run, created in (("r00000000old", now - 86400), ("r00000000new", now - 3600)):
        for disk in ("db-1", "db-1-data"):
            run_labels = {
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                labels.POLICY_NAMESPACE: "shop",
                labels.POLICY_NAME: "db",
                labels.INSTANCE: "db-1",
                labels.RUN: run,
            }
            gce_sim.add_snapshot(
                GCE_PROJECT, "us-central1-a", disk, f"{disk}-{run}", created=created, labels=run_labels
            )

    result = await vmbackupctl_typing("db-1\n", "restore", "db", "-n", "shop", "--in-place", "--as", "db-back")

    assert result.code == 0, result.stderr
    assert "  run r00000000new (taken " in result.stderr
    assert "    disk db-1 <- snapshot db-1-r00000000new" in result.stderr
    assert "    disk db-1-data <- snapshot db-1-data-r00000000new" in result.stderr
    assert "r00000000old" not in result.stderr
