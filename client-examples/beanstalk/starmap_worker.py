#!/usr/bin/env python3
"""A background worker in Python (greenstalk), unchanged from what runs against beanstalkd.

It watches the tube `bg_starmap`, renders the star map each job asks for, puts the result on
the foreground tube `fg_websocket`, and deletes the job. Against queuehub's beanstalk door
the result reaches every socket.io subscriber of the queue `fg_websocket` (a browser, see
browser.py) with no relay server in between.

    python starmap_worker.py

Environment: QUEUEHUB_BEANSTALK (default 127.0.0.1:11300), WORKER (a name for the logs).
"""

import json
import os

import greenstalk

HOST, PORT = os.environ.get("QUEUEHUB_BEANSTALK", "127.0.0.1:11300").rsplit(":", 1)
WORKER = os.environ.get("WORKER", "python")


def render(sector):
    """Stands in for the real work: a few stars, always the same for a sector."""
    return [(sector * 7 + n * 13) % 100 for n in range(3)]


with greenstalk.Client((HOST, int(PORT)), watch="bg_starmap", use="fg_websocket") as client:
    print(f"{WORKER}: waiting for jobs on bg_starmap", flush=True)
    while True:
        job = client.reserve()
        request = json.loads(job.body)
        result = {
            "player": request["player"],
            "sector": request["sector"],
            "stars": render(request["sector"]),
            "by": WORKER,
        }
        client.put(json.dumps(result))
        client.delete(job)
        print(f"{WORKER}: job {job.id} done: sector {request['sector']}", flush=True)
