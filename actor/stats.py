"""An actor system's counters: `Stats` (the course's figures), kept per thread and summed.

    counters = CountersByThread()
    mine = counters.mine()       the calling thread's Counters: only that thread changes them
    mine.sent += 1
    stats = counters.totals()    every thread's numbers summed (max_message_rate left at 0)
    max_message_rate(tells_per_destination, seconds_alive)   one actor's rate (the course's)

No thread ever writes another thread's number, so counting needs neither locks nor channels
(the channel rule); `totals()` reads numbers other threads may be changing, so a figure may
miss the tells of the last instant.

Threads: none; `mine()` and `totals()` run on their callers' threads and are thread-safe.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class Stats:
    messages_sent: int = 0
    messages_sent_external: int = 0
    messages_sent_actor: int = 0
    bytes_sent: int = 0
    remote_bytes_received: int = 0
    channel_refs_used: int = 0
    max_message_rate: float = 0.0


class Counters:
    """One thread's numbers."""

    __slots__ = ("sent", "external", "bytes", "remote_bytes", "channel_refs")

    def __init__(self) -> None:
        self.sent = self.external = self.bytes = self.remote_bytes = self.channel_refs = 0


class _ThisThread(threading.local):
    """`.counters` is the calling thread's; on a thread's first use, threading.local runs this
    __init__ there, which makes them and lists them in `every` (a list all threads share)."""

    def __init__(self, every: list) -> None:
        self.counters = Counters()
        every.append(self.counters)   # list.append is atomic


class CountersByThread:
    """Each thread's Counters, and their sum. Thread-safe."""

    __slots__ = ("_every", "_this_thread")

    def __init__(self) -> None:
        self._every: list[Counters] = []
        self._this_thread = _ThisThread(self._every)

    def mine(self) -> Counters:
        """The calling thread's Counters, made on its first call."""
        return self._this_thread.counters

    def totals(self) -> Stats:
        """Every thread's numbers summed; `max_message_rate` is left for the caller."""
        totals = Stats()
        for c in list(self._every):
            totals.messages_sent += c.sent
            totals.messages_sent_external += c.external
            totals.bytes_sent += c.bytes
            totals.remote_bytes_received += c.remote_bytes
            totals.channel_refs_used += c.channel_refs
        totals.messages_sent_actor = totals.messages_sent - totals.messages_sent_external
        return totals


def max_message_rate(tells_per_destination, seconds_alive: float) -> float:
    """One actor's message rate as the course counts it: its most tells to any one
    destination, over a window of floor(seconds_alive + 1.1) seconds (never 0)."""
    return max(tells_per_destination, default=0) / math.floor(seconds_alive + 1.1)
