"""Benchmark Raft on simnet (issue 6), every figure measured in this run.

1. Commits/s with 3 and 5 peers, 1 and 10 concurrent submitters (each submits, waits until the
   leader applies its command, submits again), reliable network.
2. Time to a new leader after the leader is disconnected: median and max of --trials
   (goal: median < 1 s, max < 5 s). Measured by polling get_state every 5 ms.
3. RPCs per idle second with 3 peers (MIT's TestCount allows 60).
4. A 3-process cluster over TCP on loopback (`python -m raft node`), with the file persister
   and then in memory: median commit latency of one sequential submitter (target <= 1.5 ms
   with the file persister), and commits/s of --submitters concurrent submitters each sending
   batches of --batch commands (target >= 50,000), and the CPU time the three nodes spend
   per commit meanwhile (which does not depend on what else the machine runs: on a busy
   machine, compare that).
5. PySyncObj (requirements-bench.txt), 3 processes on loopback in the same run: its
   sequential commit time and its pipelined commits/s (a window of commands in flight from
   one node); ours (4) must reach 3x its pipelined rate.
6. A slow disk: 3 peers on simnet whose fsync takes 50 ms (an injected delay), commands
   flowing all along: elections started over --slow-disk-seconds (30) while the leader is
   alive (target 0: the fsync runs outside the lock, so heartbeats go on).
7. Catch-up: a follower disconnected while the leader commits 100,000 entries (its service
   snapshotting every 10,000) is reconnected: the time until it has applied everything, and
   the snapshots it installed to get there (one expected).

With --json, one JSON document of the figures instead of the lines; on a terminal, a progress
line shows which figure is being measured.

Usage: python scripts/bench/raft.py [--seconds S] [--trials N] [--tcp-only] [--json]
                                    [--slow-disk-seconds S] [--behind N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import statistics
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, ROOT)

import csp  # noqa: E402
from raft import ApplySnapshot, Raft  # noqa: E402
from raft.persister import MemoryPersister  # noqa: E402
import rpc  # noqa: E402
from raft import client as raft_client  # noqa: E402
from raft.node import Submit  # noqa: E402
from rpc import simnet  # noqa: E402
from _report import Report  # noqa: E402
import _pysyncobj  # noqa: E402


class Cluster:
    """`n` peers on simnet. `persister()` makes each peer's persister (None: none);
    `snapshot_every`: each peer's service snapshots every that many applied entries."""

    def __init__(self, n: int, persister=None, snapshot_every: int = 0,
                 long_delays: bool = True) -> None:
        self.n = n
        self.snapshot_every = snapshot_every
        self.net = simnet.Network()
        self.net.long_delays(long_delays)
        self.applied = [0] * n
        self.snapshots = [0] * n   # ApplySnapshot messages each peer's service got
        self.changed = threading.Condition()
        self.done = csp.Chan()
        self.ends = [[self.net.make_end(f"{i}->{j}") for j in range(n)] for i in range(n)]
        self.rafts = []
        self.readers = []
        for i in range(n):
            ch = csp.Chan()
            raft = Raft(self.ends[i], i, ch,
                        persister=persister() if persister is not None else None)
            self.readers.append(csp.go(self._read, i, ch, raft, name=f"bench/apply-{i}"))
            server = simnet.Server()
            server.add_service(raft, "Raft")
            self.net.add_server(str(i), server)
            self.rafts.append(raft)
        for i in range(n):
            for j in range(n):
                self.net.connect(f"{i}->{j}", str(j))
                self.net.enable(f"{i}->{j}", True)

    def _read(self, i: int, ch: csp.Chan, raft: Raft) -> None:
        applied, done = csp.Recv(ch), csp.Recv(self.done)
        while True:
            case, message, _ = csp.select_case(applied, done)
            if case is done:
                return
            with self.changed:
                self.applied[i] = message.index
                if isinstance(message, ApplySnapshot):
                    self.snapshots[i] += 1
                self.changed.notify_all()
            if (self.snapshot_every and not isinstance(message, ApplySnapshot)
                    and message.index % self.snapshot_every == 0):
                raft.snapshot(message.index, message.index.to_bytes(8, "big"))

    def set_links(self, i: int, enabled: bool) -> None:
        for j in range(self.n):
            self.net.enable(f"{i}->{j}", enabled)
            self.net.enable(f"{j}->{i}", enabled)

    def leader(self, exclude=(), timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, raft in enumerate(self.rafts):
                if i not in exclude and raft.get_state()[2]:
                    return i
            time.sleep(0.005)
        raise RuntimeError("no leader")

    def close(self) -> None:
        for raft in self.rafts:
            raft.stop()
        self.net.cleanup()
        self.done.close()
        for reader in self.readers:
            reader.join()


def run_submitters(submit, submitters: int) -> float:
    """Run `submit(k)` on `submitters` threads at once; the seconds until all have returned."""
    threads = [threading.Thread(target=submit, args=(k,)) for k in range(submitters)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - start


def commits_per_second(peers: int, submitters: int, seconds: float) -> float:
    cluster = Cluster(peers)
    try:
        leader = cluster.leader()
        time.sleep(0.5)
        count = [0] * submitters
        stop_at = time.monotonic() + seconds

        def submit(k: int) -> None:
            while time.monotonic() < stop_at:
                index, _, ok = cluster.rafts[leader].put_command(k)
                if not ok:
                    return
                with cluster.changed:
                    while cluster.applied[leader] < index and time.monotonic() < stop_at + 5:
                        cluster.changed.wait(0.5)
                count[k] += 1

        elapsed = run_submitters(submit, submitters)
        return sum(count) / elapsed
    finally:
        cluster.close()


def failover_seconds(trials: int, report: Report | None = None) -> list[float]:
    cluster = Cluster(3)
    times = []
    try:
        for k in range(trials):
            if report:
                report.progress(f"new leader after disconnect: trial {k + 1}/{trials}")
            old = cluster.leader()
            time.sleep(0.3)
            start = time.monotonic()
            cluster.set_links(old, False)
            cluster.leader(exclude={old})
            times.append(time.monotonic() - start)
            cluster.set_links(old, True)
            time.sleep(1.0)   # the old leader steps down and the cluster settles
    finally:
        cluster.close()
    return times


def idle_rpcs_per_second(seconds: float = 3.0) -> float:
    cluster = Cluster(3)
    try:
        cluster.leader()
        time.sleep(1.0)
        before = cluster.net.get_total_count()
        time.sleep(seconds)
        return (cluster.net.get_total_count() - before) / seconds
    finally:
        cluster.close()


class ProcessCluster:
    def __init__(self, n: int, in_memory: bool) -> None:
        self.addresses = raft_client.local_addresses(n)
        self.dir = tempfile.TemporaryDirectory(prefix="raft-bench-")
        store = ["--in-memory"] if in_memory else ["--data-dir", self.dir.name]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "raft", "node", "--id", str(i), "--peers",
             ",".join(self.addresses), *store], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
            stdout=subprocess.PIPE, text=True) for i in range(n)]
        for proc in self.procs:
            proc.stdout.readline()
        deadline = time.monotonic() + 10
        while True:
            states = raft_client.status(self.addresses)
            leaders = [i for i, s in enumerate(states) if not isinstance(s, str)
                       and s.role == "leader"]
            if leaders:
                self.leader = leaders[0]
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no leader")
            time.sleep(0.1)

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the node processes have used so far; None without
        /proc. Per commit it does not depend on what else the machine runs."""
        total = 0
        try:
            for proc in self.procs:
                with open(f"/proc/{proc.pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])   # utime, stime
        except (OSError, IndexError, ValueError):
            return None
        return total / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.dir.cleanup()


def tcp_figures(in_memory: bool, seconds: float, submitters: int, batch: int):
    cluster = ProcessCluster(3, in_memory)
    try:
        conn = rpc.dial(cluster.addresses[cluster.leader])
        latencies = []
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            reply = conn.call("Node.submit", Submit(["x"]), timeout=5)
            if not reply.ok:
                raise RuntimeError(reply.error)
            latencies.append(time.perf_counter() - start)
        conn.close()
        done = [0] * submitters

        def submit(k: int) -> None:
            own = rpc.dial(cluster.addresses[cluster.leader])
            try:
                while time.monotonic() < stop:
                    reply = own.call("Node.submit", Submit(["y"] * batch), timeout=10)
                    if not reply.ok:
                        raise RuntimeError(reply.error)
                    done[k] += batch
            finally:
                own.close()

        stop = time.monotonic() + seconds
        cpu_before = cluster.cpu_seconds()
        elapsed = run_submitters(submit, submitters)
        cpu_after = cluster.cpu_seconds()
        rate = sum(done) / elapsed
        cpu_per_commit = (None if cpu_before is None or cpu_after is None or not sum(done)
                          else (cpu_after - cpu_before) / sum(done))
        return statistics.median(latencies), rate, cpu_per_commit
    finally:
        cluster.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--tcp-only", action="store_true", help="Only the process cluster.")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--slow-disk-seconds", type=float, default=30.0)
    parser.add_argument("--behind", type=int, default=100_000)
    parser.add_argument("--pysyncobj-node", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pysyncobj_node is not None:
        return pysyncobj_node(args.pysyncobj_node, args.ports.split(","), args.seconds)
    report = Report("raft", as_json=args.json)
    if not args.tcp_only:
        simnet_part(args, report)
    ours = tcp_part(args, report)
    pysyncobj_part(args, report, ours)
    if not args.tcp_only:
        slow_disk_part(args, report)
        catch_up_part(args, report)
    return report.finish()


def simnet_part(args, report: Report) -> None:
    for peers in (3, 5):
        for submitters in (1, 10):
            report.progress(f"commits/s, {peers} peers, {submitters} submitter(s) "
                            f"({args.seconds:g} s)")
            rate = commits_per_second(peers, submitters, args.seconds)
            report.figure(f"commits_per_s_{peers}_peers_{submitters}_submitters",
                          f"commits/s  {peers} peers, {submitters:>2} submitter(s)   "
                          f"{rate:>8,.0f}", commits_per_s=rate, seconds=args.seconds)
    times = failover_seconds(args.trials, report)
    median, worst = statistics.median(times), max(times)
    ok = median < 1 and worst < 5
    report.figure("failover", f"new leader after disconnect   median {median:.2f} s   max "
                  f"{worst:.2f} s   ({args.trials} trials; goal median < 1 s, max < 5 s) "
                  f"{'ok' if ok else 'MISSED'}",
                  ok=ok, median_s=median, max_s=worst, trials=args.trials, goal_median_s=1,
                  goal_max_s=5)
    report.progress("RPCs per idle second, 3 peers (3 s)")
    idle = idle_rpcs_per_second()
    report.figure("idle_rpcs_per_s", f"RPCs per idle second, 3 peers {idle:6.1f}   (MIT's "
                  f"TestCount allows 60) {'ok' if idle <= 60 else 'TOO MANY'}",
                  ok=idle <= 60, rpcs_per_s=idle, limit=60)


def tcp_part(args, report: Report) -> float:
    """The durable cluster's commits/s (for the PySyncObj ratio)."""
    durable_rate = 0.0
    for in_memory in (False, True):
        where = "in memory " if in_memory else "file, fsync"
        report.progress(f"3 processes over TCP, {where.strip()}: sequential, then "
                        f"{args.submitters} submitters ({args.seconds:g} s each)")
        latency, rate, cpu = tcp_figures(in_memory, args.seconds, args.submitters, args.batch)
        cpu_text = "" if cpu is None else f" ({cpu * 1e6:.0f} us CPU per commit, 3 nodes)"
        # Only the durable cluster has targets; in memory shows what durability costs.
        ok = (latency <= 0.0015 and rate >= 50_000) if not in_memory else None
        if not in_memory:
            durable_rate = rate
        report.figure("tcp_in_memory" if in_memory else "tcp_file_fsync",
                      f"3 processes over TCP, {where}: sequential commit median "
                      f"{latency * 1000:6.2f} ms (target <= 1.5)   {args.submitters} submitters "
                      f"x batches of {args.batch}: {rate:>9,.0f} commits/s (target >= 50,000)"
                      f"{cpu_text}",
                      ok=ok, commit_latency_median_ms=latency * 1000, commits_per_s=rate,
                      cpu_us_per_commit=None if cpu is None else cpu * 1e6,
                      submitters=args.submitters, batch=args.batch,
                      target_latency_ms=1.5, target_commits_per_s=50_000)
    return durable_rate


