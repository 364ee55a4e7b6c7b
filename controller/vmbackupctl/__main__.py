"""``vmbackupctl`` / ``python -m controller.vmbackupctl``: the command line, its flags and its exit codes."""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TextIO

from controller.config import AUTH_MODES
from controller.vmbackupctl import commands
from controller.vmbackupctl.errors import EXIT_CODES_HELP, CliError, ExitCode
from controller.vmbackupctl.retention import retention as retention_command
from controller.vmbackupctl.verify import verify as verify_command
from vmbackup.model.policy import BACKUP_NOW_ANNOTATION

PROG = "vmbackupctl"
KUBECTL_PROG = "kubectl vmbackup"  # the same program installed as kubectl's plugin (kubectl-vmbackup on PATH)
DESCRIPTION = """\
Inspect VMBackupPolicies and act on them: their status, on-demand backups, their snapshots in
Compute Engine and their runs' logs in Airflow. The cluster is the one kubectl would use (KUBECONFIG,
--context); Airflow is found like the controller finds it (the policy's spec.composer, else the
VMBACKUP_* settings or the same flags as the controller)."""

EXAMPLES = """
examples:
  {prog} get -A
  {prog} describe wordpress -n shop
  {prog} backup-now wordpress --wait --timeout 3600 && echo backed up
  {prog} snapshots wordpress -o json
  {prog} retention wordpress --spec wordpress.yaml --at 2027-01-01T00:00
  {prog} coverage -A --tenancy tenancy.yaml --unprotected
  {prog} verify wordpress --wait
  {prog} logs wordpress --task tier_web.stop
"""

Handler = Callable[[commands.Session], int]


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP + EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(prog=prog)
    cluster, airflow = _cluster_flags(), _airflow_flags()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, handler: Handler, help_text: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[cluster, *parents],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.set_defaults(handler=handler)
        return cmd

    _add_policy_commands(command, airflow)
    _add_run_commands(command, airflow)
    return parser


Command = Callable[..., argparse.ArgumentParser]  # (name, handler, help, *parent parsers) -> the subcommand


def _cluster_flags() -> argparse.ArgumentParser:
    cluster = argparse.ArgumentParser(add_help=False)
    group = cluster.add_argument_group("cluster")
    group.add_argument("-n", "--namespace", help="namespace of the policy (default: the context's, else default)")
    group.add_argument("--context", help="kubeconfig context to use (default: the current context)")
    group.add_argument("--kubeconfig", help="path of the kubeconfig file (default: KUBECONFIG, else ~/.kube/config)")
    group.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")
    return cluster


def _airflow_flags() -> argparse.ArgumentParser:
    airflow = argparse.ArgumentParser(add_help=False)
    target = airflow.add_argument_group("Airflow (as the controller's flags; each has a VMBACKUP_* variable)")
    target.add_argument("--composer-environment", help="projects/P/locations/L/environments/E [COMPOSER_ENVIRONMENT]")
    target.add_argument("--bucket", help="DAG bucket of a self-managed Airflow [BUCKET]")
    target.add_argument("--airflow-url", help="Airflow web server URL, with --bucket [AIRFLOW_URL]")
    target.add_argument("--airflow-auth", choices=AUTH_MODES, help="how to authenticate to Airflow [AIRFLOW_AUTH]")
    return airflow


