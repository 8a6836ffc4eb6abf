#!/usr/bin/env python3
"""Chaos check: queuehub under mixed load while its processes are killed, counted from outside.

    python3 .ci/chaos.py BIN --redis    Redis (appendfsync always) and three nodes on it
    python3 .ci/chaos.py BIN --single   one node on its embedded store

Load, through every node in turn: four HTTP publishers, each with its own message ids (a
publish that fails is retried with the same id, so it counts once), to four queues: `jobs`,
shared by three work-mode workers (python-socketio, one per node); `feed`, read by a broadcast
subscriber; `later`, whose messages are delayed by 1.5 s; `ord`, read by an `ordered`
subscriber. Every client acks what it gets, and after each (re)connect subscribes again and
asks for what it missed (`getAll`), as a client of queuehub should; reconnecting is the
client library's own. And through the beanstalk door (greenstalk): a producer that puts jobs
on tube `bjobs` (one in four with a delay of 1 s), and two workers that reserve and delete
them, each connecting again (to the next node) whenever its connection fails.

Faults, one after another: with --redis, the active node stopped (SIGSTOP) for longer than its
lease, then resumed; Redis killed (kill -9) and restarted 7 s later (longer than the lease);
the active node killed (kill -9) and restarted. With --single, the node killed (kill -9) and
restarted three times. A node that exits by itself (one that lost its lease) is restarted, as
a supervisor would.

Then, once every inbox is empty, it counts and exits 1 if any is not zero:
  lost         answered publishes that no client ever got
  resurrected  messages delivered again after an ack that removed them (or a beanstalk
               job after its DELETED)
  double       jobs (socket.io or beanstalk) delivered to a second worker while the first
               still held them (no ack, no disconnect of the first, no fault in between)
  twice        delayed messages delivered twice to their subscriber without a reason (no
               disconnect, getAll or fault in between)
  early        delayed messages or beanstalk jobs delivered before their delay was over
  disorder     messages of the ordered queue first delivered out of their publisher's order
"""

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import greenstalk
import requests
import socketio

LEASE_MS = 2000
DELAY_MS = 1500
JOB_DELAY_S = 1  # beanstalk's delays are in whole seconds
SLACK = 0.05  # seconds: our clock against the server's, for ordering events
EXCUSE = 1.0  # seconds before a delivery within which a fault explains a redelivery

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(*parts):
    print(f"[{now():6.2f}]", *parts, flush=True)


_PORTS_GIVEN = set()


