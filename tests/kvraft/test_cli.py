"""kvraft as processes: `python -m kvraft server` replicas on loopback, the shell commands
(get, put, append, status), bad input (wrong arguments, malformed requests, a damaged data
directory), and concurrent recorded clerks while the leader is killed with kill -9 and
restarted, or paused with SIGSTOP and resumed; every history is checked for linearizability.
A leader resumed after a pause must never answer a get from its stale state."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import csp
import rpc
from kvraft import Clerk, ClerkClosed
from kvraft.history import HistoryRecorder
from kvraft.linearizability import assert_linearizable
from kvraft.messages import (ERR_BAD_REQUEST, ERR_WRONG_LEADER, OK, GetArgs, GetReply,
                             PutAppendArgs, StatusQuery)
from raft.client import local_addresses
from raft.messages import LogEntry
from tests.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE_SECONDS = 60   # process starts and elections on a loaded machine included


def env() -> dict:
    return dict(os.environ, PYTHONPATH=ROOT)


def kvraft_command(*args: str, timeout: float = DEADLINE_SECONDS):
    return subprocess.run([sys.executable, "-m", "kvraft", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


class Cluster:
    """Replica processes; `pid(i)`, `kill(i)` (SIGKILL), `start(i)`, `leader()`."""

    def __init__(self, data_dir, count: int = 3, max_raft_state: int | None = None) -> None:
        self.addresses = local_addresses(count)
        self.peers = ",".join(self.addresses)
        self.data_dir = str(data_dir)
        self.max_raft_state = max_raft_state
        self.procs: list[subprocess.Popen | None] = [None] * count
        for i in range(count):
            self.start(i)

    def start(self, i: int) -> None:
        extra = [] if self.max_raft_state is None else ["--max-raft-state",
                                                         str(self.max_raft_state)]
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "kvraft", "server", "--id", str(i), "--peers", self.peers,
             "--data-dir", self.data_dir, *extra], cwd=ROOT, env=env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait()
        self.procs[i] = None

    def status(self, i: int):
        try:
            client = rpc.dial(self.addresses[i], timeout=1.0)
        except rpc.RPCError:
            return None
        try:
            return client.call("KV.status", StatusQuery(), timeout=2.0)
        except rpc.RPCError:
            return None
        finally:
            client.close()

    def leader(self) -> int:
        """The replica that answers as leader of the highest term (polled, with a deadline)."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            states = [(i, self.status(i)) for i in range(len(self.addresses))
                      if self.procs[i] is not None]
            leaders = [(s.term, i) for i, s in states if s is not None and s.role == "leader"]
            if leaders:
                return max(leaders)[1]
            csp.after(0.1).recv()
        raise AssertionError("no leader within the deadline")

    def close(self) -> None:
        for proc in self.procs:
            if proc is not None:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                proc.wait()


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(**options) -> Cluster:
        made.append(Cluster(tmp_path / f"data{len(made)}", **options))
        return made[-1]

    yield make
    for c in made:
        c.close()


def run_clerks(addresses, recorder: HistoryRecorder, count: int, done: csp.Chan,
               keys: int = 3):
    """`count` recorded clerks appending and reading until `done` closes; returns a function
    that waits for them (re-raising a failure) and closes them."""
    results = csp.Chan(count)
    clerks = [recorder.wrap(Clerk(addresses), i) for i in range(count)]

    def work(i: int) -> None:
        rng = random.Random(i)
        n = 0
        try:
            while not done.closed:
                key = f"k{rng.randrange(keys)}"
                if rng.random() < 0.5:
                    clerks[i].append(key, f"x {i} {n} y")
                    n += 1
                else:
                    clerks[i].get(key)
            results.send(None)
        except BaseException as exc:
            results.send(exc)

    threads = [csp.go(work, i, name=f"kvraft-test/clerk-{i}") for i in range(count)]

    def wait() -> None:
        try:
            for _ in range(count):
                got = csp.Recv(results)
                case, error, _ = csp.select_case(got, csp.Recv(csp.after(DEADLINE_SECONDS)))
                assert case is got, "clerks did not finish"
                if error is not None:
                    raise error
        finally:
            for clerk in clerks:
                clerk.close()
            for thread in threads:
                thread.join()
    return wait


# ---- the shell commands ---------------------------------------------------------------------

