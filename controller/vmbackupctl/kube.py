"""VMBackupPolicy objects through the Kubernetes API, found the way kubectl finds the cluster.

The official client is used because it is what kubectl's configuration needs in practice: contexts,
per-context namespaces, exec credential plugins (GKE's gke-gcloud-auth-plugin) and in-cluster service
accounts. Every failure leaves this module as a CliError naming the cluster and the fix.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from controller.conditions import rfc3339
from controller.vmbackupctl.errors import CliError, Failed, NotFound, Unreachable
from vmbackup.model.policy import API_GROUP, API_VERSION, BACKUP_NOW_ANNOTATION, KIND, PLURAL, VERIFY_NOW_ANNOTATION
from vmbackup.model.restore import PLURAL as RESTORE_PLURAL

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
REQUEST_TIMEOUT = (10.0, 30.0)  # connect, read: a script must not hang on a dead cluster
RESOURCE = f"{PLURAL}.{API_GROUP}"

Policy = dict[str, Any]


class PolicyStore:
    """Reads and annotates VMBackupPolicies in one cluster (one kubeconfig context)."""

    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None) -> None:
        configuration = k8s.Configuration()
        self.default_namespace = "default"
        with _kube_errors("the Kubernetes configuration"):
            self.default_namespace = _load(configuration, kubeconfig, context)
        configuration.retries = 1  # one retry on a dropped connection, then fail fast
        self.server = configuration.host
        # The kubeconfig asked for no verification (insecure-skip-tls-verify): kubectl then stays quiet, and so do
        # we; urllib3 would warn on every request. Certificate checks are still made whenever it did not ask.
        self.skips_tls_verify = not configuration.verify_ssl
        self._api = k8s.CustomObjectsApi(k8s.ApiClient(configuration))

    def get(self, namespace: str, name: str) -> Policy:
        with self._errors(_one(namespace, name), verb="get"):
            obj = self._api.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
        return _object(obj)

    def list(self, namespace: str | None) -> list[Policy]:
        """Policies of one namespace, or of all (None), sorted as kubectl sorts them."""
        with self._errors(f"{KIND} objects", verb="list", not_found=_missing_resource(self.server)):
            if namespace is None:
                data = self._api.list_cluster_custom_object(
                    API_GROUP, API_VERSION, PLURAL, _request_timeout=REQUEST_TIMEOUT
                )
            else:
                data = self._api.list_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT
                )
        items = [_object(item) for item in _object(data).get("items") or []]
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def request_backup(self, namespace: str, name: str, now: datetime | None = None) -> Policy:
        """Set the on-demand annotation (its value: when it was asked); the controller triggers and clears it."""
        return self._request(namespace, name, BACKUP_NOW_ANNOTATION, now)

    def request_drill(self, namespace: str, name: str, now: datetime | None = None) -> Policy:
        """Ask the controller for a restore drill now; it starts one (after a drill in flight) and clears it."""
        return self._request(namespace, name, VERIFY_NOW_ANNOTATION, now)

    def _request(self, namespace: str, name: str, annotation: str, now: datetime | None) -> Policy:
        value = rfc3339(now or datetime.now(UTC))
        body = {"metadata": {"annotations": {annotation: value}}}
        with self._errors(_one(namespace, name), verb="patch"):
            obj = self._api.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            )
        return _object(obj)

    def create_restore(self, body: Policy) -> tuple[Policy, bool]:
        """Create a VMRestore; (the object, True) or, when one of that name exists, (it, False): never two VMs."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        created = True
        try:
            with self._quiet():
                self._api.create_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, RESTORE_PLURAL, body, _request_timeout=REQUEST_TIMEOUT
                )
        except ApiException as exc:
            if exc.status != 409:
                with self._errors(_one_restore(namespace, name), verb="create"):
                    raise
            created = False
        return self.get_restore(namespace, name), created  # read back: what the server holds, status included

    def get_restore(self, namespace: str, name: str) -> Policy:
        with self._errors(_one_restore(namespace, name), verb="get"):
            obj = self._api.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, RESTORE_PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
        return _object(obj)

    @contextmanager
    def _errors(self, what: str, verb: str, not_found: str | None = None) -> Iterator[None]:
        with _kube_errors(what, server=self.server, verb=verb, not_found=not_found), self._quiet():
            yield

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Without urllib3's InsecureRequestWarning, only where the kubeconfig skips TLS verification."""
        with warnings.catch_warnings():
            if self.skips_tls_verify:
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            yield


def _object(data: object) -> Policy:
    if not isinstance(data, dict):
        raise Failed(f"the Kubernetes API answered with {type(data).__name__}, not an object")
    return data


def _one_restore(namespace: str, name: str) -> str:
    return f'VMRestore "{name}" in namespace "{namespace}"'


def _one(namespace: str, name: str) -> str:
    return f'{KIND} "{name}" in namespace "{namespace}"'


@contextmanager
def _kube_errors(
    what: str, server: str | None = None, verb: str = "get", not_found: str | None = None
) -> Iterator[None]:
    where = f"the Kubernetes API at {server}" if server else "the Kubernetes API"
    try:
        yield
    except CliError:
        raise
    except ApiException as exc:
        raise _api_error(exc, what, where, verb, not_found) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise Unreachable(
            f"cannot reach {where}: {_reason(exc)}; check KUBECONFIG or --context, and that the cluster is up"
        ) from None
    except ConfigException as exc:
        raise Unreachable(
            f"cannot use {what}: {str(exc).rstrip('.')}; set KUBECONFIG or --kubeconfig to a valid file, or pick one with --context"
        ) from None


def _api_error(exc: ApiException, what: str, where: str, verb: str, not_found: str | None) -> CliError:
    status = int(exc.status or 0)
    message = _status_message(exc)
    if status == 404:
        return NotFound(not_found or f"{what} not found")
    if status in (401, 403):
        return Unreachable(
            f"{where} refused the request for {what} (HTTP {status}): {message}; "
            "check your credentials (kubectl auth whoami) and your permissions on "
            f"{RESOURCE} (kubectl auth can-i {verb} {RESOURCE})"
        )
    if status >= 500 or status == 0:
        return Unreachable(f"{where} failed (HTTP {status}): {message}; try again, or check the cluster's health")
    return Failed(f"{where} refused the request for {what} (HTTP {status}): {message}")


def _missing_resource(server: str) -> str:
    return (
        f"the Kubernetes API at {server} does not serve {RESOURCE}: install the VMBackupPolicy CRD "
        "(it comes with the vmbackup-operator Helm chart)"
    )


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.reason or "no details given")
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "no details given")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    # urllib3 wraps the socket error in layers of repr(); the innermost clause says what happened.
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return text


def _load(configuration: k8s.Configuration, kubeconfig: str | None, context: str | None) -> str:
    """Configure the client like kubectl would; the namespace of the chosen context (or the pod's)."""
    # Read KUBECONFIG now: the client library reads it once, at import.
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    explicit = kubeconfig is not None or context is not None or bool(os.environ.get("KUBECONFIG"))
    if not explicit and not Path(path).exists():
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
            try:
                return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or "default"
            except OSError:
                return "default"
        raise ConfigException(f"no kubeconfig found ({path} does not exist and KUBECONFIG is not set)")
    k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
    contexts, active = k8s_config.list_kube_config_contexts(config_file=path)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")
