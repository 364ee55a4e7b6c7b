"""The caller's IAM permissions, per project: every permission, unless a test takes one away (``deny_permission``).

The simulator has a single caller (the DAG's service account). Which permission each snapshot call needs, and on
which resource, is from the method's "IAM Permissions" section of the compute v1 reference:

- ``snapshots.insert`` (https://cloud.google.com/compute/docs/reference/rest/v1/snapshots/insert):
  ``compute.snapshots.create`` in the project of the new snapshot, and reading the source, ``compute.disks.useReadOnly``
  on ``sourceDisk`` or ``compute.instantSnapshots.useReadOnly`` on ``sourceInstantSnapshot``, in the source's project
  (which may be another one: "creating snapshots in a project different from the source disk project").
- ``disks.createSnapshot`` (https://cloud.google.com/compute/docs/reference/rest/v1/disks/createSnapshot):
  ``compute.disks.createSnapshot`` on the disk and ``compute.snapshots.create`` in its project.
- ``snapshots.get`` / ``list`` / ``delete``: ``compute.snapshots.get`` / ``list`` / ``delete``.
- ``disks.insert`` from ``sourceSnapshot``: ``compute.disks.create`` in the disk's project and
  ``compute.snapshots.useReadOnly`` on the snapshot, in the snapshot's project.

ESTIMATE: the permission list per method is from memory of those reference pages (their IAM sections were not in the
copies searched this session) and from Google's predefined roles (roles/compute.storageAdmin holds all of them).

A missing permission answers 403, reason ``forbidden``, domain ``global``, message ``Required '<permission>'
permission for '<resource>'``: the body Compute Engine returns, as quoted in public reports of the error (e.g.
"Error 403: Required 'compute.networks.create' permission for 'projects/my-project/global/networks/my-network',
forbidden"); the wording is observed, not documented.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ApiError

if TYPE_CHECKING:
    from .state import World

# The permissions the simulator checks (any other name is refused by deny_permission: a typo must not pass silently).
PERMISSIONS = frozenset(
    {
        "compute.disks.create",
        "compute.disks.createSnapshot",
        "compute.disks.useReadOnly",
        "compute.instantSnapshots.useReadOnly",
        "compute.snapshots.create",
        "compute.snapshots.delete",
        "compute.snapshots.get",
        "compute.snapshots.list",
        "compute.snapshots.useReadOnly",
    }
)


def forbidden(permission: str, resource_path: str) -> ApiError:
    return ApiError(403, "forbidden", f"Required '{permission}' permission for '{resource_path}'")


def require(world: World, project: str, permission: str, resource_path: str) -> None:
    """Raise the 403 Compute Engine answers when the caller lacks `permission` in `project` (lock held)."""
    if (project, permission) in world.denied_permissions:
        raise forbidden(permission, resource_path)


def deny(world: World, project: str, permission: str) -> None:
    """From now on (until reset) the caller lacks `permission` in `project`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; the simulator checks {', '.join(sorted(PERMISSIONS))}")
    with world.cond:
        world.denied_permissions.add((project, permission))
