#!/usr/bin/env python3
"""End-to-end smoke test of a running queuehub, from python-socketio's synchronous client.

    QUEUEHUB_URL=http://127.0.0.1:3000 python smoke.py

Three checks, each on its own fresh queue and client (names are unique per run):
  a) mailbox:   3 messages published over HTTP to a queue nobody subscribes to wait; the
                first subscriber takes them, getAll re-sends all 3 in order, acking each
                leaves the client's pending count at 0.
  b) live push: while subscribed, a message published over HTTP arrives at once as a
                socket.io event named after its event, carrying the full envelope.
  c) catch-up:  subscribed, then offline; 2 messages published meanwhile; after reconnecting,
                getAll returns exactly those 2; acking them empties the inbox (peek is empty).
Every wait is bounded. Prints `python smoke: N passed, M failed` and exits 1 on any failure.
HTTP uses only the standard library (urllib).
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime

import socketio

BASE = os.environ.get("QUEUEHUB_URL", "http://127.0.0.1:3000").rstrip("/")
TIMEOUT = float(os.environ.get("SMOKE_TIMEOUT_MS", "10000")) / 1000.0
RUN = f"{int(time.time() * 1000):x}-{uuid.uuid4().hex[:6]}"
ENVELOPE_FIELDS = ("id", "queue", "event", "payload", "clientId", "publishedAt", "source", "attempt")


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


# ---------------------------------------------------------------------------------------------
# HTTP helpers (urllib, bounded by TIMEOUT)


def http(method, path, body=None):
    data = None
    headers = {"accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:  # 4xx/5xx still carry a JSON body
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        raise CheckFailed(f"{method} {path}: request failed: {getattr(err, 'reason', err)}") from None
    try:
        return status, (json.loads(raw) if raw else None)
    except ValueError:
        raise CheckFailed(f"{method} {path}: HTTP {status}, body is not JSON: {raw[:200]!r}") from None


def q(name):
    return urllib.parse.quote(name, safe="")


def publish(queue, event, payload):
    path = f"/v1/queues/{q(queue)}/messages"
    status, body = http("POST", path, {"event": event, "payload": payload})
    expect(status == 201, f"POST {path} answered {status}: {body}")
    expect(isinstance(body.get("id"), str), f"publish response has no id: {body}")
    expect_equal(body.get("queue"), queue, "publish response queue")
    expect_equal(body.get("event"), event, "publish response event")
    return body


def queue_stats(queue):
    status, body = http("GET", f"/v1/queues/{q(queue)}")
    expect(status == 200, f"GET /v1/queues/{queue} answered {status}: {body}")
    return body


def subscriber_of(stats, client_id):
    for sub in stats.get("subscribers") or []:
        if sub.get("clientId") == client_id:
            return sub
    raise CheckFailed(f"client {client_id} is not listed among the subscribers of {stats.get('queue')}: {stats}")


def peek(queue, client_id):
    path = f"/v1/queues/{q(queue)}/clients/{q(client_id)}/messages?limit=100"
    status, body = http("GET", path)
    expect(status == 200, f"GET {path} answered {status}: {body}")
    expect(isinstance(body.get("messages"), list), f"peek response has no messages list: {body}")
    return body["messages"]


def cleanup(queue, client_id):
    # Best effort: drop the test subscription so repeated runs leave no subscribers behind.
    try:
        http("DELETE", f"/v1/queues/{q(queue)}/clients/{q(client_id)}")
    except CheckFailed:
        pass


def wait_until(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {TIMEOUT:g} s waiting for {what}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# socket.io helper


class Client:
    """A socket.io client that records every envelope it receives, in arrival order."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.received = []  # (event, envelope)
        self.errors = []  # mq:error payloads
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._on_any)

    def _on_any(self, event, *args):
        arg = args[0] if args else None
        with self.cond:
            if event == "mq:error":
                self.errors.append(arg)
            else:
                self.received.append((event, arg))
            self.cond.notify_all()

    def connect(self):
        try:
            # wait=True (the default) returns only once the namespace is connected.
            self.sio.connect(BASE, auth={"clientId": self.client_id}, wait_timeout=TIMEOUT)
        except socketio.exceptions.ConnectionError as err:
            raise CheckFailed(f"socket.io connect to {BASE} failed: {err}") from None
        expect(self.sio.connected, "socket.io client is not connected after connect()")

    def disconnect(self):
        self.sio.disconnect()

    def call(self, event, data):
        """Emits with an ack callback and insists on {ok: true}."""
        try:
            reply = self.sio.call(event, data, timeout=TIMEOUT)
        except socketio.exceptions.TimeoutError:
            raise CheckFailed(f"no ack for '{event}' within {TIMEOUT:g} s") from None
        except socketio.exceptions.SocketIOError as err:
            raise CheckFailed(f"'{event}' could not be sent: {err!r}") from None
        expect(isinstance(reply, dict) and reply.get("ok") is True, f"'{event}' {data} was refused: {reply}")
        return reply

    def wait_for(self, count, accept, what, start=0):
        """Waits until `count` envelopes satisfying `accept` arrived (counting from `start`)."""
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while True:
                found = [m for m in self.received[start:] if accept(m)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CheckFailed(f"timed out after {TIMEOUT:g} s waiting for {what} (got {len(found)})")
                self.cond.wait(left)

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def check_envelope(event, envelope, expected):
    expect(isinstance(envelope, dict), f"event '{event}' carried no envelope object: {envelope!r}")
    for field in ENVELOPE_FIELDS:
        expect(field in envelope, f"envelope lacks '{field}': {envelope}")
    expect_equal(event, envelope["event"], "socket.io event name vs envelope.event")
    for field in ("id", "queue", "event", "payload", "clientId", "publishedAt"):
        expect_equal(envelope[field], expected[field], f"envelope {field}")
    try:
        datetime.fromisoformat(envelope["publishedAt"].replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise CheckFailed(f"publishedAt is not a timestamp: {envelope['publishedAt']!r}") from None
    expect_equal(envelope["source"], "http", "envelope source of an HTTP publish")
    attempt = envelope["attempt"]
    expect(isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1,
           f"attempt should be a positive integer, got {attempt!r}")


# ---------------------------------------------------------------------------------------------
# checks


def check_mailbox():
    queue, client_id, event = f"smoke-py-mailbox-{RUN}", f"smoke-py-a-{RUN}", "delivered"
    client = Client(client_id)
    try:
        # Nobody subscribes yet: the messages wait in the queue.
        published = []
        for n in (1, 2, 3):
            payload = {"orderId": f"order-{n}", "n": n, "run": RUN}
            res = publish(queue, event, payload)
            expect_equal(res.get("recipients"), 0, f"recipients of publish #{n} to a queue without subscribers")
            published.append({**res, "payload": payload, "clientId": client_id})
        before = queue_stats(queue)
        expect_equal(before.get("waiting"), 3, "waiting messages before anyone subscribes")

        # The first subscriber takes them all.
        client.connect()
        sub = client.call("subscribe", {"clientId": client_id, "queue": queue})
        expect_equal(sub.get("pending"), 3, "pending in the subscribe ack")

        start = len(client.received)
        done = client.call("getAll", {"clientId": client_id, "queue": queue})
        expect_equal(done.get("count"), 3, "getAll count")
        got = client.wait_for(3, lambda m: isinstance(m[1], dict) and m[1].get("queue") == queue,
                              "the 3 catch-up messages", start)
        expect_equal(len(got), 3, "messages re-sent by getAll")
        expect_equal([m[1]["id"] for m in got], [p["id"] for p in published], "catch-up order (ids)")
        for (ev, env), expected in zip(got, published):
            check_envelope(ev, env, expected)

        for p in published:
            ack = client.call("received", {"clientId": client_id, "id": p["id"], "queue": queue})
            expect_equal(ack.get("removed"), True, f"removed in the ack of {p['id']}")
        after = queue_stats(queue)
        expect_equal(subscriber_of(after, client_id).get("pending"), 0, "pending after acking everything")
        expect_equal(after.get("waiting"), 0, "waiting after the first subscriber took the messages")
        expect_equal(client.errors, [], "mq:error events")
    finally:
        client.close()
        cleanup(queue, client_id)


def check_live_push():
    queue, client_id, event = f"smoke-py-live-{RUN}", f"smoke-py-b-{RUN}", "in-transit"
    client = Client(client_id)
    try:
        client.connect()
        sub = client.call("subscribe", {"clientId": client_id, "queue": queue})
        expect_equal(sub.get("pending"), 0, "pending of a fresh subscription")
        expect_equal(sub.get("queues"), [queue], "queues in the subscribe ack")

        payload = {"store": "acme-widgets", "orderId": f"live-{RUN}", "items": [1, 2, 3], "note": "héllo ✓"}
        res = publish(queue, event, payload)
        expect_equal(res.get("recipients"), 1, "recipients of a publish to a subscribed queue")
        (ev, envelope), = client.wait_for(1, lambda m: m[0] == event, f"live '{event}' event")
        check_envelope(ev, envelope, {**res, "payload": payload, "clientId": client_id})
        expect_equal(envelope["attempt"], 1, "attempt of a first live delivery")

        ack = client.call("received", {"clientId": client_id, "id": res["id"]})
        expect_equal(ack.get("removed"), True, "removed in the ack")
        again = client.call("received", {"clientId": client_id, "id": res["id"]})
        expect_equal(again.get("removed"), False, "removed in a repeated ack")
        expect_equal(peek(queue, client_id), [], "inbox after the ack")
        expect_equal(client.errors, [], "mq:error events")
    finally:
        client.close()
        cleanup(queue, client_id)


def check_reconnect_catch_up():
    queue, client_id, event = f"smoke-py-reconnect-{RUN}", f"smoke-py-c-{RUN}", "delivered"
    client = Client(client_id)
    try:
        client.connect()
        client.call("subscribe", {"clientId": client_id, "queue": queue})
        client.disconnect()
        wait_until(lambda: not subscriber_of(queue_stats(queue), client_id).get("connected"),
                   "the server to see the client offline")

        published = []
        for n in (1, 2):
            payload = {"n": n, "run": RUN, "while": "offline"}
            res = publish(queue, event, payload)
            expect_equal(res.get("recipients"), 1, f"recipients of publish #{n} while the subscriber is offline")
            published.append({**res, "payload": payload, "clientId": client_id})
        expect_equal(len(client.received), 0, "messages received while offline")
        expect_equal(subscriber_of(queue_stats(queue), client_id).get("pending"), 2, "pending while offline")

        # The same client object reconnects (a new socket.io session); the subscription is durable.
        client.connect()
        done = client.call("getAll", {"clientId": client_id})
        expect_equal(done.get("count"), 2, "getAll count after reconnecting")
        got = client.wait_for(2, lambda m: True, "the 2 messages published while offline")
        time.sleep(0.2)  # anything extra would show up here
        expect_equal(len(client.received), 2, "messages received after reconnecting")
        expect_equal([m[1]["id"] for m in got], [p["id"] for p in published], "catch-up ids and order")
        for (ev, env), expected in zip(got, published):
            check_envelope(ev, env, expected)

        ack = client.call("received", {"clientId": client_id, "ids": [p["id"] for p in published]})
        expect_equal(ack.get("removed"), 2, "removed count when acking both ids")
        expect_equal(peek(queue, client_id), [], "inbox after acking")
        expect_equal(subscriber_of(queue_stats(queue), client_id).get("pending"), 0, "pending after acking")
        expect_equal(client.errors, [], "mq:error events")
    finally:
        client.close()
        cleanup(queue, client_id)


# ---------------------------------------------------------------------------------------------


def run_bounded(check, limit):
    """Runs a check in a daemon thread so even an unexpected hang cannot outlive `limit`."""
    outcome = {}

    def target():
        try:
            check()
            outcome["ok"] = True
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise CheckFailed(f"check did not finish within {limit:g} s")
    if "error" in outcome:
        raise outcome["error"]


def main():
    checks = [
        ("a) mailbox: publish before subscribe, getAll in order, ack all", check_mailbox),
        ("b) live push: HTTP publish arrives live with the envelope", check_live_push),
        ("c) offline: disconnect, publish 2, reconnect, getAll exactly 2, ack, inbox empty", check_reconnect_catch_up),
    ]
    print(f"python smoke against {BASE} (run {RUN})", flush=True)
    passed = failed = 0
    reachable = True
    try:
        status, _ = http("GET", "/healthz")
        expect(status == 200, f"GET /healthz answered {status}")
    except CheckFailed as err:
        print(f"FAIL  queuehub is not reachable at {BASE}: {err}", flush=True)
        reachable = False
    for name, check in checks:
        if not reachable:
            failed += 1
            print(f"FAIL  {name}: skipped, server unreachable", flush=True)
            continue
        started = time.monotonic()
        try:
            run_bounded(check, 6 * TIMEOUT)
            passed += 1
            print(f"ok    {name} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
        except CheckFailed as err:
            failed += 1
            print(f"FAIL  {name}: {err}", flush=True)
        except Exception as err:  # noqa: BLE001 - any crash is a failure with a message
            failed += 1
            print(f"FAIL  {name}: unexpected {type(err).__name__}: {err}", flush=True)
    print(f"python smoke: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # A check that timed out may leave a socket.io thread behind; do not wait for it.
    os._exit(code)
