#!/usr/bin/env bash
# openssl: curl_examples.sh signs the payment webhook with it (tests/live/test_clients.py runs it).
set -euo pipefail
command -v openssl >/dev/null && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
