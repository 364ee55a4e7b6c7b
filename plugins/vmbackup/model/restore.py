"""The VMRestore model: bring a VM back from a policy's snapshots, shared by the controller and the restore DAG.

As with the policy, the controller validates the custom resource's spec with this model, combines it
with the policy it names (project, instance list) into a `Restore`, and renders that as JSON data into
the restore DAG; the DAG's factory parses it again with the same model. Field names are the CRD's
(camelCase). No Airflow, no Kubernetes imports: this loads in the controller, in workers and in tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from vmbackup.model.crd_base import problems_from
from vmbackup.model.policy import (
    DNS_LABEL_PATTERN,
    GCE_NAME_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_USER_LABELS,
    PROJECT_PATTERN,
    RESERVED_LABEL_PREFIX,
    BackupPolicy,
    GceName,
    LabelKey,
    LabelValue,
    PolicyError,
    WaitMode,
    Zone,
)

KIND = "VMRestore"
PLURAL = "vmrestores"
SINGULAR = "vmrestore"

# Label on every disk and instance a restore creates: which VMRestore made it (adoption, cleanup, idempotency).
RESTORE_LABEL = "vmbackup-restore"

# A network (or subnetwork) given by name, or as a (partial) resource URL.
NETWORK_REF_PATTERN = r"^([a-z]([-a-z0-9]{0,61}[a-z0-9])?|(https://www\.googleapis\.com/compute/v1/)?projects/[a-z][-a-z0-9.:]{3,62}/(global/networks|regions/[a-z]+-[a-z]+[0-9]+/subnetworks)/[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$"
SERVICE_ACCOUNT_PATTERN = r"^(default|[a-z][-a-z0-9]{4,28}[a-z0-9]@[a-z0-9][-a-z0-9.]{0,100}\.gserviceaccount\.com|[0-9]{6,20}-compute@developer\.gserviceaccount\.com)$"
SCOPE_PATTERN = r"^https://www\.googleapis\.com/auth/[a-z][-a-z0-9._/]{0,100}$"
RUN_LABEL_PATTERN = LABEL_VALUE_PATTERN

Phase = Literal["Pending", "CreatingDisks", "CreatingInstance", "ReplacingDisks", "Succeeded", "Failed"]
PHASES: tuple[str, ...] = ("Pending", "CreatingDisks", "CreatingInstance", "ReplacingDisks", "Succeeded", "Failed")
# NewInstance: a new VM from the snapshots (the source is only read). InPlace: the source VM itself gets disks
# made from the snapshots (stopped, disks swapped, started again), keeping its name, IP, metadata and tags.
RestoreMode = Literal["NewInstance", "InPlace"]
IN_PLACE: RestoreMode = "InPlace"
CONFIRM_FIELD = "spec.inPlace.confirmReplaceDisks"
TERMINAL_PHASES = ("Succeeded", "Failed")

NetworkRef = Annotated[str, StringConstraints(pattern=NETWORK_REF_PATTERN, max_length=300)]
MachineType = Annotated[str, StringConstraints(pattern=GCE_NAME_PATTERN, max_length=63)]


class _Model(BaseModel):
    """CRD-shaped: camelCase on the wire, unknown fields refused (a typo must not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ServiceAccountOverride(_Model):
    """The service account of the new VM, instead of the source VM's."""

    email: Annotated[str, StringConstraints(pattern=SERVICE_ACCOUNT_PATTERN, max_length=200)] = Field(
        description="Service account email, or 'default' for the project's Compute Engine default account."
    )
    scopes: list[Annotated[str, StringConstraints(pattern=SCOPE_PATTERN, max_length=160)]] = Field(
        default_factory=lambda: ["https://www.googleapis.com/auth/cloud-platform"],
        max_length=32,
        description="OAuth scopes; default: cloud-platform (access is then governed by IAM roles).",
    )


class NetworkInterfaceOverride(_Model):
    """One network interface of the new VM (without an external IP address unless externalIp is true)."""

    network: NetworkRef | None = Field(default=None, description="VPC network name or URL; default: 'default'.")
    subnetwork: NetworkRef | None = Field(
        default=None, description="Subnetwork name or URL (in the target zone's region); needed for custom-mode VPCs."
    )
    external_ip: StrictBool = Field(default=False, description="Give the interface an ephemeral external IP address.")


class Overrides(_Model):
    """What the new VM takes from here instead of copying it from the source VM."""

    machine_type: MachineType | None = Field(default=None, description="Machine type, e.g. e2-medium.")
    network_tags: list[GceName] | None = Field(default=None, max_length=64, description="Network tags (replace).")
    labels: dict[LabelKey, LabelValue] | None = Field(
        default=None, max_length=MAX_USER_LABELS, description="Labels (replace the source VM's labels)."
    )
    service_account: ServiceAccountOverride | None = Field(default=None, description="Service account and scopes.")
    network_interfaces: list[NetworkInterfaceOverride] | None = Field(
        default=None, min_length=1, max_length=8, description="Network interfaces (replace the source VM's)."
    )
    boot_disk: GceName | None = Field(
        default=None,
        description="Which backed-up source disk is the boot disk; needed only when the source VM no longer exists "
        "and its snapshots cover several disks.",
    )

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        reserved = sorted(k for k in labels or {} if k.startswith(RESERVED_LABEL_PREFIX))
        if reserved:
            raise ValueError(
                f"label keys starting with {RESERVED_LABEL_PREFIX!r} are reserved for the operator: "
                f"rename {', '.join(reserved)}"
            )
        return labels

    @field_validator("network_tags")
    @classmethod
    def _unique_tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is not None and len(set(tags)) != len(tags):
            raise ValueError("network tags must be unique; remove the repeated tag")
        return tags


class RestoreTimeouts(_Model):
    """How long each wait may take before the restore fails (and cleans up)."""

    disks_seconds: int = Field(default=3600, ge=30, le=86400, description="Wait for the disks to be created.")
    instance_seconds: int = Field(default=900, ge=30, le=86400, description="Wait for the instance to be created.")


class InPlaceSpec(_Model):
    """An InPlace restore: what the user confirms, and what becomes of the disks it replaces."""

    confirm_replace_disks: StrictBool = Field(
        default=False,
        description="Must be true for mode InPlace: the source VM is stopped and its disks are replaced by disks "
        "made from the snapshots (it is started again afterwards).",
    )
    delete_replaced_disks: StrictBool = Field(
        default=False,
        description="Delete the replaced (original) disks once the restore succeeded. Default: keep them, labelled "
        "vmbackup-replaced-by=<namespace>_<restore>.",
    )
    swap_seconds: int = Field(
        default=900,
        ge=60,
        le=86400,
        description="Wait for the VM to stop, for the disks to be swapped and for it to be RUNNING again.",
    )


class RestoreSpec(_Model):
    """The spec of a VMRestore."""

    mode: RestoreMode = Field(
        default="NewInstance",
        description="NewInstance: create a new VM from the snapshots. InPlace: replace the source VM's disks with "
        "disks made from the snapshots, keeping the VM (name, internal IP, metadata, tags); needs spec.inPlace.",
    )
    in_place: InPlaceSpec | None = Field(default=None, description="Settings of mode InPlace.")

    policy_name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)] = Field(
        description="The VMBackupPolicy (same namespace) whose snapshots to restore from."
    )
    instance: GceName | None = Field(
        default=None,
        description="The backed-up (source) instance. Optional when the policy lists exactly one instance.",
    )
    zone: Zone | None = Field(
        default=None, description="Zone of the source instance. Default: from the policy, or from the snapshots."
    )
    snapshot_run: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][-_a-z0-9]{0,62}$")] | None = Field(
        default=None,
        description="The backup run to restore (its vmbackup-run label value). Default: the newest run whose "
        "snapshots of the instance are all READY.",
    )
    snapshot: GceName | None = Field(
        default=None,
        description="A snapshot of the run to restore; every disk's snapshot is taken from that same run.",
    )
    target_name: GceName | None = Field(
        default=None, description="Name of the new instance. Default: the VMRestore's name."
    )
    target_zone: Zone | None = Field(
        default=None,
        description="Zone of the new instance, in any region (a snapshot can be restored in every region). Default: "
        "the source zone.",
    )
    target_project: Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)] | None = Field(
        default=None,
        description="Project of the new instance and its disks, e.g. a disaster-recovery project; the tenancy map "
        "must grant it to the namespace (as for spec.project of a policy), and the controller's service account "
        "needs compute.snapshots.useReadOnly on the policy's project. Needs spec.overrides.networkInterfaces (the "
        "source's network is another project's). Default: the policy's project.",
    )
    overrides: Overrides = Field(default_factory=Overrides, description="What not to copy from the source VM.")
    keep_disks_on_failure: StrictBool = Field(
        default=False, description="Keep the disks created so far when the restore fails (default: delete them)."
    )
    timeouts: RestoreTimeouts = Field(default_factory=RestoreTimeouts, description="Step timeouts.")

    @model_validator(mode="after")
    def _one_snapshot_choice(self) -> RestoreSpec:
        if self.snapshot_run is not None and self.snapshot is not None:
            raise ValueError("set snapshotRun or snapshot, not both (a snapshot names its run)")
        return self


