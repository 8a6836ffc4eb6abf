#!/usr/bin/env bash
# The beanstalk door vs beanstalkd, side by side in one run (docs/BENCHMARKS.md, "The beanstalk
# door vs beanstalkd"). Starts, each on free loopback ports and in its own temp directory:
#   - beanstalkd -b DIR -f 50   (binlog, fsync at most every 50 ms: an answered put may be lost)
#   - beanstalkd -b DIR -f 0    (binlog, fsync before every answer)
#   - beanstalkd                (no binlog: memory only; the driver's ceiling on this machine)
#   - queuehub --beanstalk-listen (release build, the default durable store: every answered
#     put is on disk)
# and runs the same scenario against each, ROUNDS times, the servers taking turns within a
# round: the load driver (benches/beanstalk/driver.rs, one core at most) with P producers
# putting N jobs of 200 bytes while 8 workers reserve and delete them. Prints a Markdown
# table (median and range of the rounds) and keeps the raw JSON lines in $OUT.
#
#   benches/beanstalk/compare.sh                     # 3 rounds of 100 000 jobs, 32 producers
#   JOBS=20000 ROUNDS=1 PRODUCERS=8 benches/beanstalk/compare.sh
#   QUEUEHUB=path/to/queuehub benches/beanstalk/compare.sh   # another build of queuehub
#
# Environment: JOBS, PRODUCERS, WORKERS, ROUNDS, BEANSTALKD (default: beanstalkd on the PATH),
# QUEUEHUB (default target/release/queuehub, built), OUT (default target/beanstalk-compare).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
JOBS=${JOBS:-100000}
PRODUCERS=${PRODUCERS:-32}
WORKERS=${WORKERS:-8}
ROUNDS=${ROUNDS:-3}
BEANSTALKD=${BEANSTALKD:-$(command -v beanstalkd)}
OUT=${OUT:-$ROOT/target/beanstalk-compare}
rm -rf "$OUT" && mkdir -p "$OUT"

if [[ -n "${QUEUEHUB:-}" ]]; then
  cargo build --release --locked --example beanstalk-driver
else
  cargo build --release --locked --example beanstalk-driver --bin queuehub
fi
DRIVER=$ROOT/target/release/examples/beanstalk-driver
QUEUEHUB=${QUEUEHUB:-$ROOT/target/release/queuehub}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1"; exit 1
}

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# name | how to start it on $port with $dir
SERVERS=(
  "beanstalkd -f50|$BEANSTALKD -l 127.0.0.1 -p \$port -b \$dir -f 50"
  "beanstalkd -f0|$BEANSTALKD -l 127.0.0.1 -p \$port -b \$dir -f 0"
  "beanstalkd, no binlog|$BEANSTALKD -l 127.0.0.1 -p \$port"
  "queuehub|$QUEUEHUB --listen 127.0.0.1:\$(free_port) --data-dir \$dir --beanstalk-listen 127.0.0.1:\$port"
)

echo "$(date -u +%FT%TZ) $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $JOBS jobs, $PRODUCERS producers, $WORKERS workers, 200 B" | tee "$OUT/conditions.txt"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SERVERS[@]}"; do
    IFS='|' read -r name command <<<"$entry"
    port=$(free_port)
    dir=$(mktemp -d "$OUT/data.XXXXXX")
    # A fresh server per run, so that no run inherits another's jobs or binlog.
    eval "exec_line=\"$command\""
    # shellcheck disable=SC2086,SC2154 # a list of words, set by eval
    $exec_line >"$dir.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port"
    before=$(awk '{print $14+$15}' "/proc/$pid/stat")
    line=$("$DRIVER" "127.0.0.1:$port" --jobs "$JOBS" --producers "$PRODUCERS" \
      --workers "$WORKERS" --label "$name") || line="{\"label\":\"$name\",\"failed\":true}"
    after=$(awk '{print $14+$15}' "/proc/$pid/stat")
    kill "$pid" && wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    line=${line%\}},\"round\":$round,\"server_cpu_s\":$(python3 -c "print(round(($after-$before)/100,2))")\}
    echo "$line" | tee -a "$OUT/results.jsonl"
  done
done

python3 - "$OUT/results.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
order = []
for r in runs:
    if r["label"] not in order:
        order.append(r["label"])
def cell(values, fmt="{:,.0f}"):
    values = sorted(values)
    if not values:
        return "failed"
    med = statistics.median(values)
    return fmt.format(med) if len(values) == 1 else f"{fmt.format(med)} ({fmt.format(values[0])}–{fmt.format(values[-1])})"
print()
print("| server | jobs/s, put + reserve + delete | puts/s | put p50 / p99 ms | server CPU s | driver CPU s |")
print("|---|---|---|---|---|---|")
for label in order:
    ok = [r for r in runs if r["label"] == label and not r.get("failed")]
    print(f"| {label} | {cell([r['jobs_per_s'] for r in ok])} | {cell([r['puts_per_s'] for r in ok])} | "
          f"{cell([r['put_p50_ms'] for r in ok], '{:.2f}')} / {cell([r['put_p99_ms'] for r in ok], '{:.2f}')} | "
          f"{cell([r['server_cpu_s'] for r in ok], '{:.1f}')} | {cell([r['driver_cpu_s'] for r in ok], '{:.1f}')} |")
EOF
