#!/usr/bin/env bash
# bench/locust.sh light|heavy [locust options]   a headless Locust run of one named scenario
#
# Targets BASE_URL (default http://127.0.0.1:8000) or --host; sends API_KEY when set. Writes
# reports/<scenario>_*.csv and reports/<scenario>.html; exits non-zero on any failed request
# or a stock invariant violation.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: bench/locust.sh light|heavy [locust options]}
shift
mkdir -p reports
exec .venv/bin/python -m locust --config "bench/locust-$scenario.conf" "$@"