def free_port():
    """A free loopback port, never one given before (the kernel may offer a port again once
    the probe that found it is closed)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


class Deployment:
    """Redis (optional) and the nodes, started, killed and restarted by pid."""

    def __init__(self, binary, redis, work):
        self.binary, self.redis_mode, self.work = binary, redis, work
        self.lock = threading.Lock()
        self.faults = []  # times at which something was killed, paused or exited
        self.redis = None
        self.redis_port = free_port()
        count = 3 if redis else 1
        self.ports = [free_port() for _ in range(count)]
        self.beanstalk_ports = [free_port() for _ in range(count)]
        self.nodes = [None] * count
        self.expected_exit = set()
        if redis:
            self.start_redis()
        for i in range(count):
            self.start_node(i)
            time.sleep(0.3)

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--dir", self.work, "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            stdout=open(f"{self.work}/redis.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)

    def start_node(self, i):
        if self.redis_mode:
            store = ["--redis", f"redis://127.0.0.1:{self.redis_port}/0",
                     "--redis-lease-ms", str(LEASE_MS)]
        else:
            store = ["--data-dir", f"{self.work}/data"]
        with open(self.log_path(i), "a") as f:
            f.write("=== start\n")
        self.nodes[i] = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.ports[i]}",
             "--beanstalk-listen", f"127.0.0.1:{self.beanstalk_ports[i]}"] + store,
            stdout=open(self.log_path(i), "a"), stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"))

    def log_path(self, i):
        return f"{self.work}/node{i}.log"

    def url(self, i):
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}"

    def beanstalk(self, i):
        return ("127.0.0.1", self.beanstalk_ports[i % len(self.beanstalk_ports)])

    def active(self):
        """The node serving now (its latest start says it listens), or None."""
        for i, node in enumerate(self.nodes):
            if node.poll() is None:
                with open(self.log_path(i)) as f:
                    if "queuehub listening on" in f.read().split("=== start")[-1]:
                        return i
        return None

    def wait_active(self, limit=30):
        deadline = time.time() + limit
        while time.time() < deadline:
            if self.active() is not None:
                return self.active()
            time.sleep(0.1)
        sys.exit("chaos: no node became active")

    def fault(self, what):
        with self.lock:
            self.faults.append(now())
        log(what)

    def kill_active(self, down):
        i = self.wait_active()
        self.expected_exit.add(i)
        self.fault(f"kill -9 node {i} (active)")
        self.nodes[i].send_signal(signal.SIGKILL)
        self.nodes[i].wait()
        time.sleep(down)
        self.start_node(i)
        self.expected_exit.discard(i)
        log(f"node {i} started again")

    def pause_active(self, seconds):
        i = self.wait_active()
        self.fault(f"SIGSTOP node {i} (active) for {seconds} s")
        self.nodes[i].send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.nodes[i].send_signal(signal.SIGCONT)
        self.fault(f"SIGCONT node {i}")

    def kill_redis(self, down):
        self.fault("kill -9 Redis")
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()
        time.sleep(down)
        self.start_redis()
        log("Redis started again")

    def supervise(self, stop):
        """Restarts nodes that exit by themselves (a node that lost its lease does)."""
        while not stop.is_set():
            for i, node in enumerate(self.nodes):
                if node.poll() is not None and i not in self.expected_exit:
                    self.fault(f"node {i} exited by itself ({node.returncode}); starting it again")
                    self.start_node(i)
            time.sleep(0.2)

    def stop(self):
        for node in self.nodes:
            if node.poll() is None:
                node.send_signal(signal.SIGCONT)
                node.terminate()
        for node in self.nodes:
            try:
                node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.kill()
        if self.redis:
            self.redis.kill()


class Record:
    """What the clients saw, by the harness's clock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.answered = {}  # id -> (queue, time the publish was sent)
        self.delivered = []  # (time, id, queue, who)
        self.acked = {}  # id -> time of the first ack that removed it
        self.disconnects = {}  # who -> [times]
        self.asks = {}  # who -> [times it asked for its inbox again (getAll)]


class Subscriber:
    def __init__(self, record, who, url, client, queue, mode):
        self.record, self.who, self.client, self.queue = record, who, client, queue
        self.sio = socketio.Client(reconnection_delay=0.2, reconnection_delay_max=1)
        sio = self.sio

        @sio.event
        def connect():
            subscribe = {"clientId": client, "queue": queue}
            if mode == "work":
                subscribe.update(mode="work", ackTimeoutMs=30000)
            if mode == "ordered":
                subscribe["ordered"] = True
            sio.emit("subscribe", subscribe)
            if mode != "work":
                with record.lock:
                    record.asks.setdefault(who, []).append(now())
                sio.emit("getAll", {"clientId": client, "queue": queue})

        @sio.event
        def disconnect(*_reason):
            with record.lock:
                record.disconnects.setdefault(who, []).append(now())

        def got(envelope):
            with record.lock:
                record.delivered.append((now(), envelope["id"], envelope["queue"], who))
            try:
                sio.emit("received", {"clientId": client, "id": envelope["id"], "queue": queue},
                         callback=lambda reply: self.acked(envelope["id"], reply))
            except socketio.exceptions.SocketIOError:
                pass  # disconnected: the message stays in the inbox and comes again

        for event in ("job", "news", "due", "step"):
            sio.on(event, got)
        sio.connect(url, transports=["websocket"], wait_timeout=10)

    def acked(self, message_id, reply):
        if isinstance(reply, dict) and reply.get("ok") and reply.get("removed"):
            with self.record.lock:
                self.record.acked.setdefault(message_id, now())

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass


