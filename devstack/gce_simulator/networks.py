"""The network interfaces of an ``instances.insert``: checked and kept as Compute Engine returns them.

Compute Engine rules followed here:
- "The subnet must be in the same region as the instance" / a VM's zone is in its subnet's region ("Subnets are
  regional resources ... A VM's network interface must connect to a subnet in the VM's region":
  https://cloud.google.com/vpc/docs/subnets). An insert naming a subnetwork of another region is a 400 ``invalid``
  on the field, as other bad field values are ("Invalid value for field 'resource.networkInterfaces[0].subnetwork'
  ...", seen in https://github.com/hashicorp/terraform-provider-google/issues/2140). ESTIMATE: the sentence after
  the field name; Google documents no exact text.
- An interface has an external IP address only when it has an access config of type ONE_TO_ONE_NAT
  (https://cloud.google.com/compute/docs/ip-addresses/configure-static-external-ip-address); without one the VM
  has none (``accessConfigs`` absent in the returned resource).
- A bare network name is the instance's project's network; a subnetwork by name is in the zone's region.
Networks and subnetworks are not modelled as resources: any name is accepted (ESTIMATE: kinder than Compute Engine,
which answers 400 for a network that does not exist; the restore plan never relies on that).
"""

from __future__ import annotations

from typing import Any

from .common import API_PREFIX, fingerprint, parse_ref
from .errors import ApiError


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def network_interfaces(project: str, zone: str, body: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """The interfaces as instances.get returns them; ApiError 400 for a subnetwork outside the zone's region."""
    nics: list[dict[str, Any]] = []
    for index, nic in enumerate(body.get("networkInterfaces") or []):
        network = parse_ref(str(nic.get("network") or "default"))
        subnet_ref = nic.get("subnetwork")
        subnet = parse_ref(str(subnet_ref)) if subnet_ref else None
        subnet_region = (subnet or {}).get("region") or region_of(zone)
        if subnet_region != region_of(zone):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.networkInterfaces[{index}].subnetwork': '{subnet_ref}'. "
                f"Subnetwork must be in the same region ({region_of(zone)}) as the instance.",
            )
        net_name = str(network["name"])
        out: dict[str, Any] = {
            "kind": "compute#networkInterface",
            "network": f"{API_PREFIX}projects/{network['project'] or project}/global/networks/{net_name}",
            "subnetwork": f"{API_PREFIX}projects/{(subnet or network)['project'] or project}/regions/{subnet_region}"
            f"/subnetworks/{(subnet or {}).get('name') or net_name}",
            "networkIP": f"10.{index + 128}.0.{seed % 250 + 2}",
            "name": f"nic{index}",
            "fingerprint": fingerprint((net_name, index)),
            "stackType": "IPV4_ONLY",
        }
        nats = [a for a in nic.get("accessConfigs") or [] if a.get("type", "ONE_TO_ONE_NAT") == "ONE_TO_ONE_NAT"]
        if nats:
            out["accessConfigs"] = [
                {
                    "kind": "compute#accessConfig",
                    "type": "ONE_TO_ONE_NAT",
                    "name": str(nats[0].get("name") or "External NAT"),
                    "natIP": f"34.{index + 100}.{seed % 250}.{seed % 200 + 1}",
                    "networkTier": "PREMIUM",
                }
            ]
        nics.append(out)
    return nics
