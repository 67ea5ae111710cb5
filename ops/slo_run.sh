#!/usr/bin/env bash
# ops/slo_run.sh USERS SECONDS [DATABASE_URL]
#   Serves a fresh copy of the service the README's way (./run.sh, WEB_CONCURRENCY workers,
#   default 2) with an API key, drives it with the project's Locust shoppers (locustfile.py,
#   80% reads / 20% writes) for SECONDS, then prints the SLIs from the service's own /metrics
#   (ops/sli_report.py) and Locust's client-side summary. Everything stays on 127.0.0.1.
#   LOCUST (default .venv/bin/locust) and LOCUST_DIR (default: this repository) choose the
#   Locust binary and the directory holding locustfile.py. USERS=0 skips Locust.
#   WEBHOOK_LOAD=N also delivers N signed payment events, each twice, from 8 threads
#   (ops/webhook_load.py) after the Locust run.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:?usage: ops/slo_run.sh USERS SECONDS [DATABASE_URL]}
seconds=${2:?usage: ops/slo_run.sh USERS SECONDS [DATABASE_URL]}
work=$(mktemp -d)
database_url=${3:-sqlite:///$work/orders.db}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key=slo-run-$(python3 -c 'import secrets; print(secrets.token_hex(12))')
repo=$PWD
locust_dir=${LOCUST_DIR:-$repo}

secret=whsec_$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(24)).decode())')

API_KEYS=$key WEBHOOK_SECRET=$secret DATABASE_URL=$database_url PORT=$port HOST=127.0.0.1 LOG_LEVEL=INFO \
  WEB_CONCURRENCY=${WEB_CONCURRENCY:-2} PROMETHEUS_MULTIPROC_DIR=$work/metrics \
  setsid ./run.sh >"$work/server.log" 2>&1 &
server=$!
trap 'kill -- -$server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 60); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 1
done

echo "== $users users, ${seconds}s, $(nproc) cores, workers=${WEB_CONCURRENCY:-2}, ${database_url%%:*}"
[[ $users -eq 0 ]] || (cd "$locust_dir" && API_KEY=$key timeout $((seconds + 60)) "${LOCUST:-$repo/.venv/bin/locust}" \
  -f locustfile.py --headless -u "$users" -r "$(( users < 20 ? users : 20 ))" \
  -t "${seconds}s" --stop-timeout 5 --only-summary --csv "$work/locust" \
  --host "http://127.0.0.1:$port" >"$work/locust.log" 2>&1) || echo "(locust exited non-zero)"
if [[ ${WEBHOOK_LOAD:-0} -gt 0 ]]; then
  echo "== webhook: ops/webhook_load.py, $WEBHOOK_LOAD events x 2 deliveries, 8 threads"
  API_KEY=$key WEBHOOK_SECRET=$secret .venv/bin/python -m ops.webhook_load \
    "http://127.0.0.1:$port" "$WEBHOOK_LOAD" 8 || echo "(webhook load found unexpected answers)"
fi
echo "== server side: ops/sli_report.py (from /metrics)"
API_KEY=$key "$repo/.venv/bin/python" ops/sli_report.py "http://127.0.0.1:$port"
echo "== 5xx answers by code (from the JSON request log)"
python3 - "$work/server.log" <<'PY'
import collections, json, sys
codes = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    try:
        record = json.loads(line)
    except ValueError:
        continue
    if record.get("logger") == "app.access" and record.get("status", 0) >= 500:
        codes[(record["status"], record.get("code"), record.get("route"))] += 1
print("\n".join(f"{n:6} {s} {c} {r}" for (s, c, r), n in codes.most_common()) or "none")
PY
echo "== client side: Locust (ms)"
[[ ! -f $work/locust_stats.csv ]] || python3 - "$work/locust_stats.csv" <<'PY'
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    print(f"{row['Type']:6} {row['Name']:24} n={row['Request Count']:>6} fail={row['Failure Count']:>4} "
          f"p50={row['50%']:>5} p95={row['95%']:>5} p99={row['99%']:>5} max={float(row['Max Response Time']):>7.0f} rps={float(row['Requests/s']):.1f}")
PY
