#!/usr/bin/env bash
# ops/overhead.sh [REF] [SECONDS]
#   What the hardening middleware (request id, metrics, JSON access log, API key, body limit)
#   costs per request: serves this checkout and a `git archive` of REF (default: the commit
#   before hardening, 055a9f3) side by side, one worker each, SQLite, and runs wrk on /healthz
#   (no database) and GET /products/1 (one read) against each in turn, twice. 127.0.0.1 only;
#   needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-055a9f3}
seconds=${2:-10}
work=$(mktemp -d)
git archive "$ref" | tar -x -C "$work" --one-top-level=base
key=overhead-$(python3 -c 'import secrets; print(secrets.token_hex(12))')
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

serve() {  # serve DIR PORT NAME: migrate DIR's schema, then one uvicorn worker on DIR's app
  (cd "$1" && DATABASE_URL="sqlite:///$work/$3.db" "$repo/.venv/bin/python" -m alembic upgrade head \
     >/dev/null 2>&1)
  env -u PROMETHEUS_MULTIPROC_DIR API_KEYS="$key" DATABASE_URL="sqlite:///$work/$3.db" \
    LOG_LEVEL=INFO setsid "$repo/.venv/bin/python" -m uvicorn app.main:app --app-dir "$1" \
    --no-access-log --host 127.0.0.1 --port "$2" >"$work/$3.log" 2>&1 &
  pids+=($!)
}
repo=$PWD
hardened=$(free_port); base=$(free_port)
serve "$repo" "$hardened" hardened
serve "$work/base" "$base" base
for port in "$hardened" "$base"; do
  for _ in $(seq 60); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 1; done
  curl -fsS -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"sku":"OVH-1","name":"Mug","price":"1.00","stock":5}' "http://127.0.0.1:$port/products" >/dev/null
done

echo "== wrk -t1 -c16 -d${seconds}s, one uvicorn worker each, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2; do
  for name in hardened base; do
    port=${!name}
    for path in /healthz /products/1; do
      out=$(wrk -t1 -c16 -d"${seconds}s" --latency -H "Authorization: Bearer $key" "http://127.0.0.1:$port$path")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
      non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
      printf 'round %s %-9s %-12s %8s req/s  p50 %-8s p99 %-8s non-2xx %s\n' \
        "$round" "$name" "$path" "$rps" "$p50" "$p99" "${non2xx:-0}"
    done
  done
done
