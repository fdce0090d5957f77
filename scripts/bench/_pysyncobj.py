"""PySyncObj, the baseline of the raft and kvraft benchmarks: three of its nodes as processes
of their own (the benchmark script runs itself with --pysyncobj-node I), and the measuring
loops node 0 runs once the cluster has a leader. The replicated object (a counter, a ReplDict)
is the benchmark's own; what is measured is the same shape in both.

    theirs = measure(report, __file__, seconds, extra_args)  # node 0's JSON line, or None
    # in node I:
    if index != 0: serve_forever()
    if not wait_for_leader(node): return 1
    sequential = sequential_seconds(lambda: counter.add(1, sync=True, timeout=10), seconds)
    per_s = pipelined_per_s(lambda callback: counter.add(1, callback=callback), seconds)

Threads: run_nodes, the caller's; in a node, PySyncObj's own thread and the caller's (the
callbacks of pipelined_per_s run on PySyncObj's thread and only release a semaphore and
count).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from raft.client import local_addresses

WINDOW = 2000               # commands in flight from the measuring node
LEADER_SECONDS = 30.0       # node 0 gives up (printing an error) when no leader by then
SEQUENTIAL_MAX_SECONDS = 3.0
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def measure(report, script: str, seconds: float, extra_args: list[str] = ()) -> dict | None:
    """Node 0's figures (run_nodes); None when PySyncObj is not installed or its nodes failed,
    after the report's "pysyncobj" figure said so."""
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        report.figure("pysyncobj", "PySyncObj: not installed (pip install -r "
                      "requirements-bench.txt); no ratio", ok=False, error="not installed")
        return None
    theirs = run_nodes(script, seconds, extra_args)
    if "error" in theirs:
        report.figure("pysyncobj", f"PySyncObj: {theirs['error']}", ok=False, **theirs)
        return None
    return theirs


def run_nodes(script: str, seconds: float, extra_args: list[str] = ()) -> dict:
    """Start three nodes (`script --pysyncobj-node I --ports P,P,P --seconds S ...`), wait
    for node 0's one JSON line and return it ({"error": ...} when it printed nothing); the
    nodes are killed before returning. Blocks for about `seconds` plus the election."""
    ports = [address.rsplit(":", 1)[1] for address in local_addresses(3)]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(script), "--pysyncobj-node",
                               str(i), "--ports", ",".join(ports), "--seconds", str(seconds),
                               *extra_args],
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    try:
        for proc in procs:
            proc.stdout.readline()   # "ready"
        line = procs[0].stdout.readline()
        return json.loads(line) if line else {"error": "node 0 printed nothing"}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def node_addresses(ports: list[str], index: int) -> tuple[str, list[str]]:
    """This node's address and its partners' (as SyncObj takes them)."""
    addresses = [f"127.0.0.1:{port}" for port in ports]
    return addresses[index], [a for i, a in enumerate(addresses) if i != index]


def serve_forever() -> None:
    """A node other than 0: say ready, then serve until killed."""
    print("ready", flush=True)
    threading.Event().wait()


def wait_for_leader(node) -> bool:
    """Node 0: say ready, then wait until its SyncObj knows a leader; False (after printing
    the error line) when none came in LEADER_SECONDS."""
    print("ready", flush=True)
    deadline = time.monotonic() + LEADER_SECONDS
    while not (node._isReady() and node._getLeader() is not None):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "no leader"}), flush=True)
            return False
        time.sleep(0.05)   # PySyncObj has no leader event to wait on
    return True


def sequential_seconds(commit_sync, seconds: float) -> list[float]:
    """Seconds of each `commit_sync()` (one command, waiting for its commit), one after the
    other for min(seconds, 3) s and at least five; a call that raises SyncObjException (no
    leader known to this node yet) is retried, not counted."""
    from pysyncobj import SyncObjException
    durations = []
    stop_at = time.monotonic() + min(seconds, SEQUENTIAL_MAX_SECONDS)
    while time.monotonic() < stop_at or len(durations) < 5:
        start = time.perf_counter()
        try:
            commit_sync()
        except SyncObjException:
            continue
        durations.append(time.perf_counter() - start)
    return durations


def pipelined_per_s(submit, seconds: float) -> float:
    """Commands committed per second with up to WINDOW in flight: `submit(callback)` sends one
    command whose commit PySyncObj reports to callback(result, error); for `seconds`, then
    until every one sent is answered."""
    window = threading.BoundedSemaphore(WINDOW)
    answered = [0]

    def on_answer(result, error) -> None:
        answered[0] += 1
        window.release()

    stop_at = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < stop_at:
        window.acquire()
        submit(on_answer)
    for _ in range(WINDOW):
        window.acquire()
    return answered[0] / (time.monotonic() - start)
