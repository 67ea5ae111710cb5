#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian, for tests/live/test_browser.py (Swagger UI and
# ReDoc in a real browser). No browser download: Debian's packages only.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null
/usr/bin/chromium --version
