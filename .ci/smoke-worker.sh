#!/usr/bin/env bash
# Runs the work-queue example (client-examples/worker) against a real queuehub: installs its
# npm packages, starts the given binary on a free loopback port with a temporary data dir,
# runs `node run.js`, and stops the server. Exits non-zero if anything failed.
#
#   .ci/smoke-worker.sh path/to/queuehub
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/.ci/lib.sh"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -s "$work/server.log" ]]; then
    echo "--- last lines of the queuehub log ---" >&2
    tail -n 30 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

(cd "$root/client-examples/worker" && npm ci --no-audit --no-fund --loglevel=error)

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
wait_healthy smoke-worker "http://127.0.0.1:$port" "$server_pid"

cd "$root/client-examples/worker"
QUEUEHUB_URL="http://127.0.0.1:$port" node run.js
