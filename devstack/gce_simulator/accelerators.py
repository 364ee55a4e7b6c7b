"""acceleratorTypes.get, and the GPUs of an ``instances.insert``: offered in the zone, on a machine type that takes
them, on a VM that stops for host maintenance; or refused as Compute Engine refuses them.

Google's rules:
- Accelerator types exist per zone: ``acceleratorTypes.get`` reads ``projects/P/zones/Z/acceleratorTypes/NAME``
  (compute v1 reference, https://cloud.google.com/compute/docs/reference/rest/v1/acceleratorTypes/get), and each
  GPU model is offered in some zones only ("GPU regions and zones",
  https://cloud.google.com/compute/docs/gpus/gpu-regions-zones). ``AcceleratorConfig.acceleratorType``: "Full or
  partial URL of the accelerator type resource to attach to this instance. For example:
  projects/my-project/zones/us-central1-c/acceleratorTypes/nvidia-tesla-p100" (Instance reference).
- "GPUs are supported for the N1 general-purpose machine series and the accelerator-optimized (A4, A3, A2, and G2)
  machine series. For VMs that use N1 machine types, you attach the GPU to the VM during or after VM creation. For
  VMs that use accelerator-optimized machine types, the GPUs are automatically attached when you create the VM.
  GPUs can't be used with other machine series."; N1 "except the N1 shared-core (f1-micro and g1-small)" ("About
  GPUs", https://cloud.google.com/compute/docs/gpus/about-gpus).
- "VMs with attached GPUs can't be live migrated. You must set these VMs to stop for host maintenance events"
  (https://cloud.google.com/compute/docs/gpus/gpu-host-maintenance; "VMs that have GPUs attached" "can only stop
  during host maintenance events", https://cloud.google.com/compute/docs/instances/setting-instance-scheduling-options).
  ``scheduling.onHostMaintenance``: "For standard instances, the default behavior is MIGRATE. For preemptible
  instances, the default and only possible behavior is TERMINATE" (Scheduling reference).

Error bodies (Google documents none verbatim; reported):
- GPUs, attached or an accelerator-optimized type's, without ``onHostMaintenance: TERMINATE``: 400 ``badRequest``
  "Instances with guest accelerators do not support live migration." (juju/juju#20464: "Error 400: ..., badRequest";
  loft-sh/devpod#973: a g2-standard-4 insert naming no accelerator; jenkinsci/google-compute-engine-plugin#63:
  domain global).
- A type the zone does not offer: "The resource 'projects/P/zones/Z/acceleratorTypes/T' was not found" (gcloud
  users: fastai/course-v3#430, bsteuber/lizzie-gcloud-setup#6). NOT VERIFIED: 404 ``notFound``, as an insert naming
  another missing resource (an image) is answered (googlecodelabs/feedback#463).
- A GPU on a series that takes none: 400 ``badRequest`` "[nvidia-tesla-a100, n1-highmem-8] features are not
  compatible for creating instance." (skypilot-org/skypilot#212). ESTIMATE: the same answer for any GPU on a series
  that takes none, and for a GPU named on an accelerator-optimized type (which brings its own).
- ESTIMATE: a type URL naming another zone than the instance's is a 400 ``invalid`` on the field, in the shape of
  the machineType refusal (machine_types.py).

The simulator offers ``CATALOG`` in every zone except the (zone, type) pairs a test withdraws in
``world.withdrawn_accelerator_types`` (ESTIMATE: a list of names, not Google's per-zone catalog). Not modelled: a
count above ``maximumCardsPerInstance``, the GPU counts allowed per N1 shape, and the ``guestAccelerators`` an
accelerator-optimized VM reports (NOT VERIFIED whether Compute Engine lists them).
"""

from __future__ import annotations

from typing import Any

from .common import API_PREFIX, parse_ref
from .errors import ApiError
from .power import scheduling_of
from .resources import Instance
from .state import World

# name -> (description, maximumCardsPerInstance): GPU models named on "About GPUs" (ESTIMATE: the card limits).
CATALOG: dict[str, tuple[str, int]] = {
    "nvidia-tesla-t4": ("NVIDIA T4", 4),
    "nvidia-tesla-t4-vws": ("NVIDIA Tesla T4 Virtual Workstation", 4),
    "nvidia-tesla-p4": ("NVIDIA Tesla P4", 4),
    "nvidia-tesla-p100": ("NVIDIA Tesla P100", 4),
    "nvidia-tesla-v100": ("NVIDIA V100", 8),
    "nvidia-l4": ("NVIDIA L4", 8),
    "nvidia-tesla-a100": ("NVIDIA A100 40GB", 16),
    "nvidia-a100-80gb": ("NVIDIA A100 80GB", 8),
    "nvidia-h100-80gb": ("NVIDIA H100 80GB", 8),
    "nvidia-h100-mega-80gb": ("NVIDIA H100 Mega 80GB", 8),
    "nvidia-h200-141gb": ("NVIDIA H200 141GB", 8),
    "nvidia-b200": ("NVIDIA B200", 8),
}
ACCELERATOR_OPTIMIZED = ("a2", "a3", "a4", "a4x", "g2")  # their GPUs come with the machine type
N1_SHARED_CORE = ("f1-micro", "g1-small")
LIVE_MIGRATION_MESSAGE = "Instances with guest accelerators do not support live migration."


