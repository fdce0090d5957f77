"""Raft.read_index (Raft dissertation 6.4) on simnet: the leader answers with its commit index
once an entry of its term is committed and a majority has answered a heartbeat round begun
after the call; a follower, a leader cut off from the majority, and a leader deposed while
it was cut off all answer None."""

import time

from tests.raft.config import RAFT_ELECTION_TIMEOUT_SECONDS


def test_leader_answers_its_commit_index(make_config):
    cfg = make_config(3)
    index = cfg.one(101, 3)
    leader = cfg.check_one_leader()
    read = cfg.rafts[leader].read_index(5.0)
    assert read is not None and read >= index


def test_followers_answer_none(make_config):
    cfg = make_config(3)
    cfg.one(102, 3)
    leader = cfg.check_one_leader()
    for i in range(3):
        if i != leader:
            assert cfg.rafts[i].read_index(1.0) is None


def test_a_fresh_leader_waits_for_an_entry_of_its_term(make_config):
    cfg = make_config(3)
    cfg.one(103, 3)
    leader = cfg.check_one_leader()
    cfg.disconnect(leader)             # a new leader, with nothing of its term committed
    new_leader = cfg.check_one_leader()
    assert cfg.rafts[new_leader].read_index(0.5) is None
    index = cfg.one(104, 2)
    read = cfg.rafts[new_leader].read_index(5.0)
    assert read is not None and read >= index
    cfg.connect(leader)


def test_a_leader_cut_off_from_the_majority_answers_none(make_config):
    cfg = make_config(3)
    cfg.one(105, 3)
    leader = cfg.check_one_leader()
    cfg.disconnect(leader)
    started = time.monotonic()
    # It still believes it leads (nothing told it otherwise) but cannot confirm it.
    assert cfg.rafts[leader].get_state()[2]
    assert cfg.rafts[leader].read_index(1.0) is None
    assert time.monotonic() - started < 1.0 + RAFT_ELECTION_TIMEOUT_SECONDS
    # The majority moves on and writes; the old leader, reconnected, must not vouch for its
    # stale commit index: it learns of the new term and answers None.
    cfg.check_one_leader()
    cfg.one(106, 2)
    old = cfg.rafts[leader]
    cfg.connect(leader)
    assert old.read_index(5.0) is None
    cfg.one(107, 3)


def test_a_lone_peer_answers_at_once(make_config):
    cfg = make_config(1)
    index = cfg.one(108, 1)
    assert cfg.rafts[0].read_index(1.0) == index
