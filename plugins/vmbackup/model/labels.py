"""Labels that mark a snapshot as this operator's: retention prunes only what carries them.

Shared by the DAG (which sets them), the controller and the CLI (which list by them), and the
Compute Engine simulator's invariant checks. Label values must match [-_a-z0-9]{0,63}.
"""

MANAGED_BY = "vmbackup-managed-by"
MANAGED_BY_VALUE = "vmbackup-operator"
POLICY_NAMESPACE = "vmbackup-namespace"
POLICY_NAME = "vmbackup-policy"
RUN = "vmbackup-run"  # a short hash of the DAG run id
INSTANCE = "vmbackup-instance"
CONSISTENCY = "vmbackup-consistency"  # stop | none | guestflush (label values are lowercase)
SLOT = "vmbackup-slot"  # the scheduled slot a snapshot backs up (UTC, e.g. 20261125t0200z): one backup per slot
LOCK = "vmbackup-lock"  # set on an instance while a run holds it: "<run hash>-<expiry, epoch seconds>"
# Who holds the lock, set and removed with it in one setLabels call (identifiers.lock_labels): the namespace, the
# holding policy or restore (the key names the kind) and its Airflow run id in label form. A lock without them
# (set by an older version) is still a lock; its holder is just not known.
LOCK_NAMESPACE = "vmbackup-lock-namespace"
LOCK_POLICY = "vmbackup-lock-policy"
LOCK_RESTORE = "vmbackup-lock-restore"
LOCK_RUN_ID = "vmbackup-lock-run"
LOCK_LABELS = (LOCK, LOCK_NAMESPACE, LOCK_POLICY, LOCK_RESTORE, LOCK_RUN_ID)
BOOT = "vmbackup-boot"  # on a snapshot: "true" when its disk was the instance's boot disk (backup_record.py)
REPLACED_BY = "vmbackup-replaced-by"  # on a disk an InPlace restore detached: which restore (its marker)
DEVICE = "vmbackup-device"  # on a snapshot: the device name its disk was attached with
# The durable mark that this product stopped an instance: set in the same setLabels call as the lock, before the stop
# request, and removed only once the instance is RUNNING again. It outlives the lock, the run and the controller, so
# a later run, restore, drill or the keeper DAG starts the instance instead of mistaking it for one its owner
# stopped. STOPPED_BY is the run hash of the run that stopped it (label form); STOPPED_AT the epoch seconds.
STOPPED_BY = "vmbackup-stopped-by"
STOPPED_AT = "vmbackup-stopped-at"
STOPPED_BY_LABELS = (STOPPED_BY, STOPPED_AT)
# The run hash of the last backup run whose down window held an instance and released it, set in the release's
# setLabels call (no call of its own): a window of that run that runs again (a retried task, a re-created trigger)
# finds it and does not stop the instance a second time. It stays until the next run's release replaces it.
RELEASED_BY = "vmbackup-released-by"
# The keeper's tries to start a marked instance: "<tries>-<epoch seconds of the last try>", removed with the mark.
KEEPER_TRIES = "vmbackup-keeper-tries"


def consistency_value(mode: str) -> str:
    return mode.lower()
