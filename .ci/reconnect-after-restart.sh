#!/usr/bin/env bash
# Plain socket.io clients reconnect by themselves when queuehub restarts: a python-socketio
# client and an official socket.io-client (Node), each using nothing but its library's own
# reconnection, subscribe; queuehub is stopped with SIGTERM and started again on the same port
# and data dir; a message published then must reach both, live. python-socketio does not
# reconnect after a server closes its socket with engine.io's close packet, which is how
# socket.io servers used to say goodbye; queuehub hangs up instead (DECISIONS 76).
#
#   .ci/reconnect-after-restart.sh [path/to/queuehub]   (default: target/debug/queuehub)
#
# Needs the Node and Python example dependencies (.ci/smoke-examples.sh installs them).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$root/.ci/lib.sh"
cd "$root"

bin="${1:-target/debug/queuehub}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
port="$(free_port)"
mkdir -p "$qh_work/data"
start_queuehub reconnect "$port" "$bin" --data-dir "$qh_work/data"
queue="restart-$RANDOM"

cat >"$qh_work/client.py" <<'PY'
import sys, socketio
url, client, queue = sys.argv[1:4]
sio = socketio.Client()  # its own reconnection, nothing else
@sio.event
def connect():
    sio.emit("subscribe", {"clientId": client, "queue": queue},
             callback=lambda reply: reply.get("ok") and print("subscribed", flush=True))
@sio.on("delivered")
def delivered(envelope):
    print("got", envelope["payload"]["n"], flush=True)
    sio.emit("received", {"clientId": client, "id": envelope["id"], "queue": queue})
sio.connect(url, transports=["websocket"])
sio.wait()
PY
cat >"$qh_work/client.js" <<'JS'
const { io } = require(process.env.SOCKET_IO_CLIENT);
const [url, client, queue] = process.argv.slice(2);
const socket = io(url, { transports: ['websocket'] }); // its own reconnection, nothing else
socket.on('connect', () => {
  socket.emit('subscribe', { clientId: client, queue }, (reply) => reply.ok && console.log('subscribed'));
});
socket.on('delivered', (envelope) => {
  console.log('got', envelope.payload.n);
  socket.emit('received', { clientId: client, id: envelope.id, queue });
});
JS

python3 -u "$qh_work/client.py" "$qh_url" "py-$queue" "$queue" >"$qh_work/py.log" 2>&1 &
track_pid $!
SOCKET_IO_CLIENT="$root/client-examples/node/node_modules/socket.io-client" \
  node "$qh_work/client.js" "$qh_url" "js-$queue" "$queue" >"$qh_work/js.log" 2>&1 &
track_pid $!

# Waits up to 30 s until every client's log has the line $1 (${2:-1} times).
all_logged() {
  local deadline=$((SECONDS + 30)) who
  for who in py js; do
    until (($(grep -cx "$1" "$qh_work/$who.log") >= ${2:-1})); do
      if ((SECONDS >= deadline)); then
        echo "reconnect-after-restart: the $who client did not log '$1' ${2:-1} time(s); its log:" >&2
        cat "$qh_work/$who.log" >&2
        return 1
      fi
      sleep 0.1
    done
  done
}

publish() {
  curl -fsS -X POST "$qh_url/v1/queues/$queue/messages" -H 'content-type: application/json' \
    -d "{\"event\":\"delivered\",\"payload\":{\"n\":\"$1\"}}" >/dev/null
}

all_logged subscribed
publish before
all_logged "got before"
echo "== both clients subscribed and got a message; restarting queuehub (SIGTERM)"
stop_queuehub TERM
start_queuehub reconnect "$port" "$bin" --data-dir "$qh_work/data"
all_logged subscribed 2
publish after
all_logged "got after"
echo "reconnect-after-restart: both clients reconnected by themselves and got the next message"
