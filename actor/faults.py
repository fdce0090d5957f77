"""`Faults`: what goes wrong on purpose between actor systems (for tests and demos).

As MIT's labrpc keeps its fault settings on the network object its endpoints share, every
ActorSystem holds a `Faults` (`system.faults`) and its remote senders consult it:

    faults.set_latency_ms(ms)      each remote-tell connection dialled from now on delivers
                                   every write `ms` later, in order (read when a system first
                                   sends to an address)
    faults.block(a, b)             drop the remote tells between the systems at `a` and `b`,
                                   both ways (`"*"` for any address), as a partition would
    faults.unblock_all()           let every remote tell through again
    faults.is_blocked(src, dst)    asked by a sender before each batch it writes

Systems share one process-wide `Faults` (`process_faults()`) unless given their own
(`ActorSystem(faults=Faults())`), so one setting reaches every system, including systems
created later, as one labrpc network reaches every endpoint on it. The course's
`set_artificial_latency_ms` and our `block_remote_tells` / `unblock_remote_tells` are thin
functions on that shared object.

Threads: none. Any thread may read a `Faults`: each setting is one attribute replaced whole
(never changed in place), so a reader sees the old value or the new one. The setters are
meant for one thread at a time (a test, a command line).
"""

from __future__ import annotations

import rpc


class RemoteTellsBlocked(rpc.RPCError):
    """A batch of remote tells dropped by `Faults.block` (fault injection)."""


class Faults:
    """Latency and blocked links for the systems that hold it; see the module docstring."""

    __slots__ = ("_latency_ms", "_blocked")

    def __init__(self) -> None:
        self._latency_ms = 0
        # frozensets of two addresses ("*" matches any); the set is replaced whole
        self._blocked: frozenset = frozenset()

    @property
    def latency_ms(self) -> int:
        """The delay of remote-tell connections dialled from now on (0: none)."""
        return self._latency_ms

    def set_latency_ms(self, ms: int) -> None:
        """ValueError for a negative delay."""
        if ms < 0:
            raise ValueError("latency must be >= 0 ms")
        self._latency_ms = ms

    def block(self, address_a: str, address_b: str) -> None:
        """Drop from now on, in both directions, the remote tells between the systems at
        `address_a` and `address_b` (`"*"` for any address); each dropped batch is reported to
        its sender's error handler. Until `unblock_all()`."""
        self._blocked = self._blocked | {frozenset((address_a, address_b))}

    def unblock_all(self) -> None:
        """Let every remote tell through again (tells dropped meanwhile stay lost)."""
        self._blocked = frozenset()

    def is_blocked(self, source: str, destination: str) -> bool:
        """Whether a tell from the system at `source` to the one at `destination` is dropped."""
        links = self._blocked
        return bool(links) and any(link in links for link in (
            frozenset((source, destination)), frozenset((source, "*")),
            frozenset((destination, "*"))))


_PROCESS_FAULTS = Faults()


def process_faults() -> Faults:
    """The `Faults` every system shares unless it was given its own."""
    return _PROCESS_FAULTS


def set_artificial_latency_ms(ms: int) -> None:
    """Remote-tell connections dialled from now on, by every system sharing the process's
    faults, deliver each write `ms` later, in order, without serialising the pipeline (the
    course's staff.SetArtiLatencyMs). ValueError for a negative delay."""
    _PROCESS_FAULTS.set_latency_ms(ms)


def block_remote_tells(address_a: str, address_b: str) -> None:
    """`Faults.block` on the process's faults: from now on drop, in both directions, the
    remote tells between the systems at `address_a` and `address_b` (`"*"` for any), as a
    network partition would; each dropped batch is reported to the sender's error handler.
    Undone by unblock_remote_tells()."""
    _PROCESS_FAULTS.block(address_a, address_b)


def unblock_remote_tells() -> None:
    """Let every remote tell through again (tells dropped meanwhile stay lost)."""
    _PROCESS_FAULTS.unblock_all()
