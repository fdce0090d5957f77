"""What clerks and replicas say to each other over rpc (simnet in tests, TCP otherwise). Every
class is registered with the rpc codec. A reply's `err` is one of the ERR_ constants (a bad
request's adds a reason after a colon); `leader_hint` is the replica this one believes leads,
or None.

Served by each replica as the rpc service "KV":
    KV.get(GetArgs) -> GetReply
    KV.put_append(PutAppendArgs) -> PutAppendReply
    KV.status(StatusQuery) -> Status
"""

from __future__ import annotations

from dataclasses import dataclass

import rpc

OK = "OK"
ERR_WRONG_LEADER = "ErrWrongLeader"   # not the leader, or lost leadership: try another
ERR_TIMEOUT = "ErrTimeout"            # not done in time here: retry (exactly once holds)
ERR_CLOSED = "ErrClosed"              # this replica is shutting down
ERR_BAD_REQUEST = "ErrBadRequest"     # malformed; retrying will not help


@rpc.register
@dataclass
class GetArgs:
    key: str


@rpc.register
@dataclass
class GetReply:
    err: str
    value: str = ""
    leader_hint: int | None = None


@rpc.register
@dataclass
class PutAppendArgs:
    op: str          # "put" | "append"
    key: str
    value: str
    clerk_id: int
    seq: int         # the clerk's operations count from 1; a retry keeps its seq


@rpc.register
@dataclass
class PutAppendReply:
    err: str
    leader_hint: int | None = None


@rpc.register
@dataclass
class StatusQuery:
    """No fields: which replica answers is the question."""


@rpc.register
@dataclass
class Status:
    id: int
    role: str
    term: int
    commit_index: int
    applied_index: int
    snapshot_index: int
    keys: int
    leader: int | None
