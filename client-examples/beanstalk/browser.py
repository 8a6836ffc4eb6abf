#!/usr/bin/env python3
"""Stands in for the player's browser: a socket.io client (python-socketio) subscribed to
the queue `fg_websocket`, where the workers put their results over beanstalk. A browser
page does the same with the official socket.io client:

    socket.emit("subscribe", {clientId: "player-7", queue: "fg_websocket"})
    socket.on("job", (m) => { show(m.payload); socket.emit("received", {clientId: "player-7", id: m.id}) })

Each result is a job put on the tube `fg_websocket`: the socket.io event is `job`, its
payload the job's JSON body. Every result is printed and acknowledged.

    python browser.py [count]      (exits after `count` results; default: never)

Environment: QUEUEHUB_URL (default http://127.0.0.1:3000), CLIENT_ID (default player-7).
"""

import json
import os
import sys
import threading

import socketio

URL = os.environ.get("QUEUEHUB_URL", "http://127.0.0.1:3000")
CLIENT_ID = os.environ.get("CLIENT_ID", "player-7")
COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 0

sio = socketio.Client()
got = []
done = threading.Event()


@sio.on("job")
def on_result(envelope):
    got.append(envelope["payload"])
    print(f"browser: {json.dumps(envelope['payload'], sort_keys=True)}", flush=True)
    sio.emit("received", {"clientId": CLIENT_ID, "id": envelope["id"]})
    if COUNT and len(got) >= COUNT:
        done.set()


sio.connect(URL, transports=["websocket"])
ack = sio.call("subscribe", {"clientId": CLIENT_ID, "queue": "fg_websocket"}, timeout=10)
if not ack.get("ok"):
    sys.exit(f"browser: subscribe refused: {ack}")
# Results that arrived while this browser was away are in its inbox: catch up.
sio.call("getAll", {"clientId": CLIENT_ID}, timeout=10)
print("browser: subscribed to fg_websocket", flush=True)
if COUNT:
    if not done.wait(120):
        sys.exit(f"browser: only {len(got)} of {COUNT} results arrived")
    sio.disconnect()
else:
    sio.wait()
