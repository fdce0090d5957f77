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


@rpc.register
@dataclass(frozen=True)
class ApplySnapshot:
    """On apply_ch: the service's state through `index` (whose entry had `term`) is
    `snapshot`; the service replaces its state with it, and the next ApplyCommand is
    index + 1. A restarted peer sends its own snapshot first; otherwise the leader installed
    one on this peer."""
    index: int
    term: int
    snapshot: bytes


@rpc.register
@dataclass
class InstallSnapshotArgs:
    """Figure 13, in one piece (no offset, no chunks): the leader's snapshot through
    last_included_index, whose entry had last_included_term."""
    term: int
    leader_id: int
    last_included_index: int
    last_included_term: int
    data: bytes = b""


@rpc.register
@dataclass
class InstallSnapshotReply:
    term: int
