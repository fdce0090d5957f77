"""The miner's shared vocabulary: the hash, and the Join, Request and Result messages with the
Go JSON keys (`Type, Data, Lower, Upper, Hash, Nonce`), carried as LSP payloads.

`hash(data, nonce)` is the first 8 bytes, big-endian, of SHA-256 over `data + " " + nonce`
in decimal. `scan(data, lower, upper)` is the miner's inner loop: the (hash, nonce) with the
smallest hash over the inclusive range, the smaller nonce on a tie (so that every split of a
range gives the answer of one brute-force pass).
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass

from lsp.message import load_json_object

MAX_UINT64 = (1 << 64) - 1


def hash(data: str, nonce: int) -> int:  # noqa: A001 - the course's name
    """The course's Hash: an unsigned 64-bit integer."""
    digest = hashlib.sha256(f"{data} {nonce}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def scan(data: str, lower: int, upper: int) -> tuple[int, int]:
    """The minimum (hash, nonce) over lower..upper inclusive (lower <= upper).

    Why it looks like this: the prefix `data + " "` is hashed once and its state copied per
    nonce; nonces are formatted with bytes %-formatting; digests are compared as bytes (for
    equal lengths, byte order is big-endian numeric order) and only the winner becomes an int.
    Nonces go up, so a later digest equal in its first 8 bytes (the hash) never wins."""
    if lower > upper:
        raise ValueError(f"empty range {lower}..{upper}")
    copy = hashlib.sha256(f"{data} ".encode()).copy
    best = b"\xff" * 33
    best_nonce = lower
    for nonce in range(lower, upper + 1):
        state = copy()
        state.update(b"%d" % nonce)
        digest = state.digest()
        if digest < best and digest[:8] != best[:8]:   # a tie on the hash keeps the earlier
            best = digest
            best_nonce = nonce
    return int.from_bytes(best[:8], "big"), best_nonce


class MsgType(enum.IntEnum):
    JOIN = 0
    REQUEST = 1
    RESULT = 2


class BadMessage(ValueError):
    """A payload that is not a miner message."""


@dataclass(frozen=True)
class Message:
    type: MsgType
    data: str = ""
    lower: int = 0
    upper: int = 0
    hash: int = 0
    nonce: int = 0

    def __str__(self) -> str:
        if self.type == MsgType.JOIN:
            return "[Join]"
        if self.type == MsgType.REQUEST:
            return f"[Request {self.data} {self.lower} {self.upper}]"
        return f"[Result {self.hash} {self.nonce}]"


def new_join() -> Message:
    return Message(MsgType.JOIN)


def new_request(data: str, lower: int, upper: int) -> Message:
    return Message(MsgType.REQUEST, data=data, lower=lower, upper=upper)


def new_result(hash_value: int, nonce: int) -> Message:
    return Message(MsgType.RESULT, hash=hash_value, nonce=nonce)


def encode(message: Message) -> bytes:
    """Go's json.Marshal of the course's Message struct, byte for byte."""
    return json.dumps({"Type": int(message.type), "Data": message.data, "Lower": message.lower,
                       "Upper": message.upper, "Hash": message.hash, "Nonce": message.nonce},
                      separators=(",", ":"), ensure_ascii=False
                      ).translate(_GO_ESCAPES).encode()


# What Go's encoder escapes beyond what Python's does (HTML-safe output, JS line separators).
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                             "\u2028": "\\u2028", "\u2029": "\\u2029"})


def decode(payload: bytes) -> Message:
    """Raises BadMessage for anything but a well-typed message (unknown keys are ignored and
    missing ones are zero, as Go's json.Unmarshal does)."""
    fields = load_json_object(payload, BadMessage)
    values = {}
    for key, kind in (("Type", int), ("Data", str), ("Lower", int), ("Upper", int),
                      ("Hash", int), ("Nonce", int)):
        value = fields.get(key, kind())
        if value is None:
            value = kind()
        if type(value) is not kind:
            raise BadMessage(f"{key} must be {'a string' if kind is str else 'an integer'}")
        if kind is int and not 0 <= value <= MAX_UINT64:
            raise BadMessage(f"{key} out of the uint64 range")
        values[key.lower()] = value
    try:
        values["type"] = MsgType(values["type"])
    except ValueError:
        raise BadMessage(f"unknown message type {values['type']}") from None
    return Message(**values)
