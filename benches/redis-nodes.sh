#!/usr/bin/env bash
# queuehub on Redis, one node against three nodes on one Redis, and one node on a three-master
# Redis Cluster, in one run (docs/SCALING.md, "What it costs"): Redis 7 with `appendonly yes`
# and `appendfsync always`, three release nodes (the first active, the other two standbys that
# relay to it), and queuehub-bench driving each scenario: with every socket and publish on the
# active node, then with the sockets spread over the three nodes and the publishes sent to a
# standby; then a fresh node on the cluster (its nodes with the same settings).
#
#   benches/redis-nodes.sh            # a few minutes; prints a Markdown table
#
# Environment: OUT (working directory, default target/bench-redis-nodes). Needs redis-server.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/target/bench-redis-nodes}
rm -rf "$OUT" && mkdir -p "$OUT/raw"

echo "== building queuehub and queuehub-bench (release)"
cargo build --release --locked --bin queuehub --bin queuehub-bench
BIN=$ROOT/target/release/queuehub
BENCH=$ROOT/target/release/queuehub-bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$OUT" --save "" \
  --appendonly yes --appendfsync always --daemonize no >"$OUT/redis.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

PORTS=()
for n in 1 2 3; do
  port=$(free_port)
  PORTS+=("$port")
  # exec: the pid kept is the server's own, so that the bench reads its CPU time.
  (NO_COLOR=1 RUST_LOG=info exec "$BIN" --listen "127.0.0.1:$port" \
    --redis "redis://127.0.0.1:$REDIS_PORT/0") >"$OUT/node$n.log" 2>&1 &
  PIDS+=("$!")
  if [[ $n == 1 ]]; then
    ACTIVE_PID=$!
    until grep -q "listening on" "$OUT/node1.log"; do sleep 0.1; done
  fi
done
for n in 2 3; do
  until grep -q "relaying on" "$OUT/node$n.log"; do sleep 0.1; done
done
URL1="http://127.0.0.1:${PORTS[0]}"
URL2="http://127.0.0.1:${PORTS[1]}"
URL3="http://127.0.0.1:${PORTS[2]}"
echo "node 1 (active, pid $ACTIVE_PID) $URL1; nodes 2 and 3 relay: $URL2 $URL3"

SCENARIOS=(
  "fanout-50|fanout: 200 subscribers, 50 msg/s for 10 s|fanout --subscribers 200 --rate 50 --duration 10"
  "publish|publish: 10 acking subscribers, 20 000 messages, 32 concurrent POSTs|publish --subscribers 10 --messages 20000 --concurrency 32"
)
for entry in "${SCENARIOS[@]}"; do
  IFS='|' read -r id title args <<<"$entry"
  echo "== $title — one node"
  "$BENCH" $args --url "$URL1" --pid "$ACTIVE_PID" --label one-node --timeout 120 \
    --json "$OUT/raw/$id.one.json" || echo "(exit $?)"
  echo "== $title — three nodes"
  "$BENCH" $args --url "$URL2" --socket-url "$URL1" --socket-url "$URL2" --socket-url "$URL3" \
    --pid "$ACTIVE_PID" --label three-nodes --timeout 120 \
    --json "$OUT/raw/$id.three.json" || echo "(exit $?)"
done

# The cluster: three masters, no replicas, joined with redis-cli.
# A cluster node's bus port is 10 000 higher and must be a port too: pick below 55 536.
cluster_port() { python3 -c '
import random, socket
while True:
    p = random.randint(20000, 55535)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'; }
SEEDS=()
for n in 1 2 3; do
  port=$(cluster_port)
  mkdir -p "$OUT/cluster$n"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$OUT/cluster$n" --save "" \
    --appendonly yes --appendfsync always --cluster-enabled yes --daemonize no \
    >"$OUT/cluster$n/log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  SEEDS+=("127.0.0.1:$port")
done
redis-cli --cluster create "${SEEDS[@]}" --cluster-replicas 0 --cluster-yes >"$OUT/cluster.log"
until redis-cli -p "${SEEDS[0]#*:}" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
CPORT=$(free_port)
(NO_COLOR=1 RUST_LOG=info exec "$BIN" --listen "127.0.0.1:$CPORT" \
  --redis-cluster "redis://${SEEDS[0]},redis://${SEEDS[1]},redis://${SEEDS[2]}") \
  >"$OUT/cluster-node.log" 2>&1 &
CLUSTER_PID=$!
PIDS+=("$CLUSTER_PID")
until grep -q "listening on" "$OUT/cluster-node.log"; do sleep 0.1; done
for entry in "${SCENARIOS[@]}"; do
  IFS='|' read -r id title args <<<"$entry"
  echo "== $title — one node on a three-master Redis Cluster"
  "$BENCH" $args --url "http://127.0.0.1:$CPORT" --pid "$CLUSTER_PID" --label cluster \
    --timeout 120 --json "$OUT/raw/$id.cluster.json" || echo "(exit $?)"
done

python3 - "$OUT" "${SCENARIOS[@]}" <<'EOF'
import json, os, sys
out = sys.argv[1]
print("\n| scenario | deployment | deliveries/s | p50 ms | p99 ms | missing | active node's cores |")
print("|---|---|---:|---:|---:|---:|---:|")
for entry in sys.argv[2:]:
    sid, title, _ = entry.split("|", 2)
    for kind, name in (("one", "one node"), ("three", "3 nodes: sockets spread, POSTs to a standby"),
                       ("cluster", "one node on a 3-master Redis Cluster")):
        try:
            r = json.load(open(os.path.join(out, "raw", f"{sid}.{kind}.json")))
        except (OSError, ValueError):
            print(f"| {title} | {name} | (no report) | | | | |")
            continue
        lat = r["latency_ms"]
        cores = (r.get("extra") or {}).get("server_cores", "")
        print(f"| {title} | {name} | {r['deliveries_per_s']:,.0f} | {lat['p50']:.1f} | "
              f"{lat['p99']:.1f} | {r['missing']} | {cores} |")
EOF