def _add_policy_commands(command: Command, airflow: argparse.ArgumentParser) -> None:
    """get, describe, backup-now, snapshots, retention, coverage."""
    get = command("get", commands.get, "list policies with their status, as `kubectl get vmbackuppolicies` does")
    get.add_argument("policy", nargs="?", help="one policy (default: all in the namespace)")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="policies of every namespace")
    get.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")

    describe = command(
        "describe",
        commands.describe,
        "a policy's spec summary, status, last run, conditions and the last run's report from the bucket",
        airflow,
    )
    describe.add_argument("policy")
    describe.add_argument("--no-report", action="store_true", help="skip reading the run report from the bucket")

    backup = command(
        "backup-now",
        commands.backup_now,
        f"ask the controller to back up a policy now (sets the {BACKUP_NOW_ANNOTATION} annotation)",
    )
    backup.add_argument("policy")
    backup.add_argument(
        "--wait", action="store_true", help="wait for the run to end: exit 0 if it succeeded, 1 if it failed"
    )
    backup.add_argument("--timeout", type=_positive_seconds, default=3600.0, help="seconds --wait waits (3600)")

    snaps = command("snapshots", commands.snapshots, "a policy's snapshots in Compute Engine, newest first")
    snaps.add_argument("policy")
    snaps.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")

    preview = command(
        "retention",
        retention_command,
        "preview retention: every snapshot of a policy, kept or deleted, and the rule that decided (the prune "
        "step's own code; nothing is deleted)",
    )
    preview.add_argument("policy")
    preview.add_argument(
        "--at", metavar="TIME", help="evaluate at this ISO 8601 time (no offset: the policy's time zone); default now"
    )
    preview.add_argument(
        "--spec", metavar="FILE", help="use this policy manifest (or bare spec) instead of the applied one"
    )
    preview.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    cover = command(
        "coverage",
        commands.coverage,
        "every VM of the projects and zones the tenancy map grants, with the policies protecting it",
    )
    cover.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace's grants and policies")
    cover.add_argument("--unprotected", action="store_true", help="only the VMs no active policy protects")
    cover.add_argument("--tenancy", metavar="FILE", help="the tenancy map (default: VMBACKUP_TENANCY_FILE)")
    cover.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def _add_run_commands(command: Command, airflow: argparse.ArgumentParser) -> None:
    """logs, verify, restore."""
    logs = command("logs", commands.logs, "task logs of a policy's last (or given) run, from Airflow", airflow)
    logs.add_argument("policy")
    logs.add_argument("--run", metavar="RUN_ID", help="a run id (default: the newest run)")
    logs.add_argument("--task", metavar="TASK_ID", help="only this task's log")
    verify = command(
        "verify",
        verify_command,
        "ask the controller for a restore drill of a policy now (spec.verification): the newest READY run into a "
        "throwaway VM",
    )
    verify.add_argument("policy")
    verify.add_argument("--wait", action="store_true", help="wait for the drill: exit 0 if it verified, 1 if not")
    verify.add_argument("--timeout", type=_positive_seconds, default=3600.0, help="seconds --wait waits (3600)")
    restore = command(
        "restore",
        commands.restore,
        "bring a VM back from a policy's snapshots: creates a VMRestore (a new VM; the source is never touched), "
        "or with --in-place gives the VM itself disks made from the snapshots",
    )
    restore.add_argument("policy")
    restore.add_argument("--instance", help="the backed-up VM to restore (needed when the policy has several)")
    restore.add_argument("--snapshot", help="a snapshot name or a run (its vmbackup-run label); default: newest READY")
    restore.add_argument(
        "--as", dest="as_name", metavar="NAME", help="name of the new VM (and of the VMRestore; --in-place: only that)"
    )
    restore.add_argument(
        "--in-place",
        action="store_true",
        help="stop the VM, replace its backed-up disks with disks made from the snapshots, start it again (keeps "
        "its name, IP and metadata; the replaced disks are kept); asks you to type the VM name",
    )
    restore.add_argument(
        "--yes", action="store_true", help="with --in-place: confirm without the typed VM name (for scripts)"
    )
    restore.add_argument(
        "--delete-replaced-disks",
        action="store_true",
        help="with --in-place: delete the replaced disks once the VM runs with the restored ones (default: keep them)",
    )
    restore.add_argument("--wait", action="store_true", help="wait until it Succeeded (exit 0) or Failed (exit 1)")
    restore.add_argument("--timeout", type=_positive_seconds, default=3600.0, help="seconds --wait waits (3600)")
    _add_restore_placement(restore)


def _add_restore_placement(restore: argparse.ArgumentParser) -> None:
    """Where a new VM goes, and the disaster path that needs no cluster."""
    place = restore.add_argument_group("where the new VM goes (default: where the source was, on its network)")
    place.add_argument("--target-project", help="create the VM and its disks in this project (tenancy map grants it)")
    place.add_argument("--target-zone", help="create the VM in this zone (any region)")
    place.add_argument("--network", help="VPC network of the new VM (name or URL); needed with --target-project")
    place.add_argument("--subnet", help="subnetwork of the new VM (name or URL, in the target zone's region)")
    place.add_argument("--external-ip", action="store_true", help="give the new VM an ephemeral external IP")
    place.add_argument("--machine-type", help="machine type of the new VM (default: the source's, as recorded)")
    disaster = restore.add_argument_group("disaster: no Kubernetes, no Airflow (docs: Disaster restore)")
    disaster.add_argument(
        "--from-snapshots",
        action="store_true",
        help="restore from here with only Compute Engine (and the bucket): reads the snapshots' records, restores "
        "the newest complete run (or --run) as a new VM, or with --in-place into the VM itself; re-run the same "
        "command to resume",
    )
    disaster.add_argument("--project", help="the policy's project, where its snapshots are")
    disaster.add_argument("--run", metavar="RUN", help="the run to restore (its vmbackup-run label; see --list)")
    disaster.add_argument("--bucket", help="the Composer/DAG bucket: adds each run's report to the list")
    disaster.add_argument("--list", action="store_true", help="only list the runs that can be restored")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
    prog: str = PROG,
) -> int:
    """Run one command; the exit code (0 ok, 1 failed, 2 usage, 3 not found, 4 unreachable)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser(prog)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    session = commands.Session(args, stdout, stderr, stdin=stdin)
    try:
        return int(args.handler(session))
    except CliError as exc:
        print(f"{prog}: error: {exc.message}", file=stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=stderr)
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=stderr)
        else:
            print(f"{prog}: error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", file=stderr)
        return int(ExitCode.FAILED)


def kubectl_plugin() -> int:
    """``kubectl vmbackup ...``: kubectl runs ``kubectl-vmbackup`` from PATH with the arguments after ``vmbackup``."""
    return main(prog=KUBECTL_PROG)


if __name__ == "__main__":
    sys.exit(main())
