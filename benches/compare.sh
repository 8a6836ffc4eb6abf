#!/usr/bin/env bash
# Side-by-side comparison: queuehub (release build, default durable store in a temp dir) and
# the Node hub (../shared/peers/node-hub, or $NODE_HUB_DIR), started on free loopback ports
# and measured by the same tool, queuehub-bench, in the same run: every scenario of issue 9's
# table against both, one after the other. Writes the JSON results and an SVG plot into
# docs/benchmarks/ and prints a Markdown table (see docs/BENCHMARKS.md).
#
#   benches/compare.sh           # the full run (a few minutes), results into docs/benchmarks/
#   benches/compare.sh --quick   # small sizes, results only into $OUT (a smoke test)
#
# Environment: OUT (working directory, default target/bench-compare), NODE_HUB_DIR.
# Only loopback addresses are loaded; every scenario has a time limit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
OUT=${OUT:-$ROOT/target/bench-compare}
NODE_HUB_DIR=${NODE_HUB_DIR:-$ROOT/../shared/peers/node-hub}
rm -rf "$OUT" && mkdir -p "$OUT/raw"

log() { printf '\n== %s\n' "$*"; }

log "building queuehub and queuehub-bench (release)"
cargo build --release --locked --bin queuehub --bin queuehub-bench
BENCH=$ROOT/target/release/queuehub-bench

log "installing the Node hub into $OUT/node-hub (its folder may be read-only)"
[[ -f "$NODE_HUB_DIR/server.js" ]] || { echo "no Node hub at $NODE_HUB_DIR (set NODE_HUB_DIR)"; exit 1; }
cp -r "$NODE_HUB_DIR" "$OUT/node-hub"
rm -rf "$OUT/node-hub/node_modules"
(cd "$OUT/node-hub" && npm ci --no-audit --no-fund --loglevel=error)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
QH_PORT=$(free_port)
NODE_PORT=$(free_port)
while [[ "$NODE_PORT" == "$QH_PORT" ]]; do NODE_PORT=$(free_port); done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Each server runs as the very process whose pid we keep (exec), so that the bench reads
# that process's CPU time and (idle) memory.
"$ROOT/target/release/queuehub" --listen "127.0.0.1:$QH_PORT" --data-dir "$OUT/queuehub-data" \
  >"$OUT/queuehub.log" 2>&1 &
QH_PID=$!
PIDS+=("$QH_PID")
(cd "$OUT/node-hub" && exec node server.js --listen "127.0.0.1:$NODE_PORT") >"$OUT/node-hub.log" 2>&1 &
NODE_PID=$!
PIDS+=("$NODE_PID")

wait_healthy() {
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server on port $1 did not become healthy"; exit 1
}
wait_healthy "$QH_PORT"
wait_healthy "$NODE_PORT"
echo "queuehub pid $QH_PID on $QH_PORT, node-hub pid $NODE_PID on $NODE_PORT"

if [[ $QUICK == 1 ]]; then S=0.1; else S=1; fi
n() { python3 -c "print(max(1, int($1 * $S)))"; }

# Idle runs first, on fresh servers: later scenarios leave freed
# memory in each process's allocator, which new sockets would reuse unseen.
# id | short label | title | arguments
SCENARIOS=(
  "idle|idle, $(n 2000) sockets|idle: $(n 2000) subscribed sockets|idle --sockets $(n 2000)"
  "publish|publish, 32 single POSTs|publish: 10 acking subscribers, $(n 20000) messages, 32 concurrent single POSTs|publish --subscribers 10 --messages $(n 20000) --concurrency 32"
  "publish-batch|publish, arrays of 100|publish batched: 10 subscribers, $(n 100000) messages in arrays of 100 (4 POSTs in flight)|publish --subscribers 10 --messages $(n 100000) --batch 100 --concurrency 4"
  "fanout-50|fanout, 200 subs × 50 msg/s|fanout: 200 subscribers, 50 msg/s for $(n 10) s|fanout --subscribers 200 --rate 50 --duration $(n 10)"
  "fanout-500|fanout, 200 subs × 500 msg/s|fanout: 200 subscribers, 500 msg/s for $(n 10) s|fanout --subscribers 200 --rate 500 --duration $(n 10)"
  "catchup|catchup of $(n 20000)|catchup: $(n 20000) messages|catchup --messages $(n 20000)"
  "work|work, 8 workers, 200 B|work: 8 workers, 32 producers, $(n 40000) jobs of 200 B|work --workers 8 --producers 32 --jobs $(n 40000) --payload-bytes 200"
)

: >"$OUT/scenarios.txt"
for entry in "${SCENARIOS[@]}"; do
  IFS='|' read -r id short title args <<<"$entry"
  echo "$id|$short|$title" >>"$OUT/scenarios.txt"
  for server in queuehub node-hub; do
    if [[ $server == queuehub ]]; then port=$QH_PORT pid=$QH_PID; else port=$NODE_PORT pid=$NODE_PID; fi
    log "$title — $server"
    cut -d' ' -f1-3 /proc/loadavg >"$OUT/raw/$id.$server.load" # the machine may be shared
    # shellcheck disable=SC2086 # $args is a list of words
    "$BENCH" $args --pid "$pid" --url "http://127.0.0.1:$port" --label "$server" \
      --timeout 120 --json "$OUT/raw/$id.$server.json" || echo "(exit $? — see the report)"
  done
done

log "the tool's own ceiling (selftest against its trivial built-in server)"
# Fanout at 2 500 msg/s to 200 subscribers offers 500 000 deliveries/s, more than it takes;
# at 50 msg/s it shows the latency the tool and the machine add by themselves (its floor).
"$BENCH" selftest --fanout-rate 2500 --fanout-rate 50 --json "$OUT/raw/selftest.json" || echo "(exit $?)"

log "results"
python3 - "$OUT" "$QUICK" <<'EOF'
import json, os, platform, subprocess, sys, time
out, quick = sys.argv[1], sys.argv[2] == "1"
def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
scenarios = []
for line in open(os.path.join(out, "scenarios.txt")):
    sid, short, title = line.rstrip("\n").split("|", 2)
    scenarios.append({"id": sid, "short": short, "title": title, "reports": {
        s: load(os.path.join(out, "raw", f"{sid}.{s}.json")) for s in ("queuehub", "node-hub")},
        "loadavg_before": {s: read(os.path.join(out, "raw", f"{sid}.{s}.load"))
                           for s in ("queuehub", "node-hub")}})
results = {
    "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "quick": quick,
    "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
                "node": sh("node --version"), "rustc": sh("rustc --version"),
                "commit": sh("git rev-parse --short HEAD")},
    "scenarios": scenarios,
    "selftest": load(os.path.join(out, "raw", "selftest.json")),
}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
EOF
python3 benches/plot.py "$OUT/results.json" "$OUT/compare.svg" | tee "$OUT/table.md"
if [[ $QUICK == 0 ]]; then
  mkdir -p docs/benchmarks
  cp "$OUT/results.json" docs/benchmarks/compare.json
  cp "$OUT/compare.svg" docs/benchmarks/compare.svg
  echo "wrote docs/benchmarks/compare.json and docs/benchmarks/compare.svg"
fi
