#!/usr/bin/env bash
# Runs the client examples against a real queuehub: starts the given binary on a free loopback
# port with a temporary data dir, runs the Node and Python smoke tests and curl/publish.sh, and
# stops the server. Exits non-zero if anything failed.
#
#   .ci/smoke-examples.sh [path/to/queuehub]      (default: target/release/queuehub)
#
# Environment: SMOKE_PORT=N serves on 127.0.0.1:N (checked to be free) instead of a port the
# kernel picks.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$root/.ci/lib.sh"
cd "$root"

bin="${1:-target/release/queuehub}"
if [[ ! -x "$bin" ]]; then
  echo "smoke-examples: no queuehub binary at '$bin' (build it, or pass its path)" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

examples="$root/client-examples"

echo "== installing example dependencies"
(cd "$examples/node" && npm ci --no-audit --no-fund --loglevel=error)
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q -r "$examples/python/requirements.txt"

port="$(free_port "${SMOKE_PORT:-}")"
echo "== starting $bin on http://127.0.0.1:$port"
mkdir -p "$qh_work/data"
start_queuehub smoke-examples "$port" "$bin" --data-dir "$qh_work/data"
url="$qh_url"

export QUEUEHUB_URL="$url"
failures=0

echo "== node smoke"
if ! (cd "$examples/node" && timeout 180 node smoke.js); then
  failures=$((failures + 1))
fi

echo "== python smoke"
if ! (cd "$examples/python" && timeout 180 python3 smoke.py); then
  failures=$((failures + 1))
fi

echo "== curl/publish.sh"
if out="$(timeout 30 "$examples/curl/publish.sh" "smoke-curl-$$" delivered '{"orderId":"1001","via":"publish.sh"}')" \
  && grep -q '"id"' <<<"$out"; then
  echo "$out"
  echo "publish.sh: 1 passed, 0 failed"
else
  echo "${out:-}"
  echo "publish.sh: 0 passed, 1 failed"
  failures=$((failures + 1))
fi

if ! queuehub_running; then
  echo "smoke-examples: queuehub died during the run" >&2
  failures=$((failures + 1))
fi

if ((failures > 0)); then
  echo "smoke-examples: $failures part(s) failed" >&2
  exit 1
fi
echo "smoke-examples: all passed"
