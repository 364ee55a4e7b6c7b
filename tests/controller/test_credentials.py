"""The controller's Airflow credentials go only to the Airflow they belong to (issue 14).

Real HTTP listeners on loopback stand in for Airflow web servers and record every request they get:
the controller's default target, a target the cluster admin granted, and an attacker's Airflow that a
tenant names in ``spec.composer.airflowUri``. kopf runs against kmock, DAGs go to the Cloud Storage
emulator, and each auth mode is the real one (basic, a JWT from ``POST /auth/token``, a Google token
that google-auth obtains for a service-account key made in the test).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.airflow_auth import JwtAuth
from controller.airflow_errors import AirflowRedirectError
from controller.config import AirflowCredentials, ControllerConfig
from tests.controller.conftest import NAMESPACE, condition, create_policy, status_of
from tests.controller.vmbackupctl.test_commands import put_policy, vmbackupctl
from tests.fixtures.kube import eventually

SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
}
TENANT_BUCKET = "shop-composer-bucket"
DEFAULT_USER, DEFAULT_PASSWORD = "controller", "default-target-secret"
TARGET_USER, TARGET_PASSWORD = "shop-airflow", "granted-target-secret"
DEFAULT_JWT = "jwt-issued-by-the-default-airflow"
GOOGLE_TOKEN = "ya29.token-issued-to-the-controller"

pytestmark = pytest.mark.usefixtures("kubeconfig")


# ---- listeners ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str


class Listener:
    """An HTTP server on loopback that records every request; by default it answers as an empty Airflow 3."""

    def __init__(self, answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None):
        self.seen: list[Seen] = []
        self.url = ""
        self._answer = answer or empty_airflow
        self._runner: web.AppRunner | None = None

    async def start(self) -> Listener:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path, dict(request.headers), await request.text()))
        return await self._answer(request)

    def authorizations(self) -> set[str]:
        return {s.headers["Authorization"] for s in self.seen if "Authorization" in s.headers}

    def polled_with(self, authorization: str) -> bool:
        """Whether the controller's batched status poll reached this Airflow with these credentials."""
        return any(
            s.path.endswith("/dagRuns/list") and s.headers.get("Authorization") == authorization for s in self.seen
        )


async def empty_airflow(request: web.Request) -> web.StreamResponse:
    """What an Airflow 3 with none of our DAGs parsed yet answers (and a token endpoint for google-auth)."""
    path, method = request.path, request.method
    answers: dict[tuple[str, str], Any] = {
        ("GET", "/api/v2/version"): {"version": "3.0.0"},
        ("GET", "/api/v2/monitor/health"): {"metadatabase": {"status": "healthy"}, "triggerer": {"status": None}},
        ("POST", "/auth/token"): {"access_token": DEFAULT_JWT},
        ("POST", "/token"): {"access_token": GOOGLE_TOKEN, "expires_in": 3600, "token_type": "Bearer"},
        ("GET", "/api/v2/dags"): {"dags": [], "total_entries": 0},
        ("POST", "/api/v2/dags/~/dagRuns/list"): {"dag_runs": [], "total_entries": 0},
        ("GET", "/api/v2/importErrors"): {"import_errors": [], "total_entries": 0},
    }
    if (method, path) in answers:
        return web.json_response(answers[method, path])
    return web.json_response({"detail": f"{method} {path} not found"}, status=404)


@pytest.fixture
async def listeners() -> AsyncIterator[Callable[..., Awaitable[Listener]]]:
    started: list[Listener] = []

    async def start(answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None) -> Listener:
        listener = await Listener(answer).start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop()


