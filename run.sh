#!/usr/bin/env bash
# ./run.sh          install into .venv, migrate, and serve the API (SQLite by default)
# ./run.sh test     install into .venv and run the whole test suite (pytest arguments pass on)
# ./run.sh lint     install into .venv and run ruff (lint and format check), mypy and the import check
# ./run.sh migrate  install into .venv and bring the database schema up to date
# ./run.sh start    migrate and serve with the Python already installed (Render's start command)
# ./run.sh release  migrate with the Python already installed (Render's preDeployCommand)
# ./run.sh chores   one round of the chores, then exit: expire unpaid orders, deliver due events,
#                   purge old rows (Render's cron job; safe beside running workers)
# ./run.sh lock     rewrite requirements.txt and requirements-dev.txt from the *.in files (network)
# ./run.sh outdated list the installed packages that have a newer release (network)
# ./run.sh audit    check every locked package against the advisory database (network)
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

# Installs a lock file once, and again only when a lock changes. Every package is pinned with
# its hashes (requirements*.txt, written by `./run.sh lock`): pip refuses anything else.
install() {
  local file=$1 stamp="$VENV/.installed-$1"
  local digest
  digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
    return
  fi
  echo "run.sh: installing $file into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --require-hashes -r "$file"
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

# Brings the schema to Alembic's head and says what it did, from which revision to which: on
# stdout, or (`migrate PYTHON json`, as the server starts) as a JSON log line like every other.
migrate() {
  "$1" - "${2:-text}" <<'PY'
import io
import logging
import sys

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.logs import configure_logging

if sys.argv[1] == "json":
    configure_logging("INFO")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the line below says it all
say = logging.getLogger("run.sh").info if sys.argv[1] == "json" else print


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
    say(f"run.sh: migrate: {where} is already at head ({after})")
else:
    say(f"run.sh: migrate: {where} upgraded from {before} to {after} (head)")
PY
}

# /metrics adds up every worker's figures from files in this directory (prometheus-client's
# multiprocess mode). One directory per port, emptied at each start so old runs never count.
prepare_metrics_dir() {
  export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/orders-inventory-metrics-${PORT:-8000}}
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
}

# The OpenTelemetry variables .env names: the SDK reads the environment only, so they are
# exported (the environment still wins), as HOST and PORT are.
otel_names() {
  [[ -f .env ]] || return 0
  sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?(OTEL_[A-Z0-9_]+)[[:space:]]*=.*/\2/p' .env | sort -u
}

# Migrates, then serves with the given interpreter: the one place the server's flags live.
start() {
  local python=$1
  shift
  # shellcheck disable=SC2046 # one name a line, none with a space
  from_dotenv HOST PORT WEB_CONCURRENCY KEEP_ALIVE_SECONDS SHUTDOWN_TIMEOUT_SECONDS $(otel_names)
  migrate "$python" json
  prepare_metrics_dir
  # Each request is logged once, as JSON, by the app (app/http/request_path.py); uvicorn's own
  # lines are JSON from the first, in every process (app/core/log_config.json). Idle connections
  # close after KEEP_ALIVE_SECONDS; SIGTERM ends within SHUTDOWN_TIMEOUT_SECONDS.
  exec "$python" -m uvicorn app.main:app --no-access-log --log-config app/core/log_config.json \
    --timeout-keep-alive "${KEEP_ALIVE_SECONDS:-5}" \
    --timeout-graceful-shutdown "${SHUTDOWN_TIMEOUT_SECONDS:-15}" \
    --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-1}" "$@"
}

# Rewrites the locks from their inputs with uv (pinned in requirements-dev.in): every package
# pinned, with the hashes of all its files, for any platform on Python 3.11+. Arguments pass on
# (`./run.sh lock --upgrade-package idna` takes a dependency's newer release).
lock() {
  local flags=(--quiet --generate-hashes --universal --python-version 3.11
    --custom-compile-command "./run.sh lock")
  "$VENV/bin/uv" pip compile "${flags[@]}" "$@" requirements.in -o requirements.txt
  "$VENV/bin/uv" pip compile "${flags[@]}" "$@" requirements-dev.in -o requirements-dev.txt
}

# The package index's address as pip itself knows it (PyPI's simple index and JSON API).
index_url() {
  "$VENV/bin/python" -c "from pip._internal.models.index import PyPI; print(PyPI.$1)"
}

# Whether a URL on the package index answers 200; says plainly what is not run, and why, when
# it does not.
answers() {
  local what=$1 url=$2
  if "$VENV/bin/python" - "$url" <<'PY' 2>/dev/null; then
import sys
import urllib.request

urllib.request.urlopen(sys.argv[1], timeout=15)
PY
    return 0
  fi
  echo "run.sh: $what NOT RUN: $url does not answer from here" >&2
  return 3
}

# Every locked package (the service's and the tools') against the advisories PyPI publishes for
# each release (its JSON API): exit 1 on a known vulnerability, 3 when that source does not
# answer (then nothing was checked). --strict: a package it could not look up fails the audit.
audit() {
  local version
  version=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("pip-audit"))')
  answers audit "$(index_url pypi_url)/pip-audit/$version/json" || return
  "$VENV/bin/pip-audit" --strict --progress-spinner off --disable-pip --require-hashes \
    -r requirements-dev.txt
}

# The installed packages with a newer release on PyPI (those pinned in requirements*.in are
# raised there, then `./run.sh lock`; the rest: `./run.sh lock --upgrade-package NAME`).
outdated() {
  answers outdated "$(index_url simple_url)/pip/" || return
  "$VENV/bin/python" -m pip list --outdated --disable-pip-version-check
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
  release)
    migrate "$PYTHON" json
    ;;
  chores)
    ensure_venv
    install requirements.txt
    exec "$VENV/bin/python" -m app.chores "$@"
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
  lock | audit | outdated)
    ensure_venv
    install requirements-dev.txt
    "$command" "$@"
    ;;
  *)
    echo "usage: ./run.sh [serve|start|release|test|lint|migrate|chores|lock|audit|outdated] [arguments]" >&2
    exit 2
    ;;
esac