class Restore(_Model):
    """A validated restore with everything the DAG needs: identity, project (from the policy) and the spec."""

    namespace: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
    generation: int = 0
    project: Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)]
    # The policy's backup project (spec.snapshot.project) when its snapshots live apart from the VMs; None: `project`.
    snapshot_project: Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)] | None = None
    instance: GceName
    zone: Zone | None = None  # None: read from the snapshots' source disks at run time
    wait_mode: WaitMode = "reschedule"  # chosen by the controller for the environment, as for policies
    spec: RestoreSpec

    @property
    def dag_id(self) -> str:
        return restore_dag_id_for(self.namespace, self.name)

    @property
    def snapshots_in(self) -> str:
        """The project the restore reads its snapshots from; its disks and VM are created in `project`."""
        return self.snapshot_project or self.project

    @property
    def policy_name(self) -> str:
        return self.spec.policy_name

    @property
    def target_project(self) -> str:
        """The project the restored disks and VM are created in (the snapshots stay in `project`)."""
        return self.spec.target_project or self.project

    @property
    def target_name(self) -> str:
        return self.spec.target_name or self.name

    @property
    def in_place(self) -> bool:
        return self.spec.mode == IN_PLACE

    @property
    def restored_instance(self) -> str:
        """The VM that ends up with the restored disks: the source itself (InPlace) or the new one."""
        return self.instance if self.in_place else self.target_name

    @property
    def marker(self) -> str:
        return restore_marker(self.namespace, self.name)

    def to_json(self) -> str:
        """Canonical JSON (stable key order, ASCII only): embedded in the restore DAG."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Restore:
        return cls.model_validate_json(text)


def restore_dag_id_for(namespace: str, name: str) -> str:
    """The DAG id of a VMRestore that earlier versions rendered a DAG file for (its file stays until its run ends)."""
    return f"vmrestore__{namespace}__{name}"


SHARED_RESTORE_DAG_ID = "vmbackup_restore"  # shipped once with the plugins; each run's conf is a signed restore
SHARED_IN_PLACE_RESTORE_DAG_ID = "vmbackup_restore_in_place"  # mode InPlace: another task graph


def shared_restore_dag_id(in_place: bool) -> str:
    """The shared DAG that runs a restore of this mode."""
    return SHARED_IN_PLACE_RESTORE_DAG_ID if in_place else SHARED_RESTORE_DAG_ID


def restore_marker(namespace: str, name: str) -> str:
    """Value of RESTORE_LABEL: readable `<namespace>_<name>` when it fits a label value, else shortened + hash.

    Namespaces and names are DNS labels (no '_'), so the readable form is unambiguous.
    """
    readable = f"{namespace}_{name}"
    if len(readable) <= 63:
        return readable
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    return f"{namespace[:25].rstrip('-')}_{name[:25].rstrip('-')}_{digest}"


def restored_disk_name(instance: str, source_disk: str, boot: bool) -> str:
    """The new disk's name: the restored instance's own name for the boot disk (as Compute Engine does), else
    `<instance>-<source disk>`; deterministic, so a retry finds its disk instead of making a second one."""
    if boot:
        return instance
    name = f"{instance}-{source_disk}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(f"{instance}/{source_disk}".encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def parse_restore(
    namespace: str, name: str, spec: dict[str, Any], policy: BackupPolicy, generation: int = 0
) -> Restore:
    """Validate a VMRestore's spec against the policy it names; raise PolicyError naming each bad field."""
    if not re.fullmatch(DNS_LABEL_PATTERN, name or "") or len(name) > 63:
        raise PolicyError(
            [("metadata.name", "must be a DNS label of at most 63 characters (lowercase letters, digits and '-')")]
        )
    try:
        restore_spec = RestoreSpec.model_validate(spec)
    except ValidationError as exc:
        raise PolicyError(
            [(f, m.replace("vmbackuppolicy.spec", "vmrestore.spec")) for f, m in problems_from(exc)]
        ) from None
    problems: list[tuple[str, str]] = []
    if restore_spec.policy_name != policy.name or namespace != policy.namespace:
        problems.append(("spec.policyName", f"names {restore_spec.policy_name!r}, not the policy {policy.name!r}"))
    instance, zone = restore_spec.instance, restore_spec.zone
    listed = policy.spec.instances
    if listed is not None:
        if instance is None:
            if len(listed) != 1:
                names = ", ".join(i.name for i in listed)
                problems.append(("spec.instance", f"required: policy {policy.name} backs up several ({names})"))
            else:
                instance, zone = listed[0].name, zone or listed[0].zone
        else:
            matches = [i for i in listed if i.name == instance and (zone is None or i.zone == zone)]
            if not matches:
                names = ", ".join(f"{i.name} ({i.zone})" for i in listed)
                problems.append(("spec.instance", f"{instance!r} is not backed up by policy {policy.name} ({names})"))
            elif len(matches) > 1:
                problems.append(("spec.zone", f"required: {instance} is listed in several zones of the policy"))
            else:
                zone = matches[0].zone
    elif instance is None:
        problems.append(("spec.instance", f"required: policy {policy.name} selects its instances by label"))
    elif zone is not None and policy.spec.selector is not None and zone not in policy.spec.selector.zones:
        problems.append(("spec.zone", f"{zone} is not one of the zones policy {policy.name} searches"))
    if restore_spec.mode == IN_PLACE:
        problems.extend(_in_place_problems(restore_spec))
    else:
        problems.extend(_placement_problems(restore_spec, policy.spec.project))
    if restore_spec.mode != IN_PLACE and restore_spec.in_place is not None:
        problems.append(("spec.inPlace", "only for spec.mode InPlace; set spec.mode: InPlace or remove spec.inPlace"))
    target = restore_spec.target_name or name
    if not re.fullmatch(GCE_NAME_PATTERN, target):
        problems.append(("spec.targetName", f"required: the restore's name {name!r} is not a Compute Engine name"))
    if problems:
        raise PolicyError(problems)
    assert instance is not None
    return Restore(
        namespace=namespace,
        name=name,
        generation=generation,
        project=policy.spec.project,
        snapshot_project=policy.spec.snapshot.project if policy.spec.snapshot_project != policy.spec.project else None,
        instance=instance,
        zone=zone,
        spec=restore_spec,
    )


