"""The chart's tenancy map with granted spec.composer targets: their Secrets are mounted where the controller reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.config import ControllerConfig
from controller.tenancy import Tenancy
from tests.fixtures.tools import Helm, TemplateResult
from vmbackup.model.policy import ComposerTarget

GRANT = {
    "bucket": "shop-composer-bucket",
    "airflowUri": "https://airflow.shop.example.com",
    "auth": {"type": "basic", "existingSecret": "shop-airflow"},
}
VALUES: dict[str, Any] = {
    "composer": {"environment": "projects/ops-project/locations/us-central1/environments/backups"},
    "tenancy": {
        "composerTargets": ["projects/ops-project/locations/us-central1/environments/shared"],
        "namespaces": {
            "shop": {"projects": ["shop-prod"], "composerTargets": [GRANT]},
            "web": {
                "projects": ["web-prod"],
                "composerTargets": [GRANT, {"bucket": "web-1", "airflowUri": "http://a"}],
            },
        },
    },
}


@pytest.fixture(scope="module")
def granted(helm: Helm) -> TemplateResult:
    return helm.template(values=VALUES)


def pod(render: TemplateResult) -> dict[str, Any]:
    spec: dict[str, Any] = render.one("Deployment")["spec"]["template"]["spec"]
    return spec


def test_each_secret_a_target_names_is_mounted_once_under_the_controllers_secrets_dir(granted: TemplateResult):
    (volume,) = [v for v in pod(granted)["volumes"] if v.get("secret", {}).get("secretName") == "shop-airflow"]
    (container,) = pod(granted)["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    variables = {e["name"]: e.get("value") for e in container["env"]}

    assert mount["readOnly"] is True
    assert mount["mountPath"] == f"{variables['VMBACKUP_TARGET_SECRETS_DIR']}/shop-airflow"
    assert volume["secret"]["defaultMode"] == 0o400


def test_the_controller_reads_the_rendered_map_and_the_mounted_secret(granted: TemplateResult, tmp_path: Path):
    tenancy_file = tmp_path / "tenancy.yaml"
    tenancy_file.write_text(granted.one("ConfigMap")["data"]["tenancy.yaml"])
    (tmp_path / "shop-airflow").mkdir()
    (tmp_path / "shop-airflow" / "username").write_text("shop")
    (tmp_path / "shop-airflow" / "password").write_text("s3cret")
    config = ControllerConfig(
        tenancy_file=tenancy_file, target_secrets_dir=tmp_path, bucket="b-1", airflow_url="http://x"
    )

    _, auth = Tenancy.configured(config).grant(
        "shop", ComposerTarget(bucket=GRANT["bucket"], airflow_uri=GRANT["airflowUri"])
    )

    assert (auth.mode, auth.username, auth.password) == ("basic", "shop", "s3cret")


def test_a_map_without_target_secrets_mounts_none(helm: Helm):
    render = helm.template(values={"tenancy": {"namespaces": {"shop": {"projects": ["shop-prod"]}}}})
    (container,) = pod(render)["containers"]

    assert "VMBACKUP_TARGET_SECRETS_DIR" not in {e["name"] for e in container["env"]}
    assert not [v for v in pod(render)["volumes"] if v["name"].startswith("target-auth-")]


def test_the_old_bare_bucket_grant_fails_the_install_with_the_entry_to_write(helm: Helm):
    values = {"tenancy": {"namespaces": {"shop": {"projects": ["shop-prod"], "composerTargets": ["shop-bucket"]}}}}

    result = helm.template(values=values, check=False)

    assert result.returncode != 0
    assert "tenancy.namespaces.shop.composerTargets" in result.stderr
    assert "{bucket: shop-bucket, airflowUri: <its Airflow URL>" in result.stderr


def test_the_schema_refuses_an_airflow_uri_with_credentials_in_it(helm: Helm):
    grant = {"bucket": "b-1", "airflowUri": "https://admin:pw@airflow.example"}
    values = {"tenancy": {"namespaces": {"shop": {"projects": ["shop-prod"], "composerTargets": [grant]}}}}

    result = helm.template(values=values, check=False)

    assert result.returncode != 0
    assert "/tenancy/namespaces/shop/composerTargets/0" in result.stderr
