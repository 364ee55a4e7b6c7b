"""Which VMs of the granted projects and zones a policy protects, and which none does (issue 21, "Coverage").

Pure: the controller's coverage scan (controller/coverage_scan.py) and ``vmbackupctl coverage`` give it the tenancy
map's grants, the VMs Compute Engine listed and the policies, and both read the same answer.

A policy *protects* a VM when it names it the way its runs choose VMs: ``spec.instances`` lists its name and zone,
or ``spec.selector`` searches its zone and the VM carries every one of ``matchLabels``, in ``spec.project``. Only an
active policy counts: one that is suspended, invalid or refused takes no backup, so its VMs are listed with it but
counted unprotected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from controller.tenancy import TenancyMap
from vmbackup.model.policy import PolicySpec


@dataclasses.dataclass(frozen=True)
class Vm:
    """One instance as aggregatedList returned it: where it is, its labels and its status."""

    project: str
    zone: str
    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    status: str = ""


@dataclasses.dataclass(frozen=True)
class Protector:
    """A policy as coverage sees it; ``active`` False: it would protect its VMs but takes no backup now (why)."""

    namespace: str
    name: str
    spec: PolicySpec
    inactive_reason: str = ""  # "" while active; else e.g. "suspended", "Refused"

    @property
    def active(self) -> bool:
        return not self.inactive_reason

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def protects(self, vm: Vm) -> bool:
        spec = self.spec
        if spec.project != vm.project:
            return False
        if spec.instances is not None:
            return any(i.name == vm.name and i.zone == vm.zone for i in spec.instances)
        selector = spec.selector
        return (
            selector is not None
            and vm.zone in selector.zones
            and all(vm.labels.get(key) == value for key, value in selector.match_labels.items())
        )


@dataclasses.dataclass(frozen=True)
class Scope:
    """A granted project and its zones (None: every zone)."""

    project: str
    zones: frozenset[str] | None = None

    def holds(self, vm: Vm) -> bool:
        return vm.project == self.project and (self.zones is None or vm.zone in self.zones)


def granted_scopes(
    tenancy_map: TenancyMap, namespaces: Iterable[str] | None, protectors: Iterable[Protector] = ()
) -> list[Scope]:
    """The projects (and zones) the map grants to ``namespaces`` (None: to every namespace it names).

    With ``allowAllProjects`` every project is granted, so the scopes are the projects the policies name.
    A project granted to two namespaces is one scope, with the union of their zones.
    """
    wanted = None if namespaces is None else set(namespaces)
    zones: dict[str, frozenset[str] | None] = {}

    def grant(project: str, granted: Iterable[str] | None) -> None:
        if project in zones and zones[project] is None:
            return
        zones[project] = None if granted is None else (zones.get(project) or frozenset()) | frozenset(granted)

    for namespace, namespace_grant in sorted(tenancy_map.namespaces.items()):
        if wanted is None or namespace in wanted:
            for project in namespace_grant.projects:
                grant(project.project, project.zones)
    if tenancy_map.allow_all_projects:
        for protector in protectors:
            if wanted is None or protector.namespace in wanted:
                grant(protector.spec.project, None)
    return [Scope(project, zones[project]) for project in sorted(zones)]


@dataclasses.dataclass(frozen=True)
class CoverageRow:
    vm: Vm
    protectors: tuple[Protector, ...]  # every policy that selects the VM, active or not

    @property
    def protected(self) -> bool:
        return any(p.active for p in self.protectors)


@dataclasses.dataclass(frozen=True)
class Coverage:
    scopes: tuple[Scope, ...]
    rows: tuple[CoverageRow, ...]  # sorted by project, zone, name

    def unprotected(self) -> list[CoverageRow]:
        return [row for row in self.rows if not row.protected]

    def unprotected_by_project(self) -> dict[str, int]:
        """Every scope's project, 0 included (a metric series that exists says the project was looked at)."""
        counts = {scope.project: 0 for scope in self.scopes}
        for row in self.unprotected():
            counts[row.vm.project] += 1
        return counts


def coverage(scopes: Iterable[Scope], vms: Iterable[Vm], protectors: Iterable[Protector]) -> Coverage:
    """Each VM of a granted scope with the policies selecting it; VMs outside every scope are not shown."""
    scopes = tuple(scopes)
    policies = tuple(protectors)
    rows = [
        CoverageRow(vm, tuple(p for p in policies if p.protects(vm)))
        for vm in sorted(vms, key=lambda v: (v.project, v.zone, v.name))
        if any(scope.holds(vm) for scope in scopes)
    ]
    return Coverage(scopes, tuple(rows))
