"""The Helm chart, rendered and linted by the real helm, its manifests checked against Kubernetes' schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller.config import ControllerConfig
from tests.fixtures.tools import CHART_DIR, CRD_FILE, KUBERNETES_VERSION, Helm, TemplateResult

HA_VALUES: dict[str, Any] = {
    "replicaCount": 2,
    "composer": {"environment": "projects/demo-project/locations/us-central1/environments/backups"},
    "serviceAccount": {"gcpServiceAccount": "vmbackup@demo-project.iam.gserviceaccount.com"},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "tenancy": {
        "namespaces": {
            "default": {"projects": ["demo-project"]},
            "shop": {
                "projects": [{"project": "shop-prod", "zones": ["europe-west1-b"]}],
                "backupProjects": ["shop-backups"],
            },
        }
    },
}
NAMESPACED_VALUES: dict[str, Any] = {
    "replicaCount": 2,
    "watchNamespaces": ["shop", "finance"],
    "airflow": {
        "bucket": "airflow-dags",
        "url": "http://airflow.airflow:8080",
        "auth": {"type": "basic", "existingSecret": "airflow-auth"},
    },
}
# Kinds whose schema kubernetes-validate does not ship (CRD-defined); checked by the tests below instead.
CUSTOM_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def default(helm: Helm) -> TemplateResult:
    return helm.template()


@pytest.fixture(scope="module")
def ha(helm: Helm) -> TemplateResult:
    return helm.template(values=HA_VALUES)


@pytest.fixture(scope="module")
def namespaced(helm: Helm) -> TemplateResult:
    return helm.template(values=NAMESPACED_VALUES)


def container(render: TemplateResult) -> dict[str, Any]:
    (only,) = render.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def env(render: TemplateResult) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(render)["env"]}


def rules(render: TemplateResult, kind: str, suffix: str = "-controller") -> set[tuple[str, str, str]]:
    found = set()
    for role in render.of_kind(kind):
        if role["metadata"]["name"].endswith(suffix):
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        found.update((group, resource, verb) for verb in rule["verbs"])
    return found


def test_helm_lint_strict_passes_with_default_values(helm: Helm):
    helm.run("lint", "--strict", str(CHART_DIR))


@pytest.mark.parametrize("values", [HA_VALUES, NAMESPACED_VALUES], ids=["ha-servicemonitor-tenancy", "namespaced"])
def test_helm_lint_strict_passes_with_every_feature_on(helm: Helm, tmp_path, values: dict[str, Any]):
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm.run("lint", "--strict", str(CHART_DIR), "--values", str(values_file))


@pytest.mark.parametrize("render_name", ["default", "ha", "namespaced"])
def test_every_rendered_manifest_is_valid_for_kubernetes(render_name: str, request: pytest.FixtureRequest):
    render: TemplateResult = request.getfixturevalue(render_name)
    assert render.documents
    for doc in render.documents:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_chart_installs_our_crd_unchanged():
    assert (CHART_DIR / "crds" / "vmbackuppolicies.yaml").read_bytes() == CRD_FILE.read_bytes()


def test_chart_installs_only_our_crds(default: TemplateResult):
    crds = {doc["metadata"]["name"] for doc in default.of_kind("CustomResourceDefinition")}
    assert crds == {"vmbackuppolicies.vmbackup.dev", "vmrestores.vmbackup.dev"}


def test_values_schema_rejects_a_bad_value_naming_it(helm: Helm):
    result = helm.template("--set", "logLevel=loud", check=False)
    assert result.returncode != 0
    assert "/logLevel" in result.stderr
    assert "DEBUG" in result.stderr


def test_values_schema_rejects_an_unknown_wait_mode_listing_the_choices(helm: Helm):
    result = helm.template("--set", "waitMode=sometimes", check=False)
    assert result.returncode != 0
    assert "/waitMode" in result.stderr
    assert "deferrable" in result.stderr


def test_values_schema_rejects_a_misspelt_key(helm: Helm):
    result = helm.template("--set", "replicas=2", check=False)
    assert result.returncode != 0
    assert "'replicas' not allowed" in result.stderr


def test_values_schema_rejects_a_bad_composer_environment(helm: Helm):
    result = helm.template("--set", "composer.environment=prod", check=False)
    assert result.returncode != 0
    assert "/composer/environment" in result.stderr


def test_two_default_targets_fail_with_the_fix(helm: Helm):
    values = {**NAMESPACED_VALUES, "composer": HA_VALUES["composer"]}
    result = helm.template(values=values, check=False)
    assert result.returncode != 0
    assert "set either composer.environment or airflow.bucket with airflow.url, not both" in result.stderr


def test_basic_auth_without_a_secret_fails_with_the_fix(helm: Helm):
    result = helm.template("--set", "airflow.auth.type=basic", check=False)
    assert result.returncode != 0
    assert "airflow.auth.existingSecret" in result.stderr


def test_pod_runs_under_the_restricted_pod_security_standard(default: TemplateResult):
    pod = default.one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(default)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_has_resources_and_probes_on_the_health_port(default: TemplateResult):
    main = container(default)
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Followers are ready too (controller/replica.py): a drain can then evict the leader despite the budget.
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert env(default)["VMBACKUP_LIVENESS"] == f"http://0.0.0.0:{ports['health']}/healthz"


@pytest.mark.parametrize("render_name", ["default", "ha", "namespaced"])
def test_rbac_has_no_wildcards(render_name: str, request: pytest.FixtureRequest):
    render: TemplateResult = request.getfixturevalue(render_name)
    for role in render.of_kind("ClusterRole") + render.of_kind("Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{role['metadata']['name']}: {rule}"


# Exactly what the controller's requests need (proven by tests/charts/test_rbac.py and tests/controller/test_high_availability.py).
CONTROLLER_RULES = {
    ("vmbackup.dev", "vmbackuppolicies", "list"),
    ("vmbackup.dev", "vmbackuppolicies", "watch"),
    ("vmbackup.dev", "vmbackuppolicies", "patch"),
    ("vmbackup.dev", "vmbackuppolicies/status", "patch"),
    ("vmbackup.dev", "vmrestores", "list"),
    ("vmbackup.dev", "vmrestores", "watch"),
    ("vmbackup.dev", "vmrestores", "patch"),
    ("vmbackup.dev", "vmrestores/status", "patch"),
    ("", "events", "create"),
}


LEASE_RULES = {("coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update")}


def test_controller_may_do_only_what_it_needs(default: TemplateResult):
    assert rules(default, "ClusterRole") == CONTROLLER_RULES
    assert rules(default, "Role") == set()


@pytest.mark.parametrize("render_name", ["default", "ha", "namespaced"])
def test_every_replica_count_may_hold_only_its_own_lease(render_name: str, request: pytest.FixtureRequest):
    render: TemplateResult = request.getfixturevalue(render_name)
    (role,) = [r for r in render.of_kind("Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "vmbackup-system"  # the release namespace, not a watched one
    assert rules(render, "Role", "-leader-election") == LEASE_RULES
    named = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert [rule["resourceNames"] for rule in named] == [[env(render)["VMBACKUP_LEASE_NAME"]]]
    assert {verb for rule in named for verb in rule["verbs"]} == {"get", "update"}  # create cannot be named


def test_watched_namespaces_get_roles_and_no_cluster_rights(namespaced: TemplateResult):
    roles = [r for r in namespaced.of_kind("Role") if r["metadata"]["name"].endswith("-controller")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["finance", "shop"]
    assert rules(namespaced, "Role") == CONTROLLER_RULES
    assert rules(namespaced, "ClusterRole") == set()
    bindings = [b for b in namespaced.of_kind("RoleBinding") if b["metadata"]["name"].endswith("-controller")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["finance", "shop"]
    assert env(namespaced)["VMBACKUP_NAMESPACES"] == "shop,finance"


def test_user_roles_aggregate_into_the_default_roles(default: TemplateResult):
    labels = {
        role["metadata"]["name"].rsplit("-", 1)[-1]: role["metadata"]["labels"]
        for role in default.of_kind("ClusterRole")
    }
    assert labels["edit"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["view"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_one_replica_also_holds_the_lease_for_rolling_updates(default: TemplateResult):
    assert env(default)["VMBACKUP_LEASE_NAME"] == "vmbackup-vmbackup-operator"  # a surge pod must wait too
    assert env(default)["VMBACKUP_LEASE_NAMESPACE"] == "vmbackup-system"
    assert not default.of_kind("PodDisruptionBudget")


def test_replicas_share_the_lease_and_a_disruption_budget(ha: TemplateResult):
    assert env(ha)["VMBACKUP_LEASE_NAME"] == "vmbackup-vmbackup-operator"
    assert env(ha)["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert ha.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_lease_timings_reach_the_controller(helm: Helm):
    timings = {"leaseName": "backups", "leaseDurationSeconds": 30, "renewDeadlineSeconds": 20, "retryPeriodSeconds": 4}
    render = helm.template(values={"leaderElection": timings})
    config = ControllerConfig.from_env(render.controller_settings())
    assert config.lease_name == "backups"
    assert (config.lease_duration_seconds, config.lease_renew_deadline_seconds) == (30, 20)
    assert config.lease_retry_period_seconds == 4


def test_service_account_carries_the_workload_identity(ha: TemplateResult):
    account = ha.one("ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == (
        "vmbackup@demo-project.iam.gserviceaccount.com"
    )
    assert ha.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_tenancy_map_is_mounted_as_the_file_the_controller_reads(ha: TemplateResult):
    config_map = ha.one("ConfigMap")
    assert yaml.safe_load(config_map["data"]["tenancy.yaml"]) == HA_VALUES["tenancy"]
    pod = ha.one("Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == config_map["metadata"]["name"])
    mount = next(m for m in container(ha)["volumeMounts"] if m["name"] == volume["name"])
    assert env(ha)["VMBACKUP_TENANCY_FILE"] == f"{mount['mountPath']}/tenancy.yaml"


def test_airflow_password_is_mounted_from_the_secret_never_inlined(namespaced: TemplateResult):
    variables = env(namespaced)
    assert variables["VMBACKUP_AIRFLOW_AUTH"] == "basic"
    assert variables["VMBACKUP_AIRFLOW_USERNAME"] == {"secretKeyRef": {"name": "airflow-auth", "key": "username"}}
    pod = namespaced.one("Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "airflow-auth")
    mount = next(m for m in container(namespaced)["volumeMounts"] if m["name"] == volume["name"])
    assert variables["VMBACKUP_AIRFLOW_PASSWORD_FILE"] == f"{mount['mountPath']}/password"
    assert "VMBACKUP_AIRFLOW_PASSWORD" not in variables


def test_controller_reads_the_settings_the_chart_sets(ha: TemplateResult):
    plain = ha.controller_settings()
    config = ControllerConfig.from_env(plain)
    assert config.composer_environment == HA_VALUES["composer"]["environment"]
    assert (config.lease_name, config.lease_namespace) == ("vmbackup-vmbackup-operator", "vmbackup-system")
    assert (config.lease_duration_seconds, config.lease_renew_deadline_seconds, config.lease_retry_period_seconds) == (
        15,
        10,
        2,
    )
    assert config.namespaces == ()
    assert config.metrics_port == 9090
    assert config.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert str(config.tenancy_file) == plain["VMBACKUP_TENANCY_FILE"]
    assert config.poll_interval_seconds == 60
    assert config.wait_mode == "auto"


def test_metrics_service_selects_the_controller_port(default: TemplateResult):
    service = default.one("Service")
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    assert (
        service["spec"]["selector"].items()
        <= default.one("Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert not default.of_kind("ServiceMonitor")


def test_service_monitor_scrapes_the_metrics_service(ha: TemplateResult):
    monitor = ha.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= ha.one("Service")["metadata"]["labels"].items()


def test_notes_tell_the_next_steps(helm: Helm):
    notes = helm.run("install", "vmbackup", str(CHART_DIR), "--dry-run=client", "--namespace", "vmbackup-system")
    text = notes.stdout.split("NOTES:", 1)[1]
    assert "kubectl get vmbackuppolicies" in text
    assert "kind: VMBackupPolicy" in text
    assert "roles/compute.instanceAdmin.v1" in text
    assert "roles/iam.workloadIdentityUser" in text
    assert "no tenancy map is set" in text
