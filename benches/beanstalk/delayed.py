#!/usr/bin/env python3
"""Jobs released with a delay, then fresh jobs: how fast the fresh ones are reserved.

    python3 benches/beanstalk/delayed.py HOST:PORT N M

One connection to a beanstalk server (queuehub's door or beanstalkd) on tube `delayed-bench`:
it puts N jobs, reserves each one and releases it with a delay of an hour, then puts M fresh
jobs and reserves and deletes each. Prints both rates. A server whose reserve steps over the
delayed jobs slows down as N grows (docs/BENCHMARKS.md, "Jobs released with a delay").
Standard library only.
"""
import socket
import sys
import time

TUBE = "delayed-bench"


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    n, m = int(sys.argv[2]), int(sys.argv[3])
    sock = socket.create_connection((host, int(port)))
    reader = sock.makefile("rb")

    def command(line: str) -> str:
        sock.sendall(line.encode() + b"\r\n")
        return reader.readline().decode().strip()

    def put_many(count: int, body: bytes) -> None:
        # Pipelined: all the puts, then all the answers.
        sock.sendall(b"".join(b"put 100 0 3600 %d\r\n%s\r\n" % (len(body), body) for _ in range(count)))
        for _ in range(count):
            answer = reader.readline().decode()
            assert answer.startswith("INSERTED"), answer

    def reserve() -> tuple[str, bytes]:
        answer = command("reserve-with-timeout 5")
        assert answer.startswith("RESERVED"), answer
        return answer.split()[1], reader.readline()

    assert command(f"use {TUBE}").startswith("USING")
    assert command(f"watch {TUBE}").startswith("WATCHING")
    put_many(n, b"old")
    start = time.monotonic()
    for _ in range(n):
        job, _ = reserve()
        assert command(f"release {job} 100 3600") == "RELEASED"
    released = time.monotonic() - start
    put_many(m, b"new")
    start = time.monotonic()
    for _ in range(m):
        job, body = reserve()
        assert body.startswith(b"new"), body
        assert command(f"delete {job}") == "DELETED"
    fresh = time.monotonic() - start
    print(f"released {n} with a delay: {n / released:.0f}/s; then {m} fresh reserve+delete: {m / fresh:.0f}/s")


if __name__ == "__main__":
    main()
