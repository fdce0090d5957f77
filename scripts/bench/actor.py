"""Benchmark the actor system (issues 9 and 20), every figure measured in this run.

1. Local tell, one sender to one actor: msgs/s, against pykka carrying the same
   codec-marshalled messages (the sender encodes, the actor decodes) and plain pykka.
   Target >= 1.0x marshalling pykka.
2. Ask round trips/s (tell + channel-ref reply), against pykka's ask (marshalled and plain).
   Target >= 1.0x marshalling pykka.
3. Remote tell between two systems on loopback (the receiving system in another process),
   pipelined: msgs/s and MB/s, against its ceiling, a raw TCP sender writing, one write each,
   the frame a single RemoteTell of the same message makes, to a process that reads them.
   Target >= 0.30 of the ceiling (issue 20), the median of --rounds rounds' ratios; each round
   measures ours and then, at once, the ceiling, so that a ratio compares figures taken under
   the same machine load. Both are timed the same way, on the receiving side, from the first
   message received to the last (so neither counts its connection set-up); ours is also shown
   timed from the sender's start, the lazy connection set-up included. Beside them, the codec
   alone: the same messages marshalled (codec.dumps) and unmarshalled (codec.loads) on one
   thread each, which every tell must pay however it travels (the sender and the receiver are
   separate processes, so the slower of the two bounds the figure).
4. Memory per queued message with 100,000 messages waiting in one mailbox.

Figures 1 and 2 (ours and each baseline alike) are the best of --runs runs (default 3): on a
small shared machine one run of a fraction of a second varies by a factor of two.

--profile instead measures one remote-tell run and prints where its CPU goes: microseconds
per message for each thread of both processes (Linux: /proc/self/task/*/schedstat), the
sender's main thread including the bench's own message building.

Needs pykka (requirements-bench.txt) for figures 1 and 2. Usage:
python scripts/bench/actor.py [--messages N] [--runs R] [--rounds R] [--remote-only]
                              [--profile] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, ROOT)

import csp  # noqa: E402
import rpc  # noqa: E402
from rpc import codec  # noqa: E402
from actor import Actor, ActorRef, ActorSystem, Mailbox  # noqa: E402
from _report import Report  # noqa: E402


@rpc.register
@dataclass
class Work:
    value: int
    text: str = "payload"


@rpc.register
@dataclass
class SingleTell:
    """The baseline's frame: one tell alone (destination and marshalled message), as a sender
    that writes each tell separately would frame it."""
    ref: ActorRef
    payload: bytes


@rpc.register
@dataclass
class Ask:
    value: int
    reply_to: ActorRef


class Sink(Actor):
    """Counts Work; at `expected` (sent first as an int), tells the waiter."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.expected = None
        self.waiter = None
        self.seen = 0
        self.first = 0.0

    def on_message(self, message):
        if type(message) is Work:
            self.seen += 1
            if self.seen == 1:
                self.first = time.perf_counter()   # when the first one arrived (bench only)
            if self.seen == self.expected:
                self.ctx.tell(self.waiter, [self.seen, self.first])
        elif type(message) is list:
            self.expected, self.waiter = message


class Answer(Actor):
    def on_message(self, message):
        self.ctx.tell(message.reply_to, message.value)


def ours_local(n: int) -> float:
    system = ActorSystem()
    try:
        sink = system.start_actor(Sink)
        done_ref, done = system.new_channel_ref()
        system.tell(sink, [n, done_ref])
        start = time.perf_counter()
        for i in range(n):
            system.tell(sink, Work(i))
        done.recv()
        return n / (time.perf_counter() - start)
    finally:
        system.close()


def ours_ask(n: int) -> float:
    system = ActorSystem()
    try:
        answer = system.start_actor(Answer)
        start = time.perf_counter()
        for i in range(n):
            ref, chan = system.new_channel_ref()
            system.tell(answer, Ask(i, ref))
            chan.recv()
        return n / (time.perf_counter() - start)
    finally:
        system.close()