def _in_place_problems(spec: RestoreSpec) -> list[tuple[str, str]]:
    """An InPlace restore needs its confirmation, and nothing that only a new VM could have."""
    problems: list[tuple[str, str]] = []
    if spec.in_place is None or not spec.in_place.confirm_replace_disks:
        problems.append(
            (
                CONFIRM_FIELD,
                "required for mode InPlace: the source VM is stopped and its disks are replaced; set "
                "spec.inPlace.confirmReplaceDisks: true to confirm, or remove spec.mode to restore as a new VM",
            )
        )
    for field, value in (
        ("targetName", spec.target_name),
        ("targetZone", spec.target_zone),
        ("targetProject", spec.target_project),
    ):
        if value is not None:
            problems.append((f"spec.{field}", "an InPlace restore keeps the source VM; remove it (or the mode)"))
    overridden = sorted(k for k, v in spec.overrides.model_dump(by_alias=True, exclude_none=True).items() if v)
    if overridden:
        problems.append(
            (
                f"spec.overrides.{overridden[0]}",
                "an InPlace restore keeps the source VM's configuration; remove "
                f"spec.overrides ({', '.join(overridden)})",
            )
        )
    return problems


def _region(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def _placement_problems(spec: RestoreSpec, policy_project: str) -> list[tuple[str, str]]:
    """A new VM in another project names its network there; a subnetwork URL must be in the target zone's region."""
    problems: list[tuple[str, str]] = []
    nics = spec.overrides.network_interfaces
    moved = spec.target_project is not None and spec.target_project != policy_project
    if moved and nics is None:
        problems.append(
            (
                "spec.overrides.networkInterfaces",
                f"required with spec.targetProject {spec.target_project}: the source VM's network is in project "
                f"{policy_project}; name the network (and subnetwork) of the target project, e.g. "
                "networkInterfaces: [{network: dr-net, subnetwork: dr-subnet}]",
            )
        )
    for index, nic in enumerate(nics or []):
        region = re.search(r"/regions/([^/]+)/", nic.subnetwork or "")
        if region and spec.target_zone is not None and region.group(1) != _region(spec.target_zone):
            problems.append(
                (
                    f"spec.overrides.networkInterfaces[{index}].subnetwork",
                    f"is in region {region.group(1)}, but spec.targetZone {spec.target_zone} is in region "
                    f"{_region(spec.target_zone)}; name a subnetwork of {_region(spec.target_zone)} (or just its name)",
                )
            )
    return problems
