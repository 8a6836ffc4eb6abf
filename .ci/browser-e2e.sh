#!/usr/bin/env bash
# Runs the dashboard's end-to-end test in a headless browser against a real queuehub: installs
# Debian's chromium if it is missing and the test's npm packages, starts the given binary on a
# free loopback port with a temporary data dir, runs tests/browser/dashboard-e2e.js (which opens
# /dashboard in chromium and drives queuehub with a socket.io subscriber and HTTP), and stops
# the server; then does the same with a server in secured mode (--api-key), where the page
# must get the key. Each mode runs twice, with the page's official socket.io client kept to
# one transport: a WebSocket (/dashboard?transport=websocket), then HTTP long-polling
# (?transport=polling); the open-mode runs also check the page's default (long-polling
# upgraded to a WebSocket). Exits non-zero if anything failed.
#
#   .ci/browser-e2e.sh path/to/queuehub [--screenshot PATH]
#
# The page under test is the one built into the binary (assets/dashboard/ at build time), so
# build the binary after changing the page. Extra arguments go to dashboard-e2e.js.
# Environment: E2E_PORT=N serves the first run on 127.0.0.1:N (checked to be free) instead of a
# port the kernel picks.
set -euo pipefail

start_dir="$PWD"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$root/.ci/lib.sh"
cd "$root"

bin="${1:-}"
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "browser-e2e: no queuehub binary at '${bin}' (usage: .ci/browser-e2e.sh path/to/queuehub [--screenshot PATH])" >&2
  exit 2
fi
bin="$(cd "$start_dir" && cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
shift
extra=("$@")
# A relative screenshot path is relative to where the script was started, not tests/browser.
for i in "${!extra[@]}"; do
  if [[ "${extra[$i]}" == "--screenshot" && -n "${extra[$((i + 1))]:-}" && "${extra[$((i + 1))]}" != /* ]]; then
    extra[i + 1]="$start_dir/${extra[$((i + 1))]}"
  fi
done

echo "== browser"
if [[ ! -x /usr/bin/chromium ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium
fi
/usr/bin/chromium --version 2>/dev/null || true

echo "== installing the test's npm packages"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# Only our flags: no QUEUEHUB_* variable from the environment (such as QUEUEHUB_DASHBOARD_DIR,
# which would serve the page from disk instead of the copy built into the binary).
mapfile -t queuehub_vars < <(compgen -e | grep '^QUEUEHUB_' || true)
for var in "${queuehub_vars[@]}"; do
  unset "$var"
done

# start_server PORT [FLAGS...]: starts queuehub on 127.0.0.1:PORT with a fresh data dir and
# waits until it is healthy.
start_server() {
  local port="$1"
  shift
  echo "== starting $bin on http://127.0.0.1:$port $*"
  rm -rf "$qh_work/data"
  mkdir -p "$qh_work/data"
  start_queuehub browser-e2e "$port" "$bin" --data-dir "$qh_work/data" "$@"
}

# run_e2e ARGS...: runs the browser test against the server; a server that died fails it too.
run_e2e() {
  local rc=0
  (cd tests/browser && timeout 300 node dashboard-e2e.js "$qh_url" "$@") || rc=$?
  if ! queuehub_running; then
    echo "browser-e2e: queuehub died during the run" >&2
    rc=1
  fi
  return "$rc"
}

status=0
preferred="${E2E_PORT:-0}"

# Open mode, over each transport (the extra arguments, such as --screenshot, go to the first).
for transport in websocket polling; do
  port="$(free_port "$preferred")"
  preferred=0
  start_server "$port"
  echo "== dashboard e2e, open mode, $transport"
  run_e2e --transport "$transport" "${extra[@]}" || status=1
  stop_queuehub
  extra=()
done

# Secured mode: the page must get the API key (typed, or from /dashboard#key=KEY).
key="$(node -e 'console.log(require("crypto").randomBytes(18).toString("base64url"))')"
for transport in websocket polling; do
  port="$(free_port 0)"
  start_server "$port" --api-key "$key"
  echo "== dashboard e2e, secured mode (--api-key), $transport"
  run_e2e --api-key "$key" --transport "$transport" || status=1
  stop_queuehub
done

exit "$status"
