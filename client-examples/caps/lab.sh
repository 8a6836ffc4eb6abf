#!/usr/bin/env bash
# The CAPS lab, played end to end against a real `queuehub --preset caps`, as a smoke test.
#
#   client-examples/caps/lab.sh path/to/queuehub
#
# Starts the binary with `--preset caps --listen 127.0.0.1:<free port>` and a temporary data
# dir, then plays the lab's story with the example clients in this folder:
#
#   1. gen 4 (js/, namespace /caps): the vendor acme-widgets is OFFLINE; three orders are
#      picked up over HTTP (POST /pickup), the driver catches up on them and delivers them, and
#      a fourth is delivered through the API (POST /delivery/acme-widgets/<code>). The vendor
#      comes back, gets every delivery with getAll, thanks the driver and acks; then
#      GET /v1/queues/acme-widgets and GET /v1/queues/driver show nothing left.
#   2. live: the driver and two vendors (acme-widgets, 1-800-flowers) run at once, each vendor
#      sends two orders and thanks for both deliveries.
#   3. the same offline-then-live story, shorter, for the socket.io-client 2.x vendor (js-v2/,
#      namespace /), the Python vendor (python/) and, if it was built, the Rust vendor (rust/).
#
# Every wait is bounded. Prints one line per check and, last, `caps lab: N passed, M failed`;
# exits non-zero if anything failed.
#
# Environment: CAPS_LAB_PORT=N serves on 127.0.0.1:N (default: a free port the kernel picks);
# CAPS_LAB_NO_INSTALL=1 skips `npm ci` / `pip install` (they run only when something is
# missing anyway); CAPS_LAB_RUST=path/to/caps-vendor runs the Rust vendor from there (default:
# rust/target/debug/caps-vendor if it exists, else that part is skipped).
#
# Starting, stopping and cleaning up the server come from ../../.ci/lib.sh (this script needs
# the whole repository, not just this folder).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
source "$here/../../.ci/lib.sh"
bin="${1:-}"
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "usage: $0 path/to/queuehub   (no executable at '${bin}')" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$qh_work"
passed=0
failed=0

pass() {
  passed=$((passed + 1))
  echo "ok   - $1"
}

fail() {
  failed=$((failed + 1))
  echo "FAIL - $1"
}

# Shows the last lines of a client's log after a failure.
show_log() {
  sed 's/^/       | /' "$1" | tail -n 25
}

finish() {
  local panic
  if [[ -n "$qh_pid" ]] && ! queuehub_running; then
    fail "queuehub is no longer running"
  fi
  if panic="$(queuehub_panic)"; then
    fail "queuehub panicked: $(tr '\n' ' ' <<<"$panic")"
  fi
  if ((failed > 0)); then
    show_queuehub_log 30
  fi
  echo "caps lab: $passed passed, $failed failed"
  if ((failed > 0)); then exit 1; fi
  exit 0
}

# ---------------------------------------------------------------------------------------------
# Dependencies of the example clients.

if [[ -z "${CAPS_LAB_NO_INSTALL:-}" ]]; then
  for dir in js js-v2; do
    if [[ ! -f "$here/$dir/node_modules/.package-lock.json" ]]; then
      echo "== npm ci in $dir/"
      (cd "$here/$dir" && npm ci --no-audit --no-fund --loglevel=error) || {
        fail "npm ci in $dir/"
        finish
      }
    fi
  done
  if ! python3 -c 'import socketio' 2>/dev/null; then
    echo "== pip install -r python/requirements.txt"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q -r "$here/python/requirements.txt" || {
      fail "pip install -r python/requirements.txt"
      finish
    }
  fi
fi

rust_vendor="${CAPS_LAB_RUST:-$here/rust/target/debug/caps-vendor}"

# ---------------------------------------------------------------------------------------------
# The server.

port="$(free_port "${CAPS_LAB_PORT:-0}")" || exit 2
url="http://127.0.0.1:$port"
export QUEUEHUB_URL="$url"

echo "== starting $bin --preset caps on $url"
mkdir -p "$work/data"
if ! start_queuehub "caps lab" "$port" "$bin" --preset caps --data-dir "$work/data"; then
  fail "queuehub --preset caps did not become healthy on $url"
  finish
fi
pass "queuehub --preset caps is healthy on $url"

# ---------------------------------------------------------------------------------------------
# Helpers.

