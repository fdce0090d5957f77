"""The key-value state machine every replica applies the Raft log to, and its snapshot: pure,
no threads, no I/O.

A logged command is a list, small on purpose (the persisted Raft state is bounded by
--max-raft-state, and every byte of a command counts against it):
    ["put", key, value, clerk_id, seq]      replace the value
    ["append", key, value, clerk_id, seq]   concatenate to the value ("" when absent)
    ["noop"]                                a new leader's first entry (ReadIndex needs an
                                            entry of its term committed); changes nothing
Exactly once: each clerk numbers its operations 1, 2, 3 ... and waits for each before the
next, so the machine keeps only the highest seq applied per clerk (the dedup table); a command
whose seq is not above it is a retry of one already applied and changes nothing. The only
logged operations are put and append, whose result is always "", so the last result per clerk
is implied by its seq. Gets are not logged (ReadIndex, see kvraft.server).

The snapshot is the map and the dedup table together, as compact JSON:
`{"m": {key: value}, "c": {clerk_id: seq}}` (clerk ids as decimal strings, JSON's keys).
`decode_snapshot` refuses anything else with ValueError.

Threads: none. Not thread-safe: one replica's loop thread owns its StateMachine.
"""

from __future__ import annotations

import json

PUT, APPEND, NOOP = "put", "append", "noop"
WRITE_KINDS = (PUT, APPEND)
NOOP_COMMAND = [NOOP]


def write_command(kind: str, key: str, value: str, clerk_id: int, seq: int) -> list:
    """The log's form of a put or append."""
    return [kind, key, value, clerk_id, seq]


def check_write(kind, key, value, clerk_id, seq) -> str:
    """"" when these make a valid put/append, else a one-line reason (for bad requests)."""
    if kind not in WRITE_KINDS:
        return f"unknown operation {kind!r}: want put or append"
    if type(key) is not str or type(value) is not str:
        return "key and value must be strings"
    if type(clerk_id) is not int or type(seq) is not int or seq < 1:
        return "clerk id and seq must be integers, seq from 1"
    return ""


def check_command(command) -> str:
    """"" when `command` is a well-formed logged command, else why not."""
    if command == NOOP_COMMAND:
        return ""
    if not isinstance(command, list) or len(command) != 5:
        return f"not a command: {command!r:.80}"
    return check_write(*command)


class StateMachine:
    """The map and the dedup table. `apply` is the only way they change (besides building
    one from a snapshot)."""

    def __init__(self, data: dict[str, str] | None = None,
                 last_seq: dict[int, int] | None = None) -> None:
        self.data: dict[str, str] = dict(data or {})
        self.last_seq: dict[int, int] = dict(last_seq or {})

    def get(self, key: str) -> str:
        return self.data.get(key, "")

    def is_applied(self, clerk_id: int, seq: int) -> bool:
        """Whether the clerk's operation `seq` has already taken effect."""
        return seq <= self.last_seq.get(clerk_id, 0)

    def apply(self, command) -> bool:
        """Apply one logged command; True if it changed the map (False for a no-op, a
        duplicate, or a malformed command, which a replica must skip the same way everywhere
        rather than die on)."""
        if check_command(command) or command == NOOP_COMMAND:
            return False
        kind, key, value, clerk_id, seq = command
        if self.is_applied(clerk_id, seq):
            return False
        self.last_seq[clerk_id] = seq
        self.data[key] = value if kind == PUT else self.data.get(key, "") + value
        return True

    def encode_snapshot(self) -> bytes:
        return json.dumps({"m": self.data, "c": {str(k): v for k, v in self.last_seq.items()}},
                          separators=(",", ":"), ensure_ascii=False).encode()


def decode_snapshot(snapshot: bytes) -> StateMachine:
    """The machine a snapshot holds; b"" is the empty machine. ValueError if damaged."""
    if snapshot == b"":
        return StateMachine()
    try:
        decoded = json.loads(snapshot)
        data, table = decoded["m"], decoded["c"]
        if not (isinstance(data, dict) and isinstance(table, dict)
                and all(type(v) is str for v in data.values())
                and all(type(v) is int for v in table.values())):
            raise TypeError("wrong shapes")
        return StateMachine(data, {int(k): v for k, v in table.items()})
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a kvraft snapshot ({exc})") from None