def offered(world: World, zone: str, name: str) -> bool:
    return name in CATALOG and name not in world.withdrawn_accelerator_types.get(zone, set())


def get(world: World, project: str, zone: str, name: str) -> dict[str, Any]:
    path = f"projects/{project}/zones/{zone}/acceleratorTypes/{name}"
    if not offered(world, zone, name):
        raise ApiError(404, "notFound", f"The resource '{path}' was not found")
    description, most = CATALOG[name]
    return {
        "kind": "compute#acceleratorType",
        "name": name,
        "description": description,
        "zone": f"{API_PREFIX}projects/{project}/zones/{zone}",
        "selfLink": API_PREFIX + path,
        "maximumCardsPerInstance": most,
    }


def _series(machine_type: str) -> str:
    """The machine series of a type name: custom-4-15360 is an N1 custom type."""
    first = machine_type.split("-", 1)[0]
    return "n1" if first == "custom" else first


def _takes_gpus(machine_type: str) -> bool:
    return _series(machine_type) == "n1" and machine_type not in N1_SHARED_CORE


def _attached(world: World, project: str, zone: str, body: dict[str, Any]) -> list[tuple[str, int]]:
    """The (type name, count) of each ``guestAccelerators`` entry, each offered in the instance's zone."""
    found: list[tuple[str, int]] = []
    for index, entry in enumerate(body.get("guestAccelerators") or []):
        value = str(entry.get("acceleratorType") or "")
        ref = parse_ref(value)
        if ref["zone"] not in (None, zone):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.guestAccelerators[{index}].acceleratorType': '{value}'. "
                f"Accelerator type must be in zone '{zone}'.",
            )
        name = str(ref["name"])
        if not offered(world, zone, name):
            path = f"projects/{project}/zones/{zone}/acceleratorTypes/{name}"
            raise ApiError(404, "notFound", f"The resource '{path}' was not found")
        found.append((name, int(entry.get("acceleratorCount") or 0)))
    return found


def check_insert(world: World, project: str, zone: str, body: dict[str, Any]) -> None:
    """The GPUs of an instances.insert, refused as Compute Engine refuses them (see the module's sources)."""
    machine_type = str(body.get("machineType") or "e2-medium").rsplit("/", 1)[-1]
    attached = _attached(world, project, zone, body)
    implied = _series(machine_type) in ACCELERATOR_OPTIMIZED
    if attached and (implied or not _takes_gpus(machine_type)):
        raise ApiError(
            400, "badRequest", f"[{attached[0][0]}, {machine_type}] features are not compatible for creating instance."
        )
    if (attached or implied) and _on_host_maintenance(body) != "TERMINATE":
        raise ApiError(400, "badRequest", LIVE_MIGRATION_MESSAGE)


def _on_host_maintenance(body: dict[str, Any]) -> str:
    """The insert's ``onHostMaintenance``, or its default: MIGRATE, TERMINATE for a preemptible or Spot VM."""
    scheduling = body.get("scheduling") or {}
    preemptible = scheduling.get("preemptible") or scheduling.get("provisioningModel") == "SPOT"
    return str(scheduling.get("onHostMaintenance") or ("TERMINATE" if preemptible else "MIGRATE"))


def keep(instance: Instance, body: dict[str, Any]) -> None:
    """What the new instance keeps of a checked insert: its GPUs (as URLs of its zone) and its scheduling."""
    scheduling = scheduling_of(instance)
    scheduling.update(body.get("scheduling") or {})
    scheduling["onHostMaintenance"] = _on_host_maintenance(body)
    attached = body.get("guestAccelerators") or []
    attach(
        instance, {str(e["acceleratorType"]).rsplit("/", 1)[-1]: int(e.get("acceleratorCount") or 0) for e in attached}
    )


def attach(instance: Instance, gpus: dict[str, int]) -> None:
    """Seed (or keep) GPUs on an instance: ``{type name: count}``; a VM with GPUs stops for host maintenance."""
    if not gpus:
        return
    where = f"{API_PREFIX}projects/{instance.project}/zones/{instance.zone}/acceleratorTypes"
    instance.extra["guestAccelerators"] = [
        {"acceleratorType": f"{where}/{name}", "acceleratorCount": count} for name, count in gpus.items()
    ]
    scheduling_of(instance)["onHostMaintenance"] = "TERMINATE"
