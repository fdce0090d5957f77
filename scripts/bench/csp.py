"""Benchmark csp channels against queue.Queue, measured in the same run.

Prints one line per figure: our rate, the queue.Queue baseline rate, and the ratio, each the
median of several rounds (the machine is noisy). Targets (issue 2): buffered stream >= 0.70,
unbuffered ping-pong >= 0.50, select over 4 channels >= 0.50 of the single-queue stream.

With --json, one JSON document of the figures instead of the lines; on a terminal, a progress
line shows which figure and round is being measured.

Usage: python scripts/bench/csp.py [--messages N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import csp  # noqa: E402
from _report import Report  # noqa: E402


def _timed(workers) -> float:
    threads = [threading.Thread(target=w) for w in workers]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def queue_stream(n: int) -> float:
    q = queue.Queue(1024)

    def producer():
        put = q.put
        for i in range(n):
            put(i)

    def consumer():
        get = q.get
        for _ in range(n):
            get()

    return n / _timed([producer, consumer])


def chan_stream(n: int) -> float:
    ch = csp.Chan(1024)

    def producer():
        send = ch.send
        for i in range(n):
            send(i)

    def consumer():
        recv = ch.recv
        for _ in range(n):
            recv()

    return n / _timed([producer, consumer])


def queue_pingpong(n: int) -> float:
    ping, pong = queue.Queue(), queue.Queue()

    def a():
        for i in range(n):
            ping.put(i)
            pong.get()

    def b():
        for _ in range(n):
            pong.put(ping.get())

    return n / _timed([a, b])


def chan_pingpong(n: int) -> float:
    ping, pong = csp.Chan(), csp.Chan()

    def a():
        for i in range(n):
            ping.send(i)
            pong.recv()

    def b():
        for _ in range(n):
            pong.send(ping.recv()[0])

    return n / _timed([a, b])


def chan_select4(n: int) -> float:
    chans = [csp.Chan(1024) for _ in range(4)]
    per_producer = n // 4

    def producer(ch):
        def run():
            send = ch.send
            for i in range(per_producer):
                send(i)
        return run

    def consumer():
        cases = [csp.Recv(ch) for ch in chans]
        select = csp.select
        for _ in range(per_producer * 4):
            select(*cases)

    return per_producer * 4 / _timed([producer(ch) for ch in chans] + [consumer])


def median_rate(fn, n: int, rounds: int) -> float:
    return statistics.median(fn(n) for _ in range(rounds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    n, rounds = args.messages, args.rounds
    report = Report("csp", as_json=args.json)
    figures = [
        ("buffered_stream", "buffered Chan(1024) stream", "msgs/s", chan_stream, queue_stream,
         n, 0.70),
        ("unbuffered_pingpong", "unbuffered ping-pong", "round trips/s", chan_pingpong,
         queue_pingpong, n // 4, 0.50),
        ("select4", "select over 4 channels", "msgs/s", chan_select4, queue_stream, n, 0.50),
    ]
    for key, label, unit, ours, baseline, count, target in figures:
        # Alternate ours and the baseline round by round so drift hits both alike.
        pairs = report.rounds(label, rounds, lambda: (ours(count), baseline(count)))
        mine = statistics.median(p[0] for p in pairs)
        base = statistics.median(p[1] for p in pairs)
        ratio = mine / base
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        report.figure(key, f"{label:28s} {mine:>10,.0f} {unit:14s} queue.Queue {base:>10,.0f}  "
                      f"ratio {ratio:.2f} (target >= {target:.2f}) {verdict}",
                      ok=ratio >= target, unit=unit, ours=mine, queue_queue=base, ratio=ratio,
                      target=target, rounds=rounds)
    return report.finish()

if __name__ == "__main__":
    sys.exit(main())
