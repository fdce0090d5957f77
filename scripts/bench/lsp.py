"""Benchmark LSP (issues 4 and 20), every figure measured in this run, each the median of --rounds.

1. Echo round trips/s with window 1 (latency bound): a client here, `python -m lsp server`
   as another process.
2. One-way throughput with 1,000-byte payloads, window and unacked cap 64 (messages/s, MB/s),
   printed beside its ceiling: encoding and decoding the same Data and Ack messages on one
   thread, which the Go wire format bounds. Each round measures both, one after the other;
   the ratio (the median of the rounds' ratios) must reach 0.70 (issue 20). Also against a
   raw Python UDP sender/receiver pair (two processes, counting what the receiver got):
   target >= 35%.
3. Goodput at 10% loss (both directions) as a fraction of the lossless goodput.

With --json, one JSON document of the figures instead of the lines; on a terminal, a progress
line shows which figure and round is being measured.

Usage: python scripts/bench/lsp.py [--messages N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, ROOT)

import lsp  # noqa: E402
from lsp import lspnet  # noqa: E402
from lsp.message import accept_data, data_message, decode, encode, new_ack  # noqa: E402
from _report import Report  # noqa: E402

PAYLOAD = b"x" * 1000
CEILING_TARGET = 0.70   # issue 20: one-way msgs/s at least this fraction of the codec ceiling
FAST = dict(epoch_limit=20, epoch_millis=100, window_size=64, max_back_off_interval=0,
            max_unacked_messages=64)


# ---- helper processes -------------------------------------------------------------------------

def udp_sink(count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    got = 0
    first = last = None
    sock.settimeout(2.0)
    try:
        while got < count:
            data = sock.recv(2048)
            if data == b"END":
                break
            last = time.perf_counter()
            first = first or last
            got += 1
    except socket.timeout:
        pass
    print(got, (last - first) if got > 1 else 0.0, flush=True)


def lsp_sink(count: int, drop: int) -> None:
    server = lsp.new_server(0, lsp.Params(**FAST))
    lspnet.set_write_drop_percent(drop)
    print(server.port, flush=True)
    first = None
    for _ in range(count):
        server.read()
        first = first or time.perf_counter()
    print(count, time.perf_counter() - first, flush=True)
    server.close()


def spawn(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return proc, int(proc.stdout.readline())


def finish(proc: subprocess.Popen) -> tuple[int, float]:
    got, seconds = proc.stdout.readline().split()
    proc.wait(timeout=60)
    return int(got), float(seconds)


# ---- figures ----------------------------------------------------------------------------------

def echo_round_trips(count: int) -> float:
    server = subprocess.Popen([sys.executable, "-m", "lsp", "server", "--port", "0", "--quiet"],
                              cwd=ROOT,
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline()).group(1))
        client = lsp.new_client(f"127.0.0.1:{port}", 0, lsp.Params())
        start = time.perf_counter()
        for i in range(count):
            client.write(b"%d" % i)
            client.read()
        rate = count / (time.perf_counter() - start)
        client.close()
        return rate
    finally:
        server.terminate()
        server.wait()


def udp_one_way(count: int) -> float:
    sink, port = spawn("--udp-sink", str(count))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(count):
        sock.sendto(PAYLOAD, ("127.0.0.1", port))
    for _ in range(5):
        sock.sendto(b"END", ("127.0.0.1", port))
    got, seconds = finish(sink)
    return got / seconds


def lsp_one_way(count: int, drop: int = 0) -> float:
    sink, port = spawn("--lsp-sink", str(count), str(drop))
    lspnet.set_write_drop_percent(drop)
    client = lsp.new_client(f"127.0.0.1:{port}", 0, lsp.Params(**FAST))
    for _ in range(count):
        client.write(PAYLOAD)
    got, seconds = finish(sink)
    lspnet.reset()
    client.close()
    return got / seconds


def codec_ceiling(seconds: float = 1.0) -> float:
    """Data + Ack encode/decode/verify per second on one thread: what the wire format allows."""
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for seq in range(1, 201):
            message = decode(encode(data_message(1, seq, PAYLOAD)))
            accept_data(message)
            decode(encode(new_ack(1, seq)))
        done += 200
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--udp-sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lsp-sink", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.udp_sink:
        udp_sink(args.udp_sink)
        return 0
    if args.lsp_sink:
        lsp_sink(*args.lsp_sink)
        return 0
    n, rounds = args.messages, args.rounds
    report = Report("lsp", as_json=args.json)

    def median(label, fn, *a):
        return statistics.median(report.rounds(label, rounds, lambda: fn(*a)))

    echo = median("echo round trips, window 1", echo_round_trips, 2000)
    report.figure("echo_window1", f"echo round trips, window 1        {echo:>10,.0f} "
                  f"round trips/s", round_trips_per_s=echo, rounds=rounds)
    # Each round measures LSP one-way and then, at once, the codec ceiling, so that the
    # ratio compares two figures taken under the same machine load.
    pairs = report.rounds("one-way, LSP, then the codec ceiling", rounds,
                          lambda: (lsp_one_way(n), codec_ceiling()))
    ours = statistics.median(rate for rate, _ in pairs)
    ceiling = statistics.median(limit for _, limit in pairs)
    ratio_to_ceiling = statistics.median(rate / limit for rate, limit in pairs)
    raw = median("one-way, raw UDP pair", udp_one_way, n)
    ratio = ours / raw
    report.figure("one_way_window64",
                  f"one-way 1,000-byte, window 64     {ours:>10,.0f} msgs/s "
                  f"{ours * 1000 / 1e6:6.1f} MB/s   ceiling {ceiling:>10,.0f} msgs/s   "
                  f"ratio {ratio_to_ceiling:.2f} (target >= {CEILING_TARGET}) "
                  f"{'ok' if ratio_to_ceiling >= CEILING_TARGET else 'BELOW TARGET'}",
                  ok=ratio_to_ceiling >= CEILING_TARGET, msgs_per_s=ours,
                  mb_per_s=ours * 1000 / 1e6, ceiling_msgs_per_s=ceiling,
                  ratio_to_ceiling=ratio_to_ceiling, target=CEILING_TARGET,
                  rounds_msgs_per_s=[rate for rate, _ in pairs],
                  rounds_ceiling_msgs_per_s=[limit for _, limit in pairs],
                  messages=n, rounds=rounds)
    report.figure("codec_ceiling", f"  ceiling: encode+decode of Data and Ack on one thread "
                  f"{ceiling:,.0f} msgs/s (median of the rounds above)", msgs_per_s=ceiling)
    report.figure("one_way_vs_raw_udp",
                  f"  raw UDP pair {raw:>10,.0f} msgs/s   LSP/raw ratio {ratio:.2f} "
                  f"(target >= 0.35) {'ok' if ratio >= 0.35 else 'BELOW TARGET'}",
                  ok=ratio >= 0.35, raw_udp_msgs_per_s=raw, ratio=ratio, target=0.35,
                  rounds=rounds)
    lossy = median("goodput at 10% loss", lsp_one_way, n // 4, 10)
    report.figure("goodput_10pct_loss", f"goodput at 10% loss               {lossy:>10,.0f} "
                  f"msgs/s   fraction of lossless {lossy / ours:.2f}",
                  msgs_per_s=lossy, fraction_of_lossless=lossy / ours, messages=n // 4,
                  rounds=rounds)
    return report.finish()

if __name__ == "__main__":
    sys.exit(main())
