"""One Raft peer's side of snapshots (Figure 13), driven directly through its handlers: an
InstallSnapshot that fits replaces the log and reaches apply_ch, one that does not fit changes
nothing, commands resume after a snapshot, and a restarted peer sends its snapshot first."""

from __future__ import annotations

import pytest

import csp
from raft import ApplyCommand, ApplySnapshot, Raft
from raft.messages import AppendEntriesArgs, InstallSnapshotArgs, LogEntry
from raft.persister import MemoryPersister

WAIT_SECONDS = 10.0


class Silent:
    """A peer end whose calls all fail (no network): the peer under test stays a follower."""

    def call(self, method, args):
        return None


def make_peer(persister=None) -> tuple[Raft, csp.Chan]:
    apply_ch = csp.Chan(64)
    raft = Raft([Silent(), Silent(), Silent()], 0, apply_ch, persister=persister,
                election_timeout_seconds=(300.0, 400.0))
    return raft, apply_ch


def next_message(apply_ch: csp.Chan):
    got = csp.Recv(apply_ch)
    case, message, _ = csp.select_case(got, csp.Recv(csp.after(WAIT_SECONDS)))
    assert case is got, f"nothing on apply_ch within {WAIT_SECONDS} s"
    return message


def no_message(apply_ch: csp.Chan) -> None:
    case, message, _ = csp.select_case(csp.Recv(apply_ch), default=True)
    assert case is None, f"unexpected {message}"


def state_of(raft: Raft):
    with raft._lock:
        return (raft._current_term, raft._voted_for, raft._log.copy(), raft._commit_index,
                raft._snapshot)


@pytest.fixture
def peer():
    raft, apply_ch = make_peer(MemoryPersister())
    yield raft, apply_ch
    raft.stop()


def committed_log(raft, apply_ch, count=3, term=2):
    entries = [LogEntry(term, 100 + k) for k in range(1, count + 1)]
    reply = raft.append_entries(AppendEntriesArgs(term, 1, 0, 0, entries, count))
    assert reply.success
    return [next_message(apply_ch) for _ in range(count)]


def test_install_that_fits_replaces_the_log_and_commands_resume(peer):
    raft, apply_ch = peer
    assert committed_log(raft, apply_ch) == [ApplyCommand(k, 100 + k) for k in (1, 2, 3)]
    reply = raft.install_snapshot(InstallSnapshotArgs(2, 1, 10, 2, b"ten"))
    assert reply.term == 2
    assert next_message(apply_ch) == ApplySnapshot(10, 2, b"ten")
    assert raft.status()["commit_index"] == 10
    reply = raft.append_entries(AppendEntriesArgs(2, 1, 10, 2, [LogEntry(2, 111)], 11))
    assert reply.success
    assert next_message(apply_ch) == ApplyCommand(11, 111)


def test_install_from_a_past_term_changes_nothing(peer):
    raft, apply_ch = peer
    committed_log(raft, apply_ch)
    before = state_of(raft)
    reply = raft.install_snapshot(InstallSnapshotArgs(1, 1, 10, 1, b"old leader"))
    assert reply.term == 2
    assert state_of(raft) == before
    no_message(apply_ch)


@pytest.mark.parametrize("index, last_term", [(2, 2), (3, 2), (0, 0), (5, 9)])
def test_install_that_does_not_fit_changes_nothing(peer, index, last_term):
    """An index the commit index has reached (3 here), or a last term past the leader's."""
    raft, apply_ch = peer
    committed_log(raft, apply_ch)
    before = state_of(raft)
    reply = raft.install_snapshot(InstallSnapshotArgs(2, 1, index, last_term, b"stale"))
    assert reply.term == 2
    assert state_of(raft) == before
    no_message(apply_ch)


def test_install_keeps_the_entries_after_a_matching_snapshot(peer):
    raft, apply_ch = peer
    entries = [LogEntry(2, 100 + k) for k in range(1, 6)]
    assert raft.append_entries(AppendEntriesArgs(2, 1, 0, 0, entries, 1)).success
    assert next_message(apply_ch) == ApplyCommand(1, 101)
    raft.install_snapshot(InstallSnapshotArgs(2, 1, 3, 2, b"three"))
    assert next_message(apply_ch) == ApplySnapshot(3, 2, b"three")
    with raft._lock:
        assert raft._log.last_index == 5 and raft._log[4] == LogEntry(2, 104)


def test_service_snapshot_trims_and_restart_applies_it_first():
    persister = MemoryPersister()
    raft, apply_ch = make_peer(persister)
    try:
        committed_log(raft, apply_ch, count=5)
        with pytest.raises(ValueError):
            raft.snapshot(6, b"not committed yet")
        raft.snapshot(4, b"state through four")
        raft.snapshot(2, b"older: ignored")
        with raft._lock:
            assert raft._log.snapshot_index == 4 and raft._log.last_index == 5
    finally:
        raft.stop()
    assert persister.load_snapshot() == (4, 2, b"state through four")
    assert persister.load()[2] == [LogEntry(2, 105)]
    again, apply_ch = make_peer(persister.copy())
    try:
        assert next_message(apply_ch) == ApplySnapshot(4, 2, b"state through four")
        # Index 5 is not known committed after the restart until a leader says so.
        assert again.append_entries(AppendEntriesArgs(3, 1, 5, 2, [], 5)).success
        assert next_message(apply_ch) == ApplyCommand(5, 105)
    finally:
        again.stop()


def test_leader_sends_install_snapshot_to_a_follower_behind_it():
    """Two in-process peers: once the leader's log starts after a snapshot, a blank follower
    can only catch up through InstallSnapshot."""
    ends: list = [None, None]

    class Direct:
        def __init__(self, j):
            self.j = j

        def call(self, method, args):
            target = ends[self.j]
            return None if target is None else getattr(target, method)(args)

    def make(me, apply_ch, timeouts):
        return Raft([Direct(0), Direct(1)], me, apply_ch, election_timeout_seconds=timeouts)

    leader_ch = csp.Chan(64)
    ends[1] = make(1, csp.Chan(64), (300.0, 400.0))
    ends[0] = leader = make(0, leader_ch, (0.05, 0.1))
    try:
        won_by = csp.after(WAIT_SECONDS)
        for k in range(1, 13):
            while not leader.put_command(k)[2]:   # until it has won its election
                assert not won_by.closed and won_by.empty(), "peer 0 never led"
                csp.after(0.02).recv()
        assert [next_message(leader_ch) for _ in range(12)] == [
            ApplyCommand(k, k) for k in range(1, 13)]
        leader.snapshot(10, b"ten")
        follower, ends[1] = ends[1], None
        follower.stop()
        fresh_ch = csp.Chan(64)
        ends[1] = make(1, fresh_ch, (300.0, 400.0))
        term = leader.get_state()[1]
        assert next_message(fresh_ch) == ApplySnapshot(10, term, b"ten")
        assert [next_message(fresh_ch) for _ in range(2)] == [ApplyCommand(11, 11),
                                                             ApplyCommand(12, 12)]
    finally:
        leader.stop()
        if ends[1] is not None:
            ends[1].stop()
