"""Benchmark the miner (issue 5), every figure measured in this run, the median of --rounds.

1. One miner's hashes/s (`miner.bitcoin.scan`) against a bare hashlib loop that copies a sha256
   object pre-fed with the message, on the same nonces. Target >= 0.90.
2. End to end, a 2,000,000-nonce request with one miner and with two (server and miners are
   `python -m miner` processes; the client is timed from its request to the answer).
   Target: two miners >= 1.7x one.
3. Fairness: with two miners, a 100,000-nonce request submitted while a 20,000,000-nonce one
   runs, against the same request on the idle cluster. Target <= 3x.

Usage: python scripts/bench/miner.py [--rounds R]
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

from miner import bitcoin, worker  # noqa: E402

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
        self.miners = [subprocess.Popen(command + ["miner", f"127.0.0.1:{self.port}"], cwd=ROOT,
                                        env=env) for _ in range(miners)]
        joined = 0
        deadline = time.monotonic() + 30
        while joined < miners:
            line = self.log.get(timeout=max(deadline - time.monotonic(), 0.1))
            joined += " joined" in line

    def _collect(self) -> None:
        for line in self.server.stderr:
            self.log.put(line)

    def request(self, data: str, max_nonce: int) -> float:
        conn = worker.connect(f"127.0.0.1:{self.port}")
        try:
            start = time.perf_counter()
            answer = worker.request(conn, data, max_nonce)
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


def fairness() -> tuple[float, float]:
    cluster = Cluster(2)
    try:
        cluster.request("warm-up", 50_000)
        idle = cluster.request("small", 99_999)
        threading.Thread(target=cluster.request, args=("huge", 19_999_999), daemon=True).start()
        time.sleep(0.5)   # the huge request has every miner busy
        loaded = cluster.request("small2", 99_999)
        return idle, loaded
    finally:
        cluster.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = args.rounds
    ok = True

    count = 500_000
    bare = statistics.median(bare_hashlib(count) for _ in range(rounds))
    ours = statistics.median(scan_rate(count) for _ in range(rounds))
    ratio = ours / bare
    ok &= ratio >= 0.90
    print(f"one miner's loop        {ours:>12,.0f} hashes/s   bare hashlib loop {bare:>12,.0f}"
          f"   ratio {ratio:.2f} (target >= 0.90) {'ok' if ratio >= 0.90 else 'BELOW TARGET'}")

    one = statistics.median(end_to_end(1, 2_000_000) for _ in range(rounds))
    two = statistics.median(end_to_end(2, 2_000_000) for _ in range(rounds))
    speedup = one / two
    ok &= speedup >= 1.7
    print(f"2,000,000 nonces        one miner {one:6.2f} s   two miners {two:6.2f} s   speedup "
          f"{speedup:.2f} (target >= 1.7) {'ok' if speedup >= 1.7 else 'BELOW TARGET'}")

    pairs = [fairness() for _ in range(rounds)]
    idle = statistics.median(p[0] for p in pairs)
    loaded = statistics.median(p[1] for p in pairs)
    slowdown = loaded / idle
    ok &= slowdown <= 3
    print(f"100,000 nonces          idle cluster {idle:6.3f} s   behind a 20,000,000 request "
          f"{loaded:6.3f} s   ratio {slowdown:.2f} (target <= 3) "
          f"{'ok' if slowdown <= 3 else 'ABOVE TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
