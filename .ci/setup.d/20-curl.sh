#!/usr/bin/env bash
# curl: tests/live/test_generate_webhook_signature.py runs the curl command the script prints.
set -euo pipefail
command -v curl >/dev/null && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