# post NAME PATH BODY QUEUE EVENT: POST a JSON body, expect 201 and a receipt for QUEUE/EVENT.
post() {
  local name="$1" path="$2" body="$3" queue="$4" event="$5" code
  code="$(curl -sS --max-time 10 -o "$work/receipt.json" -w '%{http_code}' -X POST "$url$path" \
    -H 'content-type: application/json' -d "$body")" || code="curl failed"
  if [[ "$code" == 201 ]] && python3 - "$work/receipt.json" "$queue" "$event" <<'PY'
import json, sys
receipt = json.load(open(sys.argv[1]))
sys.exit(0 if receipt.get("queue") == sys.argv[2] and receipt.get("event") == sys.argv[3] and receipt.get("id") else 1)
PY
  then
    pass "$name: POST $path -> 201 $(cat "$work/receipt.json")"
  else
    fail "$name: POST $path $body -> $code $(cat "$work/receipt.json" 2>/dev/null), expected 201 with queue $queue, event $event"
  fi
}

# queue_state QUEUE: "waiting=N pending=client:n,..." from GET /v1/queues/QUEUE.
read -r -d '' queue_state_py <<'PY'
import json, sys
text = sys.stdin.read()
try:
    q = json.loads(text)
    pending = ",".join(f"{s['clientId']}:{s['pending']}" for s in q["subscribers"])
    print(f"waiting={q['waiting']} pending={pending}")
except Exception:
    print(f"unreadable answer: {text.strip()[:200]}")
PY
queue_state() {
  curl -sS --max-time 5 "$url/v1/queues/$1" 2>&1 | python3 -c "$queue_state_py"
}

# expect_queue NAME QUEUE EXPECTED: GET /v1/queues/QUEUE shows EXPECTED (polls up to 5 s).
expect_queue() {
  local name="$1" queue="$2" expected="$3" got deadline=$((SECONDS + 5))
  while :; do
    got="$(queue_state "$queue")"
    [[ "$got" == "$expected" ]] && break
    ((SECONDS >= deadline)) && break
    sleep 0.2
  done
  if [[ "$got" == "$expected" ]]; then
    pass "$name: GET /v1/queues/$queue shows $got"
  else
    fail "$name: GET /v1/queues/$queue shows '$got', expected '$expected'"
  fi
}

# run_client NAME LOG SECONDS CMD...: runs a client in the foreground with a time limit.
run_client() {
  local name="$1" log="$2" limit="$3" rc
  shift 3
  timeout "$limit" "$@" >"$log" 2>&1
  rc=$?
  if ((rc == 0)); then
    pass "$name exited 0"
  elif ((rc == 124)); then
    fail "$name did not finish within ${limit} s"
    show_log "$log"
  else
    fail "$name exited $rc"
    show_log "$log"
  fi
}

# start_client LOG SECONDS CMD...: starts a client in the background; its pid is in $last_pid.
start_client() {
  local log="$1" limit="$2"
  shift 2
  timeout "$limit" "$@" >"$log" 2>&1 &
  last_pid=$!
  track_pid "$last_pid"
}

# wait_client NAME PID LOG: waits for a background client and checks it exited 0.
wait_client() {
  local name="$1" pid="$2" log="$3" rc
  wait "$pid"
  rc=$?
  if ((rc == 0)); then
    pass "$name exited 0"
  elif ((rc == 124)); then
    fail "$name did not finish in time"
    show_log "$log"
  else
    fail "$name exited $rc"
    show_log "$log"
  fi
}

# expect_lines NAME LOG PATTERN COUNT: LOG has at least COUNT lines matching PATTERN.
expect_lines() {
  local name="$1" log="$2" pattern="$3" count="$4" got
  got="$(grep -c -- "$pattern" "$log")"
  if ((got >= count)); then
    pass "$name: $got line(s) '$pattern'"
  else
    fail "$name: $got line(s) '$pattern', expected $count"
    show_log "$log"
  fi
}

order() { # order STORE ORDER_ID
  printf '{"store":"%s","orderId":"%s","customer":"Ada Lovelace","address":"1 Main St, Seattle, WA"}' "$1" "$2"
}

# ---------------------------------------------------------------------------------------------
echo "== 1. gen 4 (js/, /caps): acme-widgets is offline while three orders are delivered"

for n in 1 2 3; do
  post "pickup lab-a$n" /pickup "$(order acme-widgets "lab-a$n")" driver pickup
done
expect_queue "pickups wait for a driver" driver "waiting=3 pending="

run_client "driver (catches up on 3 pickups)" "$work/driver-1.log" 60 \
  node "$here/js/driver.js" --count 3 --delay 200
for n in 1 2 3; do
  expect_lines "driver delivered lab-a$n" "$work/driver-1.log" "DRIVER: delivered lab-a$n\$" 1
done

post "delivery through the API" /delivery/acme-widgets/lab-code-4 '{"note":"left at the door"}' acme-widgets delivered
# The vendor never connected: its in-transit and delivered messages wait in its mailbox.
expect_queue "acme-widgets' mailbox holds 3 in-transit + 4 delivered" acme-widgets "waiting=7 pending="

