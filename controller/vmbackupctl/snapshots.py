"""A policy's snapshots, from Compute Engine, found by the labels the backup run put on them.

The endpoint comes from the same variable the DAG's tasks read (VMBACKUP_COMPUTE_ENDPOINT), so the
CLI lists from the Compute Engine simulator in the local stack and from Google Cloud otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from controller.compute_inventory import ENDPOINT_ENV, compute_client_kwargs
from controller.vmbackupctl import render
from controller.vmbackupctl.errors import CliError, Failed, NotFound, Unreachable
from vmbackup.model import labels

REQUEST_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class SnapshotRow:
    """One snapshot as the CLI shows it; ``raw`` is Compute Engine's JSON for -o json/yaml."""

    name: str
    disk_size_gb: str
    source_disk: str  # zone/disks/name, as gcloud's SRC_DISK column
    status: str
    created: str
    instance: str
    run: str
    raw: dict[str, Any]


def list_policy_snapshots(project: str, namespace: str, name: str, endpoint: str | None = None) -> list[SnapshotRow]:
    """Exactly this policy's snapshots, newest first."""
    from google.cloud import compute_v1

    rows = []
    for snapshot in policy_snapshot_resources(project, namespace, name, endpoint):
        raw = json.loads(compute_v1.Snapshot.to_json(snapshot))
        rows.append(
            SnapshotRow(
                name=snapshot.name,
                disk_size_gb=str(snapshot.disk_size_gb),
                source_disk=_scope(snapshot.source_disk),
                status=snapshot.status,
                created=snapshot.creation_timestamp,
                instance=snapshot.labels.get(labels.INSTANCE, ""),
                run=snapshot.labels.get(labels.RUN, ""),
                raw=raw,
            )
        )
    rows.sort(key=lambda r: (render.parse_time(r.created) or render.parse_time("1970-01-01T00:00:00Z"), r.name))
    rows.reverse()
    return rows


def policy_snapshot_resources(project: str, namespace: str, name: str, endpoint: str | None = None) -> list[Any]:
    """This policy's snapshots as Compute Engine returns them (compute_v1.Snapshot), in no particular order."""
    from google.cloud import compute_v1

    endpoint = endpoint if endpoint is not None else (os.environ.get(ENDPOINT_ENV) or None)
    where = f"Compute Engine at {endpoint}" if endpoint else "Compute Engine"
    wanted = {labels.POLICY_NAMESPACE: namespace, labels.POLICY_NAME: name}
    label_filter = " AND ".join(f"(labels.{k} = {v})" for k, v in sorted(wanted.items()))
    try:
        client = compute_v1.SnapshotsClient(**compute_client_kwargs(endpoint))
        request = compute_v1.ListSnapshotsRequest(project=project, filter=label_filter)
        found = list(client.list(request=request, timeout=REQUEST_TIMEOUT_SECONDS))
    except Exception as exc:
        raise compute_error(exc, where, project) from None
    # Filtered again here: which snapshots are the policy's must not depend on the server's filter support.
    return [s for s in found if all(s.labels.get(k) == v for k, v in wanted.items())]


def snapshot_table(rows: Sequence[SnapshotRow], *, wide: bool) -> str:
    """gcloud compute snapshots list's columns (wide: when, which instance, which run)."""
    headers = ["NAME", "DISK_SIZE_GB", "SRC_DISK", "STATUS"]
    if wide:
        headers += ["CREATION_TIMESTAMP", "INSTANCE", "RUN"]
    body = []
    for row in rows:
        cells = [row.name, row.disk_size_gb, row.source_disk, row.status]
        if wide:
            cells += [row.created, row.instance or render.NONE, row.run or render.NONE]
        body.append(cells)
    return render.table(headers, body, style="gcloud")


def _scope(url: str) -> str:
    """.../projects/P/zones/Z/disks/D -> Z/disks/D (gcloud's sourceDisk.scope())."""
    parts = url.rstrip("/").split("/")
    if "zones" in parts:
        return "/".join(parts[parts.index("zones") + 1 :])
    if "regions" in parts:
        return "/".join(parts[parts.index("regions") + 1 :])
    return url


def compute_error(
    exc: Exception, where: str, project: str, listing: str = "snapshots", permission: str = "compute.snapshots.list"
) -> CliError:
    """A Compute Engine failure to list ``listing`` in a project, as the CLI's error naming the fix."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return Unreachable(
            f"no Google credentials for {where}: run `gcloud auth application-default login` "
            f"or set GOOGLE_APPLICATION_CREDENTIALS ({_first_line(exc)})"
        )
    if isinstance(exc, auth_exc.GoogleAuthError):
        return Unreachable(f"cannot authenticate to {where}: {_first_line(exc)}")
    if isinstance(exc, gexc.NotFound):
        return NotFound(f"{where} does not know project {project!r} (spec.project): {_first_line(exc.message)}")
    if isinstance(exc, gexc.Unauthorized | gexc.Forbidden):
        return Unreachable(
            f"{where} refused to list {listing} in project {project!r}: {_first_line(exc.message)}; "
            f"check your credentials and the {permission} permission"
        )
    if isinstance(exc, gexc.GoogleAPICallError) and (exc.code or 0) < 500 and exc.code != 429:
        return Failed(f"{where} refused the list of {listing} (HTTP {exc.code}): {_first_line(exc.message)}")
    if isinstance(exc, gexc.GoogleAPIError | requests.exceptions.RequestException | OSError):
        detail = "connection refused" if "Connection refused" in str(exc) else _first_line(exc)
        fix = f"check {ENDPOINT_ENV}" if ENDPOINT_ENV in os.environ else "check your network and try again"
        return Unreachable(f"cannot reach {where}: {detail}; {fix}")
    raise exc


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else "no details given"
