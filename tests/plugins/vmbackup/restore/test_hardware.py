"""The restored VM's GPUs, decided from the source's configuration and the new VM's machine type: an N1 VM's GPUs are
attached by name, an accelerator-optimized type brings its own, a type that cannot carry the source's GPUs is
refused naming the field, and any VM with GPUs stops for host maintenance (Compute Engine refuses it otherwise)."""

from __future__ import annotations

import pytest

from vmbackup.model.instance_config import AcceleratorConfig, InstanceConfig, SchedulingConfig
from vmbackup.restore.hardware import add_gpus
from vmbackup.restore.problems import RestoreProblemError

T4 = AcceleratorConfig(type="nvidia-tesla-t4", count=1)


def vm(machine_type: str, gpus: list[AcceleratorConfig] | None = None, restart: bool | None = None) -> InstanceConfig:
    config = InstanceConfig(
        name="infer-1",
        machine_type=machine_type,
        network_interfaces=[],
        tags=[],
        labels={},
        service_accounts=[],
        disks=[],
    )
    if gpus:
        config["guest_accelerators"] = gpus
    if restart is not None:
        config["scheduling"] = SchedulingConfig(on_host_maintenance="TERMINATE", automatic_restart=restart)
    return config


def test_an_n1_vm_gets_the_sources_gpus_and_stops_for_maintenance() -> None:
    new = add_gpus(vm("n1-standard-16"), vm("n1-standard-8", [T4], restart=False))
    assert new["guest_accelerators"] == [T4]
    assert new["scheduling"] == SchedulingConfig(on_host_maintenance="TERMINATE", automatic_restart=False)


def test_a_source_that_recorded_no_policy_restarts_after_maintenance_by_default() -> None:
    new = add_gpus(vm("n1-standard-8"), vm("n1-standard-8", [T4]))
    assert new["scheduling"]["automatic_restart"] is True


def test_an_accelerator_optimized_type_brings_its_own_gpus() -> None:
    new = add_gpus(vm("g2-standard-8"), vm("n1-standard-8", [T4], restart=True))
    assert "guest_accelerators" not in new
    assert new["scheduling"]["on_host_maintenance"] == "TERMINATE"


def test_an_accelerator_optimized_source_restored_as_such_names_no_gpu() -> None:
    listed = AcceleratorConfig(type="nvidia-tesla-a100", count=1)  # as an A2 VM may list its own
    new = add_gpus(vm("a2-highgpu-1g"), vm("a2-highgpu-1g", [listed], restart=True))
    assert ("guest_accelerators" in new, new["scheduling"]["on_host_maintenance"]) == (False, "TERMINATE")


def test_a_machine_type_that_takes_no_gpu_is_refused_naming_the_field() -> None:
    with pytest.raises(RestoreProblemError, match=r"^spec\.overrides\.machineType: machine type n2-standard-8 cannot"):
        add_gpus(vm("n2-standard-8"), vm("n1-standard-8", [T4]))


def test_an_accelerator_optimized_source_on_a_type_without_gpus_is_refused() -> None:
    with pytest.raises(RestoreProblemError, match=r"a2-highgpu-1g comes with its GPUs and n1-standard-8 has none"):
        add_gpus(vm("n1-standard-8"), vm("a2-highgpu-1g", restart=True))


def test_a_vm_without_gpus_is_left_to_compute_engines_defaults() -> None:
    new = add_gpus(vm("n2-standard-4"), vm("n2-standard-4"))
    assert ("guest_accelerators" in new, "scheduling" in new) == (False, False)
