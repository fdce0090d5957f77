"""The messages the storage server's actors exchange (all registered, all marshalled).

    Query        QueryReceiver -> query actor: a GetArgs/PutArgs/ListArgs/StatusArgs and the
                 channel ref that takes the answer.
    QueryInit    new_server -> query actor: its local peers and its server's sync actor.
    SyncInit     new_server -> sync actor: the local query actors and the remote sync actors.
    LocalBatch   query actor -> local peers and sync actor; sync actor -> query actors: entries
                 (packed by cmud.lww.pack).
    RemoteBatch  sync actor -> remote sync actor: entries, per-origin ranges and versions,
                 requests for what went missing, the snapshot handshake (cmud.coverage).
    Flush, Tick  an actor to itself (tell_after): time to send what is pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import rpc
from actor import ActorRef


@rpc.register
@dataclass
class Query:
    args: object
    reply_to: ActorRef


@rpc.register
@dataclass
class StatusArgs:
    pass


@rpc.register
@dataclass
class StatusReply:
    """One query actor's figures (`python -m cmud status`)."""
    actor: str
    keys: int
    puts_accepted: int
    sync_messages_in: int
    sync_bytes_in: int
    sync_messages_out: int
    sync_bytes_out: int
    last_sync_age_ms: int   # -1: no sync message received yet


@rpc.register
@dataclass
class QueryInit:
    peers: list
    sync: ActorRef


@rpc.register
@dataclass
class SyncInit:
    actors: list
    remotes: list


@rpc.register
@dataclass
class LocalBatch:
    origins: list
    rows: list


@rpc.register
@dataclass
class RemoteBatch:
    sender: ActorRef
    origins: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    ranges: dict = field(default_factory=dict)    # origin -> [lo, hi]: all its Puts in (lo, hi]
    latest: dict = field(default_factory=dict)    # origin -> the sender's latest seq
    need: dict = field(default_factory=dict)      # origin -> resend me its Puts after this seq
    want_snapshot: bool = False                   # the sender has not had our state yet
    snapshot: bool = False                        # this batch is our whole state


@rpc.register
@dataclass
class Flush:
    pass


@rpc.register
@dataclass
class Tick:
    pass
