"""The CEL rules of spec.snapshot (controller/crdgen.py puts them in the CRD): each restates a check of the model
(plugins/vmbackup/model/snapshot_settings.py and PolicySpec._archive_rungs_are_kept) so that `kubectl apply` refuses
the object at once, naming the field and the fix; the model stays the authority."""

from __future__ import annotations

from controller.crd_schema import Rule
from vmbackup.model import retention_spec

# On spec.snapshot: ARCHIVE snapshots (policy-wide or per rung) are cut by method standard only.
SNAPSHOT_RULES: list[Rule] = [
    {
        "rule": "!has(self.type) || self.type != 'ARCHIVE' || !has(self.method) || self.method != 'instant'",
        "message": "snapshot.type ARCHIVE cannot be used with snapshot.method instant: set method standard or "
        "type STANDARD",
        "fieldPath": ".type",
    },
    {
        "rule": "!has(self.archiveRungs) || !has(self.method) || self.method != 'instant'",
        "message": "snapshot.archiveRungs cannot be used with snapshot.method instant (ARCHIVE snapshots need "
        "method standard): set method standard or remove archiveRungs",
        "fieldPath": ".archiveRungs",
    },
]

_KEPT = " || ".join(f"(r == '{name}' && has(self.retention.{name}))" for name in retention_spec.RUNG_NAMES)

# On spec: spec.snapshot.archiveRungs names only rungs spec.retention sets.
ARCHIVE_RUNG_RULE: Rule = {
    "rule": "!has(self.snapshot) || !has(self.snapshot.archiveRungs) "
    f"|| (has(self.retention) && self.snapshot.archiveRungs.all(r, {_KEPT}))",
    "message": "snapshot.archiveRungs names a rung spec.retention does not set: set that rung in spec.retention "
    "or remove it from archiveRungs",
    "fieldPath": ".snapshot.archiveRungs",
}
