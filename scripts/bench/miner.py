"""Benchmark the miner (issue 5), every figure measured in this run, the median of --rounds.

1. One miner's hashes/s (`miner.bitcoin.scan`) against a bare hashlib loop that copies a sha256
   object pre-fed with the message, on the same nonces. Target >= 0.90.
2. End to end, a 2,000,000-nonce request with one miner and with two (server and miners are
   `python -m miner` processes; the client is timed from its request to the answer).
   Target: two miners >= 1.7x one.
3. Fairness: with two miners, a 100,000-nonce request submitted while a 20,000,000-nonce one
   runs, against the same request on the idle cluster of the same round. Target: below 3x in
   every round (the worst round is the figure that must meet it; the median is shown too).

With --json, one JSON document of the figures instead of the lines; on a terminal, a progress
line shows which figure and round is being measured.

Usage: python scripts/bench/miner.py [--rounds R] [--only loop|speedup|fairness] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, ROOT)

import lsp  # noqa: E402
from miner import bitcoin, client  # noqa: E402
from _report import Report  # noqa: E402

DATA = "bench"


def bare_hashlib(count: int) -> float:
    start = time.perf_counter()
    prefed = hashlib.sha256(f"{DATA} ".encode())
    for nonce in range(count):
        state = prefed.copy()
        state.update(b"%d" % nonce)
        state.digest()
    return count / (time.perf_counter() - start)


def scan_rate(count: int) -> float:
    start = time.perf_counter()
    bitcoin.scan(DATA, 0, count - 1)
    return count / (time.perf_counter() - start)


class Cluster:
    """A server and `miners` miner processes; `request()` times one request from here."""

    def __init__(self, miners: int) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        command = [sys.executable, "-m", "miner"]
        self.server = subprocess.Popen(command + ["server", "0", "-v"], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = int(self.server.stdout.readline().split()[-1])
        self.log: queue.Queue = queue.Queue()
        threading.Thread(target=self._collect, daemon=True).start()
        # The miners' own lines (connecting, joined) are not figures: the server's log says
        # when each joined, so they are silenced.
        self.miners = [subprocess.Popen(command + ["miner", f"127.0.0.1:{self.port}"], cwd=ROOT,
                                        env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL) for _ in range(miners)]
        joined = 0
        deadline = time.monotonic() + 30
        while joined < miners:
            line = self.log.get(timeout=max(deadline - time.monotonic(), 0.1))
            joined += " joined" in line

    def _collect(self) -> None:
        for line in self.server.stderr:
            self.log.put(line)

    def request(self, data: str, max_nonce: int) -> float:
        # Connected first: the figure is the request's time, not the LSP handshake's.
        conn = lsp.new_client(f"127.0.0.1:{self.port}", 0)
        try:
            start = time.perf_counter()
            answer = client.request(conn, data, max_nonce)
            seconds = time.perf_counter() - start
        finally:
            conn.close()
        if not answer.startswith("Result"):
            raise RuntimeError(f"request failed: {answer}")
        return seconds

    def close(self) -> None:
        for proc in [self.server, *self.miners]:
            proc.kill()
            proc.wait()


def end_to_end(miners: int, nonces: int) -> float:
    cluster = Cluster(miners)
    try:
        cluster.request("warm-up", 50_000)   # miners measure their speed
        return cluster.request(DATA, nonces - 1)
    finally:
        cluster.close()


def huge_request(cluster: Cluster) -> None:
    try:
        cluster.request("huge", 19_999_999)
    except RuntimeError:
        pass   # the round ended first: the cluster was closed under it


def fairness() -> tuple[float, float]:
    cluster = Cluster(2)
    try:
        cluster.request("warm-up", 50_000)
        idle = cluster.request("small", 99_999)
        threading.Thread(target=huge_request, args=(cluster,), daemon=True).start()
        time.sleep(0.5)   # the huge request has every miner busy
        loaded = cluster.request("small2", 99_999)
        return idle, loaded
    finally:
        cluster.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("loop", "speedup", "fairness"),
                        help="measure only this figure")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    rounds = args.rounds
    report = Report("miner", as_json=args.json)

    def median(label, fn, *a):
        return statistics.median(report.rounds(label, rounds, lambda: fn(*a)))

    if args.only in (None, "loop"):
        count = 500_000
        bare = median("bare hashlib loop", bare_hashlib, count)
        ours = median("one miner's loop", scan_rate, count)
        ratio = ours / bare
        report.figure("miner_loop", f"one miner's loop        {ours:>12,.0f} hashes/s   bare "
                      f"hashlib loop {bare:>12,.0f}   ratio {ratio:.2f} (target >= 0.90) "
                      f"{'ok' if ratio >= 0.90 else 'BELOW TARGET'}",
                      ok=ratio >= 0.90, hashes_per_s=ours, bare_hashlib_hashes_per_s=bare,
                      ratio=ratio, target=0.90, nonces=count, rounds=rounds)

    if args.only in (None, "speedup"):
        one = median("2,000,000 nonces, one miner", end_to_end, 1, 2_000_000)
        two = median("2,000,000 nonces, two miners", end_to_end, 2, 2_000_000)
        speedup = one / two
        report.figure("two_miners_speedup", f"2,000,000 nonces        one miner {one:6.2f} s   "
                      f"two miners {two:6.2f} s   speedup {speedup:.2f} (target >= 1.7) "
                      f"{'ok' if speedup >= 1.7 else 'BELOW TARGET'}",
                      ok=speedup >= 1.7, one_miner_s=one, two_miners_s=two, speedup=speedup,
                      target=1.7, nonces=2_000_000, rounds=rounds)

    if args.only in (None, "fairness"):
        pairs = report.rounds("fairness, 100,000 behind 20,000,000", rounds, fairness)
        idle = statistics.median(p[0] for p in pairs)
        loaded = statistics.median(p[1] for p in pairs)
        ratios = [p[1] / p[0] for p in pairs]
        worst = max(ratios)
        report.figure("fairness", f"100,000 nonces          idle cluster {idle:6.3f} s   behind "
                      f"a 20,000,000 request {loaded:6.3f} s   ratio median "
                      f"{statistics.median(ratios):.2f}, worst round {worst:.2f} (target < 3 in "
                      f"every round) {'ok' if worst < 3 else 'ABOVE TARGET'}",
                      ok=worst < 3, idle_s=idle, loaded_s=loaded,
                      ratio=statistics.median(ratios), worst_ratio=worst, round_ratios=ratios,
                      target=3, rounds=rounds)
    return report.finish()

if __name__ == "__main__":
    sys.exit(main())
