"""Figure 2's rules (raft.rules), one test per sentence of the paper, plus hypothesis properties.

A log here is what raft.rules takes: a list whose item 0 is the sentinel LogEntry(0, None), so
entry i sits at log[i]. `make_log([1, 1, 2])` builds a log with entries of terms 1, 1, 2 at
indices 1..3; an entry's command is derived from its (term, index), as in a real Raft run two
entries with the same index and term hold the same command.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from raft import rules
from raft.log import Log
from raft.messages import AppendEntriesArgs, AppendEntriesReply, LogEntry, RequestVoteArgs


def entry(term: int, index: int) -> LogEntry:
    return LogEntry(term, f"t{term}@{index}")


def make_log(terms: list[int]) -> Log:
    return Log([entry(term, index) for index, term in enumerate(terms, 1)])


def terms_of(log: list[LogEntry]) -> list[int]:
    return [e.term for e in log[1:]]


def append_args(leader_log: list[LogEntry], prev: int, count: int | None = None, *,
                term: int = 9, leader_commit: int = 0) -> AppendEntriesArgs:
    """The AppendEntries a leader with `leader_log` sends for prevLogIndex `prev`, carrying
    `count` entries after it (all of them when None)."""
    end = len(leader_log) if count is None else prev + 1 + count
    return AppendEntriesArgs(term, 0, prev, leader_log[prev].term,
                             copy.deepcopy(leader_log[prev + 1:end]), leader_commit)


def accept_entries(log: list[LogEntry], args: AppendEntriesArgs,
                   current_term: int) -> tuple[list[LogEntry], AppendEntriesReply]:
    """`rules.plan_append` carried out on a copy, as `Raft.append_entries` carries it out on
    its log: (the new log, the reply); `log` is not modified."""
    reply, first, offset = rules.plan_append(log, args, current_term)
    if first is None:
        return log, reply
    new_log = log.copy()
    del new_log[first:]
    new_log.extend(args.entries[offset:])
    return new_log, reply


# ---- RequestVote (Figure 2, "RequestVote RPC: receiver implementation") ------------------------


def vote_args(term: int, candidate: int, last_index: int = 0, last_term: int = 0):
    return RequestVoteArgs(term, candidate, last_index, last_term)


def test_reject_vote_for_stale_term():
    """1. Reply false if term < currentTerm."""
    log = make_log([])
    assert rules.decide_vote(3, None, log, vote_args(2, 1)) == (3, None, False)
    assert rules.decide_vote(3, 4, log, vote_args(2, 1)) == (3, 4, False)
    # Even a candidate with a much better log is refused in a stale term.
    assert rules.decide_vote(3, None, make_log([1]), vote_args(2, 1, 10, 2)) == (3, None, False)


def test_vote_once_per_term():
    """2. If votedFor is null or candidateId ... grant vote: one vote per term."""
    log = make_log([1, 1])
    term, voted_for, granted = rules.decide_vote(3, None, log, vote_args(3, 1, 2, 1))
    assert (term, voted_for, granted) == (3, 1, True)
    # Another candidate of the same term: refused, the vote stays where it went.
    assert rules.decide_vote(term, voted_for, log, vote_args(3, 2, 5, 2)) == (3, 1, False)
    # The same candidate asking again (its first reply was lost): granted again.
    assert rules.decide_vote(term, voted_for, log, vote_args(3, 1, 2, 1)) == (3, 1, True)
    # A peer that voted for itself (a candidate) refuses everyone else in that term.
    assert rules.decide_vote(3, 0, log, vote_args(3, 1, 9, 9)) == (3, 0, False)


def test_newer_term_resets_the_vote():
    """All servers: if RPC request contains term T > currentTerm, set currentTerm = T (and the
    vote of the new term is still free)."""
    log = make_log([1, 2])
    assert rules.decide_vote(3, 1, log, vote_args(4, 2, 2, 2)) == (4, 2, True)
    # The term is adopted and the old vote forgotten even when this candidate is refused.
    assert rules.decide_vote(3, 1, log, vote_args(4, 2, 1, 1)) == (4, None, False)
    assert rules.decide_vote(3, 1, log, vote_args(7, 1, 0, 0)) == (7, None, False)


def test_candidate_log_must_be_at_least_as_up_to_date():
    """Section 5.4.1: the log with the later last term is more up to date; with the same last
    term, the longer log is."""
    up_to_date = rules.candidate_is_up_to_date   # (cand term, cand index, my term, my index)
    assert up_to_date(3, 1, 2, 10)       # later last term wins, even when much shorter
    assert not up_to_date(2, 10, 3, 1)   # earlier last term loses, even when much longer
    assert up_to_date(3, 5, 3, 4)        # same term: longer wins
    assert up_to_date(3, 5, 3, 5)        # same term, same length: "at least as" up to date
    assert not up_to_date(3, 4, 3, 5)    # same term: shorter loses
    assert up_to_date(0, 0, 0, 0)        # two empty logs

    my_log = make_log([1, 1, 3])
    # Through decide_vote, with a free vote in a newer term.
    assert rules.decide_vote(3, None, my_log, vote_args(4, 1, 1, 4))[2]
    assert rules.decide_vote(3, None, my_log, vote_args(4, 1, 3, 3))[2]
    assert not rules.decide_vote(3, None, my_log, vote_args(4, 1, 2, 3))[2]
    assert not rules.decide_vote(3, None, my_log, vote_args(4, 1, 9, 2))[2]
    assert not rules.decide_vote(3, None, my_log, vote_args(4, 1, 0, 0))[2]


# ---- AppendEntries (Figure 2, "AppendEntries RPC: receiver implementation") --------------------


def test_reject_append_when_prev_log_index_missing():
    """2. Reply false if log doesn't contain an entry at prevLogIndex ... ; the hint says the
    log is too short (conflict term 0) and where it ends (its length + 1)."""
    log = make_log([1, 1, 2])
    leader = make_log([1, 1, 2, 2, 2, 3])
    before = copy.deepcopy(log)
    new_log, reply = accept_entries(log, append_args(leader, 5), 9)
    assert reply == AppendEntriesReply(9, False, 0, 4)
    assert new_log == before and log == before
    # An empty follower log: the hint is index 1.
    _, reply = accept_entries(make_log([]), append_args(leader, 1), 9)
    assert (reply.success, reply.conflict_term, reply.conflict_index) == (False, 0, 1)
    # One past the end is already missing.
    _, reply = accept_entries(log, append_args(leader, 4), 9)
    assert (reply.success, reply.conflict_term, reply.conflict_index) == (False, 0, 4)


def test_reject_append_when_prev_log_term_mismatch():
    """2. ... whose term matches prevLogTerm; the hint is the conflicting entry's term and the
    first index this peer holds for that term."""
    follower = make_log([1, 1, 2, 2, 2, 2])
    leader = make_log([1, 1, 3, 3, 3, 3, 3])
    before = copy.deepcopy(follower)
    new_log, reply = accept_entries(follower, append_args(leader, 5), 9)
    assert reply == AppendEntriesReply(9, False, 2, 3)
    assert new_log == before and follower == before
    # The conflicting term starting at index 1: the hint never goes below 1.
    _, reply = accept_entries(make_log([2, 2, 2]), append_args(make_log([1, 3, 3]), 3), 9)
    assert (reply.success, reply.conflict_term, reply.conflict_index) == (False, 2, 1)
    # The conflict sitting exactly at the first entry of its term.
    _, reply = accept_entries(make_log([1, 1, 2]), append_args(make_log([1, 1, 3]), 3), 9)
    assert (reply.success, reply.conflict_term, reply.conflict_index) == (False, 2, 3)


def test_prev_log_index_zero_always_matches():
    """The sentinel at index 0 matches every leader: the first entry can always be sent."""
    leader = make_log([4, 4])
    for follower_terms in ([], [1], [1, 2, 3, 3]):
        new_log, reply = accept_entries(make_log(follower_terms),
                                        append_args(leader, 0), 9)
        assert reply.success
        assert new_log == leader


def test_truncate_only_conflicting_suffix():
    """3. If an existing entry conflicts with a new one (same index but different terms),
    delete the existing entry and all that follow it -- and only then: a stale or duplicated
    AppendEntries carrying fewer entries must not drop later entries the log agrees on."""
    leader = make_log([1, 1, 2, 2, 3])
    follower = copy.deepcopy(leader)
    # A delayed AppendEntries that carried only entries 2..3: every entry matches.
    new_log, reply = accept_entries(follower, append_args(leader, 1, 2), 9)
    assert reply.success
    assert new_log == leader
    # A delayed heartbeat with no entries at all.
    new_log, reply = accept_entries(follower, append_args(leader, 2, 0), 9)
    assert reply.success and new_log == leader

    # A real conflict: the follower's term-2 suffix from index 3 is replaced, the agreeing
    # prefix kept.
    follower = make_log([1, 1, 2, 2, 2, 2])
    leader = make_log([1, 1, 3, 3])
    new_log, reply = accept_entries(follower, append_args(leader, 1), 9)
    assert reply.success
    assert new_log == leader
    # The conflict is met in the middle of the entries: the first matching ones are kept as
    # they were, everything from the conflict on is the leader's.
    follower = make_log([1, 1, 2, 2, 2, 2])
    leader = make_log([1, 1, 2, 4, 4])
    new_log, reply = accept_entries(follower, append_args(leader, 1, 3), 9)
    assert reply.success
    assert new_log == make_log([1, 1, 2, 4])
    assert new_log[3] == follower[3]


def test_append_new_entries_not_already_in_log():
    """4. Append any new entries not already in the log."""
    follower = make_log([1, 1])
    leader = make_log([1, 1, 1, 2, 2])
    # Overlapping: entries 2..5 sent, 2 already present.
    new_log, reply = accept_entries(follower, append_args(leader, 1), 9)
    assert reply.success
    assert new_log == leader
    assert follower == make_log([1, 1]), "the caller's list must not be modified"
    # Partly overlapping, and the follower is longer than prev + entries: nothing lost.
    follower = make_log([1, 1, 1, 2, 2])
    new_log, reply = accept_entries(follower, append_args(leader, 0, 3), 9)
    assert reply.success and new_log == leader
    # Exactly at the end.
    follower = make_log([1, 1, 1])
    new_log, reply = accept_entries(follower, append_args(leader, 3), 9)
    assert reply.success and new_log == leader
    assert reply.term == 9


def test_follower_commit_is_min_of_leader_commit_and_last_new_entry():
    """5. If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new
    entry) -- never moving it backwards."""
    commit = rules.follower_commit_index   # (commit index, leader commit, last new index)
    assert commit(2, 10, 5) == 5    # the leader has committed past what it sent here
    assert commit(2, 4, 5) == 4     # the leader's commit is the bound
    assert commit(0, 0, 5) == 0
    assert commit(2, 4, 4) == 4
    # Never backwards: a delayed AppendEntries with an old leaderCommit, or a heartbeat whose
    # prevLogIndex lies behind the commit index.
    assert commit(6, 3, 8) == 6
    assert commit(6, 10, 3) == 6
    assert commit(6, 6, 6) == 6


def test_never_count_replicas_of_an_old_terms_entry():
    """Section 5.4.2 / Figure 8: a leader never commits an entry of an earlier term by counting
    replicas; it is committed indirectly once an entry of the current term after it is."""
    # Figure 8 (c): S1, leader in term 4, has index 2 (term 2) on S1, S2 and S3 of five.
    log = make_log([1, 2])
    assert rules.leader_commit_index(log, [2, 2, 2, 1, 1], 4, 1) == 1
    assert rules.leader_commit_index(log, [2, 2, 2, 2, 2], 4, 1) == 1
    # (e): S1 appends a term-4 entry; while it is only on a minority nothing commits.
    log = make_log([1, 2, 4])
    assert rules.leader_commit_index(log, [3, 3, 2, 1, 1], 4, 1) == 1
    # Once it is on a majority, index 3 commits, and index 2 with it.
    assert rules.leader_commit_index(log, [3, 3, 3, 1, 1], 4, 1) == 3
    assert rules.leader_commit_index(log, [3, 1, 3, 1, 3], 4, 0) == 3


def test_leader_commits_the_largest_majority_index_of_its_term():
    """Leaders: if there exists an N > commitIndex such that a majority of matchIndex[i] >= N and
    log[N].term == currentTerm, set commitIndex = N."""
    log = make_log([1, 3, 3, 3, 3])
    assert rules.leader_commit_index(log, [5, 4, 4, 2, 0], 3, 0) == 4
    assert rules.leader_commit_index(log, [5, 5, 3, 3, 5], 3, 1) == 5
    assert rules.leader_commit_index(log, [5, 5, 1, 1, 1], 3, 1) == 1
    # Never backwards.
    assert rules.leader_commit_index(log, [5, 2, 2, 2, 2], 3, 4) == 4
    # Even cluster sizes need more than half: 3 of 4.
    assert rules.leader_commit_index(log, [5, 5, 1, 1], 3, 1) == 1
    assert rules.leader_commit_index(log, [5, 5, 4, 1], 3, 1) == 4
    # Three peers: two are a majority. One peer: itself.
    assert rules.leader_commit_index(log, [5, 3, 0], 3, 0) == 3
    assert rules.leader_commit_index(log, [5], 3, 0) == 5


def test_fast_backup_skips_a_whole_term():
    """The extended paper's section 5.3 optimisation: back up a whole conflicting term per
    rejection instead of one index."""
    backup = rules.next_index_after_rejection
    leader = make_log([1, 1, 2, 2, 2, 4, 4, 4])
    # The leader has the follower's conflicting term (2): retry just after its last entry of it.
    assert backup(leader, AppendEntriesReply(5, False, 2, 3), 9) == 6
    # The leader has no entry of the conflicting term (3): from the follower's first one.
    assert backup(leader, AppendEntriesReply(5, False, 3, 4), 9) == 4
    # The follower's log is too short: from its end.
    assert backup(leader, AppendEntriesReply(5, False, 0, 3), 9) == 3
    # Always back by at least one, even if a hint would not move it.
    assert backup(leader, AppendEntriesReply(5, False, 0, 12), 9) == 8
    assert backup(leader, AppendEntriesReply(5, False, 4, 6), 7) == 6
    # Never below 1.
    assert backup(leader, AppendEntriesReply(5, False, 0, 0), 9) == 1
    assert backup(leader, AppendEntriesReply(5, False, 3, 1), 2) == 1
    assert backup(leader, AppendEntriesReply(5, False, 0, 1), 1) == 1

    # End to end with accept_entries: a follower holding a long stale term is repaired in
    # three round trips (a term-3 skip, a term-2 skip, success), not one per entry.
    follower = make_log([1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3])
    leader = make_log([1, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4])
    next_index, rounds = len(leader), 0
    while True:
        rounds += 1
        follower, reply = accept_entries(follower, append_args(leader, next_index - 1), 9)
        if reply.success:
            break
        next_index = backup(leader, reply, next_index)
    assert follower == leader
    assert rounds == 3


# ---- properties (hypothesis) -------------------------------------------------------------------


def nondecreasing(first: int, steps: list[int]) -> list[int]:
    terms, term = [], first
    for step in steps:
        term += step
        terms.append(term)
    return terms


terms_strategy = st.builds(nondecreasing, st.integers(1, 3),
                           st.lists(st.integers(0, 2), max_size=10))


@st.composite
def leader_and_follower(draw):
    """Two logs that obey Log Matching, as any two Raft logs do: a common prefix, then suffixes
    whose terms are disjoint (a term has one leader, whose entries extend one log), each
    non-decreasing and no earlier than the prefix's last term."""
    prefix = draw(terms_strategy)
    base = prefix[-1] if prefix else 1
    leader_suffix = sorted(draw(st.lists(st.integers(base, base + 6), max_size=8)))
    follower_suffix = sorted(t for t in draw(st.lists(st.integers(base, base + 6), max_size=8))
                             if t not in leader_suffix)
    leader = make_log(prefix + leader_suffix)
    follower = make_log(prefix + follower_suffix)
    term = max([base] + leader_suffix + follower_suffix) + draw(st.integers(0, 2))
    return leader, follower, term


