"""The chart's restore-run signing key: a Secret (the chart's own, or the user's) the controller reads from a file."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from controller.config import ControllerConfig
from tests.fixtures.tools import Helm, TemplateResult

VALUES: dict[str, Any] = {"composer": {"environment": "projects/ops-project/locations/us-central1/environments/b"}}


@pytest.fixture(scope="module")
def chart_key(helm: Helm) -> TemplateResult:
    return helm.template(values=VALUES)


@pytest.fixture(scope="module")
def users_key(helm: Helm) -> TemplateResult:
    return helm.template(values={**VALUES, "restoreSigning": {"existingSecret": "restore-key", "secretKey": "k"}})


def mounted(render: TemplateResult) -> tuple[str, str, dict[str, str]]:
    """The signing Secret's name, where it is mounted, and the controller's variables."""
    pod = render.one("Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "restore-signing"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "restore-signing"]
    return volume["secret"]["secretName"], mount["mountPath"], {e["name"]: e.get("value") for e in container["env"]}


def test_the_chart_creates_a_random_key_it_keeps(chart_key: TemplateResult) -> None:
    (secret,) = [s for s in chart_key.of_kind("Secret") if s["metadata"]["name"].endswith("-restore-signing")]

    assert len(base64.b64decode(secret["data"]["key"])) == 64
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert mounted(chart_key)[0] == secret["metadata"]["name"]


def test_the_controller_reads_the_mounted_key_and_never_an_inlined_one(chart_key: TemplateResult, tmp_path: Path):
    name, path, variables = mounted(chart_key)
    (secret,) = [s for s in chart_key.of_kind("Secret") if s["metadata"]["name"] == name]
    key_file = tmp_path / "key"
    key_file.write_bytes(base64.b64decode(secret["data"]["key"]))

    env = {k: v for k, v in variables.items() if v is not None and k.startswith("VMBACKUP_")}
    assert env["VMBACKUP_RUN_SIGNING_KEY_FILE"] == f"{path}/key"
    assert "VMBACKUP_RUN_SIGNING_KEY" not in env
    config = ControllerConfig.from_env({**env, "VMBACKUP_RUN_SIGNING_KEY_FILE": str(key_file)})
    assert config.run_signing_key == key_file.read_text()
    assert config.run_signature_ttl_seconds == 21600


def test_a_users_secret_is_mounted_and_the_chart_creates_none(users_key: TemplateResult) -> None:
    name, path, variables = mounted(users_key)

    assert name == "restore-key"
    assert variables["VMBACKUP_RUN_SIGNING_KEY_FILE"] == f"{path}/k"
    assert not [s for s in users_key.of_kind("Secret") if s["metadata"]["name"].endswith("-restore-signing")]