def pykka_local(n: int, marshal: bool) -> float:
    import pykka
    done = threading.Event()

    class PSink(pykka.ThreadingActor):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_receive(self, message):
            if marshal:
                message = codec.loads(message)
            self.seen += 1
            if self.seen == n:
                done.set()

    ref = PSink.start()
    try:
        start = time.perf_counter()
        for i in range(n):
            ref.tell(codec.dumps(Work(i)) if marshal else Work(i))
        done.wait()
        return n / (time.perf_counter() - start)
    finally:
        ref.stop()


def pykka_ask(n: int, marshal: bool) -> float:
    import pykka

    class PAnswer(pykka.ThreadingActor):
        def on_receive(self, message):
            if marshal:
                return codec.dumps(codec.loads(message)["value"])
            return message["value"]

    ref = PAnswer.start()
    try:
        start = time.perf_counter()
        for i in range(n):
            reply = ref.ask(codec.dumps({"value": i}) if marshal else {"value": i})
            if marshal:
                codec.loads(reply)
        return n / (time.perf_counter() - start)
    finally:
        ref.stop()


# ---- remote ------------------------------------------------------------------------------------

def remote_sink(n: int, profile: bool = False) -> None:
    """The receiving process. With `profile`, also prints each of its threads' CPU seconds
    over the messages (JSON) and waits for the sender's "bye" to close, so that the sender's
    connection threads are still there to be measured."""
    system = ActorSystem()
    sink = system.start_actor(Sink)
    done_ref, done = system.new_channel_ref()
    system.tell(sink, [n, done_ref])
    print(system.address, sink.counter, flush=True)
    sys.stdin.readline()   # the sender's "go"
    before = thread_cpu_seconds({system.address: "B"}) if profile else {}
    start = time.perf_counter()
    (_, first), _ = done.recv()
    end = time.perf_counter()
    print(end - first, end - start, system.stats().remote_bytes_received, flush=True)
    if profile:
        after = thread_cpu_seconds({system.address: "B"})
        print(json.dumps({name: seconds - before.get(name, 0.0)
                          for name, seconds in after.items()}), flush=True)
        sys.stdin.readline()   # the sender's "bye"
    system.close()


def thread_cpu_seconds(addresses: dict[str, str]) -> dict[str, float]:
    """Each live thread of this process with the CPU seconds it has used, by name, each
    address in `addresses` (and its port) replaced by its label. Linux only
    (/proc/self/task/*/schedstat); {} elsewhere."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    for address, label in addresses.items():
        port = address.rpartition(":")[2]
        names = {tid: name.replace(address, label).replace(f":{port}/", f":{label}/")
                 for tid, name in names.items()}
    seconds = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                nanoseconds = int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue   # the thread has just ended
        seconds[names.get(int(tid), f"thread {tid}")] = nanoseconds / 1e9
    return seconds


def profile_remote(n: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """One remote-tell run, as ours_remote: (msgs/s, the sending process's CPU seconds by
    thread, the receiving process's)."""
    sink = spawn("--remote-sink", str(n), "--profile")
    address, counter = sink.stdout.readline().split()
    system = ActorSystem()
    labels = {system.address: "A", address: "B"}
    try:
        ref = ActorRef(address, int(counter))
        before = thread_cpu_seconds(labels)
        sink.stdin.write("go\n")
        sink.stdin.flush()
        for i in range(n):
            system.tell(ref, Work(i))
        seconds, _, _ = sink.stdout.readline().split()
        after = thread_cpu_seconds(labels)
        receiver = json.loads(sink.stdout.readline())
        sink.stdin.write("bye\n")
        sink.stdin.flush()
        sink.wait(timeout=60)
    finally:
        system.close()
    sender = {name: spent - before.get(name, 0.0) for name, spent in after.items()}
    return n / float(seconds), sender, receiver


def print_profile(report: Report, n: int) -> None:
    """--profile: where a remote tell's CPU goes, per process and thread (A sends, B
    receives; the sender's main thread also builds the bench's messages)."""
    rate, sender, receiver = profile_remote(n)
    lines = [f"profile of one remote-tell run of {n:,} messages ({rate:,.0f} msgs/s): "
             f"CPU microseconds per message, by thread"]
    for side, spent in (("sending process (A)", sender), ("receiving process (B)", receiver)):
        total = sum(spent.values())
        lines.append(f"  {side:38s} {total / n * 1e6:6.2f}")
        for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
            if seconds / n * 1e6 >= 0.005:
                lines.append(f"    {name:36s} {seconds / n * 1e6:6.2f}")
    report.figure("remote_tell_profile", "\n".join(lines), msgs_per_s=rate, messages=n,
                  sender_us_per_msg={k: v / n * 1e6 for k, v in sender.items()},
                  receiver_us_per_msg={k: v / n * 1e6 for k, v in receiver.items()})


def raw_sink(n_bytes: int) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    got = 0
    start = None
    while got < n_bytes:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        start = start or time.perf_counter()
        got += len(chunk)
    print(time.perf_counter() - start, got, flush=True)


def spawn(*args):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))


