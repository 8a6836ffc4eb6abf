# shellcheck shell=bash
# Shared by every script that starts a queuehub for a test: .ci/smoke-examples.sh,
# .ci/smoke-worker.sh, .ci/browser-e2e.sh, client-examples/caps/lab.sh and
# client-examples/classroom/run.sh. Source it (scripts under client-examples/ by a path relative
# to themselves); it works with or without `set -e`.
#
# Sourcing it creates a temporary directory and installs the traps:
#
#   qh_work     a fresh temporary directory for the script (data dirs, client logs); removed on
#               exit.
#   qh_log      $qh_work/server.log: the output of every queuehub started, appended in order.
#   EXIT trap   stops the pids registered with track_pid and every queuehub still running
#               (SIGTERM, up to 5 s, then SIGKILL); if the script exits non-zero it first prints
#               the panic lines and the last 40 lines of $qh_log to stderr (unless
#               show_queuehub_log already did), then removes $qh_work and exits with the
#               script's status. INT exits 130 and TERM exits 143, through the EXIT trap.
#
# Functions (NAME is the caller's label in messages, e.g. smoke-examples):
#
#   free_port [PREFERRED]        prints a free loopback port: PREFERRED if it is given and not 0
#                                (fails with a message if it is taken), else one the kernel
#                                picks that this script was not given before. A tiny race with
#                                other programs is possible; the health wait also checks that
#                                our process is alive. Messages name the script.
#   start_queuehub NAME PORT BIN [ARGS...]
#                                starts `BIN --listen 127.0.0.1:PORT ARGS...` in the background,
#                                output appended to $qh_log, and waits until it is healthy. Sets
#                                qh_pid and qh_url (http://127.0.0.1:PORT). Returns 1
#                                (with a message naming NAME, the server stopped and qh_pid
#                                empty) if it exits first or /healthz does not answer in 30 s.
#   stop_queuehub [SIGNAL]       stops the queuehub last started: SIGNAL (default TERM), up to
#                                5 s for it to exit, then SIGKILL; reaps it and empties qh_pid.
#                                Does nothing if none is running.
#   kill9_queuehub               stop_queuehub KILL (a crash: nothing is flushed or closed).
#   queuehub_running             true if the queuehub last started is still running.
#   queuehub_panic               prints the first panic in $qh_log (two lines) and returns 0 if
#                                there is one, else returns 1 silently.
#   show_queuehub_log [N]        prints the last N (default 40) lines of $qh_log to stderr, once:
#                                the EXIT trap then does not print them again.
#   track_pid PID                registers a background process (a client) for the EXIT trap
#                                to stop.
#   wait_healthy NAME URL PID    waits up to 30 s until URL/healthz answers; returns 1 with a
#                                message if PID exits first or nothing answers in time.

qh_work="$(mktemp -d)"
qh_log="$qh_work/server.log"
qh_pid=""
qh_url=""
_qh_servers=()
_qh_tracked=()
_qh_log_shown=""

wait_healthy() {
  local name="$1" url="$2" pid="$3"
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name: queuehub exited before it became healthy" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "$name: $url/healthz did not answer within 30 s" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "   healthy"
}

free_port() {
  local me="${0##*/}"
  python3 - "${1:-0}" "${me%.sh}" "$qh_work/ports-given" <<'PY'
import socket, sys
# Ports this script was given before: the kernel may offer one again once its probe is
# closed and before the program it was meant for binds it.
try:
    given = set(open(sys.argv[3]).read().split())
except FileNotFoundError:
    given = set()
while True:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(sys.argv[1] or 0)))
    except (OSError, ValueError) as err:
        sys.exit(f"{sys.argv[2]}: port {sys.argv[1]} is not free: {err}")
    port = s.getsockname()[1]
    s.close()
    if sys.argv[1] not in ("", "0") or str(port) not in given:
        break
with open(sys.argv[3], "a") as f:
    f.write(f"{port}\n")
print(port)
PY
}

# _qh_stop PID [SIGNAL]: SIGNAL (default TERM), up to 5 s, then SIGKILL; reaps PID if it is ours.
_qh_stop() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

start_queuehub() {
  local name="$1" port="$2" bin="$3"
  shift 3
  qh_url="http://127.0.0.1:$port"
  "$bin" --listen "127.0.0.1:$port" "$@" >>"$qh_log" 2>&1 &
  qh_pid=$!
  _qh_servers+=("$qh_pid")
  if ! wait_healthy "$name" "$qh_url" "$qh_pid"; then
    stop_queuehub
    return 1
  fi
}

stop_queuehub() {
  [[ -n "$qh_pid" ]] || return 0
  _qh_stop "$qh_pid" "${1:-TERM}"
  local rest=() pid
  for pid in "${_qh_servers[@]}"; do
    [[ "$pid" == "$qh_pid" ]] || rest+=("$pid")
  done
  _qh_servers=("${rest[@]}")
  qh_pid=""
}

kill9_queuehub() {
  stop_queuehub KILL
}

queuehub_running() {
  [[ -n "$qh_pid" ]] && kill -0 "$qh_pid" 2>/dev/null
}

queuehub_panic() {
  if [[ -s "$qh_log" ]] && grep -q 'panicked' "$qh_log"; then
    grep -m1 -A1 'panicked' "$qh_log"
  else
    return 1
  fi
}

show_queuehub_log() {
  _qh_log_shown=1
  [[ -s "$qh_log" ]] || return 0
  echo "--- last lines of the queuehub log ---" >&2
  tail -n "${1:-40}" "$qh_log" >&2 || true
}

track_pid() {
  _qh_tracked+=("$1")
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
_qh_exit() {
  local rc=$? pid
  for pid in "${_qh_tracked[@]}"; do
    _qh_stop "$pid"
  done
  for pid in "${_qh_servers[@]}"; do
    _qh_stop "$pid"
  done
  if ((rc != 0)) && [[ -z "$_qh_log_shown" && -s "$qh_log" ]]; then
    if grep -q 'panicked' "$qh_log"; then
      echo "--- queuehub panicked ---" >&2
      grep -A1 'panicked' "$qh_log" | head -n 20 >&2 || true
    fi
    show_queuehub_log 40
  fi
  rm -rf "$qh_work"
  exit "$rc"
}
trap _qh_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
