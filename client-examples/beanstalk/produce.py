#!/usr/bin/env python3
"""The game server's side: puts star-map jobs on `bg_starmap` (greenstalk), as it would on
beanstalkd. One job is delayed, like a building upgrade that finishes at a given time.

    python produce.py [count]      (default 4)

Environment: QUEUEHUB_BEANSTALK (default 127.0.0.1:11300).
"""

import json
import os
import sys

import greenstalk

HOST, PORT = os.environ.get("QUEUEHUB_BEANSTALK", "127.0.0.1:11300").rsplit(":", 1)
COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 4

with greenstalk.Client((HOST, int(PORT)), use="bg_starmap") as client:
    for sector in range(1, COUNT + 1):
        delay = 2 if sector == COUNT else 0
        job = client.put(json.dumps({"player": 7, "sector": sector}), delay=delay, ttr=30)
        print(f"produce: job {job} for sector {sector}" + (f", due in {delay} s" if delay else ""), flush=True)