def last_agreeing_index(a: list[LogEntry], b: list[LogEntry]) -> int:
    index = 0
    while index + 1 < min(len(a), len(b)) and a[index + 1].term == b[index + 1].term:
        index += 1
    return index


@settings(max_examples=400, deadline=None)
@given(leader_and_follower(), st.data())
def test_property_log_matching_after_append(logs, data):
    leader, follower, term = logs
    prev = data.draw(st.integers(0, len(leader) - 1), label="prev")
    count = data.draw(st.integers(0, len(leader) - 1 - prev), label="count")
    args = append_args(leader, prev, count, term=term)
    before = copy.deepcopy(follower)
    new_log, reply = accept_entries(follower, args, term)
    assert follower == before, "accept_entries modified the caller's log"
    assert reply.term == term
    has_prev = prev < len(before) and before[prev].term == leader[prev].term
    assert reply.success == has_prev
    if not reply.success:
        assert new_log == before
        if prev >= len(before):
            assert (reply.conflict_term, reply.conflict_index) == (0, len(before))
        else:
            conflict_term = before[prev].term
            assert reply.conflict_term == conflict_term
            first = reply.conflict_index
            assert 1 <= first <= prev
            assert all(e.term == conflict_term for e in before[first:prev + 1])
            assert first == 1 or before[first - 1].term != conflict_term
        return
    last_new = prev + count
    # Log Matching: the follower now agrees with the leader through the last new entry.
    assert len(new_log) > last_new
    assert new_log[:last_new + 1] == leader[:last_new + 1]
    # Entries before the first conflict are unchanged; with no conflict nothing is dropped.
    conflict = next((i for i in range(prev + 1, last_new + 1)
                     if i < len(before) and before[i].term != leader[i].term), None)
    keep = conflict if conflict is not None else len(before)
    assert new_log[:keep] == before[:keep]
    if conflict is None:
        assert len(new_log) == max(len(before), last_new + 1)
        assert new_log[last_new + 1:] == before[last_new + 1:]
    else:
        assert len(new_log) == last_new + 1
    # Terms stay non-decreasing.
    assert terms_of(new_log) == sorted(terms_of(new_log))


