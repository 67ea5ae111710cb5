#!/usr/bin/env bash
# promtool (from Debian's prometheus package) checks ops/alerts.yml in tests/api/test_monitoring.py.
# Installs the package without starting the Prometheus server it ships (no service is needed).
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps the package's postinst from starting a prometheus daemon.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=true
fi
trap '[[ $created_policy == true ]] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
promtool --version | head -1
