#!/usr/bin/env bash
# Redis and three queuehub nodes on one machine (docs/SCALING.md): one node is active, two
# stand by and relay their clients to it; kill the active one and a standby takes over with
# everything that was answered.
#
#   .ci/redis-nodes.sh [BIN]           runs them until Ctrl-C, printing each node's URL
#   .ci/redis-nodes.sh --check [BIN]   CI: publishes through one standby and reads through the
#                                      other, kills the active node with SIGKILL, checks that a
#                                      standby takes over with the message and that the last
#                                      one relays to it, then that a stopping node hands over
#                                      at once, and exits
#
# BIN defaults to target/debug/queuehub. Needs redis-server (Debian's package) and curl.
# Redis runs with `appendonly yes` and `appendfsync always` in a temp dir, on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh

check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
  shift
fi
bin="${1:-target/debug/queuehub}"
lease_ms=2000

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$qh_work" --save "" \
  --appendonly yes --appendfsync always --daemonize no >>"$qh_work/redis.log" 2>&1 &
redis_pid=$!
track_pid "$redis_pid"
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis_url="redis://127.0.0.1:$redis_port/0"
echo "== Redis on $redis_url (appendfsync always), pid $redis_pid"

# Three nodes, each with its own log: the first to take the lease serves, the others relay.
ports=() pids=()
for n in 1 2 3; do
  port="$(free_port)"
  RUST_LOG=info NO_COLOR=1 "$bin" --listen "127.0.0.1:$port" --redis "$redis_url" \
    --redis-lease-ms "$lease_ms" >>"$qh_work/node$n.log" 2>&1 &
  pids+=("$!")
  ports+=("$port")
  track_pid "$!"
done

# Prints the index (0-2) of the live node whose log says it serves, waiting up to 30 s.
active_node() {
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    for i in 0 1 2; do
      if kill -0 "${pids[$i]}" 2>/dev/null \
        && grep -q "queuehub listening on" "$qh_work/node$((i + 1)).log"; then
        echo "$i"
        return 0
      fi
    done
    sleep 0.2
  done
  echo "redis-nodes: no node became active within 30 s" >&2
  tail -n 20 "$qh_work"/node*.log >&2
  return 1
}

# Waits until node index $1 relays (its log says so), up to 30 s.
relaying() {
  local deadline=$((SECONDS + 30))
  until grep -q "relaying on" "$qh_work/node$(($1 + 1)).log"; do
    if ((SECONDS >= deadline)); then
      echo "redis-nodes: node $(($1 + 1)) does not relay" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Prints the waiting count of $queue through node index $1, retrying for up to 30 s while no
# node answers (during a failover).
waiting_through() {
  local deadline=$((SECONDS + 30)) stats
  while ((SECONDS < deadline)); do
    if stats="$(curl -fsS --max-time 2 "http://127.0.0.1:${ports[$1]}/v1/queues/$queue" 2>/dev/null)"; then
      python3 -c 'import json,sys; print(json.load(sys.stdin)["waiting"])' <<<"$stats"
      return 0
    fi
    sleep 0.2
  done
  echo "redis-nodes: node $(($1 + 1)) did not answer within 30 s" >&2
  return 1
}

first="$(active_node)"
others=()
for i in 0 1 2; do
  role="standby, relaying to the active node"
  if [[ "$i" == "$first" ]]; then
    role=active
  else
    others+=("$i")
    relaying "$i"
  fi
  echo "   node $((i + 1)): http://127.0.0.1:${ports[$i]} (pid ${pids[$i]}, $role)"
done

if [[ $check == 0 ]]; then
  echo "Ctrl-C stops them all."
  wait "${pids[@]}"
  exit 0
fi

queue="failover-$RANDOM"
echo "== publish through node $((others[0] + 1)) (a standby), read through node $((others[1] + 1))"
curl -fsS -X POST "http://127.0.0.1:${ports[${others[0]}]}/v1/queues/$queue/messages" \
  -H 'content-type: application/json' -d '{"event":"delivered","payload":{"n":1}}' >/dev/null
waiting="$(waiting_through "${others[1]}")"
[[ "$waiting" == 1 ]] || { echo "redis-nodes: expected 1 waiting message, got $waiting" >&2; exit 1; }
echo "   1 waiting, as every node sees it"

echo "== kill -9 the active node (node $((first + 1)))"
kill -9 "${pids[$first]}"
wait "${pids[$first]}" 2>/dev/null || true
started=$SECONDS
second="$(active_node)"
echo "   node $((second + 1)) took over after $((SECONDS - started)) s (lease ${lease_ms} ms)"
last="${others[0]}"
[[ "$last" == "$second" ]] && last="${others[1]}"
waiting="$(waiting_through "$last")"
if [[ "$waiting" != 1 ]]; then
  echo "redis-nodes: through node $((last + 1)), $waiting waiting messages, expected 1" >&2
  exit 1
fi
echo "   the answered publish is there, through node $((last + 1)) (relaying to the new one)"

echo "== stop the active node (SIGTERM): the last standby takes over at once"
kill -TERM "${pids[$second]}"
wait "${pids[$second]}" || { echo "redis-nodes: the stopping node failed" >&2; exit 1; }
started=$SECONDS
third="$(active_node)"
echo "   node $((third + 1)) took over after $((SECONDS - started)) s"
waiting="$(waiting_through "$third")"
[[ "$waiting" == 1 ]] || { echo "redis-nodes: expected 1 waiting message, got $waiting" >&2; exit 1; }
echo "== redis-nodes: relaying and failover checked"
