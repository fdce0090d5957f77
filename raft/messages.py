"""What Raft peers send each other (Figure 2's RPC arguments and replies) and what they apply.
Every class is registered with the rpc codec, so it can cross simnet or TCP."""

from __future__ import annotations

from dataclasses import dataclass, field

import rpc


@rpc.register
@dataclass(frozen=True)
class ApplyCommand:
    """A committed command, delivered on apply_ch in index order from 1, without gaps."""
    index: int
    command: object


@rpc.register
@dataclass
class LogEntry:
    term: int
    command: object


@rpc.register
@dataclass
class RequestVoteArgs:
    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int


@rpc.register
@dataclass
class RequestVoteReply:
    term: int
    vote_granted: bool


@rpc.register
@dataclass
class AppendEntriesArgs:
    term: int
    leader_id: int
    prev_log_index: int
    prev_log_term: int
    entries: list = field(default_factory=list)
    leader_commit: int = 0


@rpc.register
@dataclass
class AppendEntriesReply:
    term: int
    success: bool
    # Fast backup (the extended paper, section 5.3): on a rejection, the term of the
    # conflicting entry (0: the log is too short) and the first index this peer holds for
    # that term (or its log length + 1 when too short).
    conflict_term: int = 0
    conflict_index: int = 0
