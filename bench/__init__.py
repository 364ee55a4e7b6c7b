"""Benchmarks: measurements printed as tables (ratios from one run), never timed tests. `python -m bench --help`."""
