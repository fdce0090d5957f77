"""The course's six public Raft tests (raft_test.go, F20-F24), same names, peers and checks."""

import threading
import time

from tests.raft.config import RAFT_ELECTION_TIMEOUT_SECONDS


def test_initial_election_2a(make_config):
    cfg = make_config(3)
    cfg.check_one_leader()


def test_re_election_2a(make_config):
    cfg = make_config(3)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    leader2 = cfg.check_one_leader()
    assert leader2 != leader1


def test_basic_agree_2b(make_config):
    servers = 5
    cfg = make_config(servers)
    for index in range(1, 4):
        count, _ = cfg.n_committed(index)
        assert count == 0, "some have committed before PutCommand()"
        got = cfg.one(index * 100, servers)
        assert got == index, f"got index {got} but expected {index}"


def test_fail_agree_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.one(101, servers)
    leader = cfg.check_one_leader()
    cfg.disconnect((leader + 1) % servers)
    cfg.one(102, servers - 1)
    cfg.one(103, servers - 1)
    time.sleep(RAFT_ELECTION_TIMEOUT_SECONDS)
    cfg.one(104, servers - 1)
    cfg.one(105, servers - 1)
    cfg.connect((leader + 1) % servers)
    cfg.one(106, servers)
    time.sleep(RAFT_ELECTION_TIMEOUT_SECONDS)
    cfg.one(107, servers)


def test_fail_no_agree_2b(make_config):
    servers = 5
    cfg = make_config(servers)
    cfg.one(10, servers)
    leader = cfg.check_one_leader()
    for k in (1, 2, 3):
        cfg.disconnect((leader + k) % servers)
    index, _, ok = cfg.rafts[leader].put_command(20)
    assert ok, "leader rejected PutCommand()"
    assert index == 2, f"expected index 2, got {index}"
    time.sleep(2 * RAFT_ELECTION_TIMEOUT_SECONDS)
    count, _ = cfg.n_committed(index)
    assert count == 0, f"{count} committed but no majority"
    for k in (1, 2, 3):
        cfg.connect((leader + k) % servers)
    leader2 = cfg.check_one_leader()
    index2, _, ok2 = cfg.rafts[leader2].put_command(30)
    assert ok2, "leader2 rejected PutCommand()"
    assert index2 in (2, 3), f"unexpected index {index2}"
    cfg.one(1000, servers)


def test_concurrent_put_commands_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    for attempt in range(5):
        if attempt > 0:
            time.sleep(3)   # give the solution some time to settle
        leader = cfg.check_one_leader()
        _, term, ok = cfg.rafts[leader].put_command(1)
        if not ok:
            continue   # leader moved on really quickly
        results, lock = [], threading.Lock()

        def put(i):
            index, term1, ok1 = cfg.rafts[leader].put_command(100 + i)
            if term1 == term and ok1:
                with lock:
                    results.append(index)

        threads = [threading.Thread(target=put, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(raft.get_state()[1] != term for raft in cfg.rafts):
            continue   # term changed: cannot expect low RPC counts
        failed = False
        committed = []
        for index in results:
            command = cfg.wait(index, servers, term)
            if command == -1:
                failed = True   # peers have moved on to later terms
                break
            committed.append(command)
        if failed:
            continue
        for i in range(5):
            assert 100 + i in committed, f"cmd {100 + i} missing in {committed}"
        return
    raise AssertionError("term changed too often")