def ours_remote(n: int) -> tuple[float, float, float, bytes]:
    """(msgs/s from the first message received, msgs/s from the sender's start, bytes/s,
    the frame one RemoteTell of the message makes)."""
    sink = spawn("--remote-sink", str(n))
    address, counter = sink.stdout.readline().split()
    system = ActorSystem()
    try:
        ref = ActorRef(address, int(counter))
        sink.stdin.write("go\n")
        sink.stdin.flush()
        for i in range(n):
            system.tell(ref, Work(i))
        seconds, from_start, received = sink.stdout.readline().split()
        sink.wait(timeout=60)
        frame = rpc.wire.encode_envelope(  # already a frame: length prefix included
            {"id": 1, "method": "RemoteTell.tell",
             "args": codec.to_wire(SingleTell(ref, codec.dumps(Work(1))))})
        return (n / float(seconds), n / float(from_start), int(received) / float(seconds),
                frame)
    finally:
        system.close()


def raw_remote(n: int, frame: bytes) -> float:
    sink = spawn("--raw-sink", str(n * len(frame)))
    port = int(sink.stdout.readline())
    sock = socket.create_connection(("127.0.0.1", port))
    for _ in range(n):          # one write per frame, as a sender of separate tells does
        sock.sendall(frame)
    seconds, _ = sink.stdout.readline().split()
    sock.close()
    sink.wait(timeout=60)
    return n / float(seconds)


def codec_alone(n: int) -> tuple[float, float]:
    """(codec.dumps msgs/s, codec.loads msgs/s) of the bench's message on this thread: what
    marshalling alone allows a sender and a receiver."""
    start = time.perf_counter()
    payloads = [codec.dumps(Work(i)) for i in range(n)]
    dumped = time.perf_counter()
    for payload in payloads:
        codec.loads(payload)
    loaded = time.perf_counter()
    return n / (dumped - start), n / (loaded - dumped)


def queued_bytes_per_message(count: int = 100_000) -> float:
    box = Mailbox()
    payloads = [codec.dumps(Work(i)) for i in range(count)]   # what the system queues
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for payload in payloads:
        box.push(payload)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    payload_bytes = sum(sys.getsizeof(p) for p in payloads)
    box.close()
    return (after - before + payload_bytes) / count


def local_figures(report: Report, n: int, best) -> None:
    """Figures 1 and 2: local tell and ask, against pykka."""
    ours = best(ours_local, n)
    marshalled, plain = best(pykka_local, n, True), best(pykka_local, n, False)
    report.figure("local_tell",
                  f"local tell        ours {ours:>9,.0f} msgs/s   marshalling pykka "
                  f"{marshalled:>9,.0f} ({ours / marshalled:.2f}x, target >= 1.0)   plain pykka "
                  f"{plain:>9,.0f} ({ours / plain:.2f}x)", ok=ours >= marshalled,
                  msgs_per_s=ours, marshalling_pykka=marshalled, plain_pykka=plain,
                  ratio=ours / marshalled, target=1.0)
    asks = n // 4
    ours = best(ours_ask, asks)
    marshalled, plain = best(pykka_ask, asks, True), best(pykka_ask, asks, False)
    report.figure("ask", f"ask round trips   ours {ours:>9,.0f} /s       marshalling pykka "
                  f"{marshalled:>9,.0f} ({ours / marshalled:.2f}x, target >= 1.0)   plain pykka "
                  f"{plain:>9,.0f} ({ours / plain:.2f}x)", ok=ours >= marshalled,
                  round_trips_per_s=ours, marshalling_pykka=marshalled, plain_pykka=plain,
                  ratio=ours / marshalled, target=1.0)