def publisher(deployment, record, k, stop):
    kinds = {0: ("feed", "news"), 5: ("later", "due"), 2: ("ord", "step"), 7: ("ord", "step")}
    n = 0
    while not stop.is_set():
        n += 1
        queue, event = kinds.get(n % 10, ("jobs", "job"))
        message_id = f"p{k}-{n}"
        body = {"id": message_id, "event": event, "payload": {"k": k, "n": n}}
        if queue == "later":
            body["delayMs"] = DELAY_MS
        sent = now()
        for attempt in range(300):
            try:
                r = requests.post(f"{deployment.url(random.randrange(3))}/v1/queues/{queue}/messages",
                                  json=body, timeout=5)
                if r.status_code == 201:
                    with record.lock:
                        record.answered[message_id] = (queue, sent)
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        time.sleep(0.002)


def beanstalk_producer(deployment, record, stop):
    """Puts jobs on `bjobs`, each answered put recorded under the id in its body. A put
    whose answer is lost is not tried again: beanstalk has no ids of the client's own, so
    that would make a second job (the first may be stored: it is then not counted)."""
    n, node, client = 0, 0, None
    while not stop.is_set():
        n += 1
        job_id = f"b-{n}"
        delay = JOB_DELAY_S if n % 4 == 0 else 0
        sent = now()
        try:
            if client is None:
                client = greenstalk.Client(deployment.beanstalk(node), use="bjobs")
            client.put(job_id, delay=delay, ttr=60)
            with record.lock:
                record.answered[job_id] = ("bjobs" if not delay else "bjobs-later", sent)
        except (OSError, greenstalk.Error):
            client, node = None, node + 1
            time.sleep(0.1)
        time.sleep(0.003)


def beanstalk_worker(deployment, record, who, first_node, stop):
    """Reserves and deletes jobs of `bjobs` until stopped and nothing is left."""
    node, client = first_node, None
    while not stop.is_set() or pending(deployment) != 0:
        try:
            if client is None:
                client = greenstalk.Client(deployment.beanstalk(node), watch="bjobs")
            try:
                job = client.reserve(timeout=1)
            except greenstalk.TimedOutError:
                continue
            with record.lock:
                record.delivered.append((now(), job.body, "bjobs", who))
            client.delete(job)
            with record.lock:
                record.acked.setdefault(job.body, now())
        except (OSError, greenstalk.Error):
            with record.lock:
                record.disconnects.setdefault(who, []).append(now())
            client, node = None, node + 1
            time.sleep(0.1)


def pending(deployment):
    """Messages still pending, waiting or scheduled in every queue, or None if unknown."""
    for i in range(len(deployment.ports)):
        try:
            stats = requests.get(f"{deployment.url(i)}/v1/queues", timeout=3).json()
            return sum(sum(q["pending"].values()) + q["waiting"] + q["scheduled"]
                       for q in stats["queues"])
        except (requests.RequestException, ValueError, KeyError):
            continue
    return None


