"""``vmbackupctl coverage``: every VM of the granted projects and zones, with the policies that protect it.

The grants come from the tenancy map the controller reads (--tenancy FILE, else VMBACKUP_TENANCY_FILE or
VMBACKUP_TENANCY, as the controller's own settings); the VMs from Compute Engine (instances.aggregatedList, the
endpoint VMBACKUP_COMPUTE_ENDPOINT as ``snapshots``); the policies from the cluster. controller/coverage.py decides,
as it does for the controller's vmbackup_unprotected_vms metric.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from controller.compute_inventory import ComputeInstanceLister, default_endpoint
from controller.coverage import Coverage, CoverageRow, Protector, coverage, granted_scopes
from controller.tenancy import TenancyConfigError, TenancyMap, parse_tenancy_map
from controller.vmbackupctl import render
from controller.vmbackupctl.errors import UsageError
from controller.vmbackupctl.kube import Policy
from controller.vmbackupctl.snapshots import compute_error
from vmbackup.model.policy import PolicyError, parse_policy

TENANCY_FILE_ENV = "VMBACKUP_TENANCY_FILE"
TENANCY_ENV = "VMBACKUP_TENANCY"
NO_MAP = (
    "no tenancy map: pass --tenancy FILE with the chart's tenancy value (the controller's ConfigMap "
    "<release>-tenancy holds it: kubectl get configmap <release>-tenancy -n <namespace> "
    "-o jsonpath='{.data.tenancy\\.yaml}'), or set VMBACKUP_TENANCY_FILE"
)


def load_map(path: str | None) -> TenancyMap:
    """The grants: --tenancy FILE, else the controller's variables; a usage error naming the fix otherwise."""
    path = path or os.environ.get(TENANCY_FILE_ENV) or None
    try:
        if path is not None:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise UsageError(f"tenancy map {path!r} cannot be read: {exc.strerror}") from None
            found = parse_tenancy_map(text, path)
        else:
            found = parse_tenancy_map(os.environ.get(TENANCY_ENV), TENANCY_ENV)
    except TenancyConfigError as exc:
        raise UsageError(str(exc)) from None
    if found is None:
        raise UsageError(NO_MAP)
    return found


def protectors_of(policies: list[Policy]) -> tuple[list[Protector], list[str]]:
    """The policies as coverage sees them, and a note for each that cannot be read (an invalid spec)."""
    found, notes = [], []
    for obj in policies:
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        try:
            policy = parse_policy(namespace, name, dict(obj.get("spec") or {}))
        except PolicyError as exc:
            notes.append(f"policy {namespace}/{name} is invalid and counted as protecting nothing: {exc}")
            continue
        reason = "suspended" if policy.spec.suspend else ("refused" if status.get("result") == "Refused" else "")
        found.append(Protector(namespace, name, policy.spec, reason))
    return found, notes


def compute_coverage(
    tenancy_map: TenancyMap, namespace: str | None, protectors: list[Protector], endpoint: str | None = None
) -> Coverage:
    """List each granted project once (namespace None: every namespace's grants) and match the policies."""
    endpoint = endpoint if endpoint is not None else default_endpoint()
    where = f"Compute Engine at {endpoint}" if endpoint else "Compute Engine"
    scopes = granted_scopes(tenancy_map, None if namespace is None else [namespace], protectors)
    lister = ComputeInstanceLister(endpoint)
    vms = []
    for scope in scopes:
        try:
            vms.extend(lister.list_instances(scope.project))
        except Exception as exc:
            raise compute_error(exc, where, scope.project, "instances", "compute.instances.list") from None
    return coverage(scopes, vms, protectors)


def _policies_cell(row: CoverageRow) -> str:
    if not row.protectors:
        return render.NONE
    return ",".join(p.ref + ("" if p.active else f" ({p.inactive_reason})") for p in row.protectors)


def coverage_table(found: Coverage, *, unprotected_only: bool) -> str:
    rows = found.unprotected() if unprotected_only else list(found.rows)
    body = [
        [r.vm.project, r.vm.zone, r.vm.name, r.vm.status, "yes" if r.protected else "NO", _policies_cell(r)]
        for r in rows
    ]
    return render.table(["PROJECT", "ZONE", "INSTANCE", "STATUS", "PROTECTED", "POLICIES"], body)


def coverage_data(found: Coverage, *, unprotected_only: bool) -> dict[str, Any]:
    """-o json/yaml: the scopes looked at, each VM with its policies, the counts per project."""
    rows = found.unprotected() if unprotected_only else list(found.rows)
    return {
        "scopes": [{"project": s.project, "zones": sorted(s.zones) if s.zones else None} for s in found.scopes],
        "instances": [
            {
                "project": r.vm.project,
                "zone": r.vm.zone,
                "instance": r.vm.name,
                "status": r.vm.status,
                "protected": r.protected,
                "policies": [
                    {"policy": p.ref, "active": p.active, "inactive": p.inactive_reason} for p in r.protectors
                ],
            }
            for r in rows
        ],
        "unprotectedByProject": found.unprotected_by_project(),
    }
