"""Last-writer-wins, the store's merge rule (handout B5), as pure functions.

An Entry is a value with its stamp: the accepting query actor's wall clock in milliseconds,
its uid ("address/counter") as the tie-break, and that actor's sequence number for the Put
(used by the anti-entropy of cmud.coverage, never by the merge). One entry supersedes another
when (stamp_ms, origin) is greater; merging an entry into a store keeps the greater, so
merging is commutative, associative and idempotent: replicas that saw the same Puts, in any
order and any number of times, hold the same map.

Threads: none (pure).
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    value: str
    stamp_ms: int
    origin: str   # uid of the query actor that accepted the Put
    seq: int      # that actor's count of accepted Puts, 1 for its first


def supersedes(a: Entry, b: Entry | None) -> bool:
    """Whether `a` wins over `b` (anything wins over no entry)."""
    return b is None or (a.stamp_ms, a.origin) > (b.stamp_ms, b.origin)


def merge(store: dict[str, Entry], key: str, entry: Entry) -> bool:
    """Merge `entry` for `key` into `store` in place; True if it changed the store."""
    if supersedes(entry, store.get(key)):
        store[key] = entry
        return True
    return False


def new_stamp(now_ms: int, current: Entry | None) -> int:
    """The stamp of a new Put over `current`: the wall clock, or one past the current stamp
    when the clock has not moved beyond it (two Puts of one key within a millisecond, or a
    stamp from a server whose clock runs ahead). So a Put always supersedes what its actor
    holds (a client reads its own write, and a re-Put of the same value gets a new, winning
    stamp), and Puts 10 ms apart keep wall-clock order when clocks agree."""
    if current is None or now_ms > current.stamp_ms:
        return now_ms
    return current.stamp_ms + 1


# ---- the wire form of a batch of entries ------------------------------------------------------

def pack(entries: dict[str, Entry]) -> tuple[list[str], list[list]]:
    """(origins, rows): each row [key, value, stamp_ms, origin index, seq]; origin uids are
    written once per batch, not once per entry."""
    origins: dict[str, int] = {}
    rows = []
    for key, e in entries.items():
        index = origins.setdefault(e.origin, len(origins))
        rows.append([key, e.value, e.stamp_ms, index, e.seq])
    return list(origins), rows


def unpack(origins: list, rows: list) -> list[tuple[str, Entry]]:
    """The (key, entry) pairs of a packed batch; ValueError for any malformed row, before
    anything is merged (a batch is taken whole or not at all)."""
    if type(origins) is not list or not all(type(o) is str for o in origins):
        raise ValueError("malformed batch: origins must be a list of str")
    if type(rows) is not list:
        raise ValueError("malformed batch: rows must be a list")
    pairs = []
    for row in rows:
        if type(row) is not list or len(row) != 5:
            raise ValueError(f"malformed batch row {row!r:.80}")
        key, value, stamp, index, seq = row
        if not (type(key) is str and type(value) is str and type(stamp) is int
                and type(index) is int and 0 <= index < len(origins) and type(seq) is int):
            raise ValueError(f"malformed batch row {row!r:.80}")
        pairs.append((key, Entry(value, stamp, origins[index], seq)))
    return pairs
