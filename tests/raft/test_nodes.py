"""Raft nodes as real processes over TCP on loopback, with file persisters: commits, kill -9
of the leader, restart from files, and a minority killed mid-stream."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from raft import client
from tests.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE_SECONDS = 20


class Cluster:
    def __init__(self, n, data_dir):
        self.addresses = client.local_addresses(n)
        self.data_dir = str(data_dir)
        self.procs = [None] * n
        for i in range(n):
            self.start(i)

    def start(self, i):
        proc = subprocess.Popen(
            [sys.executable, "-m", "raft", "node", "--id", str(i), "--peers",
             ",".join(self.addresses), "--data-dir", self.data_dir],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert "listening" in line, f"node {i} did not start: {line!r}"
        self.procs[i] = proc
        return line

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.procs[i] = None

    def live(self):
        return [i for i, proc in enumerate(self.procs) if proc is not None]

    def leader(self, among=None):
        among = self.live() if among is None else among
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            states = client.status(self.addresses)
            leaders = [i for i in among if not isinstance(states[i], str)
                       and states[i].role == "leader"]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.1)
        raise AssertionError(f"no single leader among {among} within {DEADLINE_SECONDS} s")

    def wait_applied(self, nodes, count):
        """Every node in `nodes` has applied at least `count` commands; returns their lists."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            lists = {i: client.applied(self.addresses[i]) for i in nodes}
            if all(len(values) >= count for values in lists.values()):
                return lists
            if time.monotonic() > deadline:
                raise AssertionError(f"not all of {nodes} applied {count} commands: "
                                     f"{ {i: len(v) for i, v in lists.items()} }")
            time.sleep(0.1)

    def close(self):
        for proc in self.procs:
            if proc is not None:
                proc.kill()
                proc.wait()


@pytest.fixture
def make_cluster(tmp_path):
    clusters = []

    def make(n):
        cluster = Cluster(n, tmp_path)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


def test_commit_through_the_leader_and_via_any_node(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader()
    first, led_by = client.submit(cluster.addresses, ["a", "b"], first_guess=leader)
    assert (first, led_by) == (1, leader)
    follower = (leader + 1) % 3
    index, led_by = client.submit(cluster.addresses, ["c"], first_guess=follower)
    assert (index, led_by) == (3, leader)   # the follower's hint led to the leader
    lists = cluster.wait_applied(range(3), 3)
    assert all(values == ["a", "b", "c"] for values in lists.values())


def test_leader_killed_new_leader_commits_and_old_one_catches_up_from_its_file(make_cluster):
    cluster = make_cluster(3)
    old = cluster.leader()
    for k in range(5):
        client.submit(cluster.addresses, [f"before-{k}"], first_guess=old)
    cluster.kill(old)
    new = cluster.leader()
    assert new != old
    for k in range(5):
        client.submit(cluster.addresses, [f"after-{k}"], first_guess=new)
    line = cluster.start(old)   # "node I listening on A, term T, N log entries restored"
    restored = int(line.split(",")[-1].split()[0])
    assert restored >= 5, f"the old leader forgot its log: {line!r}"
    expected = [f"before-{k}" for k in range(5)] + [f"after-{k}" for k in range(5)]
    lists = cluster.wait_applied(range(3), 10)
    for i, values in lists.items():
        assert values == expected, f"node {i} applied {values}"


def test_minority_killed_mid_stream_loses_nothing_committed(make_cluster):
    cluster = make_cluster(5)
    leader = cluster.leader()
    acknowledged, errors = [], []
    stop = threading.Event()

    def submitter():
        k = 0
        while not stop.is_set():
            try:
                client.submit(cluster.addresses, [f"cmd-{k}"], deadline_seconds=10)
                acknowledged.append(f"cmd-{k}")
            except client.NoLeader as exc:
                errors.append(str(exc))
            k += 1

    thread = threading.Thread(target=submitter)
    thread.start()
    victims = [(leader + 1) % 5, (leader + 2) % 5]
    try:
        wait_until(lambda: len(acknowledged) >= 6 or errors, "six commands acknowledged", 60)
        before_kill = len(acknowledged)
        for i in victims:
            cluster.kill(i)
        wait_until(lambda: len(acknowledged) >= before_kill + 6 or errors,
                   "six more acknowledged with two nodes down", 60)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    survivors = cluster.live()
    lists = cluster.wait_applied(survivors, len(acknowledged))
    reference = lists[survivors[0]]
    for i, values in lists.items():
        assert values[:len(reference)] == reference[:len(values)], f"node {i} diverges"
    missing = set(acknowledged) - set(reference)
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    for i in victims:   # the killed ones come back from their files and catch up
        cluster.start(i)
    lists = cluster.wait_applied(range(5), len(reference))
    for i, values in lists.items():
        assert values[:len(reference)] == reference, f"node {i} differs after restart"


def test_a_submit_waiting_when_its_node_closes_is_answered_at_once():
    """close() wakes every blocked caller: a submit that cannot commit (its only peer is gone)
    answers "node closed" as soon as the node closes, not after its own timeout."""
    import csp
    from raft.node import Node
    addresses = client.local_addresses(3)   # node 2 never starts
    nodes = [Node(i, addresses, None) for i in (0, 1)]
    try:
        deadline = time.monotonic() + 30
        while not any(node.raft.get_state()[2] for node in nodes):
            assert time.monotonic() < deadline, "no leader among two of three nodes"
            csp.after(0.05).recv()
        leader = next(node for node in nodes if node.raft.get_state()[2])
        follower = next(node for node in nodes if node is not leader)
        follower.close()                     # no majority is left: nothing can commit
        answers = csp.Chan(1)
        submitter = csp.go(lambda: answers.send(leader.submit(["x"])), name="test/submit")
        while leader.raft.status()["last_index"] < 1:   # put in the log: now it waits
            assert time.monotonic() < deadline + 30, "the submit never reached the log"
            csp.after(0.01).recv()
        assert answers.qsize() == 0, "the submit answered before the close"
        closed_at = time.monotonic()
        leader.close()
        case, answer, _ = csp.select_case(csp.Recv(answers), csp.Recv(csp.after(3)))
        assert answer is not None, "the waiting submit was not answered when its node closed"
        assert (answer.ok, answer.error) == (False, "node closed")
        assert time.monotonic() - closed_at < 3
        submitter.join(5)
    finally:
        for node in nodes:
            node.close()
