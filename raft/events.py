"""What a node reports for its live picture: a bounded ring of its recent RPC events.

    ring = EventRing(capacity=512)
    ring.add(kind="call", rpc="AppendEntries", to=2, entries=3, term=4)
    seq, events = ring.since(after_seq)      # the events numbered after `after_seq`

Every event is a plain dict (so it crosses the rpc codec as it is) with at least:
    seq           this ring's number for it, from 1, one more per event
    epoch_millis  the wall clock when it happened (one machine's nodes share one clock, so a
                  viewer can order the events of several nodes)
    kind          "call" (this node sent an RPC), "reply" (its answer came back) or "lost"
                  (no answer: timeout, a dead peer, a cut link)
    rpc           "RequestVote", "AppendEntries" or "InstallSnapshot"
    to            the peer the call went to
and whatever the caller adds (entries carried, the reply's term, granted or success).

The ring keeps the newest `capacity` events; a reader that fell further behind gets what is
left and sees the gap in the sequence numbers. A node's ring starts again from 1 when the
process restarts: `boot` (random per ring) tells a reader it is a new one.

Threads: none. add() and since() are thread-safe (one mutex, held for a list operation: the
node's senders add from many threads, the rpc server's handler reads); neither blocks.
"""

from __future__ import annotations

import collections
import os
import threading
import time

RPC_NAMES = {"request_vote": "RequestVote", "append_entries": "AppendEntries",
             "install_snapshot": "InstallSnapshot"}


class EventRing:
    """The newest `capacity` events, numbered from 1. Thread-safe, non-blocking."""

    def __init__(self, capacity: int = 512) -> None:
        if capacity < 1:
            raise ValueError(f"an event ring holds at least 1 event, not {capacity}")
        self.boot = os.urandom(4).hex()
        self._lock = threading.Lock()
        self._events: collections.deque = collections.deque(maxlen=capacity)
        self._last_seq = 0

    def add(self, **fields) -> int:
        """Record one event (the fields above plus any others); returns its seq."""
        with self._lock:
            self._last_seq += 1
            self._events.append({"seq": self._last_seq,
                                 "epoch_millis": int(time.time() * 1000), **fields})
            return self._last_seq

    def since(self, after_seq: int) -> tuple[int, list[dict]]:
        """(the newest seq, copies of the kept events numbered after `after_seq`), oldest
        first. An `after_seq` beyond the newest (a reader of an older boot) gives them all."""
        with self._lock:
            if after_seq > self._last_seq:
                after_seq = 0
            first_kept = self._last_seq - len(self._events) + 1
            skip = max(after_seq - first_kept + 1, 0)
            return self._last_seq, [dict(event) for event in
                                    list(self._events)[skip:]]


def describe_call(method: str, args) -> dict:
    """The fields of a "call" event for `method` (a Raft handler name) with `args`."""
    fields = {"rpc": RPC_NAMES.get(method, method), "term": getattr(args, "term", None)}
    entries = getattr(args, "entries", None)
    if entries is not None:
        fields["entries"] = len(entries)
    return fields


def describe_reply(method: str, reply) -> dict:
    """The fields of a "reply" event: the reply's term and its verdict, when it has one."""
    fields = {"rpc": RPC_NAMES.get(method, method), "term": getattr(reply, "term", None)}
    for verdict in ("vote_granted", "success"):
        if hasattr(reply, verdict):
            fields["ok"] = bool(getattr(reply, verdict))
    return fields
