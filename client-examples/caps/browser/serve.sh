#!/usr/bin/env bash
# Serves the CAPS browser page at http://127.0.0.1:${PORT:-8080}/ with python3's http.server.
# The page loads the socket.io client from ./socket.io.min.js: this copies it from the js/
# example's install (running `npm ci` there first if needed). The copy is not committed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
js="$here/../js"
script="$js/node_modules/socket.io-client/dist/socket.io.min.js"
if [[ ! -f "$script" ]]; then
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$script" "$here/socket.io.min.js"

port="${PORT:-8080}"
hub="${QUEUEHUB_URL:-http://127.0.0.1:3001}"
echo "open http://127.0.0.1:$port/?hub=$hub&store=${STORE:-acme-widgets}"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$here"
