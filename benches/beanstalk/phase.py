#!/usr/bin/env python3
"""A rough throughput probe of a beanstalk server (docs/BEANSTALK.md, Not done yet): PRODUCERS
processes put N jobs of 200 bytes on TUBE (greenstalk, one put at a time each), then WORKERS
processes reserve (with timeout 0) and delete them until the tube is empty. Prints jobs per
second for each phase. Python clients bound what a fast server can show.

    python3 benches/beanstalk/phase.py PORT N PRODUCERS WORKERS TUBE
"""
import greenstalk, multiprocessing as mp, sys, time
port = int(sys.argv[1]); N = int(sys.argv[2]); P=int(sys.argv[3]); W = int(sys.argv[4]); tube=sys.argv[5]
body = b"x" * 200
def producer(n):
    c = greenstalk.Client(("127.0.0.1", port), encoding=None, use=tube)
    for _ in range(n): c.put(body)
def worker(q):
    c = greenstalk.Client(("127.0.0.1", port), encoding=None, watch=tube)
    done = 0
    while True:
        try: j = c.reserve(0)
        except greenstalk.TimedOutError: break
        c.delete(j); done += 1
    q.put(done)
if __name__ == "__main__":
    t = time.time()
    ps = [mp.Process(target=producer, args=(N // P,)) for _ in range(P)]
    for p in ps: p.start()
    for p in ps: p.join()
    print(f"put {N} with {P} producers: {N/(time.time()-t):.0f}/s")
    q = mp.Queue(); t = time.time()
    ws = [mp.Process(target=worker, args=(q,)) for _ in range(W)]
    for w in ws: w.start()
    total = sum(q.get() for _ in ws)
    for w in ws: w.join()
    print(f"reserve+delete {total} with {W} workers: {total/(time.time()-t):.0f}/s")
