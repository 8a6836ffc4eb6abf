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
source "$root/.ci/lib.sh"
cd "$root"

bin="${1:-target/release/queuehub}"
if [[ ! -x "$bin" ]]; then
  echo "smoke-examples: no queuehub binary at '$bin' (build it, or pass its path)" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

examples="$root/client-examples"
work="$(mktemp -d)"
server_pid=""

cleanup() {
  local rc=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -s "$work/server.log" ]]; then
    if grep -q 'panicked' "$work/server.log"; then
      echo "--- queuehub panicked ---" >&2
      grep -A1 'panicked' "$work/server.log" | head -n 20 >&2 || true
    fi
    echo "--- last lines of the queuehub log ---" >&2
    tail -n 40 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== installing example dependencies"
(cd "$examples/node" && npm ci --no-audit --no-fund --loglevel=error)
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q -r "$examples/python/requirements.txt"

# A free loopback port: SMOKE_PORT if set (it must be free), else one the kernel picks (a tiny
# race with other programs is possible, so the health wait also checks our process is alive).
free_port() {
  python3 - "$@" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
except OSError as err:
    sys.exit(f"smoke-examples: port {sys.argv[1]} is not free: {err}")
print(s.getsockname()[1])
s.close()
PY
}
if [[ -n "${SMOKE_PORT:-}" ]]; then
  port="$(free_port "$SMOKE_PORT")"
else
  port="$(free_port)"
fi
url="http://127.0.0.1:$port"

echo "== starting $bin on $url"
mkdir -p "$work/data"
"$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!

wait_healthy smoke-examples "$url" "$server_pid"

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

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "smoke-examples: queuehub died during the run" >&2
  failures=$((failures + 1))
fi

if ((failures > 0)); then
  echo "smoke-examples: $failures part(s) failed" >&2
  exit 1
fi
echo "smoke-examples: all passed"