def test_put_append_get_and_status(cluster):
    c = cluster()
    assert kvraft_command("put", "greeting", "hello", "--peers", c.peers).returncode == 0
    done = kvraft_command("append", "greeting", ", world", "--peers", c.peers)
    assert done.returncode == 0 and done.stdout == ""
    got = kvraft_command("get", "greeting", "--peers", c.peers)
    assert (got.returncode, got.stdout) == (0, "hello, world\n")
    assert kvraft_command("get", "absent", "--peers", c.peers).stdout == "\n"
    c.kill(2)
    table = kvraft_command("status", "--peers", c.peers)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "role", "term", "commit", "applied", "snapshot", "keys"]
    assert lines[3].split()[:2] == ["2", "unreachable"]
    rows = json.loads(kvraft_command("status", "--json", "--peers", c.peers).stdout)
    assert [row["id"] for row in rows] == [0, 1, 2] and "error" in rows[2]
    assert {row["keys"] for row in rows[:2]} == {1}
    assert sum(row["role"] == "leader" for row in rows[:2]) <= 1


def test_no_replica_answering_is_one_line_and_a_non_zero_status():
    peers = ",".join(local_addresses(2))   # nobody listens there
    started = time.monotonic()
    got = kvraft_command("get", "k", "--peers", peers, "--timeout", "1")
    assert got.returncode == 1
    assert got.stderr.strip().count("\n") == 0 and "within 1 s" in got.stderr
    assert time.monotonic() - started < DEADLINE_SECONDS / 2
    status = kvraft_command("status", "--peers", peers)
    assert status.returncode == 1 and "unreachable" in status.stdout


@pytest.mark.parametrize("args, complaint", [
    (["get", "k", "--peers", "nowhere"], "bad peer address"),
    (["put", "k", "--peers", "127.0.0.1:1"], "Missing argument"),
    (["server", "--id", "3", "--peers", "127.0.0.1:1", "--data-dir", "x"], "--id 3"),
    (["server", "--id", "0", "--peers", "127.0.0.1:1"], "--data-dir"),
    (["get", "k", "--peers", "127.0.0.1:1", "--timeout", "-1"], "--timeout"),
])
def test_wrong_arguments_get_the_usage(args, complaint):
    got = kvraft_command(*args)
    assert got.returncode == 2 and "Usage:" in got.stderr and complaint in got.stderr
    assert "Traceback" not in got.stderr


def test_a_damaged_data_directory_stops_the_replica_naming_file_and_offset(tmp_path):
    address = local_addresses(1)[0]
    data = tmp_path / "data"
    data.mkdir()
    state = data / "kvraft-0.raft"
    state.write_bytes(b"\x00\x00\x00\x10garbage-garbage-garbage" * 4)
    got = kvraft_command("server", "--id", "0", "--peers", address, "--data-dir", str(data))
    assert got.returncode == 1
    assert "damaged" in got.stderr and "kvraft-0.raft" in got.stderr and "at byte 0" in got.stderr
    assert "Traceback" not in got.stderr


def test_a_snapshot_that_is_not_the_services_stops_the_replica(tmp_path):
    from raft.persister import FilePersister
    address = local_addresses(1)[0]
    data = tmp_path / "data"
    data.mkdir()
    persister = FilePersister(str(data / "kvraft-0.raft"))
    persister.save_log(1, [LogEntry(1, ["noop"])])
    persister.save_snapshot(1, 1, b"not a kvraft snapshot")
    persister.close()
    got = kvraft_command("server", "--id", "0", "--peers", address, "--data-dir", str(data))
    assert got.returncode == 1
    assert "damaged" in got.stderr and "kvraft-0.raft" in got.stderr
    assert "snapshot through index 1" in got.stderr and "Traceback" not in got.stderr


def test_malformed_requests_get_error_replies_and_the_replica_keeps_serving(cluster):
    c = cluster(count=1)
    clerk = Clerk(c.addresses)
    try:
        clerk.put("k", "v")
        client = rpc.dial(c.addresses[0], timeout=5.0)
        try:
            for method, args in [("KV.get", GetArgs(5)),
                                 ("KV.get", StatusQuery()),
                                 ("KV.put_append", PutAppendArgs("delete", "k", "", 1, 1)),
                                 ("KV.put_append", PutAppendArgs("put", "k", "v", "me", 1)),
                                 ("KV.put_append", GetArgs("k"))]:
                reply = client.call(method, args, timeout=10.0)
                assert reply.err.startswith(ERR_BAD_REQUEST), (method, args, reply)
            with pytest.raises(rpc.RemoteError):
                client.call("KV.no_such_method", GetArgs("k"), timeout=10.0)
        finally:
            client.close()
        assert clerk.get("k") == "v"
    finally:
        clerk.close()


