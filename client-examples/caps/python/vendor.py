#!/usr/bin/env python3
"""CAPS lab: the VENDOR in Python (python-socketio), namespace /caps.

The same store as js/vendor.js: it sends `pickup` orders, hears when an order is `in-transit`,
thanks the driver for every `delivered` order and acknowledges each message with `received`
(the hub then removes it from the store's queue). Deliveries made while the vendor was offline
wait in its queue on the hub; on connect it asks for them with `getAll`.

    python vendor.py [store] [--orders N] [--wait-for N] [--every SECONDS]

    store          the store's name (default: $STORE, else acme-widgets)
    --orders N     send N orders, then stop sending (default: keep sending)
    --wait-for N   exit once N deliveries were thanked for (default: the --orders count)
    --every S      seconds between two orders (default 3)

The hub: $QUEUEHUB_URL (default http://127.0.0.1:3001, the lab's hub port).
"""

import argparse
import os
import random
import sys
import threading
import time

import socketio

HUB = os.environ.get("QUEUEHUB_URL", "http://127.0.0.1:3001")
NAMESPACE = "/caps"

parser = argparse.ArgumentParser(description="CAPS lab vendor (python-socketio)")
parser.add_argument("store", nargs="?", default=os.environ.get("STORE") or "acme-widgets")
parser.add_argument("--orders", type=int, help="send N orders, then stop sending")
parser.add_argument("--wait-for", type=int, help="exit once N deliveries were thanked for")
parser.add_argument("--every", type=float, default=3.0, help="seconds between two orders")
args = parser.parse_args()
store = args.store
wait_for = args.wait_for if args.wait_for is not None else args.orders

sio = socketio.Client()  # reconnects by itself if the connection drops

lock = threading.Lock()
thanked = set()  # message ids of deliveries we already thanked for
answers_pending = 0  # `received`s the hub has not confirmed yet
catch_ups_done = 0  # `getAll`s the hub has finished since we (re)connected
done = threading.Event()
print_lock = threading.Lock()

CUSTOMERS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson"]
ADDRESSES = ["1 Main St, Seattle, WA", "22 Pine St, Portland, OR", "7 Elm Ave, Boise, ID"]


def say(text):
    """Prints one line; handlers run in threads of their own, so lines must not interleave."""
    with print_lock:
        print(text, flush=True)


@sio.on("connect", namespace=NAMESPACE)
def on_connect():
    global catch_ups_done
    say(f"{store}: connected to the hub at {HUB}{NAMESPACE}")
    # Our queue on the hub is named after the store: join it, then ask for what we missed.
    sio.emit("join", store, namespace=NAMESPACE)
    with lock:
        catch_ups_done = 0
    for event in ("in-transit", "delivered"):
        sio.emit("getAll", {"clientId": store, "event": event}, namespace=NAMESPACE, callback=caught_up)


@sio.on("disconnect", namespace=NAMESPACE)
def on_disconnect(reason=None):
    say(f"{store}: disconnected ({reason})")


@sio.on("in-transit", namespace=NAMESPACE)
def on_in_transit(payload):
    say(f"{store}: order {payload.get('orderId')} is in transit")
    acknowledge("in-transit", payload)


@sio.on("delivered", namespace=NAMESPACE)
def on_delivered(payload):
    with lock:
        first_time = payload["messageId"] not in thanked
        thanked.add(payload["messageId"])
    if first_time:  # delivery is at-least-once: skip a repeat, but ack it again
        say(f"Thank you for delivering {payload.get('orderId') or payload.get('code')}")
    acknowledge("delivered", payload)


def acknowledge(event, payload):
    """`received` removes the message from our queue on the hub for good."""
    global answers_pending
    with lock:
        answers_pending += 1

    def confirmed(*_answer):
        global answers_pending
        with lock:
            answers_pending -= 1
        exit_if_done()

    sio.emit(
        "received",
        {"clientId": store, "event": event, "messageId": payload["messageId"]},
        namespace=NAMESPACE,
        callback=confirmed,
    )


def caught_up(answer):
    global catch_ups_done
    with lock:
        catch_ups_done += 1
    say(f"{store}: caught up ({answer.get('count')} message(s) re-sent)")
    exit_if_done()


def exit_if_done():
    if wait_for is None:
        return
    with lock:
        if len(thanked) >= wait_for and answers_pending == 0 and catch_ups_done >= 2:
            done.set()


def send_orders():
    sent = 0
    while not done.is_set() and (args.orders is None or sent < args.orders):
        if sio.connected:
            sent += 1
            order = {
                "store": store,
                "orderId": f"{store}-py-{int(time.time() * 1000):x}-{sent}",
                "customer": random.choice(CUSTOMERS),
                "address": random.choice(ADDRESSES),
            }
            say(f"{store}: order {order['orderId']} for {order['customer']} is ready for pickup")
            sio.emit("pickup", order, namespace=NAMESPACE)
        done.wait(args.every if sio.connected else 0.2)


def main():
    try:
        sio.connect(HUB, namespaces=[NAMESPACE], wait_timeout=10, retry=True)
    except socketio.exceptions.ConnectionError as err:
        print(f"{store}: cannot connect to {HUB}{NAMESPACE}: {err}", file=sys.stderr)
        return 1
    threading.Thread(target=send_orders, daemon=True).start()
    try:
        done.wait()
        say(f"{store}: {len(thanked)} deliveries thanked for, bye")
    except KeyboardInterrupt:
        say(f"{store}: bye")
    finally:
        sio.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
