#!/usr/bin/env bash
# Redis and three queuehub nodes on one machine (docs/SCALING.md): one node is active, two
# stand by; kill the active one and a standby takes over with everything that was answered.
#
#   .ci/redis-nodes.sh [BIN]           runs them until Ctrl-C, printing each node's URL
#   .ci/redis-nodes.sh --check [BIN]   CI: publishes, kills the active node with SIGKILL, checks
#                                      that a standby takes over with the message, then that a
#                                      stopping node hands over at once, and exits
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

# Three nodes; each listens only once it holds the lease.
ports=() pids=()
for n in 1 2 3; do
  port="$(free_port)"
  RUST_LOG=info "$bin" --listen "127.0.0.1:$port" --redis "$redis_url" \
    --redis-lease-ms "$lease_ms" >>"$qh_log" 2>&1 &
  pids+=("$!")
  ports+=("$port")
  track_pid "$!"
done

# Prints the index (0-2) of the node that answers /healthz, waiting up to 30 s.
active_node() {
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    for i in 0 1 2; do
      if kill -0 "${pids[$i]}" 2>/dev/null \
        && curl -fsS --max-time 1 "http://127.0.0.1:${ports[$i]}/healthz" >/dev/null 2>&1; then
        echo "$i"
        return 0
      fi
    done
    sleep 0.2
  done
  echo "redis-nodes: no node became active within 30 s" >&2
  return 1
}

first="$(active_node)"
for i in 0 1 2; do
  role=standby
  [[ "$i" == "$first" ]] && role=active
  echo "   node $((i + 1)): http://127.0.0.1:${ports[$i]} (pid ${pids[$i]}, $role)"
done

if [[ $check == 0 ]]; then
  echo "Ctrl-C stops them all."
  wait "${pids[@]}"
  exit 0
fi

url="http://127.0.0.1:${ports[$first]}"
queue="failover-$RANDOM"
echo "== publish on the active node, then kill -9 it"
curl -fsS -X POST "$url/v1/queues/$queue/messages" -H 'content-type: application/json' \
  -d '{"event":"delivered","payload":{"n":1}}' >/dev/null
kill -9 "${pids[$first]}"
wait "${pids[$first]}" 2>/dev/null || true
started=$SECONDS
second="$(active_node)"
echo "   node $((second + 1)) took over after $((SECONDS - started)) s (lease ${lease_ms} ms)"
url="http://127.0.0.1:${ports[$second]}"
waiting="$(curl -fsS "$url/v1/queues/$queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["waiting"])')"
if [[ "$waiting" != 1 ]]; then
  echo "redis-nodes: the new active node has $waiting waiting messages, expected 1" >&2
  exit 1
fi
echo "   the answered publish is there"

echo "== stop the active node (SIGTERM): the last standby takes over at once"
kill -TERM "${pids[$second]}"
wait "${pids[$second]}" || { echo "redis-nodes: the stopping node failed" >&2; exit 1; }
started=$SECONDS
third="$(active_node)"
echo "   node $((third + 1)) took over after $((SECONDS - started)) s"
waiting="$(curl -fsS "http://127.0.0.1:${ports[$third]}/v1/queues/$queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["waiting"])')"
[[ "$waiting" == 1 ]] || { echo "redis-nodes: expected 1 waiting message, got $waiting" >&2; exit 1; }
echo "== redis-nodes: failover checked"
