#!/usr/bin/env bash
# The whole suite: everything on Airflow 3, then the Airflow-facing tests again on Airflow 2.10.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

run() {  # pytest's exit 5 (no test collected) is a failure here, not a pass
  local code=0
  "$@" || code=$?
  if [ "$code" -eq 5 ]; then echo "no tests were collected by: $*" >&2; return 1; fi
  return "$code"
}

echo "== Airflow 3 (.venv): all tests but the slow ones"
run .venv/bin/python -m pytest -m "not slow" "$@"
echo "== Airflow 2.10 (.venv-airflow2): tests marked airflow"
run .venv-airflow2/bin/python -m pytest -m "airflow and not slow" "$@"
