"""What `vmbackupctl restore POLICY [--instance I] [--snapshot S] [--as NAME]` submits: one VMRestore object.

Kept apart from the CLI so the CLI stays a thin layer: it calls `restore_object(...)`, POSTs the result to
`restore_collection_path(namespace)`, and can wait on `.status.phase`. Validation happens where it always
does (the CRD, then the controller's model); this only builds the object.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from vmbackup.model.policy import API_GROUP, API_VERSION, GCE_NAME_PATTERN
from vmbackup.model.restore import IN_PLACE, KIND, PLURAL

RUN_LABEL_VALUE = re.compile(
    r"^r[0-9a-f]{11}$"
)  # vmbackup.model.identifiers.run_hash: what snapshots carry as their run


def default_restore_name(policy: str, instance: str | None, now: datetime | None = None) -> str:
    """`<instance or policy>-restore-<UTC time>`: unique per minute, a valid VM and object name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M")
    base = (instance or policy)[: 63 - len("-restore-") - len(stamp)].rstrip("-")
    name = f"{base}-restore-{stamp}"
    return name if re.fullmatch(GCE_NAME_PATTERN, name) else f"vm-{name}"[:63].rstrip("-")


def restore_object(
    namespace: str,
    policy: str,
    *,
    instance: str | None = None,
    snapshot: str | None = None,
    as_name: str | None = None,
    in_place: bool = False,
    delete_replaced: bool = False,
    placement: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The VMRestore to create. `snapshot` is a snapshot name, or a run (its vmbackup-run label value);
    `as_name` names both the VMRestore and the new VM (default: see default_restore_name). `in_place` asks for
    mode InPlace with its confirmation set: the caller has had the user confirm (`vmbackupctl restore --in-place`),
    and `as_name` then names only the VMRestore (the VM keeps its name); `delete_replaced` sets
    spec.inPlace.deleteReplacedDisks."""
    spec: dict[str, Any] = {"policyName": policy}
    if instance:
        spec["instance"] = instance
    if snapshot:
        spec["snapshotRun" if RUN_LABEL_VALUE.fullmatch(snapshot) else "snapshot"] = snapshot
    name = as_name or default_restore_name(policy, instance, now)
    if in_place:
        spec["mode"] = IN_PLACE
        spec["inPlace"] = {"confirmReplaceDisks": True, **({"deleteReplacedDisks": True} if delete_replaced else {})}
    elif as_name:
        spec["targetName"] = as_name
    spec.update(placement or {})  # placement_spec(args): where the new VM goes
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def restore_collection_path(namespace: str) -> str:
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{PLURAL}"


def placement_spec(args: Any) -> dict[str, Any]:
    """The spec fields `vmbackupctl restore`'s placement flags ask for: where the new VM goes and on which network
    (--target-project, --target-zone, --network, --subnet, --external-ip, --machine-type); {} without them."""
    spec: dict[str, Any] = {}
    if args.target_project:
        spec["targetProject"] = args.target_project
    if args.target_zone:
        spec["targetZone"] = args.target_zone
    overrides: dict[str, Any] = {}
    if args.network or args.subnet or args.external_ip:
        nic = {"network": args.network, "subnetwork": args.subnet, "externalIp": True if args.external_ip else None}
        overrides["networkInterfaces"] = [{k: v for k, v in nic.items() if v is not None}]
    if args.machine_type:
        overrides["machineType"] = args.machine_type
    if overrides:
        spec["overrides"] = overrides
    return spec