@settings(max_examples=300, deadline=None)
@given(leader_and_follower())
def test_property_fast_backup_converges_without_overshooting(logs):
    """Repairing a follower from nextIndex = leader's length + 1: every rejection backs up by at
    least one but never past the last index where the logs agree, one round per follower term
    at most, and the follower ends with the leader's log."""
    leader, follower, term = logs
    agree = last_agreeing_index(leader, follower)
    distinct_terms = len(set(terms_of(follower)))
    next_index, rounds = len(leader), 0
    while True:
        rounds += 1
        assert rounds <= distinct_terms + 2, "fast backup takes more than one round per term"
        follower, reply = accept_entries(follower, append_args(leader, next_index - 1,
                                                               term=term), term)
        if reply.success:
            break
        new_next = rules.next_index_after_rejection(leader, reply, next_index)
        assert 1 <= new_next <= next_index - 1
        assert new_next - 1 >= agree, "backed up past the point where the logs agree"
        next_index = new_next
    assert follower[:len(leader)] == leader[:]


@settings(max_examples=300, deadline=None)
@given(terms_strategy, st.data())
def test_property_next_index_bounds(terms, data):
    """For any hint at all: at least one back (unless already at 1), never below 1."""
    log = make_log(terms)
    next_index = data.draw(st.integers(1, len(log)), label="next_index")
    reply = AppendEntriesReply(9, False, data.draw(st.integers(0, 12), label="conflict_term"),
                               data.draw(st.integers(0, 15), label="conflict_index"))
    new_next = rules.next_index_after_rejection(log, reply, next_index)
    assert 1 <= new_next <= max(1, next_index - 1)


@settings(max_examples=400, deadline=None)
@given(terms_strategy, st.data())
def test_property_leader_commit_index(terms, data):
    log = make_log(terms)
    last = len(log) - 1
    current_term = (terms[-1] if terms else 1) + data.draw(st.integers(0, 2), label="extra")
    followers = data.draw(st.lists(st.integers(0, last), min_size=0, max_size=6),
                          label="follower matches")
    match = [last] + followers   # the leader's own entry counts
    commit = data.draw(st.integers(0, last), label="commit_index")
    n = rules.leader_commit_index(log, match, current_term, commit)

    def on_majority(index: int) -> bool:
        return 2 * sum(m >= index for m in match) > len(match)

    assert n >= commit
    if n != commit:
        assert log[n].term == current_term, "committed by counting an old term's entry"
        assert on_majority(n)
    # And it is the largest such index: nothing committable is left behind.
    assert not any(log[i].term == current_term and on_majority(i)
                   for i in range(max(n, commit) + 1, last + 1))
