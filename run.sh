#!/usr/bin/env bash
# ./run.sh          install into .venv, migrate, and serve the API (SQLite by default)
# ./run.sh test     install into .venv and run the whole test suite (pytest arguments pass on)
# ./run.sh migrate  install into .venv and bring the database schema up to date
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

ensure_python() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "run.sh: Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))." >&2
    echo "        Set PYTHON=/path/to/python3.11 to choose another interpreter." >&2
    exit 1
  fi
}

# Installs a requirements file once, and again only when it (or what it includes) changes.
install() {
  local file=$1 stamp="$VENV/.installed-$1"
  local digest
  digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
    return
  fi
  echo "run.sh: installing $file into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$file"
  echo "$digest" >"$stamp"
}

ensure_venv() {
  ensure_python
  if [[ ! -x $VENV/bin/python ]]; then
    echo "run.sh: creating $VENV ..." >&2
    "$PYTHON" -m venv "$VENV"
  fi
}

migrate() {
  "$VENV/bin/python" -m alembic upgrade head
}

# /metrics adds up every worker's figures from files in this directory (prometheus-client's
# multiprocess mode). One directory per port, emptied at each start so old runs never count.
prepare_metrics_dir() {
  export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/orders-inventory-metrics-${PORT:-8000}}
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
}

command=${1:-serve}
[[ $# -gt 0 ]] && shift
case $command in
  serve)
    ensure_venv
    install requirements.txt
    migrate
    prepare_metrics_dir
    # Each request is logged once, as JSON, by the app (app/middleware.py). Idle connections
    # close after KEEP_ALIVE_SECONDS; SIGTERM ends within SHUTDOWN_TIMEOUT_SECONDS.
    exec "$VENV/bin/python" -m uvicorn app.main:app --no-access-log \
      --timeout-keep-alive "${KEEP_ALIVE_SECONDS:-5}" \
      --timeout-graceful-shutdown "${SHUTDOWN_TIMEOUT_SECONDS:-15}" \
      --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-1}" "$@"
    ;;
  test)
    ensure_venv
    install requirements-dev.txt
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  migrate)
    ensure_venv
    install requirements.txt
    migrate
    ;;
  *)
    echo "usage: ./run.sh [serve|test|migrate] [arguments]" >&2
    exit 2
    ;;
esac
