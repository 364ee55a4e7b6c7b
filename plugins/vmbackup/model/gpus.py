"""A VM's GPUs (guest accelerators) and the rules Compute Engine sets for them: what the backup record keeps of them
and what a restore must give the new VM so that it comes back with its GPUs.

- "GPUs are supported for the N1 general-purpose machine series and the accelerator-optimized (A4, A3, A2, and G2)
  machine series. For VMs that use N1 machine types, you attach the GPU to the VM during or after VM creation. For
  VMs that use accelerator-optimized machine types, the GPUs are automatically attached when you create the VM.
  GPUs can't be used with other machine series."; N1 "except the N1 shared-core (f1-micro and g1-small)" ("About
  GPUs", https://cloud.google.com/compute/docs/gpus/about-gpus). So an N1 VM's GPUs are named on its
  instances.insert (``guestAccelerators``), an accelerator-optimized VM's come with its machine type.
- "VMs with attached GPUs can't be live migrated. You must set these VMs to stop for host maintenance events. You can
  set your stopped VMs to automatically restart after the maintenance event completes."
  (https://cloud.google.com/compute/docs/gpus/gpu-host-maintenance): ``scheduling.onHostMaintenance`` TERMINATE,
  for the accelerator-optimized series too ("VMs that have GPUs attached" "can only stop during host maintenance
  events", https://cloud.google.com/compute/docs/instances/setting-instance-scheduling-options). Compute Engine's
  default is MIGRATE, so a VM with GPUs is refused unless the insert says TERMINATE. ``automaticRestart`` is the
  owner's choice, kept with the record.
- Accelerator types exist per zone: ``AcceleratorConfig.acceleratorType`` is a "Full or partial URL of the
  accelerator type resource ... projects/my-project/zones/us-central1-c/acceleratorTypes/nvidia-tesla-p100"
  (Instance reference, https://cloud.google.com/compute/docs/reference/rest/v1/instances) and each GPU model is
  offered in some zones only ("GPU regions and zones", https://cloud.google.com/compute/docs/gpus/gpu-regions-zones).
  The record keeps the type's name; a restore names it in its target project and zone.

No Airflow or google-cloud-compute import: loaded by workers, the CLI and tests.
"""

from __future__ import annotations

from collections.abc import Iterable

from vmbackup.model.instance_config import AcceleratorConfig, InstanceConfig

TERMINATE = "TERMINATE"  # scheduling.onHostMaintenance of a VM with GPUs
MIGRATE = "MIGRATE"  # Compute Engine's default for a standard VM (Scheduling reference)
ACCELERATOR_OPTIMIZED_SERIES = ("a2", "a3", "a4", "a4x", "g2")  # their GPUs come with the machine type
N1_SHARED_CORE = ("f1-micro", "g1-small")  # N1 types that take no GPU


def machine_series(machine_type: str) -> str:
    """The series of a machine type's name (or URL): n1-standard-8 -> n1; an unprefixed custom-4-15360 is N1."""
    first = machine_type.rsplit("/", 1)[-1].split("-", 1)[0]
    return "n1" if first == "custom" else first


def brings_gpus(machine_type: str) -> bool:
    """An accelerator-optimized type: its GPUs come with it, none is attached by name."""
    return machine_series(machine_type) in ACCELERATOR_OPTIMIZED_SERIES


def takes_gpus(machine_type: str) -> bool:
    """GPUs can be attached to it by name (N1, except shared-core)."""
    name = machine_type.rsplit("/", 1)[-1]
    return machine_series(name) == "n1" and name not in N1_SHARED_CORE


def has_gpus(config: InstanceConfig) -> bool:
    """The VM has GPUs, attached or its machine type's: it must stop for host maintenance."""
    return bool(config.get("guest_accelerators")) or brings_gpus(config["machine_type"])


def accelerator_type_url(project: str, zone: str, name: str) -> str:
    """The partial URL instances.insert takes for an accelerator type of a zone (types exist per zone)."""
    return f"projects/{project}/zones/{zone}/acceleratorTypes/{name}"


def gpus_text(gpus: Iterable[AcceleratorConfig]) -> str:
    """``1 x nvidia-tesla-t4, 2 x nvidia-l4``: how messages name a VM's GPUs."""
    return ", ".join(f"{g['count']} x {g['type']}" for g in gpus)
