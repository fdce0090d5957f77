"""Benchmark the KV server (issue 3), each figure measured in this run.

1. Throughput: 10 clients pipelining Delete/Put/Get over loopback for 5 s against
   `python -m kv server`, and the same load against a bare threaded Python line-echo server
   (the ceiling for this language: it only splits lines and writes them back). Target >= 40%.
2. Memory: 4 slow clients that never read each provoke 2,000 messages of 4 KiB; the server's
   peak RSS (VmHWM) may grow by at most 4 x 500 x 4 KiB + 20% (the store is preloaded first,
   so its own growth is not counted).

Servers run as separate processes; the load runs here. With --json, one JSON document of the
figures instead of the lines; on a terminal, a progress line shows what is being measured.

Usage: python scripts/bench/kv.py [--seconds S] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)

from kv.loadgen import make_round, run_load  # noqa: E402
from kv.protocol import LineSplitter  # noqa: E402
from kv.server import apply_lines  # noqa: E402
from kv.store import KVStore  # noqa: E402
from _report import Report  # noqa: E402

VALUE_BYTES = 4096


def echo_server(port_out) -> None:
    """A bare threaded line-echo server: one thread per connection, echoes complete lines."""
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], file=port_out, flush=True)

    def serve(conn: socket.socket) -> None:
        pending = b""
        with conn:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                lines = data[:cut].split(b"\n")[:-1]
                conn.sendall(b"".join(line + b"\n" for line in lines))

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def start(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    line = proc.stdout.readline()
    return proc, int(line.strip().rsplit(":", 1)[-1].split()[-1])


def peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def memory_figure() -> tuple[int, int]:
    proc, port = start([sys.executable, "-m", "kv", "server", "--port", "0"])
    try:
        value = b"v" * VALUE_BYTES
        setup = socket.create_connection(("127.0.0.1", port))
        # 4 keys x 20 values: a Get of one key queues 20 messages of 4 KiB.
        setup.sendall(b"".join(f"Put:mem_{i}:".encode() + value + b"\n"
                               for i in range(4) for _ in range(20)))
        setup.sendall(b"Get:mem_0\n")
        got = b""
        while got.count(b"\n") < 20:
            got += setup.recv(1 << 20)
        time.sleep(0.5)
        before = peak_rss_bytes(proc.pid)
        slow = []
        for i in range(4):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"Get:mem_{i}\n".encode() * 100)  # 2,000 messages, never read
            slow.append(sock)
        time.sleep(2.0)
        growth = peak_rss_bytes(proc.pid) - before
        for sock in slow + [setup]:
            sock.close()
        return growth, int(4 * 500 * VALUE_BYTES * 1.2)
    finally:
        proc.terminate()
        proc.wait()


def work_only_ceiling(seconds: float = 2.0) -> float:
    """Ops/s of the per-request work alone, on one thread, no sockets or threads: split the
    load generator's rounds into lines, parse and apply them to a KVStore and format the Get
    replies with the server's own `apply_lines`, join the replies. No server doing that work
    can go faster in this language; the rest of the gap to it is the threads, the hand-offs
    and the sockets."""
    payload, _ = make_round(0, 64, echo=False)
    splitter, store = LineSplitter(), KVStore()
    delivered: list = []
    operations = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(100):
            lines = splitter.feed(payload)
            apply_lines(store, lines, delivered.append)
            for replies in delivered:
                b"".join(replies)
            delivered.clear()
            operations += len(lines)
    return operations / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.echo_server:
        echo_server(sys.stdout)
        return 0
    report = Report("kv", as_json=args.json)
    ours, ceiling = [], []
    for k in range(args.rounds):
        for cmd, rates, echo, what in (
                ([sys.executable, "-m", "kv", "server", "--port", "0"], ours, False,
                 "kv server"),
                ([sys.executable, os.path.abspath(__file__), "--echo-server"], ceiling, True,
                 "line-echo ceiling")):
            report.progress(f"throughput, {what}: round {k + 1}/{args.rounds} "
                            f"({args.seconds:g} s)")
            proc, port = start(cmd)
            try:
                result = run_load("127.0.0.1", port, 10, args.seconds, 64, echo=echo)
                rates.append(result.operations / result.seconds)
            finally:
                proc.terminate()
                proc.wait()
    mine, base = statistics.median(ours), statistics.median(ceiling)
    ratio = mine / base
    report.figure("throughput", f"throughput, 10 pipelining clients  {mine:>10,.0f} ops/s   "
                  f"line-echo ceiling {base:>10,.0f} lines/s  ratio {ratio:.2f} "
                  f"(target >= 0.40) {'ok' if ratio >= 0.40 else 'BELOW TARGET'}",
                  ok=ratio >= 0.40, ops_per_s=mine, line_echo_lines_per_s=base, ratio=ratio,
                  target=0.40, clients=10, seconds=args.seconds, rounds=args.rounds)
    report.progress("work-only ceiling (2 s)")
    work = work_only_ceiling()
    report.figure("work_only_ceiling", f"  explained by: the per-request work alone (split, "
                  f"parse, apply, format: the server's apply_lines) on one thread runs "
                  f"{work:,.0f} ops/s; the server reaches {mine / work:.2f} of it",
                  ops_per_s=work, server_share=mine / work)
    report.progress("memory, 4 slow clients x 2,000 msgs")
    growth, limit = memory_figure()
    report.figure("memory", f"memory, 4 slow clients x 2,000 msgs  peak RSS "
                  f"+{growth / 2**20:.1f} MiB   limit {limit / 2**20:.1f} MiB  "
                  f"{'ok' if growth <= limit else 'OVER LIMIT'}",
                  ok=growth <= limit, peak_rss_growth_bytes=growth, limit_bytes=limit)
    return report.finish()

if __name__ == "__main__":
    sys.exit(main())
