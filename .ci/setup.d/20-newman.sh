#!/usr/bin/env bash
# newman (Postman's command-line runner), pinned, into the git-ignored .tools/ folder, for
# tests/live/test_clients.py (postman_collection.json against a live server). Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/../.."
NEWMAN_VERSION=6.2.2
newman=.tools/node_modules/.bin/newman
if [[ -x $newman && $($newman --version 2>/dev/null) == "$NEWMAN_VERSION" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "20-newman: npm is needed (node 18+)" >&2; exit 1; }
mkdir -p .tools
npm install --prefix .tools --no-audit --no-fund --loglevel=error "newman@$NEWMAN_VERSION"
echo "20-newman: newman $($newman --version) in .tools/"
