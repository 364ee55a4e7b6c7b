#!/usr/bin/env bash
# The whole suite: everything on Airflow 3, and the Airflow-facing tests (-m airflow) again on Airflow 2.10.
# Both passes run at the same time (most tests wait on other processes: Airflow, the simulator, the bucket), each
# split over pytest-xdist workers; the Airflow 2.10 pass's output is printed after the Airflow 3 pass's, and
# either one failing fails the run. Each pass prints its wall time and its slowest tests.
#   VMBACKUP_TEST_WORKERS    xdist workers of the Airflow 3 pass (default 3; 0 runs in one process)
#   VMBACKUP_TEST_WORKERS2   xdist workers of the Airflow 2.10 pass (default 1)
#   VMBACKUP_TEST_SEQUENTIAL=1  run the passes one after the other, output streamed
# Extra arguments go to both pytest commands (e.g. `scripts/test.sh -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

WORKERS="${VMBACKUP_TEST_WORKERS:-3}"
WORKERS2="${VMBACKUP_TEST_WORKERS2:-1}"
# loadgroup: a file's tests stay on one worker, the shared airflow standalone's tests on one worker
# (tests/fixtures/parallel.py); --durations lists the slowest tests so a growing suite shows.
# --no-loadscope-reorder: groups go out in collection order, which puts the longest first (LONGEST_FIRST there).
# --file-durations lists the slowest files (tests/fixtures/file_times.py): a file runs on one worker, so the
# slowest ones are the run's critical path.
XDIST=(--dist loadgroup --no-loadscope-reorder --durations=15 --file-durations=10)

run() {  # run LABEL COMMAND...: pytest's exit 5 (no test collected) is a failure here, not a pass
  local label=$1 code=0 start=$SECONDS
  shift
  "$@" || code=$?
  echo "== $label: $((SECONDS - start)) s (exit $code)"
  if [ "$code" -eq 5 ]; then echo "no tests were collected by: $*" >&2; return 1; fi
  return "$code"
}

airflow3() { run "Airflow 3 (.venv): all tests but the slow ones" \
  .venv/bin/python -m pytest -m "not slow" -n "$WORKERS" "${XDIST[@]}" "$@"; }
airflow2() { run "Airflow 2.10 (.venv-airflow2): tests marked airflow" \
  .venv-airflow2/bin/python -m pytest -m "airflow and not slow" -n "$WORKERS2" "${XDIST[@]}" "$@"; }

if [ "${VMBACKUP_TEST_SEQUENTIAL:-0}" = 1 ]; then
  code=0
  echo "== Airflow 3 (.venv): all tests but the slow ones"
  airflow3 "$@" || code=$?
  echo "== Airflow 2.10 (.venv-airflow2): tests marked airflow"
  airflow2 "$@" || code=$?
  exit "$code"
fi

out2=$(mktemp)
trap 'rm -f "$out2"' EXIT
echo "== Airflow 2.10 (.venv-airflow2): tests marked airflow, in the background (output below when done)"
airflow2 "$@" >"$out2" 2>&1 &
pid2=$!
echo "== Airflow 3 (.venv): all tests but the slow ones"
code3=0
airflow3 "$@" || code3=$?
code2=0
wait "$pid2" || code2=$?
echo "== Airflow 2.10 (.venv-airflow2): tests marked airflow (its output)"
cat "$out2"
[ "$code3" -eq 0 ] && [ "$code2" -eq 0 ]
