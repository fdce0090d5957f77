"""Benchmark the linearizability checker (kvraft/linearizability.py, issue 19).

The history is what a busy service would record: --clients clerks each calling one operation
after another (half gets, a quarter puts, a quarter appends, on --keys keys), each call taking
0.2 to 5 ms with now and then a 50 ms stall (a leader change), taking effect at a random
instant inside its interval; a few calls never return (some of them took effect). Outputs come
from running the operations on the model in the order of those instants, so the history is
linearizable by construction.

1. Time to accept a --operations history (default 10,000 operations on 10 keys), median of
   --rounds (target <= 5 s).
2. Time to refuse the same history with one stale read put in (a get late in the history
   answers the value of a put overwritten by a write that returned before the get's call).

With --json, one JSON document of the figures instead of the lines; on a terminal, a progress
line shows which figure and round is being measured.

Usage: python scripts/bench/kvraft_checker.py [--operations N] [--keys K] [--clients C]
                                              [--rounds R] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, ROOT)

from _report import Report  # noqa: E402
from kvraft.history import Operation  # noqa: E402
from kvraft.linearizability import check  # noqa: E402

TARGET_SECONDS = 5.0
MICROS = 1_000  # nanoseconds


def simulated_history(operations: int, keys: int, clients: int, seed: int) -> list[Operation]:
    """A linearizable history (see the module docstring)."""
    rng = random.Random(seed)
    free_at = [(rng.randrange(1000) * MICROS, client) for client in range(clients)]
    heapq.heapify(free_at)
    planned = []  # (instant, index, client, kind, key, value, call, return | None)
    for index in range(operations):
        now, client = heapq.heappop(free_at)
        call = now + rng.randrange(5, 200) * MICROS
        latency = rng.randrange(200, 5000) * MICROS
        if rng.random() < 0.01:
            latency += 50_000 * MICROS
        roll = rng.random()
        kind = "get" if roll < 0.5 else "put" if roll < 0.75 else "append"
        key = f"key{rng.randrange(keys)}"
        value = "" if kind == "get" else f"{client}.{index};"
        returned = rng.random() > 0.003
        took_effect = returned or rng.random() < 0.5
        instant = call + rng.randrange(latency + 1) if took_effect else None
        planned.append((instant, index, client, kind, key, value, call,
                        call + latency if returned else None))
        heapq.heappush(free_at, (call + latency, client))
    values: dict[str, str] = {}
    outputs: dict[int, str | None] = {}
    for instant, index, _, kind, key, value, _, returned in sorted(
            (p for p in planned if p[0] is not None), key=lambda p: (p[0], p[1])):
        outputs[index] = values.get(key, "") if kind == "get" else ""
        if kind == "put":
            values[key] = value
        elif kind == "append":
            values[key] = values.get(key, "") + value
    history = []
    for _, index, client, kind, key, value, call, returned in planned:
        output = outputs.get(index, "") if returned is not None else None
        history.append(Operation(client, kind, key, value, output, call, returned))
    return history


def with_stale_read(history: list[Operation]) -> list[Operation]:
    """The history with one late get changed into a stale read: it answers the value a put P
    wrote although another write W on its key was called after P returned and returned before
    the get was called (every value is unique, so no order makes that legal)."""
    for g in reversed(range(len(history))):
        read = history[g]
        if read.kind != "get" or not read.returned:
            continue
        same_key = [o for o in history if o.key == read.key and o.kind != "get" and o.returned
                    and o.return_nanos < read.call_nanos]
        latest_write_call = max((o.call_nanos for o in same_key), default=None)
        for old in same_key:
            if old.kind == "put" and old.return_nanos < latest_write_call:
                changed = list(history)
                changed[g] = Operation(read.client_id, "get", read.key, "", old.value,
                                       read.call_nanos, read.return_nanos)
                return changed
    raise RuntimeError("no get to make stale: use more operations")


def timed_check(history: list[Operation], timeout_seconds: float) -> tuple[float, str]:
    started = time.perf_counter()
    result = check(history, timeout_seconds=timeout_seconds)
    return time.perf_counter() - started, result.verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if min(args.operations, args.keys, args.clients, args.rounds) < 1:
        parser.error("--operations, --keys, --clients and --rounds must be at least 1")

    report = Report("kvraft_checker", as_json=args.json)
    report.progress("building the history")
    history = simulated_history(args.operations, args.keys, args.clients, args.seed)
    label = f"{args.operations} operations, {args.keys} keys, {args.clients} clients"
    accepted = report.rounds(f"accepting {label}", args.rounds,
                             lambda: timed_check(history, 60.0))
    seconds = statistics.median(t for t, _ in accepted)
    verdicts = sorted({v for _, v in accepted})
    ok = verdicts == ["ok"] and seconds <= TARGET_SECONDS
    report.figure("accept", f"check {label}: {seconds:.2f} s, verdict "
                  f"{'/'.join(verdicts)} (target <= {TARGET_SECONDS:.0f} s, ok)  "
                  f"... {'ok' if ok else 'MISSED'}", ok=ok, seconds=round(seconds, 3),
                  verdict="/".join(verdicts), operations=args.operations, keys=args.keys,
                  clients=args.clients, target_seconds=TARGET_SECONDS)

    stale = with_stale_read(history)
    refused = report.rounds(f"refusing a stale read in {label}", args.rounds,
                            lambda: timed_check(stale, 60.0))
    seconds = statistics.median(t for t, _ in refused)
    verdicts = sorted({v for _, v in refused})
    ok = verdicts == ["illegal"]
    report.figure("refuse_stale_read", f"check the same with one stale read: {seconds:.2f} s, "
                  f"verdict {'/'.join(verdicts)} (expected illegal)  ... "
                  f"{'ok' if ok else 'MISSED'}", ok=ok, seconds=round(seconds, 3),
                  verdict="/".join(verdicts), operations=args.operations, keys=args.keys)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
