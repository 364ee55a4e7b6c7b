"""Stable entry point of rendered policy DAG files: `from vmbackup.factory import build_dag`.

Every policy DAG already in a Composer bucket imports this path, so it stays; the DAG is built in
vmbackup.backup.dag.
"""

from vmbackup.backup.dag import build_dag

__all__ = ["build_dag"]