def remote_figure(report: Report, n: int, rounds: int) -> None:
    """Figure 3: remote tell against the raw TCP ceiling, with the codec alone beside them."""
    results = []
    for k in range(rounds):
        report.progress(f"remote tell, then raw TCP and the codec alone: round {k + 1}/{rounds}")
        rate, from_start, byte_rate, frame = ours_remote(n)
        raw = raw_remote(n, frame)
        dumps_rate, loads_rate = codec_alone(n)
        results.append((rate, from_start, byte_rate, raw, dumps_rate, loads_rate))
    rate, from_start, byte_rate, raw, dumps_rate, loads_rate = (
        statistics.median(column) for column in zip(*results))
    ratio = statistics.median(r[0] / r[3] for r in results)
    codec_floor = statistics.median(min(r[4], r[5]) for r in results)
    of_codec = statistics.median(r[0] / min(r[4], r[5]) for r in results)
    report.figure("remote_tell",
                  f"remote tell       ours {rate:>9,.0f} msgs/s {byte_rate / 1e6:5.1f} MB/s   "
                  f"ceiling: raw TCP, same frames {raw:>10,.0f} msgs/s   ratio {ratio:.2f} "
                  f"(target >= 0.30; median of {rounds} rounds)   from the sender's start "
                  f"{from_start:,.0f} msgs/s ({from_start / raw:.2f})",
                  ok=ratio >= 0.3, msgs_per_s=rate, mb_per_s=byte_rate / 1e6,
                  raw_tcp_msgs_per_s=raw, ceiling_msgs_per_s=raw, ratio=ratio, target=0.3,
                  from_start_msgs_per_s=from_start, rounds=rounds,
                  rounds_msgs_per_s=[r[0] for r in results],
                  rounds_ceiling_msgs_per_s=[r[3] for r in results])
    report.figure("remote_tell_codec",
                  f"  the codec alone, one thread each: dumps {dumps_rate:,.0f} msgs/s, loads "
                  f"{loads_rate:,.0f} msgs/s (ratio {codec_floor / raw:.2f} of the ceiling): "
                  f"remote tell runs at {of_codec:.2f} of the slower",
                  dumps_msgs_per_s=dumps_rate, loads_msgs_per_s=loads_rate,
                  codec_floor_msgs_per_s=codec_floor, codec_floor_ratio=codec_floor / raw,
                  ratio_to_codec=of_codec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3,
                        help="local tell and ask: the best of this many runs each")
    parser.add_argument("--rounds", type=int, default=3,
                        help="remote tell: the median of this many rounds")
    parser.add_argument("--remote-only", action="store_true",
                        help="only the remote tell figure")
    parser.add_argument("--profile", action="store_true",
                        help="only a profile of one remote-tell run: CPU per message by thread "
                             "(Linux)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--remote-sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--raw-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.remote_sink:
        remote_sink(args.remote_sink, args.profile)
        return 0
    if args.raw_sink:
        raw_sink(args.raw_sink)
        return 0
    n = args.messages

    def best(fn, *fn_args):
        return max((fn(*fn_args) for _ in range(args.runs)),
                   key=lambda result: result[0] if type(result) is tuple else result)

    report = Report("actor", as_json=args.json)
    if args.profile:
        print_profile(report, n)
        return report.finish()
    if not args.remote_only:
        local_figures(report, n, best)
    remote_figure(report, n, args.rounds)
    if args.remote_only:
        return report.finish()
    queued = queued_bytes_per_message()
    report.figure("queued_message", f"queued message    {queued:.0f} bytes each with 100,000 "
                  f"waiting in one mailbox (payload included)", ok=True, bytes=queued)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
