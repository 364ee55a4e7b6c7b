"""Local stand-ins for Google Cloud: the Compute Engine simulator and the Composer-in-a-box stack.

The simulator (``gce_simulator``) knows Compute Engine only; this package installs vmbackup's own invariants into
it (``backup_invariants``), so every ``ComputeSimulator`` created here checks them.
"""

from . import backup_invariants

backup_invariants.install()
