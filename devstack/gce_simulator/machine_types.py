"""machineTypes.get, and the machine type an ``instances.insert`` names: offered in the zone, or refused.

Compute Engine offers each machine series only in some zones ("Available regions and zones",
https://cloud.google.com/compute/docs/regions-zones#available), and ``machineTypes.get`` answers 404 for a type a
zone does not offer (compute v1 reference, machineTypes.get). An insert naming such a type is a 400 ``invalid``:
"Invalid value for field 'resource.machineType': '...'. Machine type with name '...' does not exist in zone
'...'." (the message gcloud and Terraform users report; ESTIMATE: Google documents no exact text).

The simulator knows the predefined names of the common series, the accelerator-optimized ones (``a2-highgpu-1g``,
``g2-standard-4``) included (ESTIMATE: a name pattern, not the full catalog)
and offers them in every zone, except the (zone, type) pairs a test withdraws in ``world.withdrawn_machine_types``
(as a zone without that series is). Custom types (``<series>-custom-<cpus>-<MiB>``) are accepted.
"""

from __future__ import annotations

import re
from typing import Any

from .common import API_PREFIX
from .errors import ApiError
from .state import World

PREDEFINED = re.compile(
    r"^(e2-(micro|small|medium)|f1-micro|g1-small"
    r"|(e2|n1|n2|n2d|n4|c2|c2d|c3|c3d|c4|t2d|t2a|m1|m2|m3|a2|a3|g2)-(standard|highmem|highcpu|ultragpu|megagpu|"
    r"ultramem|megamem)-[0-9]+(-lssd)?"
    r"|(a2|a3|a4|a4x)-(highgpu|megagpu|ultragpu|edgegpu|maxgpu)-[0-9]+g(-nolssd)?"
    r"|([a-z0-9]+-)?custom-[0-9]+-[0-9]+(-ext)?)$"
)


def offered(world: World, zone: str, name: str) -> bool:
    return bool(PREDEFINED.match(name)) and name not in world.withdrawn_machine_types.get(zone, set())


def get(world: World, project: str, zone: str, name: str) -> dict[str, Any]:
    path = f"projects/{project}/zones/{zone}/machineTypes/{name}"
    if not offered(world, zone, name):
        raise ApiError(404, "notFound", f"The resource '{path}' was not found")
    return {"kind": "compute#machineType", "name": name, "zone": zone, "selfLink": API_PREFIX + path}


def check_insert(world: World, zone: str, body: dict[str, Any]) -> None:
    """The machine type of an instances.insert, refused as Compute Engine does when the zone has none of it."""
    value = body.get("machineType")
    if not value:  # ESTIMATE: the simulator's insert defaults it to e2-medium (instances.py), as it always has
        return
    name = str(value).rsplit("/", 1)[-1]
    if not offered(world, zone, name):
        raise ApiError(
            400,
            "invalid",
            f"Invalid value for field 'resource.machineType': '{value}'. Machine type with name '{name}' does not "
            f"exist in zone '{zone}'.",
        )
