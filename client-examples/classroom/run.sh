#!/usr/bin/env bash
# The replica clients of each lab generation, run scenario by scenario against a real
# queuehub started with that generation's preset:
#
#   client-examples/classroom/run.sh path/to/queuehub [caps-v2] [caps-rooms] [message-queue]
#
# (default: all three). For each generation: live delivery, offline then catch-up, acks remove
# (nothing comes back), a kill -9 restart between send and receive, and, where the lab has
# ids of its own (the message-queue demo), the same id twice is one message. Every wait is
# bounded. Prints one line per check and `classroom: N passed, M failed`; exits non-zero on a
# failure. CLASSROOM_NO_INSTALL=1 skips `npm ci` (it runs only where node_modules is missing).
# Starting, stopping (kill -9 included) and cleaning up the server come from ../../.ci/lib.sh.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
source "$here/../../.ci/lib.sh"
bin="${1:-}"
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "usage: $0 path/to/queuehub [generation...]   (no executable at '${bin}')" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
shift
generations=("$@")
((${#generations[@]})) || generations=(caps-v2 caps-rooms message-queue)

work="$qh_work"
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; }
show_log() { sed 's/^/       | /' "$1" | tail -n 20; }

if [[ -z "${CLASSROOM_NO_INSTALL:-}" ]]; then
  for dir in "${generations[@]}"; do
    if [[ ! -f "$here/$dir/node_modules/.package-lock.json" ]]; then
      echo "== npm ci in $dir/"
      (cd "$here/$dir" && npm ci --no-audit --no-fund --loglevel=error) || { fail "npm ci in $dir/"; exit 1; }
    fi
  done
fi

port="$(free_port 0)"
url="http://127.0.0.1:$port"
export QUEUEHUB_URL="$url"

# start_server PRESET: starts queuehub with PRESET on $url, its store in $work/PRESET.
start_server() {
  mkdir -p "$work/$1"
  if ! start_queuehub classroom "$port" "$bin" --preset "$1" --data-dir "$work/$1"; then
    fail "queuehub --preset $1 did not become healthy"
    exit 1
  fi
}

# restart PRESET: kill -9, then start again on the same store.
restart() {
  kill9_queuehub
  start_server "$1"
  pass "queuehub killed (-9) and restarted with --preset $1"
}

# run NAME LOG CMD...: runs a client in the foreground (60 s at most); it must exit 0.
run() {
  local name="$1" log="$2" rc
  shift 2
  timeout 60 "$@" >"$log" 2>&1
  rc=$?
  if ((rc == 0)); then pass "$name"; else fail "$name (exit $rc)"; show_log "$log"; fi
}

# start LOG CMD...: starts a client in the background (60 s at most); its pid is $last_pid.
start() {
  local log="$1"
  shift
  timeout 60 "$@" >"$log" 2>&1 &
  last_pid=$!
  track_pid "$last_pid"
}

# finish NAME PID LOG: waits for a background client, which must exit 0.
finish() {
  local rc
  wait "$2"
  rc=$?
  if ((rc == 0)); then pass "$1"; else fail "$1 (exit $rc)"; show_log "$3"; fi
}

# wait_for LOG PATTERN: waits (10 s at most) until LOG has a line matching PATTERN.
wait_for() {
  local deadline=$((SECONDS + 10))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    ((SECONDS >= deadline)) && { fail "no '$2' in $(basename "$1")"; show_log "$1"; return; }
    sleep 0.1
  done
}

# lines NAME LOG PATTERN N: LOG has exactly N lines matching PATTERN.
lines() {
  local got
  got="$(grep -c -- "$3" "$2")"
  if ((got == $4)); then pass "$1: $got line(s) '$3'"; else fail "$1: $got line(s) '$3', expected $4"; show_log "$2"; fi
}

# queue NAME QUEUE EXPECTED: GET /v1/queues/QUEUE shows "waiting=W pending=client:n,...".
queue() {
  local got
  got="$(curl -sS --max-time 5 "$url/v1/queues/$2" | python3 -c '
import json, sys
q = json.load(sys.stdin)
print("waiting=%s pending=%s" % (q["waiting"], ",".join("%s:%s" % (s["clientId"], s["pending"]) for s in q["subscribers"])))
' 2>&1)"
  if [[ "$got" == "$3" ]]; then pass "$1: $2 shows $got"; else fail "$1: $2 shows '$got', expected '$3'"; fi
}

caps_v2() {
  local d="$here/caps-v2" l="$work/v2"
  start_server caps-v2
  echo "-- live: the driver and a vendor at once"
  start "$l-driver.log" node "$d/driver.js" --count 2
  local driver=$last_pid
  # Live means the driver is there first: wait until it has subscribed and caught up.
  wait_for "$l-driver.log" "DRIVER: caught up"
  run "vendor acme orders 2 and is thanked for 2" "$l-vendor.log" node "$d/vendor.js" acme --orders 2 --wait-for 2
  finish "driver delivered 2" "$driver" "$l-driver.log"
  lines "live" "$l-vendor.log" "Thank you for delivering acme-" 2
  queue "live: acks removed everything" acme "waiting=0 pending=acme:0"

  echo "-- offline, then catch-up (the vendor is away while its orders are delivered)"
  run "vendor flowers orders 2 and leaves" "$l-v1.log" node "$d/vendor.js" flowers --orders 2
  run "driver catches up on 2 pickups" "$l-d1.log" node "$d/driver.js" --count 2
  run "the lab's API (clientID api) delivers code c-9 to flowers" "$l-api.log" node "$d/api.js" flowers c-9
  queue "offline: deliveries wait in the store's queue, not the sender's" flowers "waiting=0 pending=flowers:5"
  run "vendor flowers comes back, is thanked for 3" "$l-v2.log" node "$d/vendor.js" flowers --wait-for 3
  lines "catch-up" "$l-v2.log" "Thank you for delivering" 3
  lines "catch-up: in-transit too" "$l-v2.log" "is in transit" 2
  queue "acks removed everything" flowers "waiting=0 pending=flowers:0"
  run "vendor flowers again: nothing comes back" "$l-v3.log" node "$d/vendor.js" flowers
  lines "after the acks" "$l-v3.log" "Thank you" 0

  echo "-- a restart between send and receive"
  run "vendor tulips orders 1 and leaves" "$l-v4.log" node "$d/vendor.js" tulips --orders 1
  restart caps-v2
  run "driver gets the pickup made before the restart" "$l-d2.log" node "$d/driver.js" --count 1
  restart caps-v2
  run "vendor tulips is thanked after two restarts" "$l-v5.log" node "$d/vendor.js" tulips --wait-for 1
  stop_queuehub
}

caps_rooms() {
  local d="$here/caps-rooms" l="$work/rooms"
  start_server caps-rooms
  echo "-- live: the driver is in the room when the vendor joins"
  start "$l-driver.log" node "$d/driver.js" acme --count 2
  local driver=$last_pid
  sleep 1 # the driver joins first, so that it hears the vendor's join
  run "vendor acme orders 2 and is thanked for 2" "$l-vendor.log" node "$d/vendor.js" acme --orders 2 --wait-for 2
  finish "driver delivered 2" "$driver" "$l-driver.log"
  lines "the driver heard the vendor join" "$l-driver.log" "DRIVER: acme joined" 1
  lines "the vendor never got its own pickups" "$l-vendor.log" "picked up" 0
  queue "live: everything sent counts as received" acme "waiting=0 pending=acme:0"

  echo "-- offline, then catch-up (nobody else is in the room)"
  run "vendor flowers orders 2 and leaves" "$l-v1.log" node "$d/vendor.js" flowers --orders 2
  queue "the pickups wait in the store's room" flowers "waiting=0 pending=flowers:2"
  run "a driver joins later and delivers both" "$l-d1.log" node "$d/driver.js" flowers --count 2
  run "vendor flowers comes back, is thanked for 2" "$l-v2.log" node "$d/vendor.js" flowers --wait-for 2
  queue "sent is received: nothing left" flowers "waiting=0 pending=flowers:0"
  run "vendor flowers again: nothing comes back" "$l-v3.log" node "$d/vendor.js" flowers
  lines "after the catch-up" "$l-v3.log" "Thank you" 0

  echo "-- a restart between send and receive"
  run "vendor tulips orders 1 and leaves" "$l-v4.log" node "$d/vendor.js" tulips --orders 1
  restart caps-rooms
  run "a driver gets the pickup made before the restart" "$l-d2.log" node "$d/driver.js" tulips --count 1
  restart caps-rooms
  run "vendor tulips is thanked after two restarts" "$l-v5.log" node "$d/vendor.js" tulips --wait-for 1
  stop_queuehub
}

message_queue() {
  local d="$here/message-queue" l="$work/mq"
  start_server message-queue
  echo "-- live: the receiver is connected when the sender sends"
  start "$l-r1.log" node "$d/receiver.js" client2 --expect 1
  local receiver=$last_pid
  wait_for "$l-r1.log" "caught up"
  run "sender sends messageId 1" "$l-s1.log" node "$d/sender.js" client2 1
  finish "receiver got and acked 1 message" "$receiver" "$l-r1.log"
  lines "live: as the event messages, the sender's own id" "$l-r1.log" "got 1: message number 1" 1

  echo "-- offline, then catch-up, with a lab id sent twice"
  run "sender sends messageIds 1, 1 and 2" "$l-s2.log" node "$d/sender.js" client2 1 1 2
  queue "the same id twice is one message" client2 "waiting=0 pending=client2:2"
  run "receiver catches up on 2" "$l-r2.log" node "$d/receiver.js" client2 --expect 2
  lines "catch-up: id 1 once" "$l-r2.log" "got 1:" 1
  lines "catch-up: id 2 once" "$l-r2.log" "got 2:" 1
  queue "received removed both" client2 "waiting=0 pending=client2:0"
  run "receiver again: nothing comes back" "$l-r3.log" node "$d/receiver.js" client2
  lines "after the acks" "$l-r3.log" "got " 0

  echo "-- a restart between send and receive"
  run "sender sends messageId 7 to client3" "$l-s3.log" node "$d/sender.js" client3 7
  restart message-queue
  run "receiver client3 gets it after the restart" "$l-r4.log" node "$d/receiver.js" client3 --expect 1
  lines "after the restart" "$l-r4.log" "got 7:" 1
  stop_queuehub
}

for generation in "${generations[@]}"; do
  echo "== $generation (queuehub --preset $generation)"
  case "$generation" in
    caps-v2) caps_v2 ;;
    caps-rooms) caps_rooms ;;
    message-queue) message_queue ;;
    *) fail "unknown generation '$generation'" ;;
  esac
done

if panic="$(queuehub_panic)"; then
  fail "queuehub panicked: $(head -n 1 <<<"$panic")"
fi
if ((failed > 0)); then
  show_queuehub_log 30
fi
echo "classroom: $passed passed, $failed failed"
((failed == 0))
