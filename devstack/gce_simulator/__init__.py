"""A Compute Engine API simulator: a real HTTP server speaking the compute v1 REST subset the operator uses.

No emulator for Compute Engine exists, so the project owns this one. It is driven by the real
``google-cloud-compute`` client:

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1
    from devstack.gce_simulator import ComputeSimulator, Profile, compute_client_options

    with ComputeSimulator(Profile.fast()) as sim:
        sim.seed_classic("demo-project")
        opts = compute_client_options(sim.base_url)          # {"api_endpoint": "http://127.0.0.1:PORT"}
        instances = compute_v1.InstancesClient(credentials=AnonymousCredentials(), client_options=opts)
        zone_ops = compute_v1.ZoneOperationsClient(credentials=AnonymousCredentials(), client_options=opts)
        op = instances.stop_unary(project="demo-project", zone="us-central1-c", instance="wordpress-1-vm")
        zone_ops.wait(project="demo-project", zone="us-central1-c", operation=op.name)

An ``http://`` api_endpoint is honoured as is by the REST transport. But ``op.result()`` on the
``ExtendedOperation`` that ``stop()`` (without ``_unary``) returns polls compute.googleapis.com whatever the
client options say; wait with an operations client as above, or build clients with
``compute_client(ClientClass, base_url)`` (see ``clients.py``).

Served (paths, verbs and JSON as compute v1): instances get/list/aggregatedList/stop/start/suspend/resume/setLabels/insert/
delete/attachDisk/detachDisk/getSerialPortOutput (the guest's console: ``devices``), disks
get/list/createSnapshot/insert/delete, regionDisks get, snapshots get/list/insert/delete (from
``sourceDisk`` or ``sourceInstantSnapshot``), instantSnapshots and regionInstantSnapshots insert/get/list/delete,
reservations insert/get/list/delete (consumed per ``reservationAffinity``: ``reservations``), machineTypes and
acceleratorTypes get (what a zone offers: ``machine_types``, ``accelerators``), zoneOperations, regionOperations and
globalOperations get/wait;
``filter`` on list calls (``labels.app = web AND status = RUNNING`` ...). Compute Engine's error JSON shape.

As unkind as Compute Engine (issue 23), each rule with its source in its module: rate quotas per group and minute
(403 ``rateLimitExceeded``) and the concurrent operations quota (``quotas``); a second mutation of a busy resource,
or of a RESTORING disk, is refused with 400 ``resourceNotReady``; DONE operations are purged after the retention
period (then 404); a disk can be snapshotted at most every 10 minutes and 6 times an hour, guestFlush needs
support in the VM (``snapshot_rules``); a permission the caller was made to lack answers 403 ``forbidden``
(``iam``: ``deny_permission``); snapshots written to another project than their source disk's, ARCHIVE snapshots
(slower to restore) and checked ``storageLocations`` (``snapshots``); stockouts, graceful shutdown (``PENDING_STOP``), Local SSDs
(``discardLocalSsd``), suspend/resume and Spot preemption (``power``); GPUs only of a type the zone offers, on a
machine type that takes them, on a VM that stops for host maintenance (``accelerators``). ``presets`` names fault
sets that tests and the benchmark share (``--preset NAME``).

Control plane: ``/_sim/...`` on the same port (``SimulatorControl`` wraps it with ComputeSimulator's method
names). CLI: ``python -m devstack.gce_simulator --port 0 --profile fast --seed classic`` prints the base URL on its
first stdout line; ``--preset NAME`` (repeatable) applies a named preset after seeding.

Modules, each importing only those before it (tests/test_import_graph.py): ``errors`` (error bodies),
``filters``, ``faults``, ``profile`` (timings and their sources), ``common`` (links, ids, names, labels),
``resources`` (the records and their JSON), ``scheduler`` (the clock), ``operations``, ``observers`` (invariant
hooks), ``state`` (``World``), ``iam``, ``quotas``, ``snapshot_rules``, ``devices`` (disk attachment, serial console, the
guest), ``disks``, ``instant_snapshots``, ``snapshots``, ``reservations``, ``power``, ``machine_types``, ``networks``,
``accelerators``, ``instances``, ``presets``,
``routes`` (REST), ``server`` (HTTP), ``simulator`` (``ComputeSimulator`` and its control plane), ``control``,
``clients``.

The simulator knows Compute Engine only: the invariants of the project driving it are observers
(``observers.py``); this repository's (``devstack/backup_invariants.py``) are installed by ``devstack/__init__.py``.
"""

from .clients import compute_client, compute_client_options
from .control import SimulatorControl, SimulatorControlError
from .faults import Fault
from .profile import Profile
from .simulator import ComputeSimulator

__all__ = [
    "ComputeSimulator",
    "Fault",
    "Profile",
    "SimulatorControl",
    "SimulatorControlError",
    "compute_client",
    "compute_client_options",
]
