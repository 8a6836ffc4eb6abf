#!/usr/bin/env python3
"""A queuehub subscriber in Python (python-socketio's synchronous client).

Connects as a durable client, subscribes to one queue, pulls every message it missed while it
was offline (getAll), then keeps receiving messages live. Every message is logged and
acknowledged with `received`, which removes it from the client's inbox on the server. Acks are
batched: the messages waiting together (a catch-up, a burst) are acknowledged with one
`received {ids: [...]}`.

    python subscriber.py [clientId] [queue]

Environment: QUEUEHUB_URL (default http://127.0.0.1:3000), CLIENT_ID (default acme-widgets),
QUEUE (default: the client id). Command-line arguments win over the environment.
"""

import json
import os
import queue as queues
import sys
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone

import socketio

URL = os.environ.get("QUEUEHUB_URL", "http://127.0.0.1:3000")
CLIENT_ID = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("CLIENT_ID") or "acme-widgets"
QUEUE = (sys.argv[2] if len(sys.argv) > 2 else None) or os.environ.get("QUEUE") or CLIENT_ID
ACK_TIMEOUT = 10  # seconds
MAX_IDS_PER_ACK = 1000  # the server's batch limit

# python-socketio runs every incoming event in its own thread. The handlers below only put
# envelopes on this queue; the main thread logs and acks them one at a time.
inbox: "queues.Queue[tuple[str, dict]]" = queues.Queue()
# Delivery is at-least-once: a message can arrive live and again in a catch-up.
seen: "OrderedDict[str, None]" = OrderedDict()

sio = socketio.Client()  # reconnects by itself when the connection drops


def log(*parts):
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    print(now, *parts, flush=True)


class QueuehubError(Exception):
    pass


def call(event, data):
    """Emits with an ack callback and insists on {ok: true}."""
    reply = sio.call(event, data, timeout=ACK_TIMEOUT)
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else None
        error = error or {"code": "no_reply", "message": repr(reply)}
        raise QueuehubError(f"{event} failed: {error.get('code')}: {error.get('message')}")
    return reply


def is_envelope(value):
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("id", "queue", "event"))


# Messages arrive as socket.io events named after the message's event (`delivered`, `pickup`,
# ...), so a catch-all handler picks out the envelopes.
@sio.on("*")
def any_event(event, *args):
    envelope = args[0] if args else None
    if event == "mq:error":
        log("server error:", json.dumps(envelope))
    elif is_envelope(envelope):
        inbox.put((event, envelope))


def catch_up():
    # Runs on the first connect and after every reconnect: subscribing again is harmless (the
    # subscription is durable), and getAll fetches whatever arrived while we were away.
    try:
        sub = call("subscribe", {"clientId": CLIENT_ID, "queue": QUEUE})
        log(f"subscribed to {', '.join(sub['queues'])}: {sub['pending']} message(s) waiting")
        done = call("getAll", {"clientId": CLIENT_ID, "queue": QUEUE})
        log(f"catch-up done: {done['count']} message(s) re-sent; now listening live (Ctrl-C to stop)")
    except (QueuehubError, socketio.exceptions.SocketIOError) as err:
        log(f"catch-up failed: {err!r}")


@sio.event
def connect():
    log(f"connected to {URL} as {CLIENT_ID} (sid {sio.sid})")
    # Catch up in a thread of its own so that this handler returns at once.
    threading.Thread(target=catch_up, daemon=True).start()


@sio.event
def connect_error(data):
    log(f"cannot connect to {URL}: {data}")


# python-socketio reconnects by itself after a dropped connection, but not after the server
# closed it on purpose. A queuehub restart or shutdown does not do that (it hangs up: docs/
# DECISIONS.md 76); the main loop still reconnects then, for servers that do.
server_closed = threading.Event()


@sio.event
def disconnect(reason=None):
    if reason == sio.reason.CLIENT_DISCONNECT:
        log("disconnected")
    elif reason == sio.reason.SERVER_DISCONNECT:
        log("the server closed the connection (restart?); reconnecting")
        server_closed.set()
    else:
        log(f"disconnected ({reason}); reconnecting")


def show(event, envelope):
    """Logs a message the first time it arrives (delivery is at-least-once)."""
    duplicate = envelope["id"] in seen
    seen[envelope["id"]] = None
    if len(seen) > 10_000:
        seen.popitem(last=False)
    if not duplicate:
        log(
            f"{envelope['queue']} <- {event} id={envelope['id']} attempt={envelope.get('attempt')}",
            f"source={envelope.get('source')} publishedAt={envelope.get('publishedAt')}",
            f"payload={json.dumps(envelope.get('payload'))}",
        )


def handle(batch):
    """Logs the messages that were waiting together and acks them with one `received`."""
    for event, envelope in batch:
        show(event, envelope)
    ids = [envelope["id"] for _, envelope in batch]
    try:
        reply = call("received", {"clientId": CLIENT_ID, "ids": ids})
        log(f"   acked {len(ids)} message(s) (removed: {reply['removed']})")
    except (QueuehubError, socketio.exceptions.SocketIOError) as err:
        # Not acked: the messages stay in the inbox and come back with the next getAll.
        log(f"   could not ack {len(ids)} message(s): {err!r}")


def waiting(first):
    """The message just taken and every one already waiting behind it (up to one ack's worth)."""
    batch = [first]
    while len(batch) < MAX_IDS_PER_ACK:
        try:
            batch.append(inbox.get_nowait())
        except queues.Empty:
            break
    return batch


def open_connection():
    # `auth.clientId` ties the socket to the client; events still name it explicitly.
    # retry=True keeps trying (with backoff) until the server answers.
    sio.connect(URL, auth={"clientId": CLIENT_ID}, wait_timeout=10, retry=True)


def main():
    try:
        open_connection()
        while True:
            if server_closed.is_set() and not sio.connected:
                server_closed.clear()
                time.sleep(1)
                open_connection()
            try:
                first = inbox.get(timeout=1)
            except queues.Empty:
                continue
            handle(waiting(first))
    except KeyboardInterrupt:
        log("bye")
    except socketio.exceptions.ConnectionError as err:
        log(f"cannot connect to {URL}: {err}")
        return 1
    finally:
        sio.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
