#!/usr/bin/env python3
"""Differential test of queuehub's beanstalk door against Debian's beanstalkd.

Runs the same scenarios (greenstalk from PyPI for the commands a worker sends, a raw socket
for bad input) against a fresh beanstalkd and a fresh queuehub, and compares every reply,
command by command. Job ids are compared by the order they first appeared in (queuehub's
ids are its message sequence numbers, beanstalkd's its own counter); stats are compared on
the fields whose meaning both share (docs/BEANSTALK.md). Exits 1 on the first scenario
that differs, after printing both transcripts side by side.

    python3 tests/beanstalk/differential.py --queuehub target/debug/queuehub \
        [--beanstalkd /usr/bin/beanstalkd] [--only NAME]

Needs `pip install greenstalk` and `apt-get install beanstalkd` (.ci/run installs both).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import greenstalk


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(address, timeout=None):
    """A socket connected to `address`: a TCP port on 127.0.0.1, or a Unix socket's path."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    return socket.create_connection(("127.0.0.1", address), timeout=timeout)


def wait_port(address, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start with {proc.returncode}")
        try:
            connect(address, timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {address}")


class Server:
    """One server under test, started fresh for each scenario. `port` is its door's TCP port,
    or the path of its Unix socket."""

    def __init__(self, name, argv, port, tmp):
        self.name, self.argv, self.port, self.tmp = name, argv, port, tmp
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port, self.proc, self.name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, **kw):
        address = self.port if isinstance(self.port, str) else ("127.0.0.1", self.port)
        return greenstalk.Client(address, encoding=None, **kw)

    def raw(self):
        return Raw(self.port)


class Raw:
    """A plain TCP client that sends bytes and reads whole replies."""

    def __init__(self, port):
        self.sock = connect(port)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self, timeout=5.0):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b"<closed>"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=5.0):
        """One reply: its line, and its data for OK/FOUND/RESERVED."""
        line = self.line(timeout)
        parts = line.split()
        if parts and parts[0] in (b"OK", b"FOUND", b"RESERVED"):
            size = int(parts[-1])
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            return line + b" " + data
        return line

    def nothing(self, wait=0.3):
        """What arrived within `wait` seconds (nothing is the expected answer)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
            return data if data else b"<closed>"
        except socket.timeout:
            return b""

    def close(self):
        self.sock.close()


class Transcript:
    """What a scenario saw, with job ids replaced by their order of appearance."""

    def __init__(self):
        self.steps = []
        self.ids = {}

    def job(self, id_):
        if id_ not in self.ids:
            self.ids[id_] = f"#{len(self.ids) + 1}"
        return self.ids[id_]

    def note(self, step, value):
        self.steps.append((step, value))

    def call(self, step, fn, *args, **kw):
        """Runs one greenstalk call; records its result or the error it raised."""
        try:
            result = fn(*args, **kw)
        except greenstalk.Error as err:
            result = f"error {type(err).__name__}"
        self.note(step, self.shape(result))
        return result

    def put(self, step, client, body, **kw):
        """Runs a put; records the id it answered by its order of appearance."""
        try:
            id_ = client.put(body, **kw)
        except greenstalk.Error as err:
            self.note(step, f"error {type(err).__name__}")
            return None
        self.note(step, f"inserted {self.job(id_)}")
        return id_

    def shape(self, result):
        if isinstance(result, greenstalk.Job):
            return f"job {self.job(result.id)} {result.body!r}"
        if isinstance(result, int) and not isinstance(result, bool):
            return result
        return result


def as_job(id_):
    """A job greenstalk can name by id (its release and bury take jobs)."""
    return greenstalk.Job(id_, b"")


STATS_JOB = (
    "state",
    "pri",
    "ttr",
    "reserves",
    "timeouts",
    "delay",
    "releases",
    "buries",
    "kicks",
)
STATS_TUBE = (
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "current-using",
    "current-watching",
    "current-waiting",
)


def pick(stats, keys):
    if isinstance(stats, dict):
        return {k: stats.get(k) for k in keys}
    return stats


# ---------------------------------------------------------------------------------------
# Scenarios: each takes a fresh server and a transcript.


def put_reserve_delete(s, t):
    c = s.client()
    a = t.put("put a", c, b"a")
    t.put("put b", c, b"b")
    j = t.call("reserve", c.reserve, 2)
    t.call("delete it", c.delete, j)
    t.call("delete it again", c.delete, j)
    j = t.call("reserve next", c.reserve, 2)
    t.call("stats-job reserved", lambda: pick(c.stats_job(j), STATS_JOB))
    t.call("delete", c.delete, j)
    t.call("reserve-with-timeout 0 on an empty tube", c.reserve, 0)
    t.call("peek a deleted job", c.peek, a)


def priorities_order_reserve(s, t):
    c = s.client()
    for pri, body in [(10, b"p10"), (0, b"p0-first"), (4294967295, b"pmax"), (0, b"p0-second"), (5, b"p5")]:
        t.put(f"put pri {pri}", c, body, priority=pri)
    t.call("peek-ready", c.peek_ready)
    for n in range(5):
        j = t.call(f"reserve {n}", c.reserve, 2)
        t.call(f"delete {n}", c.delete, j)


def priorities_across_watched_tubes(s, t):
    producer = s.client()
    for tube, pri, body in [("a", 5, b"a5"), ("b", 1, b"b1"), ("c", 5, b"c5"), ("a", 1, b"a1-later")]:
        t.call(f"use {tube}", producer.use, tube)
        t.put(f"put pri {pri} on {tube}", producer, body, priority=pri)
    worker = s.client()
    for tube in ("a", "b", "c"):
        t.call(f"watch {tube}", worker.watch, tube)
    for n in range(4):
        j = t.call(f"reserve {n}: the first by priority, then id, over every watched tube", worker.reserve, 2)
        t.call(f"delete {n}", worker.delete, j)
    t.call("nothing left", worker.reserve, 0)


def bodies_come_back_byte_for_byte(s, t):
    c = s.client()
    for body in [b"", b"plain text", b'{"a": 1, "b": [1, 2]}', b'"quoted"', b"\xff\xfe binary \x00", b"x" * 65535]:
        t.put(f"put {len(body)} bytes", c, body)
    for n in range(6):
        j = t.call(f"reserve {n}", c.reserve, 2)
        t.call(f"delete {n}", c.delete, j)


def delays_and_peeks(s, t):
    c = s.client()
    t.put("put delayed 2 s", c, b"later", delay=2)
    t.call("reserve-with-timeout 0 while delayed", c.reserve, 0)
    j = t.call("peek-delayed", c.peek_delayed)
    t.call("stats-job delayed", lambda: pick(c.stats_job(j), STATS_JOB))
    t.call("peek-ready while delayed", c.peek_ready)
    t.call("stats-tube", lambda: pick(c.stats_tube("default"), STATS_TUBE))
    j = t.call("reserve-with-timeout 10 gets it when due", c.reserve, 10)
    t.call("delete", c.delete, j)


def deadline_soon(s, t):
    c = s.client()
    t.put("put ttr 0 (becomes 1)", c, b"short", ttr=0)
    j = t.call("reserve", c.reserve, 2)
    t.call("stats-job ttr", lambda: pick(c.stats_job(j), STATS_JOB))
    t.call("reserve again: deadline soon", c.reserve, 5)
    t.call("delete", c.delete, j)


def ttr_expiry(s, t):
    c = s.client()
    timeouts_before = c.stats()["job-timeouts"]
    t.put("put ttr 2", c, b"lapses", ttr=2)
    j = t.call("reserve", c.reserve, 2)
    t.call("stats-job", lambda: pick(c.stats_job(j), STATS_JOB))
    time.sleep(3.5)
    # beanstalkd 1.12 ends a lease that lapsed while its holder was silent only when that
    # holder sends its next command (then it is ready again); queuehub ends it on time. So
    # the holder says something (not compared) before another client asks.
    c.stats_job(j)
    other = s.client()
    k = t.call("another client gets it after the ttr ran out", other.reserve, 0)
    t.call("stats-job reserved twice", lambda: pick(other.stats_job(k), STATS_JOB))
    t.call("stats: one more job timeout", lambda: other.stats()["job-timeouts"] - timeouts_before)
    t.call("the first client's touch", c.touch, j)
    t.call("the first client's delete", c.delete, j)
    t.call("touch by its holder", other.touch, k)
    t.call("delete by its holder", other.delete, k)


def release_bury_kick(s, t):
    c = s.client()
    ids = [t.put(f"put {n}", c, b"job %d" % n, priority=100) for n in range(3)]
    j = t.call("reserve", c.reserve, 2)
    t.call("release with priority 5", c.release, j, priority=5)
    t.call("stats-job released", lambda: pick(c.stats_job(j), STATS_JOB))
    j = t.call("reserve the released one first", c.reserve, 2)
    t.call("bury", c.bury, j, priority=7)
    t.call("bury again (not reserved)", c.bury, j)
    t.call("peek-buried", c.peek_buried)
    t.call("stats-job buried", lambda: pick(c.stats_job(j), STATS_JOB))
    k = t.call("reserve", c.reserve, 2)
    t.call("release with delay 1", c.release, k, delay=1)
    t.call("stats-job released with delay 1", lambda: pick(c.stats_job(k), STATS_JOB))
    t.call("stats-tube", lambda: pick(c.stats_tube("default"), STATS_TUBE))
    t.call("kick 10 (the buried first)", c.kick, 10)
    t.call("kick 10 (then the delayed)", c.kick, 10)
    t.call("kick 10 (nothing left)", c.kick, 10)
    # Its `delay` too: beanstalkd keeps the one it was released with.
    t.call("stats-job kicked from delayed", lambda: pick(c.stats_job(k), STATS_JOB))
    t.call("stats-tube", lambda: pick(c.stats_tube("default"), STATS_TUBE))
    for n in range(3):
        j = t.call(f"reserve {n}", c.reserve, 2)
        if n == 0:
            t.call("bury", c.bury, j)
            t.call("kick-job", c.kick_job, j)
            t.call("stats-job kicked", lambda: pick(c.stats_job(j), STATS_JOB))
            t.call("kick-job a ready job", c.kick_job, j)
            j = t.call("reserve the kicked job", c.reserve, 2)
        t.call(f"delete {n}", c.delete, j)
    t.call("release a deleted job", c.release, as_job(ids[0]))


def reserve_job_by_id(s, t):
    c = s.client()
    a = t.put("put", c, b"a")
    b = t.put("put delayed", c, b"b", delay=30)
    t.call("stats-job delayed 30", lambda: pick(c.stats_job(b), STATS_JOB))
    t.call("reserve-job a", c.reserve_job, a)
    t.call("reserve-job a again (reserved)", c.reserve_job, a)
    t.call("reserve-job the delayed one", c.reserve_job, b)
    t.call("reserve-job 999999", c.reserve_job, 999999)
    t.call("delete a", c.delete, a)
    t.call("delete b", c.delete, b)


def tubes_use_watch_ignore(s, t):
    c = s.client()
    t.call("using", c.using)
    t.call("watching", c.watching)
    t.call("ignore the last watched tube", c.ignore, "default")
    t.call("use a/b", c.use, "a/b")
    t.put("put on a/b", c, b"on a/b")
    t.call("watch a/b", c.watch, "a/b")
    t.call("watch a/b again", c.watch, "a/b")
    t.call("ignore default", c.ignore, "default")
    t.call("ignore a tube not watched", c.ignore, "nope")
    t.call("watching", c.watching)
    j = t.call("reserve from a/b", c.reserve, 2)
    t.call("stats-job tube", lambda: c.stats_job(j)["tube"])
    t.call("stats-tube a/b", lambda: pick(c.stats_tube("a/b"), STATS_TUBE))
    t.call("stats-tube of a tube nobody named", c.stats_tube, "nobody")
    t.call("delete", c.delete, j)
    long = "x" * 200
    t.call("use a 200-byte tube", c.use, long)
    t.put("put there", c, b"long")
    t.call("tubes include both", lambda: sorted(x for x in c.tubes() if x in ("a/b", long, "default")) == sorted(["a/b", long, "default"]))


def pause_tube(s, t):
    c = s.client()
    t.put("put", c, b"paused")
    t.call("pause default 2 s", c.pause_tube, "default", 2)
    t.call("reserve-with-timeout 0 while paused", c.reserve, 0)
    j = t.call("reserve-with-timeout 10 after the pause", c.reserve, 10)
    t.call("delete", c.delete, j)
    t.call("pause a tube nobody named", c.pause_tube, "nobody", 1)
    # A worker already waiting when its tube is paused gets nothing until the pause ends.
    waiting = s.client()
    got = {}

    def wait():
        start = time.monotonic()
        job = waiting.reserve(10)
        got["after"] = time.monotonic() - start
        got["body"] = job.body
        waiting.delete(job)

    worker = threading.Thread(target=wait)
    worker.start()
    time.sleep(0.5)
    t.call("pause default 3 s while a worker waits", c.pause_tube, "default", 3)
    t.put("put", c, b"after the pause")
    worker.join(15)
    t.note("the waiting worker got it", got.get("body"))
    t.note("only after the pause", got.get("after", 0) > 2.0)


def unknown_ids(s, t):
    c = s.client()
    for name, fn in [("delete", c.delete), ("touch", lambda i: c.touch(as_job(i))), ("peek", c.peek), ("kick-job", c.kick_job), ("stats-job", c.stats_job), ("reserve-job", c.reserve_job)]:
        t.call(f"{name} 424242", fn, 424242)
    t.call("release 424242", c.release, as_job(424242))
    t.call("bury 424242", c.bury, as_job(424242))
    t.call("peek-ready on an empty tube", c.peek_ready)
    t.call("peek-delayed on an empty tube", c.peek_delayed)
    t.call("peek-buried on an empty tube", c.peek_buried)


def bad_input(s, t):
    r = s.raw()
    cases = [
        ("garbage", b"HELLO\r\n"),
        ("empty line", b"\r\n"),
        ("stats with trailing garbage", b"statsX\r\n"),
        ("reserve with a space", b"reserve \r\n"),
        ("kick without a bound", b"kick\r\n"),
        ("kick with garbage after its bound", b"kick 5abc\r\n"),
        ("put with a negative priority", b"put -1 0 1 1\r\n"),
        ("put with a priority over 32 bits", b"put 4294967296 0 1 1\r\n"),
        ("put with trailing space", b"put 1 2 3 4 \r\n"),
        ("use a name with a space", b"use  foo\r\n"),
        ("use a name starting with -", b"use -foo\r\n"),
        ("use a name of 201 bytes", b"use " + b"a" * 201 + b"\r\n"),
        ("a NUL in the line", b"use a\x00b\r\n"),
        ("delete -1", b"delete -1\r\n"),
        ("delete an id over 64 bits", b"delete 18446744073709551616\r\n"),
        ("peek x", b"peek x\r\n"),
        ("a line of 224 bytes", b"x" * 222 + b"\r\n"),
        ("list-tube-used", b"list-tube-used\r\n"),
    ]
    for name, data in cases:
        r.send(data)
        t.note(name, r.reply())
    # A line longer than 224 bytes: BAD_FORMAT, then the rest of it is skipped.
    r.send(b"x" * 230 + b"\r\nlist-tube-used\r\n")
    t.note("a line of 232 bytes", r.reply())
    t.note("the command after it", r.reply())
    r.send(b"x" * 223 + b"\r\nlost\r\nlist-tube-used\r\n")
    t.note("a line whose CR is byte 224", r.reply())
    t.note("the line after its LF is skipped too", r.reply())
    # Bodies.
    r.send(b"put 0 0 1 2\r\nabcd\r\n")
    t.note("a body longer than announced", r.reply())
    t.note("what follows the body", r.reply())
    r.send(b"put 0 0 1 65536\r\n" + b"a" * 65536 + b"\r\nlist-tube-used\r\n")
    t.note("a job of 65536 bytes", r.reply())
    t.note("the command after the skipped body", r.reply())
    r.send(b"put 0 0 1 0\r\n\r\n")
    t.note("an empty job", r.reply().split()[0])
    r.send(b"put 4294967295 0 4294967295 1\r\nx\r\n")
    t.note("the largest priority and ttr", r.reply().split()[0])
    r.send(b"put 0 0 1 3\r\nab")
    t.note("a body still coming", r.nothing())
    r.send(b"c\r\nlist-tube-used\r\n")
    t.note("the body completed", r.reply().split()[0])
    t.note("then", r.reply())
    r.send(b"quitX\r\n")
    t.note("quit with garbage still quits", r.nothing(1.0))
    r.close()


def disconnect_releases_reserved_jobs(s, t):
    worker = s.client()
    t.put("put", worker, b"held")
    t.call("reserve", worker.reserve, 2)
    worker.close()
    other = s.client()
    j = t.call("another client reserves it after the first closed", other.reserve, 5)
    t.call("delete", other.delete, j)


def drain_mode(s, t):
    """SIGUSR1: puts are refused DRAINING (the body read), everything else works on."""
    c = s.client()
    t.put("put before draining", c, b"before")
    s.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    t.put("put while draining", c, b"after")
    raw = s.raw()
    raw.send(b"put 0 0 60 5\r\nafter\r\nlist-tube-used\r\n")
    t.note("raw put while draining, then a command", (raw.reply(), raw.reply()))
    raw.close()
    t.call("stats while draining", lambda: pick(c.stats(), ("draining", "current-jobs-ready")))
    j = t.call("reserve the job put before", c.reserve, 2)
    t.call("delete it", c.delete, j)


def a_job_coming_due_reaches_the_reserve_that_waits_for_it(s, t):
    """A job released with a delay of 2 s, a reserve-with-timeout 1 that times out, then
    another whose timeout ends just after the job comes due: it gets the job (greenstalk's
    own test_delays)."""
    c = s.client()
    t.put("put", c, b"delayed")
    j = t.call("reserve", c.reserve, 2)
    t.call("release with a delay of 2", lambda: c.release(j, delay=2))
    t.call("reserve-with-timeout 1 before it is due", c.reserve, 1)
    t.call("reserve-with-timeout 1 as it comes due", c.reserve, 1)

def over_a_unix_socket(s, t):
    """The same commands over a Unix socket (beanstalkd's `-l unix:PATH`), raw bytes included."""
    c = s.client()
    t.call("use a/b", c.use, "a/b")
    t.put("put", c, b"over unix")
    t.call("watch a/b", c.watch, "a/b")
    j = t.call("reserve", c.reserve, 2)
    t.call("stats-job", lambda: pick(c.stats_job(j), STATS_JOB))
    t.call("delete", c.delete, j)
    r = s.raw()
    r.send(b"garbage\r\nlist-tube-used\r\n")
    t.note("raw: garbage, then a command", (r.reply(), r.reply()))


over_a_unix_socket.unix = True


def stats_fields(s, t):
    """`stats` has beanstalkd's fields in its order, the machine's name, kernel and platform
    as beanstalkd reports them, and the CPU time used as seconds with six decimals."""
    c = s.client()
    t.put("put", c, b"x")
    # Read raw: greenstalk's YAML reading drops what follows a `#` (the kernel version).
    raw = s.raw()
    raw.send(b"stats\r\n")
    reply = raw.reply().decode()  # "OK <bytes> ---\n<name>: <value>\n..."
    raw.close()
    fields = [line.split(":", 1) for line in reply.split(" ", 2)[2].splitlines()[1:] if line]
    t.note("stats field names, in order", [name for name, _ in fields])
    values = {name: value.strip() for name, value in fields}
    t.note("hostname, os, platform", [values.get(k) for k in ("hostname", "os", "platform")])
    t.note(
        "rusage-utime and rusage-stime are seconds.micros",
        [bool(re.fullmatch(r"\d+\.\d{6}", values.get(k, ""))) for k in ("rusage-utime", "rusage-stime")],
    )


SCENARIOS = [
    put_reserve_delete,
    stats_fields,
    over_a_unix_socket,
    a_job_coming_due_reaches_the_reserve_that_waits_for_it,
    priorities_order_reserve,
    priorities_across_watched_tubes,
    bodies_come_back_byte_for_byte,
    delays_and_peeks,
    deadline_soon,
    ttr_expiry,
    release_bury_kick,
    reserve_job_by_id,
    tubes_use_watch_ignore,
    pause_tube,
    unknown_ids,
    bad_input,
    disconnect_releases_reserved_jobs,
    drain_mode,
]


def run(server, scenario):
    t = Transcript()
    server.start()
    try:
        scenario(server, t)
    except Exception as err:  # a crash or hang is a difference too
        t.note("scenario raised", f"{type(err).__name__}: {err}")
    finally:
        server.stop()
    return t.steps


def short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queuehub", required=True)
    parser.add_argument("--beanstalkd", default=shutil.which("beanstalkd") or "/usr/bin/beanstalkd")
    parser.add_argument("--only")
    parser.add_argument("--show", action="store_true", help="print every transcript")
    args = parser.parse_args()

    failures = 0
    for scenario in SCENARIOS:
        if args.only and scenario.__name__ != args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            unix = getattr(scenario, "unix", False)
            if unix:
                bport, qport = os.path.join(tmp, "beanstalkd.sock"), os.path.join(tmp, "queuehub.sock")
                blisten, qlisten = ["-l", f"unix:{bport}"], f"unix:{qport}"
            else:
                bport, qport = free_port(), free_port()
                blisten, qlisten = ["-l", "127.0.0.1", "-p", str(bport)], f"127.0.0.1:{qport}"
            reference = Server("beanstalkd", [args.beanstalkd, *blisten], bport, tmp)
            hport = free_port()
            queuehub = Server(
                "queuehub",
                [
                    os.path.abspath(args.queuehub),
                    "--listen", f"127.0.0.1:{hport}",
                    "--beanstalk-listen", qlisten,
                    "--data-dir", os.path.join(tmp, "data"),
                ],
                qport,
                tmp,
            )
            want = run(reference, scenario)
            got = run(queuehub, scenario)
        same = want == got
        print(f"{'ok  ' if same else 'DIFF'} {scenario.__name__} ({len(want)} replies)")
        if not same:
            failures += 1
        if not same or args.show:
            for n in range(max(len(want), len(got))):
                w = want[n] if n < len(want) else ("-", "-")
                g = got[n] if n < len(got) else ("-", "-")
                mark = "  " if w == g else "!!"
                print(f"  {mark} {w[0]}\n       beanstalkd: {short(w[1])}\n       queuehub:   {short(g[1])}")
    if failures:
        print(f"{failures} scenario(s) differ")
        sys.exit(1)
    print("every reply matched")


if __name__ == "__main__":
    main()
