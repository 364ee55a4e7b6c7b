"""The VMBackupPolicy CRD: generated from the shared model, valid for Kubernetes, and meaning what the model means."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller import crdgen
from tests.fixtures.tools import CRD_FILE, KUBERNETES_VERSION, REPO_ROOT, CustomResourceSchema
from vmbackup.model.policy import PolicyError, parse_policy

EXAMPLES = sorted(p for p in (REPO_ROOT / "crds" / "examples").glob("*.yaml") if not p.name.startswith("restore-"))
CRD = yaml.safe_load(CRD_FILE.read_text())
VERSION = CRD["spec"]["versions"][0]
SPEC_SCHEMA = VERSION["schema"]["openAPIV3Schema"]["properties"]["spec"]

MINIMAL = {"project": "demo-project", "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}]}


def policy(spec: dict[str, Any], name: str = "wordpress") -> dict[str, Any]:
    return {
        "apiVersion": "vmbackup.dev/v1alpha1",
        "kind": "VMBackupPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def model_problems(obj: dict[str, Any]) -> list[str]:
    try:
        parse_policy(obj["metadata"]["namespace"], obj["metadata"]["name"], obj["spec"])
    except PolicyError as exc:
        return exc.fields
    return []


def walk(schema: dict[str, Any], path: str = "spec"):
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def test_committed_crds_are_what_the_model_generates():
    expected = crdgen.render()
    for path in crdgen.CRD_PATHS:
        assert path.read_text() == expected, f"{path} drifted from the model: run `python -m controller.crdgen`"


def test_crdgen_check_mode_reports_no_drift(capsys):
    assert crdgen.main(["--check"]) == 0, capsys.readouterr().err


def test_crd_is_a_valid_customresourcedefinition():
    kubernetes_validate.validate(CRD, KUBERNETES_VERSION, strict=True)


def test_crd_names_and_scope():
    assert CRD["metadata"]["name"] == "vmbackuppolicies.vmbackup.dev"
    assert CRD["spec"]["scope"] == "Namespaced"
    names = CRD["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (
        "VMBackupPolicy",
        "vmbackuppolicies",
        "vmbackuppolicy",
    )
    assert "vmbp" in names["shortNames"]
    assert names["categories"] == ["vmbackup"]
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == ("v1alpha1", True, True)


def test_status_is_a_subresource():
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns_show_schedule_last_snapshot_result_next_run_and_rpo():
    columns = {
        c["name"]: (c["jsonPath"], c["type"]) for c in VERSION["additionalPrinterColumns"] if "priority" not in c
    }
    assert columns == {
        "Schedule": (".spec.schedule", "string"),
        "Last Snapshot": (".status.lastSnapshotTime", "date"),
        "Result": (".status.result", "string"),
        "Next Run": (".status.nextRun", "string"),
        "RPO": (".status.recoveryPoint.compliance", "string"),
        "Age": (".metadata.creationTimestamp", "date"),
    }


def test_every_field_has_a_description_for_kubectl_explain():
    root = VERSION["schema"]["openAPIV3Schema"]
    missing = [
        path
        for path, node in walk(root, "")
        if path != ".metadata"  # ObjectMeta: documented by Kubernetes; the CRD may not describe it
        and (("[]" not in path and "{}" not in path) or node["type"] == "object")
        and not node.get("description")
    ]
    assert not missing, f"fields without a description: {missing}"


def test_schema_is_structural():
    for path, node in walk(SPEC_SCHEMA):
        # x-kubernetes-int-or-string stands for the type (Kubernetes: "Specifying a structural schema")
        assert "type" in node or node.get("x-kubernetes-int-or-string") is True, f"{path} has no type"
        assert not {"anyOf", "oneOf", "allOf", "$ref", "title", "patternProperties", "propertyNames"} & set(node), path
        assert not ("properties" in node and "additionalProperties" in node), path


def test_lists_and_maps_are_bounded_for_cel_cost_estimation():
    for path, node in walk(SPEC_SCHEMA):
        if node.get("x-kubernetes-int-or-string"):
            assert node["x-kubernetes-validations"], f"{path} needs a CEL rule bounding it"
            continue
        if node["type"] == "array":
            assert "maxItems" in node, f"{path} needs maxItems"
        if node["type"] == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path} needs maxProperties"
        if node["type"] == "string" and "enum" not in node:
            assert "maxLength" in node or "pattern" in node, f"{path} needs maxLength or a bounded pattern"


def test_status_follows_the_status_contract():
    status = VERSION["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "dagId",
        "dagHash",
        "result",
        "lastSnapshotTime",
        "lastSnapshots",
        "lastRun",
        "nextRun",
        "verification",
        "conditions",
        "lastScheduleTime",
        "lastMissedSlot",
        "missedSlots",
        "recoveryPoint",
    }
    assert set(status["recoveryPoint"]["properties"]) == {"objective", "compliance", "instances"}
    assert set(status["lastMissedSlot"]["properties"]) == {"time", "reason", "message"}
    assert set(status["lastRun"]["properties"]) == {
        "runId",
        "state",
        "startTime",
        "endTime",
        "durationSeconds",
        "failedStep",
        "message",
    }
    assert set(status["conditions"]["items"]["required"]) == {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_valid_policy_for_the_model(example: Path):
    obj = yaml.safe_load(example.read_text())
    assert model_problems(obj) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted_by_the_crd_schema(example: Path, policy_schema: CustomResourceSchema):
    assert policy_schema.errors(yaml.safe_load(example.read_text())) == []


def test_examples_cover_the_documented_cases():
    specs = {p.stem: yaml.safe_load(p.read_text())["spec"] for p in EXAMPLES}
    assert specs["wordpress"]["instances"] == [{"name": "wordpress-1-vm", "zone": "us-central1-c"}]
    assert (specs["wordpress"]["project"], specs["wordpress"]["schedule"]) == ("demo-project", "0 2 * * *")
    assert specs["wordpress"]["consistency"] == "stop"
    assert specs["wordpress"]["retention"] == {"count": 7}
    assert len(specs["selector-zones"]["selector"]["zones"]) > 1
    assert specs["tiered"]["tiers"] == ["web", "app"]
    flush = specs["guestflush-age-retention"]
    assert flush["consistency"] == "guestFlush"
    assert "maxAgeDays" in flush["retention"]
    assert flush["snapshot"]["storageLocation"]
    assert flush["snapshot"]["labels"]
    assert specs["instant-snapshots"]["snapshot"]["method"] == "instant"


def test_api_server_defaults_are_the_model_defaults(policy_schema: CustomResourceSchema):
    defaulted = policy_schema.defaulted(policy(MINIMAL))["spec"]
    assert parse_policy("default", "wordpress", defaulted) == parse_policy("default", "wordpress", MINIMAL)
    assert defaulted["retention"] == {"count": 7}
    assert defaulted["timeouts"]["uploadSeconds"] == 7200
    assert defaulted["stop"] == {"discardLocalSsd": False, "requireReservation": False}


def with_(spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


SELECTOR = {"zones": ["us-central1-a"], "matchLabels": {"app": "web"}}
TIERED = with_(
    MINIMAL,
    tiers=["web", "app"],
    instances=[{"name": "web-1", "zone": "us-central1-c", "tier": "web"}, {"name": "app-1", "zone": "us-central1-c"}],
)

# (case, spec, the field both the CRD and the model must name)
BOTH_REFUSE = [
    ("instances and selector", with_(MINIMAL, selector=SELECTOR), "spec"),
    ("neither instances nor selector", with_(MINIMAL, instances=None), "spec"),
    ("empty instance list", with_(MINIMAL, instances=[]), "spec.instances"),
    ("instance tier without tiers", with_(MINIMAL, instances=[{**MINIMAL["instances"][0], "tier": "web"}]), "spec"),
    ("tiered instance without a tier", TIERED, "spec"),
    (
        "instance tier not listed",
        with_(TIERED, instances=[{"name": "web-1", "zone": "us-central1-c", "tier": "db"}]),
        "spec",
    ),
    ("tierLabel without tiers", with_(MINIMAL, instances=None, selector={**SELECTOR, "tierLabel": "tier"}), "spec"),
    ("tiers with selector, no tierLabel", with_(MINIMAL, instances=None, selector=SELECTOR, tiers=["web"]), "spec"),
    ("retention without count or age", with_(MINIMAL, retention={}), "spec.retention"),
    ("retention count 0", with_(MINIMAL, retention={"count": 0}), "spec.retention.count"),
    ("retention daily 0", with_(MINIMAL, retention={"daily": 0}), "spec.retention.daily"),
    ("retention weekly negative", with_(MINIMAL, retention={"weekly": -1}), "spec.retention.weekly"),
    ("keepLastSuccessful 0", with_(MINIMAL, retention={"count": 7, "keepLastSuccessful": 0}), "spec.retention"),
    ("unknown retention rung", with_(MINIMAL, retention={"count": 7, "biweekly": 2}), "spec.retention"),
    ("retention with only the guard", with_(MINIMAL, retention={"keepLastSuccessful": 2}), "spec.retention"),
    ("hourly rung on a daily schedule", with_(MINIMAL, schedule="@daily", retention={"hourly": 24}), "spec.retention"),
    ("daily rung on a weekly schedule", with_(MINIMAL, schedule="@weekly", retention={"daily": 7}), "spec.retention"),
    ("composer without target", with_(MINIMAL, composer={}), "spec.composer"),
    (
        "composer environment and bucket",
        with_(
            MINIMAL,
            composer={
                "environment": "projects/p/locations/l/environments/e",
                "bucket": "b-bucket",
                "airflowUri": "http://airflow",
            },
        ),
        "spec.composer",
    ),
    ("composer bucket without airflowUri", with_(MINIMAL, composer={"bucket": "my-bucket"}), "spec.composer"),
    ("composer airflowUri alone", with_(MINIMAL, composer={"airflowUri": "http://airflow"}), "spec.composer"),
    ("composer environment not a path", with_(MINIMAL, composer={"environment": "prod"}), "spec.composer.environment"),
    ("repeated tier", with_(TIERED, tiers=["web", "web"]), "spec"),
    ("repeated zone", with_(MINIMAL, instances=None, selector={**SELECTOR, "zones": ["us-east1-b"] * 2}), "spec"),
    (
        "repeated disk",
        with_(MINIMAL, instances=[{**MINIMAL["instances"][0], "disks": ["d-1", "d-1"]}]),
        "spec.instances[0].disks",
    ),
    ("repeated instance", with_(MINIMAL, instances=MINIMAL["instances"] * 2), "spec"),
    ("reserved snapshot label", with_(MINIMAL, snapshot={"labels": {"vmbackup-policy": "x"}}), "spec.snapshot.labels"),
    ("label value with a space", with_(MINIMAL, snapshot={"labels": {"team": "A B"}}), "spec.snapshot.labels.team"),
    ("empty matchLabels", with_(MINIMAL, instances=None, selector={**SELECTOR, "matchLabels": {}}), "spec.selector"),
    ("schedule with 4 fields", with_(MINIMAL, schedule="0 2 * *"), "spec.schedule"),
    ("unknown schedule preset", with_(MINIMAL, schedule="@fortnightly"), "spec.schedule"),
    ("schedule with code", with_(MINIMAL, schedule="0 2 * * *; import os"), "spec.schedule"),
    ("time zone path escape", with_(MINIMAL, timezone="../../etc/passwd"), "spec.timezone"),
    ("unknown consistency", with_(MINIMAL, consistency="freeze"), "spec.consistency"),
    ("unknown snapshot method", with_(MINIMAL, snapshot={"method": "fast"}), "spec.snapshot.method"),
    (
        "instant snapshots with guest flush",
        with_(MINIMAL, consistency="guestFlush", snapshot={"method": "instant"}),
        "spec.snapshot",
    ),
    ("bad project", with_(MINIMAL, project="Bad_Project"), "spec.project"),
    ("bad backup project", with_(MINIMAL, snapshot={"project": "Bad_Project"}), "spec.snapshot.project"),
    ("archive with instant", with_(MINIMAL, snapshot={"method": "instant", "type": "ARCHIVE"}), "spec.snapshot"),
    ("unknown snapshot type", with_(MINIMAL, snapshot={"type": "COLDLINE"}), "spec.snapshot.type"),
    ("zone as storage location", with_(MINIMAL, snapshot={"storageLocation": "us-central1-a"}), "spec.snapshot"),
    (
        "archive rung retention does not set",
        with_(MINIMAL, retention={"daily": 7}, snapshot={"archiveRungs": ["monthly"]}),
        "spec.snapshot",
    ),
    (
        "archive rungs with instant",
        with_(
            MINIMAL, retention={"daily": 7, "monthly": 12}, snapshot={"method": "instant", "archiveRungs": ["monthly"]}
        ),
        "spec.snapshot",
    ),
    ("unknown archive rung", with_(MINIMAL, snapshot={"archiveRungs": ["biweekly"]}), "spec.snapshot.archiveRungs"),
    (
        "instance name with code",
        with_(MINIMAL, instances=[{"name": "web'); __import__('os')", "zone": "us-central1-c"}]),
        "spec.instances[0].name",
    ),
    (
        "zone with a trailing newline",
        with_(MINIMAL, instances=[{"name": "web", "zone": "us-central1-c\n"}]),
        "spec.instances[0].zone",
    ),
    (
        "instance name too long",
        with_(MINIMAL, instances=[{"name": "w" * 64, "zone": "us-central1-c"}]),
        "spec.instances[0].name",
    ),
    ("timeout too short", with_(MINIMAL, timeouts={"stopSeconds": 5}), "spec.timeouts.stopSeconds"),
    (
        "discardLocalSsd without stop mode",
        with_(MINIMAL, consistency="guestFlush", stop={"discardLocalSsd": True}),
        "spec.stop",
    ),
    (
        "requireReservation without stop mode",
        with_(MINIMAL, consistency="none", stop={"requireReservation": True}),
        "spec.stop",
    ),
    ("discardLocalSsd not a boolean", with_(MINIMAL, stop={"discardLocalSsd": "yes"}), "spec.stop.discardLocalSsd"),
    ("unknown stop option", with_(MINIMAL, stop={"discardLocalSSD": True}), "spec.stop.discardLocalSSD"),
    ("unknown field", with_(MINIMAL, typo=1), "spec.typo"),
    ("rpo not a duration", with_(MINIMAL, rpo="abc"), "spec.rpo"),
    ("negative rpo", with_(MINIMAL, rpo="-1h"), "spec.rpo"),
    ("rpo in days", with_(MINIMAL, rpo="2d"), "spec.rpo"),
    ("rpo under a minute", with_(MINIMAL, rpo="30s"), "spec.rpo"),
    ("empty rpo", with_(MINIMAL, rpo=""), "spec.rpo"),
]


@pytest.mark.parametrize(("case", "spec", "field"), BOTH_REFUSE, ids=[c[0] for c in BOTH_REFUSE])
def test_crd_and_model_both_refuse(case: str, spec: dict[str, Any], field: str, policy_schema: CustomResourceSchema):
    crd_errors = policy_schema.errors(policy(spec))
    assert any(error.startswith(f".{field}") for error in crd_errors), f"CRD: {crd_errors}"
    assert any(problem.startswith(field) for problem in model_problems(policy(spec))), model_problems(policy(spec))


def test_crd_and_model_both_refuse_a_policy_name_with_dots(policy_schema: CustomResourceSchema):
    obj = policy(MINIMAL, name="wordpress.prod")
    assert any("metadata.name" in error for error in policy_schema.errors(obj))
    assert model_problems(obj) == ["metadata.name"]


BOTH_ACCEPT = [
    ("minimal", MINIMAL),
    ("preset schedule", with_(MINIMAL, schedule="@hourly")),
    ("cron with names, ranges and steps", with_(MINIMAL, schedule="*/15 8-18 * jan-jun mon-fri")),
    ("composer environment", with_(MINIMAL, composer={"environment": "projects/p/locations/l/environments/e"})),
    ("self-managed airflow", with_(MINIMAL, composer={"bucket": "my-bucket", "airflowUri": "http://airflow:8080"})),
    ("age retention only", with_(MINIMAL, retention={"maxAgeDays": 30})),
    (
        "every GFS rung with count, age and the guard",
        with_(
            MINIMAL,
            schedule="@hourly",
            retention={
                "count": 3,
                "maxAgeDays": 30,
                "hourly": 24,
                "daily": 7,
                "weekly": 4,
                "monthly": 12,
                "yearly": 3,
                "keepLastSuccessful": 2,
            },
        ),
    ),
    ("daily rung on a weekday schedule", with_(MINIMAL, schedule="0 2 * * 1-5", retention={"daily": 7})),
    ("instant snapshots", with_(MINIMAL, snapshot={"method": "instant"})),
    (
        "archive snapshots in a backup project",
        with_(MINIMAL, snapshot={"project": "demo-backups", "type": "ARCHIVE", "storageLocation": "europe-west4"}),
    ),
    (
        "monthly and yearly rungs as archive",
        with_(
            MINIMAL,
            retention={"daily": 7, "monthly": 12, "yearly": 3},
            snapshot={"archiveRungs": ["monthly", "yearly"]},
        ),
    ),
    ("crash-consistent instant snapshots", with_(MINIMAL, consistency="none", snapshot={"method": "instant"})),
    ("tiered selector", with_(MINIMAL, instances=None, selector={**SELECTOR, "tierLabel": "tier"}, tiers=["web"])),
    ("stop options in stop mode", with_(MINIMAL, stop={"discardLocalSsd": True, "requireReservation": True})),
    ("rpo above the daily gap", with_(MINIMAL, rpo="26h")),
    ("rpo in hours and minutes", with_(MINIMAL, schedule="@hourly", rpo="1h30m")),
    ("stop options off with guest flush", with_(MINIMAL, consistency="guestFlush", stop={"discardLocalSsd": False})),
    (
        "same VM name in two zones",
        with_(MINIMAL, instances=[{"name": "a", "zone": z} for z in ("us-east1-b", "us-east1-c")]),
    ),
]


@pytest.mark.parametrize(("case", "spec"), BOTH_ACCEPT, ids=[c[0] for c in BOTH_ACCEPT])
def test_crd_and_model_both_accept(case: str, spec: dict[str, Any], policy_schema: CustomResourceSchema):
    assert policy_schema.errors(policy(spec)) == []
    assert model_problems(policy(spec)) == []


# What only the model can check: CEL has no time zone database and no cheap way to parse cron ranges,
# and a regex over map keys would exceed the API server's CEL cost budget. The controller reports these
# as result Invalid with the model's message; if the CRD learns one of them, move the case up.
CONTROLLER_ONLY = [
    ("cron minute out of range", with_(MINIMAL, schedule="61 * * * *"), "spec.schedule"),
    ("unknown time zone", with_(MINIMAL, timezone="Mars/Olympus"), "spec.timezone"),
    ("label key with capitals", with_(MINIMAL, snapshot={"labels": {"Team": "a"}}), "spec.snapshot.labels"),
    (
        "hourly rung on a 2-hourly cron",
        with_(MINIMAL, schedule="0 */2 * * *", retention={"hourly": 24}),
        "spec.retention",
    ),
    ("rpo no longer than the schedule's gap", with_(MINIMAL, schedule="0 2 * * *", rpo="24h"), "spec.rpo"),
]


@pytest.mark.parametrize(("case", "spec", "field"), CONTROLLER_ONLY, ids=[c[0] for c in CONTROLLER_ONLY])
def test_checks_only_the_model_makes(case: str, spec: dict[str, Any], field: str, policy_schema: CustomResourceSchema):
    assert policy_schema.errors(policy(spec)) == []
    assert any(problem.startswith(field) for problem in model_problems(policy(spec)))


def test_the_crd_refuses_a_quoted_number_the_model_would_coerce(policy_schema: CustomResourceSchema):
    """The API server checks JSON types strictly; the model (lax pydantic) would read "7" as 7, losing nothing."""
    spec = with_(MINIMAL, retention={"count": "7"})
    assert any(error.startswith(".spec.retention.count") for error in policy_schema.errors(policy(spec)))
    assert model_problems(policy(spec)) == []
