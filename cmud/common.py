"""The query types of the storage service (the course's `kvcommon`), served by every query
actor's RPC port as the service "QueryReceiver" with methods get, put and list.

Keys and values are str. A Get of an absent key answers GetReply("", False); a List answers
every (key, value) whose key starts with the prefix ("" lists everything).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import rpc

SERVICE = "QueryReceiver"


@rpc.register
@dataclass
class GetArgs:
    key: str


@rpc.register
@dataclass
class GetReply:
    value: str
    ok: bool


@rpc.register
@dataclass
class PutArgs:
    key: str
    value: str


@rpc.register
@dataclass
class PutReply:
    pass


@rpc.register
@dataclass
class ListArgs:
    prefix: str


@rpc.register
@dataclass
class ListReply:
    entries: dict[str, str] = field(default_factory=dict)


def check_text(name: str, value) -> str:
    """`value` if it is a str, else a TypeError naming the field (bad input gets a clear
    message at the caller, not a confusing failure inside the server)."""
    if type(value) is not str:
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value
