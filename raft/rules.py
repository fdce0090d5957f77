"""Figure 2's rules as pure functions on plain values: no locks, threads, clocks or network.
`raft.raft.Raft` holds the state and applies them under its lock.

A log is a `raft.log.Log`: entry i sits at log[i], indices start at 1, as the course's do,
and stay global after a snapshot has replaced the log's beginning; log[log.snapshot_index] is
then a sentinel carrying the snapshot's last term, and nothing before it can be read.
"""

from __future__ import annotations

from raft.log import Log
from raft.messages import AppendEntriesArgs, AppendEntriesReply, RequestVoteArgs


def last_index_and_term(log: Log) -> tuple[int, int]:
    return len(log) - 1, log[-1].term


def candidate_is_up_to_date(candidate_last_term: int, candidate_last_index: int,
                            my_last_term: int, my_last_index: int) -> bool:
    """Section 5.4.1: the later last term wins; with equal terms, the longer log."""
    if candidate_last_term != my_last_term:
        return candidate_last_term > my_last_term
    return candidate_last_index >= my_last_index


def decide_vote(current_term: int, voted_for: int | None, log: Log,
                args: RequestVoteArgs) -> tuple[int, int | None, bool]:
    """RequestVote receiver: (term, voted_for, granted) after seeing `args`.
    A newer term resets the vote; a vote goes once per term, to an up-to-date candidate."""
    if args.term < current_term:
        return current_term, voted_for, False
    if args.term > current_term:
        current_term, voted_for = args.term, None
    my_last_index, my_last_term = last_index_and_term(log)
    granted = (voted_for in (None, args.candidate_id) and candidate_is_up_to_date(
        args.last_log_term, args.last_log_index, my_last_term, my_last_index))
    return current_term, (args.candidate_id if granted else voted_for), granted


def plan_append(log: Log, args: AppendEntriesArgs,
                current_term: int) -> tuple[AppendEntriesReply, int | None, int]:
    """AppendEntries receiver steps 2-4, for `args.term >= current_term` (the caller has
    already adopted the term), as an edit rather than a new log, so that applying it costs
    what the message carries, not the log's length: (reply, first, offset) means "replace
    log[first:] with args.entries[offset:]"; first is None when the log stays as it is.

    Rejects when the log has no entry at prevLogIndex whose term matches prevLogTerm
    (with the fast-backup hints); otherwise truncates only at the first conflicting entry (a
    stale, reordered AppendEntries never removes entries it agrees with) and appends the
    entries not already present. Entries at or before the snapshot are committed, so they
    agree with the leader's: the part of `args` they cover is skipped."""
    prev, skip = args.prev_log_index, 0
    if prev < log.snapshot_index:
        skip = log.snapshot_index - prev
        if skip >= len(args.entries):
            return AppendEntriesReply(current_term, True), None, 0
        prev = log.snapshot_index
    elif prev >= len(log):
        return AppendEntriesReply(current_term, False, 0, len(log)), None, 0
    elif log[prev].term != args.prev_log_term:
        conflict_term = log[prev].term
        first = prev
        while first > log.snapshot_index + 1 and log[first - 1].term == conflict_term:
            first -= 1
        return AppendEntriesReply(current_term, False, conflict_term, first), None, 0
    for offset in range(skip, len(args.entries)):
        entry = args.entries[offset]
        index = prev + 1 + offset - skip
        if index >= len(log) or log[index].term != entry.term:
            return AppendEntriesReply(current_term, True), index, offset
    return AppendEntriesReply(current_term, True), None, 0


def follower_commit_index(commit_index: int, leader_commit: int, last_new_index: int) -> int:
    """Step 5: min(leaderCommit, index of the last new entry), never backwards."""
    return max(commit_index, min(leader_commit, last_new_index))


def leader_commit_index(log: Log, match_indexes: list[int], current_term: int,
                        commit_index: int) -> int:
    """The largest N > commitIndex replicated on a majority (match_indexes includes the
    leader's own last index) with log[N].term == currentTerm: replicas of an older term's
    entry are never counted toward committing it (section 5.4.2, Figure 8)."""
    ordered = sorted(match_indexes, reverse=True)
    majority_index = ordered[len(match_indexes) // 2]
    for n in range(majority_index, commit_index, -1):
        if log[n].term == current_term:
            return n
        if log[n].term < current_term:
            break
    return commit_index


def next_index_after_rejection(log: Log, reply: AppendEntriesReply,
                               next_index: int) -> int:
    """Fast backup: skip a whole conflicting term at a time. If the leader has entries of the
    follower's conflicting term, retry just after its last one; otherwise from the follower's
    first index of that term (or its log end when its log was too short). Always moves back
    by at least one and never below 1; at or below the snapshot's index, the follower needs
    the snapshot."""
    if reply.conflict_term == 0:
        candidate = reply.conflict_index
    else:
        candidate = reply.conflict_index
        for index in range(len(log) - 1, log.snapshot_index, -1):
            if log[index].term == reply.conflict_term:
                candidate = index + 1
                break
            if log[index].term < reply.conflict_term:
                break
    return max(1, min(candidate, next_index - 1))
