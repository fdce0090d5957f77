"""A load generator for the KV server (and, for the benchmark's ceiling, a line-echo server).

Each connection runs rounds: it writes `pipeline` requests in one go (Delete, Put, Get on a
key of its own, so each Get is answered by exactly one line), then reads the replies it expects
before the next round. Operations counted are requests whose round completed.

Threads: one `kv-load/client-I` per connection; results come back on a channel. With a
`progress` callback, each connection also writes its running count into its own slot of a list
that only it writes; the caller's thread reads the slots every `progress_every` seconds for
display (a stale read only makes the display lag).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable

import csp


@dataclass(frozen=True)
class LoadResult:
    operations: int
    seconds: float


def make_round(client: int, pipeline: int, echo: bool) -> tuple[bytes, int]:
    """The bytes of one round and how many reply lines it gets back."""
    triples = max(pipeline // 3, 1)
    lines = []
    for j in range(triples):
        key = f"load_{client}_{j}"
        lines += [f"Delete:{key}", f"Put:{key}:value_{j}", f"Get:{key}"]
    payload = ("\n".join(lines) + "\n").encode()
    return payload, (len(lines) if echo else triples)


def run_load(host: str, port: int, clients: int, seconds: float, pipeline: int,
             echo: bool = False, progress: Callable[[int, float], None] | None = None,
             progress_every: float = 0.5) -> LoadResult:
    """Drive `clients` connections for `seconds`; raises OSError if one cannot connect.
    `progress(operations so far, seconds so far)` is called on the caller's thread every
    `progress_every` seconds while the load runs."""
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(clients)]
    results = csp.Chan(None)
    deadline = time.monotonic() + seconds
    so_far = [0] * clients   # slot i written only by connection i

    def drive(index: int, sock: socket.socket) -> None:
        payload, replies_per_round = make_round(index, pipeline, echo)
        operations_per_round = payload.count(b"\n")
        done = 0
        try:
            while time.monotonic() < deadline:
                sock.sendall(payload)
                expected = replies_per_round
                while expected > 0:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    expected -= chunk.count(b"\n")
                done += operations_per_round
                so_far[index] = done
        except OSError:
            pass  # the count so far stands
        finally:
            sock.close()
            results.send(done)

    start = time.monotonic()
    threads = [csp.go(drive, i, s, name=f"kv-load/client-{i}") for i, s in enumerate(socks)]
    total = finished = 0
    ticker = csp.Ticker(progress_every) if progress else None
    result = csp.Recv(results)
    tick = csp.Recv(ticker.c if ticker else None)  # no ticker: a nil channel, never ready
    try:
        while finished < len(threads):
            case, value, _ = csp.select_case(result, tick)
            if case is result:
                total += value
                finished += 1
            else:
                progress(sum(so_far), time.monotonic() - start)
    finally:
        if ticker is not None:
            ticker.stop()
    elapsed = time.monotonic() - start
    for thread in threads:
        thread.join()
    return LoadResult(total, elapsed)
