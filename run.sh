#!/usr/bin/env bash
# ./run.sh          install into .venv, migrate, and serve the API (SQLite by default)
# ./run.sh test     install into .venv and run the whole test suite (pytest arguments pass on)
# ./run.sh lint     install into .venv and run ruff (lint and format check), mypy and the import check
# ./run.sh migrate  install into .venv and bring the database schema up to date
# ./run.sh start    migrate and serve with the Python already installed (Render's start command)
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
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps -e .
  echo "$digest" >"$stamp"
}

ensure_venv() {
  ensure_python
  if [[ ! -x $VENV/bin/python ]]; then
    echo "run.sh: creating $VENV ..." >&2
    "$PYTHON" -m venv "$VENV"
  fi
}

# HOST, PORT and WEB_CONCURRENCY come from the environment, else from .env (as the service's
# own settings do), else the defaults where they are used.
from_dotenv() {
  local name value
  [[ -f .env ]] || return 0
  for name in "$@"; do
    [[ -z ${!name:-} ]] || continue
    value=$(sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$name[[:space:]]*=[[:space:]]*//p" .env | tail -n 1)
    value=${value%\"} value=${value#\"} value=${value%\'} value=${value#\'}
    [[ -z $value ]] || export "$name=$value"
  done
}

# Brings the schema to Alembic's head and says what it did, from which revision to which.
migrate() {
  "$1" - <<'PY'
import io

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.core.config import Settings


def current(config: Config) -> str:
    config.stdout = io.StringIO()
    command.current(config)
    revisions = [line.split()[0] for line in config.stdout.getvalue().splitlines() if line]
    return ", ".join(revisions) or "an empty database"


config = Config(toml_file="pyproject.toml")
where = make_url(Settings().database_url).render_as_string(hide_password=True)
before = current(config)
command.upgrade(config, "head")
after = current(config)
if before == after:
    print(f"run.sh: migrate: {where} is already at head ({after})")
else:
    print(f"run.sh: migrate: {where} upgraded from {before} to {after} (head)")
PY
}

# /metrics adds up every worker's figures from files in this directory (prometheus-client's
# multiprocess mode). One directory per port, emptied at each start so old runs never count.
prepare_metrics_dir() {
  export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/orders-inventory-metrics-${PORT:-8000}}
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
}

# Migrates, then serves with the given interpreter: the one place the server's flags live.
start() {
  local python=$1
  shift
  from_dotenv HOST PORT WEB_CONCURRENCY KEEP_ALIVE_SECONDS SHUTDOWN_TIMEOUT_SECONDS
  migrate "$python"
  prepare_metrics_dir
  # Each request is logged once, as JSON, by the app (app/http/request_path.py). Idle connections
  # close after KEEP_ALIVE_SECONDS; SIGTERM ends within SHUTDOWN_TIMEOUT_SECONDS.
  exec "$python" -m uvicorn app.main:app --no-access-log \
    --timeout-keep-alive "${KEEP_ALIVE_SECONDS:-5}" \
    --timeout-graceful-shutdown "${SHUTDOWN_TIMEOUT_SECONDS:-15}" \
    --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-1}" "$@"
}

lint() {
  local status=0
  "$VENV/bin/ruff" check . || status=1
  "$VENV/bin/ruff" format --check . || status=1
  "$VENV/bin/mypy" || status=1
  "$VENV/bin/python" tools/check_imports.py || status=1  # no import cycle inside app/
  return $status
}

command=${1:-serve}
[[ $# -gt 0 ]] && shift
case $command in
  serve)
    ensure_venv
    install requirements.txt
    start "$VENV/bin/python" "$@"
    ;;
  start)
    start "$PYTHON" "$@"
    ;;
  test)
    ensure_venv
    install requirements-dev.txt
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  lint)
    ensure_venv
    install requirements-dev.txt
    lint
    ;;
  migrate)
    ensure_venv
    install requirements.txt
    migrate "$VENV/bin/python"
    ;;
  *)
    echo "usage: ./run.sh [serve|start|test|lint|migrate] [arguments]" >&2
    exit 2
    ;;
esac
