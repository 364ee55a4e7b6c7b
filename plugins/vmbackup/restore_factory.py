"""Stable entry point of rendered restore DAG files: `from vmbackup.restore_factory import build_restore_dag`.

Every restore DAG already in a Composer bucket imports this path, so it stays; the DAG is built in
vmbackup.restore.dag.
"""

from vmbackup.restore.dag import build_restore_dag

__all__ = ["build_restore_dag"]
