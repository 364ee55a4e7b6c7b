"""Trigger class paths that Airflow's database may hold for tasks deferred by an earlier release.

A deferred task's trigger row names its class by import path (`vmbackup.triggers.OperationStatusTrigger`);
the triggerer imports that path to resume it, so it must keep resolving. The triggers live in
vmbackup.compute.triggers and serialize under that path now.
"""

from vmbackup.compute.triggers import OperationStatusTrigger, SnapshotStatusTrigger

__all__ = ["OperationStatusTrigger", "SnapshotStatusTrigger"]