# ---- credentials ------------------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def google_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """A service-account key made here, as Application Default Credentials; its token endpoint is a listener."""

    def install(token_uri: str) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = tmp_path / "controller-key.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "ops-project",
                    "private_key_id": "test-key",
                    "private_key": pem.decode(),
                    "client_email": "vmbackup@ops-project.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": token_uri,
                }
            )
        )
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))

    return install


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """Where the chart mounts the Secrets the tenancy map names: <dir>/<secret>/<key>."""
    secret = tmp_path / "target-auth" / "shop-airflow"
    secret.mkdir(parents=True)
    (secret / "username").write_text(TARGET_USER)
    (secret / "password").write_text(TARGET_PASSWORD)
    return tmp_path / "target-auth"


def default_auth(mode: str) -> tuple[AirflowCredentials, str]:
    """The default target's configured credentials and the Authorization header they become."""
    if mode == "basic":
        return AirflowCredentials("basic", DEFAULT_USER, DEFAULT_PASSWORD), basic(DEFAULT_USER, DEFAULT_PASSWORD)
    if mode == "jwt":
        return AirflowCredentials("jwt", DEFAULT_USER, DEFAULT_PASSWORD), f"Bearer {DEFAULT_JWT}"
    return AirflowCredentials("google"), f"Bearer {GOOGLE_TOKEN}"


# ---- the controller ------------------------------------------------------------------------------------------


@pytest.fixture
def tenant_bucket(gcs_client: storage.Client) -> storage.Bucket:
    bucket = gcs_client.bucket(TENANT_BUCKET)
    if not bucket.exists():
        return gcs_client.create_bucket(TENANT_BUCKET)
    for blob in gcs_client.list_blobs(TENANT_BUCKET):
        blob.delete()
    return bucket


@pytest.fixture
def config_for(gcs_bucket: storage.Bucket, secrets_dir: Path) -> Callable[..., ControllerConfig]:
    """The controller's configuration: a default target and its credentials, and a tenancy map."""

    def config(default_url: str, auth: AirflowCredentials, tenancy: dict[str, Any]) -> ControllerConfig:
        return ControllerConfig(
            bucket=gcs_bucket.name,
            airflow_url=default_url,
            airflow_auth=auth,
            poll_interval_seconds=0.5,
            wait_mode_refresh_seconds=0.5,
            metrics_port=0,
            liveness_endpoint=None,
            tenancy_text=json.dumps(tenancy),
            target_secrets_dir=secrets_dir,
        )

    return config


def tenancy(*grants: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**top, "namespaces": {NAMESPACE: {"projects": ["shop-prod-1"], "composerTargets": list(grants)}}}


def dag_objects(*buckets: storage.Bucket) -> set[str]:
    return {blob.name for bucket in buckets for blob in bucket.client.list_blobs(bucket.name, prefix="dags/")}


@pytest.fixture
def default_target_polled(kube: kmock.KubernetesEmulator) -> Callable[[Listener, str], Awaitable[None]]:
    """A policy on the default target, polled with the default credentials: proof the controller was busy."""

    async def check(default: Listener, authorization: str) -> None:
        await create_policy(kube, "web", SPEC)
        await eventually(lambda: default.polled_with(authorization), what="the default target's poll")

    return check


# ---- tests ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["basic", "jwt", "google"])
async def test_a_policy_naming_an_ungranted_airflow_is_refused_and_it_receives_no_request(
    kube, start_controller, config_for, listeners, google_key, tenant_bucket, gcs_bucket, default_target_polled, mode
) -> None:
    default, attacker, granted = await listeners(), await listeners(), await listeners()
    google_key(f"{default.url}/token")
    auth, authorization = default_auth(mode)
    sneaky = {"bucket": TENANT_BUCKET, "airflowUri": attacker.url}  # the granted bucket, another Airflow

    async with start_controller(
        config_for(default.url, auth, tenancy({"bucket": TENANT_BUCKET, "airflowUri": granted.url}))
    ):
        await create_policy(kube, "sneaky", {**SPEC, "composer": sneaky})
        ready = await eventually(lambda: condition(kube, "sneaky", "Ready").get("reason") == "TargetNotAllowed")
        await default_target_polled(default, authorization)
        message = condition(kube, "sneaky", "Ready")["message"]

    assert ready
    assert status_of(kube, "sneaky")["result"] == "Refused"
    assert "spec.composer.airflowUri" in message
    assert f"namespaces.{NAMESPACE}.composerTargets" in message
    assert attacker.seen == []
    assert granted.seen == []
    assert "dags/vmbackup__shop__sneaky.py" not in dag_objects(gcs_bucket, tenant_bucket)
    assert default.authorizations() == {authorization}