def verdict(record, faults):
    by_id = {}
    for t, message_id, queue, who in sorted(record.delivered):
        by_id.setdefault(message_id, []).append((t, who))

    def excused(who, t1, t2):
        """A reason for a second delivery: the first holder left or asked for its inbox
        again (getAll re-sends what is unacked, and an ack may still be on its way), or a
        fault happened."""
        reasons = record.disconnects.get(who, []) + record.asks.get(who, []) + faults
        return any(t1 - EXCUSE <= t <= t2 + SLACK for t in reasons)

    counts = {"lost": [], "resurrected": [], "double": [], "twice": [], "early": [], "disorder": []}
    for message_id, (queue, sent) in record.answered.items():
        deliveries = by_id.get(message_id, [])
        if not deliveries:
            counts["lost"].append(message_id)
            continue
        acked = record.acked.get(message_id)
        if acked is not None and any(t > acked + SLACK for t, _ in deliveries):
            counts["resurrected"].append(message_id)
        for (t1, w1), (t2, w2) in zip(deliveries, deliveries[1:]):
            if queue in ("jobs", "bjobs", "bjobs-later") and w1 != w2 \
                    and (acked is None or acked > t2) and not excused(w1, t1, t2):
                counts["double"].append(message_id)
            if queue == "later" and not excused(w1, t1, t2):
                counts["twice"].append(message_id)
        delay = {"later": DELAY_MS / 1000, "bjobs-later": JOB_DELAY_S}.get(queue, 0)
        if deliveries[0][0] < sent + delay - SLACK:
            counts["early"].append(message_id)
    firsts = {}
    for message_id, deliveries in by_id.items():
        if record.answered.get(message_id, ("",))[0] == "ord":
            k, n = message_id[1:].split("-")
            firsts.setdefault(k, []).append((deliveries[0][0], int(n)))
    for k, seen in firsts.items():
        ns = [n for _, n in sorted(seen)]
        counts["disorder"] += [f"p{k}-{b} after p{k}-{a}" for a, b in zip(ns, ns[1:]) if b < a]
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--redis", action="store_true")
    mode.add_argument("--single", action="store_true")
    parser.add_argument("--duration", type=float, default=24, help="seconds of load")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)

    work = tempfile.mkdtemp(prefix="queuehub-chaos-")
    deployment = Deployment(os.path.abspath(args.binary), args.redis, work)
    deployment.wait_active()
    time.sleep(1.5 if args.redis else 0.3)  # standbys relaying
    log(f"{'three nodes on Redis' if args.redis else 'one node'}: {deployment.ports}; logs in {work}")

    record = Record()
    url = deployment.url
    clients = [Subscriber(record, f"worker{i}", url(i), "workers", "jobs", "work") for i in range(3)]
    clients += [Subscriber(record, "feed", url(1), "feed-reader", "feed", "broadcast"),
                Subscriber(record, "later", url(2), "later-reader", "later", "broadcast"),
                Subscriber(record, "ord", url(0), "ord-reader", "ord", "ordered")]
    stop = threading.Event()
    threading.Thread(target=deployment.supervise, args=(stop,), daemon=True).start()
    publishers = [threading.Thread(target=publisher, args=(deployment, record, k, stop))
                  for k in range(4)]
    publishers.append(threading.Thread(target=beanstalk_producer, args=(deployment, record, stop)))
    workers = [threading.Thread(target=beanstalk_worker,
                                args=(deployment, record, f"bworker{i}", i, stop))
               for i in range(2)]
    for w in workers:
        w.start()
    for p in publishers:
        p.start()

    d = args.duration
    if args.redis:
        plan = [(0.15 * d, lambda: deployment.pause_active(LEASE_MS / 1000 * 2.5)),
                (0.45 * d, lambda: deployment.kill_redis(LEASE_MS / 1000 * 3.5)),
                (0.75 * d, lambda: deployment.kill_active(2))]
    else:
        plan = [(f * d, lambda: deployment.kill_active(1)) for f in (0.2, 0.45, 0.7)]
    for at, fault in plan:
        while now() < at:
            time.sleep(0.05)
        fault()
    while now() < d:
        time.sleep(0.1)
    stop.set()
    for p in publishers:
        p.join()
    log(f"load stopped: {len(record.answered)} publishes answered")

    deadline = time.time() + 90
    left = None
    while time.time() < deadline:
        left = pending(deployment)
        if left == 0:
            break
        time.sleep(0.5)
    for w in workers:
        w.join(timeout=10)
    time.sleep(0.5)
    for client in clients:
        client.close()
    deployment.stop()

    counts = verdict(record, deployment.faults)
    with open(f"{work}/record.json", "w") as f:  # for a closer look at a failure
        json.dump({"answered": record.answered, "delivered": record.delivered,
                   "acked": record.acked, "disconnects": record.disconnects,
                   "asks": record.asks, "faults": deployment.faults}, f)
    log(f"{len(record.answered)} answered, {len(record.delivered)} deliveries, "
        f"{len(record.acked)} acked; still pending at the end: {left}")
    for name, found in counts.items():
        log(f"{name:12} {len(found)}" + (f"  e.g. {found[:5]}" if found else ""))
    bad = sum(len(found) for found in counts.values()) + (left != 0)
    if bad:
        log(f"chaos: FAILED; node logs in {work}")
        sys.exit(1)
    log("chaos: nothing lost, resurrected, doubled, fired twice or early, or out of order")
    shutil.rmtree(work, ignore_errors=True)  # kept only for a closer look at a failure


if __name__ == "__main__":
    main()
