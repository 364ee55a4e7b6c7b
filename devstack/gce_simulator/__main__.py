"""``python -m devstack.gce_simulator``: serve the simulator until SIGINT/SIGTERM; the base URL is the first
line on stdout."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from . import presets
from .profile import Profile
from .simulator import ComputeSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.gce_simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--profile", choices=["fast", "realistic"], default="fast")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every simulated duration")
    parser.add_argument("--seed", choices=["none", "classic"], default="none")
    parser.add_argument("--project", default="demo-project")
    parser.add_argument(
        "--preset",
        action="append",
        default=[],
        choices=sorted(presets.PRESETS),
        help="a named fault preset (presets.py), applied after seeding with its default parameters; repeatable",
    )
    args = parser.parse_args(argv)

    simulator = ComputeSimulator(Profile.named(args.profile, args.time_scale), host=args.host, port=args.port)
    simulator.start()
    if args.seed == "classic":
        simulator.seed_classic(args.project)
    for name in args.preset:
        simulator.apply_preset(name)
    print(simulator.base_url, flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        pass
    simulator.stop()
    print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