# ---- PySyncObj, the baseline --------------------------------------------------------------------

def pysyncobj_node(index: int, ports: list[str], seconds: float) -> int:
    """One PySyncObj replica of a counter (a process of its own). Node 0 measures once the
    cluster has a leader and prints one JSON line: sequential seconds per commit, pipelined
    commits/s. The others serve until killed."""
    import json
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):
        def __init__(self, me: str, partners: list[str]) -> None:
            super().__init__(me, partners, SyncObjConf(dynamicMembershipChange=False))
            self.value = 0

        @replicated
        def add(self, amount):
            self.value += amount
            return self.value

    counter = Counter(*_pysyncobj.node_addresses(ports, index))
    if index != 0:
        _pysyncobj.serve_forever()
    if not _pysyncobj.wait_for_leader(counter):
        return 1
    sequential = _pysyncobj.sequential_seconds(lambda: counter.add(1, sync=True, timeout=10),
                                               seconds)
    pipelined = _pysyncobj.pipelined_per_s(lambda callback: counter.add(1, callback=callback),
                                           seconds)
    print(json.dumps({"sequential_s": statistics.median(sequential),
                      "pipelined_per_s": pipelined}), flush=True)
    counter.destroy()
    return 0


def pysyncobj_part(args, report: Report, ours: float) -> None:
    report.progress(f"PySyncObj, 3 processes: sequential, then pipelined ({args.seconds:g} s)")
    theirs = _pysyncobj.measure(report, __file__, args.seconds)
    if theirs is None:
        return
    ratio = ours / theirs["pipelined_per_s"]
    report.figure("pysyncobj", f"PySyncObj, 3 processes: sequential commit "
                  f"{theirs['sequential_s'] * 1000:7.1f} ms, pipelined "
                  f"{theirs['pipelined_per_s']:>9,.0f} commits/s; ours (file, fsync) "
                  f"{ours:>9,.0f}: {ratio:.1f}x (target >= 3x) "
                  f"{'ok' if ratio >= 3 else 'MISSED'}", ok=ratio >= 3,
                  sequential_ms=theirs["sequential_s"] * 1000,
                  pipelined_commits_per_s=theirs["pipelined_per_s"],
                  ours_commits_per_s=ours, ratio=ratio, target_ratio=3)


