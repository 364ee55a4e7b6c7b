"""Prometheus metrics of the controller, on their own registry so tests and replicas stay independent.

Per-policy series carry only the policy's namespace and name (plus the VM, a reason or a result from a
small fixed set): never a run id, so a policy's series count does not grow with its runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from controller.recovery_point import RecoveryPointStatus
from vmbackup.model.report import RunReport
from vmbackup.model.rpo import parse_duration

POLICY_LABELS = ["namespace", "name"]
LAST_SUCCESS = "vmbackup_last_success_timestamp_seconds"  # the gauge the reconciler also reads back after a restart
UNPROTECTED_VMS = "vmbackup_unprotected_vms"
RPO_BREACHED = "vmbackup_rpo_breached"


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        # Registered in this order (the order /metrics lists them in).
        self._add_reconcile_metrics()
        self._add_policy_metrics()
        self._add_drill_leader_and_keeper_metrics()
        self._add_protection_metrics()
        self._add_recovery_point_metrics()

    def _add_reconcile_metrics(self) -> None:
        """Reconciles and uploads, the last success and failures, Airflow polls."""
        self.reconciles = Counter(
            "vmbackup_reconciles",
            "Policy reconciliations, by outcome (Ready, Invalid, Refused, Error).",
            ["result"],
            registry=self.registry,
        )
        self.uploads = Counter(
            "vmbackup_uploads",
            "Objects written to a Composer bucket (unchanged content is not written).",
            ["kind"],  # dag | plugin | keeper
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "vmbackup_reconcile_duration_seconds",
            "Time to validate, render and upload one policy.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            LAST_SUCCESS,
            "End time of the policy's last successful backup run (Unix time).",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.failed_runs = Counter(
            "vmbackup_failed_runs",
            "Backup runs that ended in failure, counted once per run.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.airflow_polls = Counter(
            "vmbackup_airflow_polls",
            "Batched Airflow status queries, by outcome (ok, unreachable).",
            ["outcome"],
            registry=self.registry,
        )

    def _add_policy_metrics(self) -> None:
        """Per policy: its schedule and age (for the alerts), its Airflow, its last run's details."""
        self.schedule_interval = Gauge(
            "vmbackup_schedule_interval_seconds",
            "Longest gap between two slots of the policy's schedule: alerts on a missing backup wait a multiple of it.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.policy_created = Gauge(
            "vmbackup_policy_created_timestamp_seconds",
            "Creation time of the policy object (Unix time): a policy that never succeeded is late from here.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.airflow_reachable = Gauge(
            "vmbackup_airflow_reachable",
            "1 when the policy's Airflow answered the latest batched poll, 0 when it did not.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.last_run_duration = Gauge(
            "vmbackup_last_run_duration_seconds",
            "Duration of the policy's last finished backup run, from Airflow's start to its end.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.vm_downtime = Gauge(
            "vmbackup_vm_downtime_seconds",
            "How long each VM was stopped by the policy's last finished run (0: the run did not stop it).",
            [*POLICY_LABELS, "instance", "zone"],
            registry=self.registry,
        )
        self.snapshots_created = Counter(
            "vmbackup_snapshots_created",
            "Snapshots the policy's runs created and found READY, from the run reports.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.snapshots_pruned = Counter(
            "vmbackup_snapshots_pruned",
            "Snapshots the policy's retention deleted, from the run reports.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.missed_runs = Counter(
            "vmbackup_missed_runs",
            "Scheduled slots that touched no VM (late start, outside the maintenance window, or already backed up), "
            "counted once per slot.",
            [*POLICY_LABELS, "reason"],
            registry=self.registry,
        )

    def _add_drill_leader_and_keeper_metrics(self) -> None:
        """Restore drills, the Lease, and the keeper of VMs left stopped."""
        self.drill_runs = Counter(
            "vmbackup_restore_drills",
            "Restore drills that finished, by result (Succeeded, Failed).",
            [*POLICY_LABELS, "result"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "vmbackup_leader",
            "1 while this replica holds the Lease and runs the controller, 0 while it follows.",
            registry=self.registry,
        )
        self.drill_last_success = Gauge(
            "vmbackup_restore_drill_last_success_timestamp_seconds",
            "End time of the policy's last successful restore drill (Unix time).",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.vms_left_stopped = Gauge(
            "vmbackup_vms_left_stopped",
            "VMs this product stopped that the keeper has not started again yet, per project (keeper report).",
            ["project"],
            registry=self.registry,
        )
        self.vm_left_stopped_since = Gauge(
            "vmbackup_vm_left_stopped_since_timestamp_seconds",
            "When this product stopped a VM that is still left stopped (Unix time); present only while it waits.",
            ["project", "zone", "instance"],
            registry=self.registry,
        )
        self.keeper_report_age = Gauge(
            "vmbackup_keeper_report_age_seconds",
            "Age of the keeper's latest report in the bucket, at the controller's latest look.",
            ["bucket"],
            registry=self.registry,
        )
        self.keeper_interval = Gauge(
            "vmbackup_keeper_interval_seconds",
            "Longest gap between two runs of the keeper DAG the controller shipped to the bucket.",
            ["bucket"],
            registry=self.registry,
        )

    def _add_protection_metrics(self) -> None:
        """Coverage of the granted projects (controller/coverage_scan.py) and each VM's recovery point (spec.rpo)."""
        self.unprotected_vms = Gauge(
            UNPROTECTED_VMS,
            "VMs of a granted project (and zone) that no active policy protects, at the latest coverage scan.",
            ["project"],
            registry=self.registry,
        )
        self.coverage_scan_time = Gauge(
            "vmbackup_coverage_scan_timestamp_seconds",
            "When the project's VMs were last listed for coverage (Unix time); stale: its listing fails.",
            ["project"],
            registry=self.registry,
        )

    def _add_recovery_point_metrics(self) -> None:
        """Per VM of a policy with spec.rpo: its newest good backup and whether the objective is breached."""
        self.rpo_seconds = Gauge(
            "vmbackup_rpo_seconds",
            "The policy's recovery point objective (spec.rpo) in seconds.",
            POLICY_LABELS,
            registry=self.registry,
        )
        self.newest_good_backup = Gauge(
            "vmbackup_newest_good_backup_timestamp_seconds",
            "When the VM's newest good backup was cut (Unix time): every disk READY, stop time else run start.",
            [*POLICY_LABELS, "instance", "zone"],
            registry=self.registry,
        )
        self.rpo_breached = Gauge(
            RPO_BREACHED,
            "1 while the VM's newest good backup is older than spec.rpo (or it has none and the policy is), else 0.",
            [*POLICY_LABELS, "instance", "zone"],
            registry=self.registry,
        )

    def record_recovery_points(self, namespace: str, name: str, status: RecoveryPointStatus | None) -> None:
        """The policy's per-VM series, replaced as a whole (a VM that left the policy leaves them)."""
        for metric in (self.rpo_seconds, self.newest_good_backup, self.rpo_breached):
            _remove_matching(metric, namespace, name)
        if status is None:
            return
        self.rpo_seconds.labels(namespace, name).set(parse_duration(status.objective).total_seconds())
        for vm in status.instances:
            self.rpo_breached.labels(namespace, name, vm.instance, vm.zone).set(vm.compliance == "Breached")
            if vm.newest_good_backup is not None:
                self.newest_good_backup.labels(namespace, name, vm.instance, vm.zone).set(
                    vm.newest_good_backup.timestamp()
                )

    def forget_projects_except(self, projects: set[str]) -> None:
        """A project no longer granted (or no longer named, with allowAllProjects) drops out of the coverage series."""
        for metric in (self.unprotected_vms, self.coverage_scan_time):
            for family in metric.collect():
                for project in {s.labels["project"] for s in family.samples} - projects:
                    metric.remove(project)

    def last_success_time(self, namespace: str, name: str) -> float:
        """The end of the policy's last successful run as the gauge says now (0 when never set)."""
        return self.value(LAST_SUCCESS, {"namespace": namespace, "name": name})

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent), e.g. value('vmbackup_uploads_total', {'kind': 'dag'})."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def policy_series(self) -> Iterable[MetricWrapperBase]:
        """Every metric labelled by policy: forget_policy removes a policy's series from each."""
        return (
            self.last_success,
            self.failed_runs,
            self.schedule_interval,
            self.policy_created,
            self.airflow_reachable,
            self.last_run_duration,
            self.vm_downtime,
            self.snapshots_created,
            self.snapshots_pruned,
            self.missed_runs,
            self.drill_runs,
            self.drill_last_success,
            self.rpo_seconds,
            self.newest_good_backup,
            self.rpo_breached,
        )

    def track_policy(self, namespace: str, name: str, interval_seconds: float | None, created: float | None) -> None:
        """A policy with an uploaded DAG: its schedule's interval, and its counters at 0 so the first one counts.

        No interval (a suspended policy) removes the series: nothing is expected, so no backup is missing.
        (Prometheus's increase() cannot see a counter's first step when the series starts at 1.)
        """
        if interval_seconds is None:
            _remove_matching(self.schedule_interval, namespace, name)
        else:
            self.schedule_interval.labels(namespace, name).set(interval_seconds)
        if created is not None:
            self.policy_created.labels(namespace, name).set(created)
        for counter in (self.failed_runs, self.snapshots_created, self.snapshots_pruned):
            counter.labels(namespace, name)

    def record_run(
        self, namespace: str, name: str, report: RunReport | None, duration: float | None, *, count: bool
    ) -> None:
        """A finished run's gauges (duration: Airflow's, else the report's; per-VM downtime); with ``count``, its
        snapshots into the counters.

        ``count`` is False for a run announced before a restart: counting it again would count it twice.
        """
        if duration is None and report is not None and report.started_at and report.finished_at:
            duration = (report.finished_at - report.started_at).total_seconds()  # Airflow had no start time
        if duration is not None:
            self.last_run_duration.labels(namespace, name).set(duration)
        if report is None:
            return
        _remove_matching(self.vm_downtime, namespace, name)
        for vm in report.instances:
            self.vm_downtime.labels(namespace, name, vm.instance, vm.zone).set(vm.downtime_seconds or 0.0)
        if count:
            self.snapshots_created.labels(namespace, name).inc(len(report.snapshots))
            self.snapshots_pruned.labels(namespace, name).inc(len(report.pruned_snapshots))

    def forget_policy(self, namespace: str, name: str) -> None:
        """A deleted policy's series would otherwise be reported forever."""
        for metric in self.policy_series():
            _remove_matching(metric, namespace, name)


def _remove_matching(metric: MetricWrapperBase, namespace: str, name: str) -> None:
    """Remove every child of ``metric`` whose namespace and name are the policy's, whatever its other labels."""
    children = {
        tuple(sample.labels.values())  # a counter's or gauge's samples list its labels in declaration order
        for family in metric.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name
    }
    for values in children:
        metric.remove(*values)