async def test_allow_all_projects_does_not_grant_any_airflow(
    kube, start_controller, config_for, listeners, gcs_bucket, tenant_bucket, default_target_polled
) -> None:
    default, attacker = await listeners(), await listeners()
    auth, authorization = default_auth("basic")

    async with start_controller(config_for(default.url, auth, {"allowAllProjects": True})):
        await create_policy(kube, "sneaky", {**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": attacker.url}})
        await eventually(lambda: condition(kube, "sneaky", "Ready").get("reason") == "TargetNotAllowed")
        await default_target_polled(default, authorization)

    assert attacker.seen == []
    assert "dags/vmbackup__shop__sneaky.py" not in dag_objects(gcs_bucket, tenant_bucket)


async def test_a_granted_bucket_and_airflow_get_the_dag_and_only_their_own_credentials(
    kube, start_controller, config_for, listeners, gcs_bucket, tenant_bucket, default_target_polled
) -> None:
    default, granted = await listeners(), await listeners()
    auth, authorization = default_auth("basic")
    grant = {
        "bucket": TENANT_BUCKET,
        "airflowUri": granted.url + "/",
        "auth": {"type": "basic", "existingSecret": "shop-airflow"},
    }
    target_authorization = basic(TARGET_USER, TARGET_PASSWORD)

    async with start_controller(config_for(default.url, auth, tenancy(grant))):
        await create_policy(kube, "own", {**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": granted.url}})
        await eventually(lambda: granted.polled_with(target_authorization), what="the granted target's poll")
        await default_target_polled(default, authorization)

    assert "dags/vmbackup__shop__own.py" in dag_objects(tenant_bucket)
    assert "dags/vmbackup__shop__own.py" not in dag_objects(gcs_bucket)
    assert granted.authorizations() == {target_authorization}
    assert default.authorizations() == {authorization}


async def test_the_default_target_gets_the_default_credentials(
    kube, start_controller, config_for, listeners, default_target_polled
) -> None:
    default = await listeners()
    auth, authorization = default_auth("jwt")

    async with start_controller(config_for(default.url, auth, tenancy())):
        await default_target_polled(default, authorization)

    token_requests = [s for s in default.seen if s.path == "/auth/token"]
    assert json.loads(token_requests[0].body) == {"username": DEFAULT_USER, "password": DEFAULT_PASSWORD}


async def test_an_airflow_uri_carrying_credentials_is_refused_naming_the_field(
    kube, start_controller, config_for, listeners, tenant_bucket, default_target_polled
) -> None:
    default, granted = await listeners(), await listeners()
    auth, authorization = default_auth("basic")
    with_userinfo = granted.url.replace("http://", "http://admin:hunter2@")

    async with start_controller(
        config_for(default.url, auth, tenancy({"bucket": TENANT_BUCKET, "airflowUri": granted.url}))
    ):
        await create_policy(
            kube, "userinfo", {**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": with_userinfo}}
        )
        await eventually(lambda: condition(kube, "userinfo", "Ready").get("reason") == "TargetNotAllowed")
        await default_target_polled(default, authorization)
        message = condition(kube, "userinfo", "Ready")["message"]

    assert "spec.composer.airflowUri" in message
    assert "must not carry credentials (user:password@)" in message
    assert granted.seen == []
    assert dag_objects(tenant_bucket) == set()


async def test_a_redirecting_airflow_is_reported_and_the_redirect_target_gets_nothing(
    kube, start_controller, config_for, listeners, tenant_bucket, default_target_polled
) -> None:
    default, elsewhere = await listeners(), await listeners()

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": elsewhere.url + request.path_qs})

    redirecting = await listeners(redirect)
    auth, authorization = default_auth("basic")
    grant = {
        "bucket": TENANT_BUCKET,
        "airflowUri": redirecting.url,
        "auth": {"type": "jwt", "existingSecret": "shop-airflow"},
    }

    async with start_controller(config_for(default.url, auth, tenancy(grant))):
        await create_policy(
            kube, "moved", {**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": redirecting.url}}
        )
        reachable = await eventually(lambda: condition(kube, "moved", "AirflowReachable").get("reason") == "Redirected")
        await default_target_polled(default, authorization)
        message = condition(kube, "moved", "AirflowReachable")["message"]

    assert reachable
    assert f"redirects to {elsewhere.url}" in message
    assert "follows no redirect" in message
    assert redirecting.seen
    assert elsewhere.seen == []


async def test_the_client_follows_no_redirect_so_a_307_cannot_replay_the_password_elsewhere(listeners) -> None:
    elsewhere = await listeners()

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": elsewhere.url + request.path_qs})

    redirecting = await listeners(redirect)

    async with AirflowClient(redirecting.url, JwtAuth(TARGET_USER, TARGET_PASSWORD), api_version=2) as client:
        with pytest.raises(AirflowRedirectError, match="follows no redirect") as raised:
            await client.list_dags()

    assert raised.value.status == 307
    assert [s.path for s in redirecting.seen] == ["/auth/token"]
    assert elsewhere.seen == []


# ---- vmbackupctl: the operator's configured credentials follow the same rule -------------------------------------


@pytest.fixture
def cli_settings(monkeypatch: pytest.MonkeyPatch, gcs_bucket: storage.Bucket) -> Callable[[str], None]:
    """vmbackupctl configured like the controller: a default target on basic auth."""

    def configure(default_url: str) -> None:
        for name, value in {
            "BUCKET": gcs_bucket.name,
            "AIRFLOW_URL": default_url,
            "AIRFLOW_AUTH": "basic",
            "AIRFLOW_USERNAME": DEFAULT_USER,
            "AIRFLOW_PASSWORD": DEFAULT_PASSWORD,
        }.items():
            monkeypatch.setenv(f"VMBACKUP_{name}", value)
        monkeypatch.delenv("VMBACKUP_TENANCY_FILE", raising=False)
        monkeypatch.delenv("VMBACKUP_COMPOSER_ENVIRONMENT", raising=False)

    return configure


async def test_vmbackupctl_logs_sends_nothing_to_an_ungranted_airflow_a_policy_names(
    kube, listeners, cli_settings, monkeypatch
) -> None:
    default, attacker = await listeners(), await listeners()
    cli_settings(default.url)
    monkeypatch.setenv("VMBACKUP_TENANCY", json.dumps(tenancy()))
    put_policy(
        kube, NAMESPACE, "sneaky", spec={**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": attacker.url}}
    )

    result = await vmbackupctl("logs", "sneaky", "-n", NAMESPACE)

    assert result.code == 2
    assert "spec.composer.airflowUri" in result.stderr
    assert attacker.seen == []
    assert default.seen == []


async def test_vmbackupctl_logs_uses_a_granted_targets_own_credentials(
    kube, listeners, cli_settings, monkeypatch
) -> None:
    default, granted = await listeners(), await listeners()
    cli_settings(default.url)
    monkeypatch.setenv("VMBACKUP_TENANCY", json.dumps(tenancy({"bucket": TENANT_BUCKET, "airflowUri": granted.url})))
    put_policy(kube, NAMESPACE, "own", spec={**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": granted.url}})

    result = await vmbackupctl("logs", "own", "-n", NAMESPACE)

    assert result.code == 3, result.stderr  # the empty Airflow does not know the DAG
    assert granted.seen
    assert granted.authorizations() == set()  # granted with auth none: the operator's password stays home
    assert default.seen == []