# ---- a slow disk; a follower far behind --------------------------------------------------------

class SlowDisk(MemoryPersister):
    """A persister whose sync takes `seconds` (an fsync on a slow disk: one at a time)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.disk = threading.Lock()

    def sync(self) -> None:
        with self.disk:
            time.sleep(self.seconds)


def slow_disk_elections(seconds: float, fsync_seconds: float = 0.05) -> tuple[int, int]:
    """(elections started, commands committed) over `seconds` with commands flowing."""
    cluster = Cluster(3, persister=lambda: SlowDisk(fsync_seconds))
    try:
        leader = cluster.leader()
        time.sleep(0.5)
        terms_before = [raft.get_state()[1] for raft in cluster.rafts]
        stop_at = time.monotonic() + seconds
        committed = 0
        while time.monotonic() < stop_at:
            index, _, ok = cluster.rafts[leader].put_command(1)
            if not ok:
                leader = cluster.leader()
                continue
            with cluster.changed:
                while cluster.applied[leader] < index and time.monotonic() < stop_at + 5:
                    cluster.changed.wait(0.5)
            committed += 1
        terms_after = [raft.get_state()[1] for raft in cluster.rafts]
        return max(terms_after) - max(terms_before), committed
    finally:
        cluster.close()


def slow_disk_part(args, report: Report) -> None:
    report.progress(f"a 50 ms fsync: elections over {args.slow_disk_seconds:g} s")
    elections, committed = slow_disk_elections(args.slow_disk_seconds)
    report.figure("slow_disk_elections", f"fsync of 50 ms, 3 peers, {args.slow_disk_seconds:g} s "
                  f"of commands ({committed:,} committed): {elections} election(s) with the "
                  f"leader alive (target 0) {'ok' if elections == 0 else 'MISSED'}",
                  ok=elections == 0, elections=elections, committed=committed,
                  seconds=args.slow_disk_seconds, fsync_ms=50)


def catch_up_seconds(behind: int, snapshot_every: int = 10_000) -> tuple[float, int, int]:
    """(seconds to catch up, snapshots the follower installed, entries it applied)."""
    cluster = Cluster(3, snapshot_every=snapshot_every, long_delays=False)
    try:
        leader = cluster.leader()
        follower = (leader + 1) % 3
        cluster.set_links(follower, False)
        batch = 1000
        for _ in range(behind // batch):
            index, _, ok = cluster.rafts[leader].put_commands([1] * batch)
            if not ok:
                raise RuntimeError("lost the leadership while loading")
            last = index + batch - 1
            with cluster.changed:
                while cluster.applied[leader] < last:
                    if not cluster.changed.wait(30):
                        raise RuntimeError("the leader stopped committing")
        with cluster.changed:
            before = cluster.applied[follower]
            installs_before = cluster.snapshots[follower]
        start = time.monotonic()
        cluster.set_links(follower, True)
        with cluster.changed:
            while cluster.applied[follower] < last:
                if not cluster.changed.wait(60):
                    raise RuntimeError("the follower did not catch up in 60 s")
            installs = cluster.snapshots[follower] - installs_before
        return time.monotonic() - start, installs, last - before
    finally:
        cluster.close()


def catch_up_part(args, report: Report) -> None:
    report.progress(f"a follower {args.behind:,} entries behind: catching up")
    seconds, installs, entries = catch_up_seconds(args.behind)
    report.figure("catch_up", f"follower {entries:,} entries behind (snapshots every 10,000): "
                  f"caught up in {seconds:.2f} s through {installs} snapshot install(s) "
                  f"{'ok' if installs == 1 else '(expected one)'}", ok=installs == 1,
                  seconds=seconds, installs=installs, entries_behind=entries)

if __name__ == "__main__":
    sys.exit(main())
