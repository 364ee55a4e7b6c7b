"""The new VM's hardware beyond its disks: its GPUs and the host maintenance policy they need, decided from the source
VM (or its backup record), and the machine type and GPU types its zone must offer, checked before any disk is made.

A restored GPU VM must come back with its GPUs (an inference VM without them is not restored), and Compute Engine
refuses a VM whose GPUs it cannot place: a type the target zone does not offer, GPUs on a machine series that takes
none, GPUs on a VM that would live-migrate (the rules and Google's pages: model/gpus.py). Each is refused here,
naming the spec field to change, rather than by instances.insert after the disks are made. Accelerator types exist
per zone, so the new VM names its GPUs' types in its own project and zone (compute/instance_conversion.py), never
the source's URLs.
"""

from __future__ import annotations

import logging

from vmbackup.compute.hook import ComputeEngineHook, resource_name
from vmbackup.model.gpus import ACCELERATOR_OPTIMIZED_SERIES, TERMINATE, brings_gpus, gpus_text, takes_gpus
from vmbackup.model.instance_config import AcceleratorConfig, InstanceConfig, SchedulingConfig
from vmbackup.model.restore import Restore
from vmbackup.restore.problems import RestoreProblemError

log = logging.getLogger(__name__)

_OPTIMIZED = ", ".join(f"{s}-*" for s in ACCELERATOR_OPTIMIZED_SERIES)


def add_gpus(new: InstanceConfig, source: InstanceConfig) -> InstanceConfig:
    """The new VM (its machine type decided) with the source's GPUs and the host maintenance policy they need.

    An N1 VM's GPUs are attached by name; an accelerator-optimized type brings its own, so none is named for it.
    A machine type that cannot carry the source's GPUs is refused: the VM would come back without them.
    """
    machine, had = new["machine_type"], source.get("guest_accelerators", [])
    source_brings = bool(source["machine_type"]) and brings_gpus(source["machine_type"])
    gpus: list[AcceleratorConfig] = []
    if brings_gpus(machine):
        if had and not source_brings:
            log.info("machine type %s brings its own GPUs: the source's %s are not attached", machine, gpus_text(had))
    elif source_brings:
        raise RestoreProblemError(
            f"spec.overrides.machineType: the source VM's machine type {source['machine_type']} comes with its GPUs "
            f"and {machine} has none; set spec.overrides.machineType to an accelerator-optimized type ({_OPTIMIZED})"
        )
    elif had and not takes_gpus(machine):
        raise RestoreProblemError(
            f"spec.overrides.machineType: machine type {machine} cannot have GPUs and the source VM had "
            f"{gpus_text(had)}; GPUs attach to N1 machine types only (n1-*, not f1-micro or g1-small): set "
            f"spec.overrides.machineType to one, or to an accelerator-optimized type ({_OPTIMIZED})"
        )
    else:
        gpus = [AcceleratorConfig(type=g["type"], count=g["count"]) for g in had]
    if gpus:
        new["guest_accelerators"] = gpus
    if gpus or brings_gpus(machine):
        restart = source["scheduling"]["automatic_restart"] if "scheduling" in source else True
        new["scheduling"] = SchedulingConfig(on_host_maintenance=TERMINATE, automatic_restart=restart)
    return new


def require_offered(restore: Restore, hook: ComputeEngineHook, new: InstanceConfig, zone: str) -> None:
    """The new VM's machine type and GPU types must be offered in its zone (not every zone has every series or GPU
    model): machineTypes.get and acceleratorTypes.get answer 404 for one it does not."""
    project, name = restore.target_project, resource_name(new["machine_type"])
    if not hook.offers_machine_type(project, zone, name):
        raise RestoreProblemError(
            f"spec.overrides.machineType: machine type {name} is not offered in zone {zone} (project "
            f"{project}); set spec.overrides.machineType to one it offers "
            f"(gcloud compute machine-types list --zones {zone}), or another spec.targetZone"
        )
    gpus = new.get("guest_accelerators", [])
    for gpu in gpus:
        if not hook.offers_accelerator_type(project, zone, gpu["type"]):
            raise RestoreProblemError(
                f"spec.targetZone: zone {zone} (project {project}) does not offer GPU {gpu['type']}, and the "
                f"restored VM needs {gpus_text(gpus)} as the source had; choose a target zone that does "
                f"(gcloud compute accelerator-types list --filter=name={gpu['type']})"
            )