run_client "vendor acme-widgets (back online, --orders 0 --wait-for 4)" "$work/vendor-1.log" 60 \
  node "$here/js/vendor.js" acme-widgets --orders 0 --wait-for 4
for code in lab-a1 lab-a2 lab-a3 lab-code-4; do
  expect_lines "vendor thanked for $code" "$work/vendor-1.log" "^Thank you for delivering $code\$" 1
done
expect_lines "vendor heard lab-a1..3 were in transit" "$work/vendor-1.log" "order lab-a[123] is in transit" 3
expect_queue "nothing left for acme-widgets" acme-widgets "waiting=0 pending=acme-widgets:0"
expect_queue "nothing left for the driver" driver "waiting=0 pending=driver:0"

# ---------------------------------------------------------------------------------------------
echo "== 2. live: the driver and two vendors at once"

start_client "$work/driver-2.log" 60 node "$here/js/driver.js" --count 4 --delay 200
driver_pid=$last_pid
start_client "$work/vendor-acme.log" 60 node "$here/js/vendor.js" acme-widgets --orders 2 --every 300
acme_pid=$last_pid
start_client "$work/vendor-flowers.log" 60 node "$here/js/vendor.js" 1-800-flowers --orders 2 --every 300
flowers_pid=$last_pid
wait_client "vendor acme-widgets (--orders 2)" "$acme_pid" "$work/vendor-acme.log"
wait_client "vendor 1-800-flowers (--orders 2)" "$flowers_pid" "$work/vendor-flowers.log"
wait_client "driver (--count 4)" "$driver_pid" "$work/driver-2.log"
expect_lines "acme-widgets thanked for its 2 orders" "$work/vendor-acme.log" "^Thank you for delivering acme-widgets-" 2
expect_lines "1-800-flowers thanked for its 2 orders" "$work/vendor-flowers.log" "^Thank you for delivering 1-800-flowers-" 2
expect_queue "nothing left for acme-widgets" acme-widgets "waiting=0 pending=acme-widgets:0"
expect_queue "nothing left for 1-800-flowers" 1-800-flowers "waiting=0 pending=1-800-flowers:0"
expect_queue "nothing left for the driver" driver "waiting=0 pending=driver:0"

# ---------------------------------------------------------------------------------------------
# short_story NAME STORE CMD...: two orders delivered while the vendor STORE is offline, then
# the vendor (CMD, which must take `STORE --orders 1 --wait-for 3 --every 300`) comes back,
# catches up on both, sends one order live and thanks for all three.
short_story() {
  local name="$1" store="$2"
  shift 2
  local tag="${store//[^a-z0-9]/}"
  for n in 1 2; do
    post "$name: pickup $store-$n" /pickup "$(order "$store" "$store-$n")" driver pickup
  done
  run_client "$name: driver (catches up on 2 pickups)" "$work/driver-$tag.log" 60 \
    node "$here/js/driver.js" --count 2 --delay 200
  expect_queue "$name: $store's mailbox holds 2 in-transit + 2 delivered" "$store" "waiting=4 pending="

  start_client "$work/driver-$tag-live.log" 90 node "$here/js/driver.js" --count 1 --delay 200
  local driver_pid=$last_pid
  run_client "$name: vendor $store (back online, --orders 1 --wait-for 3)" "$work/vendor-$tag.log" 90 \
    "$@" "$store" --orders 1 --wait-for 3 --every 300
  wait_client "$name: driver (--count 1)" "$driver_pid" "$work/driver-$tag-live.log"
  for n in 1 2; do
    expect_lines "$name: thanked for $store-$n" "$work/vendor-$tag.log" "Thank you for delivering $store-$n\$" 1
  done
  expect_lines "$name: 3 thank-yous in all" "$work/vendor-$tag.log" "Thank you for delivering $store-" 3
  expect_queue "$name: nothing left for $store" "$store" "waiting=0 pending=$store:0"
  expect_queue "$name: nothing left for the driver" driver "waiting=0 pending=driver:0"
}

echo "== 3a. gen 2 (js-v2/, socket.io-client 2.x, namespace /)"
short_story "gen 2" flowers-v2 node "$here/js-v2/vendor.js"

echo "== 3b. Python (python/, python-socketio, /caps)"
short_story "python" flowers-py python3 "$here/python/vendor.py"

if [[ -x "$rust_vendor" ]]; then
  echo "== 3c. Rust (rust/, rust_socketio 0.6, /caps)"
  short_story "rust" flowers-rs "$rust_vendor"
else
  echo "== 3c. Rust: skipped (no $rust_vendor; build it with cargo build --manifest-path $here/rust/Cargo.toml)"
fi

finish
