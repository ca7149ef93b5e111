#!/usr/bin/env python3
"""Client-side HTTP probe, run inside a lab host (standard library only).

Sends a request to URL every INTERVAL seconds for at most DURATION seconds, whether or not the
earlier ones have been answered (a request to a dead address waits for its timeout, and a client
that waited for it would poll less often exactly during an outage), and writes one JSON line per
request to stdout when it completes: {"t": wall-clock seconds at completion, "sent": wall-clock
seconds when it was sent, "ok": bool, "body": a line of the page or the error name}; the line is
the first one containing --line (the first line if none does or no --line).
It stops early once --stop-after consecutive answers contain --expect, if given; with
--armed-by-signal only answers to requests sent after the probe got SIGUSR1 count (the
controller arms it once its fault has been injected, so answers from before the fault took
effect cannot end it). Wall-clock
time is shared by every lab host and the controller (namespaces do not virtualise it), so the
controller can line the samples up with the moment it injected a fault.
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse


def get(url: urllib.parse.SplitResult, timeout: float, line: str = "") -> tuple[bool, str]:
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    try:
        conn.request("GET", url.path or "/", headers={"Connection": "close"})
        response = conn.getresponse()
        lines = response.read().decode(errors="replace").strip().splitlines()
        chosen = next((x for x in lines if line in x), lines[0]) if lines and line else (lines or [""])[0]
        return response.status == 200, chosen.strip()
    except (OSError, http.client.HTTPException) as exc:
        return False, type(exc).__name__
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=0.3)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--expect", help="stop after --stop-after answers in a row containing this")
    parser.add_argument("--not-before", type=float, default=0.0, help="ignore --expect before this wall time")
    parser.add_argument("--armed-by-signal", action="store_true", help="count --expect only after SIGUSR1")
    parser.add_argument("--stop-after", type=int, default=5)
    parser.add_argument("--line", default="", help="report the first line of the page containing this")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    start = time.monotonic()
    done = threading.Event()
    lock = threading.Lock()
    streak = 0
    armed_at = None if args.armed_by_signal else args.not_before

    def arm(_signum, _frame) -> None:
        nonlocal armed_at
        armed_at = time.time()

    signal.signal(signal.SIGUSR1, arm)

    def request() -> None:
        nonlocal streak
        sent = time.time()
        ok, body = get(url, args.timeout, args.line)
        now = time.time()
        with lock:
            if done.is_set():
                return
            print(
                json.dumps({"t": round(now, 4), "sent": round(sent, 4), "ok": ok, "body": body}), flush=True
            )
            if args.expect and armed_at is not None and now >= args.not_before and sent >= armed_at:
                streak = streak + 1 if ok and args.expect in body else 0
                if streak >= args.stop_after:
                    done.set()

    # The pid lets the controller end the probe early (`kill PID` inside the host).
    print(json.dumps({"ready": time.time(), "pid": os.getpid()}), flush=True)
    workers = []
    tick = 0
    while not done.is_set() and time.monotonic() - start < args.duration:
        worker = threading.Thread(target=request, daemon=True)
        worker.start()
        workers = [w for w in workers if w.is_alive()] + [worker]
        tick += 1
        done.wait(max(0.0, start + tick * args.interval - time.monotonic()))
    for worker in workers:
        worker.join(args.timeout + 1)
    done.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