def test_close_from_another_thread_ends_a_blocked_call():
    clerk = Clerk(local_addresses(3))   # nobody answers: the get retries for ever
    outcome = csp.Chan(1)

    def blocked() -> None:
        try:
            clerk.get("k")
            outcome.send("returned")
        except ClerkClosed:
            outcome.send("closed")

    thread = csp.go(blocked, name="kvraft-test/blocked-get")
    csp.after(0.5).recv()   # let it retry and back off a few times
    clerk.close()
    got = csp.Recv(outcome)
    case, value, _ = csp.select_case(got, csp.Recv(csp.after(10)))
    assert case is got and value == "closed"
    thread.join()
    with pytest.raises(ClerkClosed):
        clerk.put("k", "v")


def test_the_data_directory_stays_bounded(cluster):
    c = cluster(count=3, max_raft_state=4000)
    clerk = Clerk(c.addresses)
    try:
        for i in range(300):
            clerk.put(f"k{i % 5}", "v" * 50)
        assert clerk.get("k0") == "v" * 50
    finally:
        clerk.close()
    rows = [c.status(i) for i in range(3)]
    assert max(row.snapshot_index for row in rows if row is not None) > 0
    sizes = [os.path.getsize(os.path.join(c.data_dir, name))
             for name in os.listdir(c.data_dir)]
    # The log (bounded by snapshots) and the snapshot, with the file compacted at 2x.
    assert max(sizes) < 2 * (8 * 4000 + 5 * 60 + 4096) + (1 << 20), sizes


# ---- faults, histories checked --------------------------------------------------------------

def test_kill_9_the_leader_and_restart_it_while_clerks_run(cluster):
    c = cluster(max_raft_state=20000)
    recorder = HistoryRecorder()
    Clerk_ = Clerk(c.addresses)
    Clerk_.put("k0", "")
    Clerk_.close()
    done = csp.Chan()
    wait = run_clerks(c.addresses, recorder, 4, done)

    def returned() -> int:
        return sum(op.returned for op in recorder.operations())

    def more_returned(count: int, when: str) -> None:
        floor = returned() + count
        wait_until(lambda: returned() >= floor, f"{count} more operations {when}", 60,
                   describe=returned)

    for _ in range(2):
        more_returned(8, "before the kill")
        victim = c.leader()
        c.kill(victim)
        csp.after(1.5).recv()   # the clerks go on while it is down (pacing only)
        c.start(victim)
    more_returned(8, "after the restarts")
    done.close()
    wait()
    operations = recorder.operations()
    assert sum(op.returned for op in operations) >= 24
    assert_linearizable(operations)


def test_sigstop_the_leader_then_resume_it_while_clerks_run(cluster):
    c = cluster()
    recorder = HistoryRecorder()
    writer = recorder.wrap(Clerk(c.addresses), 100)
    try:
        writer.put("k0", "before")
        done = csp.Chan()
        wait = run_clerks(c.addresses, recorder, 4, done)
        csp.after(1.0).recv()
        paused = c.leader()
        os.kill(c.procs[paused].pid, signal.SIGSTOP)
        # The others elect a leader and go on; a write completes there.
        writer.put("k0", "after the pause")
        os.kill(c.procs[paused].pid, signal.SIGCONT)
        # Straight to the resumed replica: it must not answer from its stale state.
        client = rpc.dial(c.addresses[paused], timeout=5.0)
        try:
            reply: GetReply = client.call("KV.get", GetArgs("k0"), timeout=30.0)
        finally:
            client.close()
        assert reply.err in (OK, ERR_WRONG_LEADER), reply
        if reply.err == OK:
            assert reply.value.startswith("after the pause"), reply
        csp.after(1.0).recv()
        done.close()
        wait()
    finally:
        writer.close()
    assert_linearizable(recorder.operations())
