"""`python -m bench NAME [options]`: run one benchmark and print its table."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def _workflow(argv: Sequence[str]) -> int:
    from bench.workflow import main

    return main(argv)


def _fleet(argv: Sequence[str]) -> int:
    from bench.fleet import main

    return main(argv)


def _quota(argv: Sequence[str]) -> int:
    from bench.quota import main

    return main(argv)


def _controller(argv: Sequence[str]) -> int:
    from bench.controller import main

    return main(argv)


def _dag_parse(argv: Sequence[str]) -> int:
    from bench.dag_parse import main

    return main(argv)


def _restore(argv: Sequence[str]) -> int:
    from bench.restore import main

    return main(argv)


BENCHES: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "workflow": (_workflow, "our backup DAG vs the Composer tutorial's flow (downtime, slots, API calls, 20 VMs)"),
    "fleet": (_fleet, "a selector matching more VMs than Airflow's max_map_length (lowered), in one run"),
    "quota": (_quota, "200 VMs of one project under rate quotas scaled to bind, budget shared through the bucket"),
    "restore": (
        _restore,
        "kubectl apply of a VMRestore / drill -> first Compute Engine write, a DAG file of its own vs the shipped DAG",
    ),
    "dag-parse": (_dag_parse, "what Airflow's DAG processor pays to import each DAG file we write (CPU, wall)"),
    "controller": (_controller, "the controller at 1,000 policies (upload time, RSS, restart, Airflow calls, latency)"),
}


def main(argv: Sequence[str]) -> int:
    """No argument runs every benchmark with its defaults (`make bench`)."""
    if not argv:
        return max(run([]) for run, _ in BENCHES.values())
    if argv[0] in ("-h", "--help"):
        print("usage: python -m bench [NAME [options]]   (python -m bench NAME --help for its options)\n")
        for name, (_, summary) in BENCHES.items():
            print(f"  {name:10} {summary}")
        return 0
    name, *rest = argv
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    return BENCHES[name][0](rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
