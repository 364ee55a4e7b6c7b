"""spec.stop: what a stop-mode run may do to a VM before it stops it (issue 23's checks before anything stops).

Kept out of policy.py, which holds the rest of the spec: these two switches are read at resolve time
(backup/resolution.py, backup/preflight.py) and, through the Target, by the step that calls instances.stop.
"""

from __future__ import annotations

from pydantic import Field, StrictBool

from vmbackup.model.crd_base import CrdModel

# The CRD field paths people set, named in every message about them.
DISCARD_LOCAL_SSD_FIELD = "spec.stop.discardLocalSsd"
REQUIRE_RESERVATION_FIELD = "spec.stop.requireReservation"


class StopOptions(CrdModel):
    """What a stop-mode run may do, and what it refuses, before it stops a VM. Used only with consistency stop."""

    # Strict: the API server refuses "yes" for a boolean, so the model must not read it as true either.
    discard_local_ssd: StrictBool = Field(
        default=False,
        description="Stop VMs that have a Local SSD, discarding its contents (instances.stop with discardLocalSsd). "
        "Local SSD data is never in a snapshot; with false (the default) such a VM is skipped and reported.",
    )
    require_reservation: StrictBool = Field(
        default=False,
        description="Skip (and report) VMs that consume no Compute Engine reservation: without one, the start after "
        "the stop can fail for hours in a zone stockout (ZONE_RESOURCE_POOL_EXHAUSTED). Default: stop them anyway.",
    )

    @property
    def any_set(self) -> bool:
        """Whether a switch is on: with a consistency other than stop nothing is stopped, so nothing reads them."""
        return self.discard_local_ssd or self.require_reservation
