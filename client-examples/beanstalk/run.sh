#!/usr/bin/env bash
# The seed's pattern end to end over queuehub's beanstalk door, as a smoke test: a game server
# puts star-map jobs on the tube `bg_starmap` (greenstalk), one of them delayed; two
# unchanged beanstalk workers share the tube, one in Python (greenstalk) and one in Node
# (jackd); each puts its result on the tube `fg_websocket`, whose jobs reach the player's
# browser (browser.py, a socket.io client) with no relay server. Then queuehub is killed
# with -9 while a job waits, and the job still reaches the browser after the restart.
#
#   client-examples/beanstalk/run.sh path/to/queuehub
#
# Installs the examples' packages (requirements.txt, package.json) first. Exits non-zero if
# a result is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
source "$here/../../.ci/lib.sh"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q -r "$here/requirements.txt"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

port="$(free_port 0)"
beanstalk_port="$(free_port 0)"
mkdir -p "$qh_work/data"
start_queuehub beanstalk-example "$port" "$bin" --data-dir "$qh_work/data" \
  --beanstalk-listen "127.0.0.1:$beanstalk_port"
export QUEUEHUB_URL="$qh_url" QUEUEHUB_BEANSTALK="127.0.0.1:$beanstalk_port"
cd "$here"

# The browser subscribes first; it waits for 4 results.
timeout 180 python3 browser.py 4 >"$qh_work/browser.log" 2>&1 &
browser=$!
track_pid "$browser"
for _ in $(seq 100); do
  grep -q "subscribed" "$qh_work/browser.log" && break
  sleep 0.1
done

WORKER=python python3 starmap_worker.py >"$qh_work/python-worker.log" 2>&1 &
python_worker=$!
track_pid "$python_worker"
WORKER=node node starmap_worker.js >"$qh_work/node-worker.log" 2>&1 &
node_worker=$!
track_pid "$node_worker"

python3 produce.py 4
if ! wait "$browser"; then
  echo "beanstalk example: the browser did not get every result" >&2
  cat "$qh_work/browser.log" "$qh_work/python-worker.log" "$qh_work/node-worker.log" >&2
  exit 1
fi
cat "$qh_work/browser.log"
for sector in 1 2 3 4; do
  grep -q "\"sector\": $sector," "$qh_work/browser.log" || {
    echo "beanstalk example: no result for sector $sector" >&2
    exit 1
  }
done

# Durability: a job put while no worker runs survives kill -9 and is done after the restart.
kill "$python_worker" "$node_worker" 2>/dev/null || true
wait "$python_worker" "$node_worker" 2>/dev/null || true
python3 - <<'PY'
import json, os, greenstalk
host, port = os.environ["QUEUEHUB_BEANSTALK"].rsplit(":", 1)
with greenstalk.Client((host, int(port)), use="bg_starmap") as client:
    print("produce: job", client.put(json.dumps({"player": 7, "sector": 5})), "for sector 5")
PY
kill9_queuehub
start_queuehub beanstalk-example "$port" "$bin" --data-dir "$qh_work/data" \
  --beanstalk-listen "127.0.0.1:$beanstalk_port"
timeout 120 python3 browser.py 1 >"$qh_work/browser.log" 2>&1 &
browser=$!
track_pid "$browser"
WORKER=node node starmap_worker.js >"$qh_work/node-worker.log" 2>&1 &
track_pid $!
if ! wait "$browser" || ! grep -q '"sector": 5,' "$qh_work/browser.log"; then
  echo "beanstalk example: the job put before kill -9 was not done after the restart" >&2
  cat "$qh_work/browser.log" "$qh_work/node-worker.log" >&2
  exit 1
fi
cat "$qh_work/browser.log"
echo "beanstalk example: every result reached the browser, before and after kill -9"
