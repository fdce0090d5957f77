"""`Log`: Raft's log with global indices, after a snapshot has replaced its beginning.

Entry i keeps index i for good (indices start at 1, as the course's do); once a snapshot covers
the log through index S, entries 1..S are gone and the log holds a sentinel at S carrying the
snapshot's last term, then entries S+1... A `Log` reads like the list the rules were written
for: `len(log)` is last index + 1, `log[i]` is entry i (negative counts from the end, as
usual), `log[i:j]` is a list, `del log[i:]` truncates; asking for an index inside the snapshot
raises IndexError. `position(index)` is the one place global indices become list positions.

Pure: no locks, threads or clocks; the Raft peer holds one under its lock.
"""

from __future__ import annotations

from raft.messages import LogEntry


def position(index: int, snapshot_index: int, length: int) -> int:
    """Where global `index` sits in a list holding the sentinel (the snapshot's last entry,
    at `snapshot_index`) and then `length - 1` entries. IndexError outside that range."""
    if not snapshot_index <= index < snapshot_index + length:
        raise IndexError(f"index {index} outside the log [{snapshot_index}, "
                         f"{snapshot_index + length - 1}]")
    return index - snapshot_index


class Log:
    __slots__ = ("_entries", "_snapshot_index")

    def __init__(self, entries: list[LogEntry] = (), snapshot_index: int = 0,
                 snapshot_term: int = 0) -> None:
        """The entries after a snapshot through (snapshot_index, snapshot_term)."""
        self._entries = [LogEntry(snapshot_term, None)] + list(entries)
        self._snapshot_index = snapshot_index

    @property
    def snapshot_index(self) -> int:
        """The last index the snapshot covers (0: no snapshot); the sentinel's index."""
        return self._snapshot_index

    @property
    def snapshot_term(self) -> int:
        return self._entries[0].term

    @property
    def last_index(self) -> int:
        return self._snapshot_index + len(self._entries) - 1

    @property
    def last_term(self) -> int:
        return self._entries[-1].term

    def __len__(self) -> int:
        return self.last_index + 1

    def _position(self, index: int) -> int:
        if index < 0:
            index += self.last_index + 1
        return position(index, self._snapshot_index, len(self._entries))

    def __getitem__(self, key):
        if isinstance(key, slice):
            if key.step is not None:
                raise ValueError("a log slice has no step")
            start = self._snapshot_index if key.start is None else key.start
            stop = self.last_index + 1 if key.stop is None else min(key.stop,
                                                                    self.last_index + 1)
            if start < self._snapshot_index:
                raise IndexError(f"slice from {start} reaches into the snapshot through "
                                 f"{self._snapshot_index}")
            return self._entries[start - self._snapshot_index:
                                 max(stop - self._snapshot_index, 0)]
        return self._entries[self._position(key)]

    def __delitem__(self, key) -> None:
        """Only `del log[i:]` (truncate from i on; i after the snapshot)."""
        if not isinstance(key, slice) or key.stop is not None or key.step is not None:
            raise TypeError("a log only truncates: del log[i:]")
        if key.start <= self._snapshot_index:
            raise IndexError(f"truncating at {key.start}, inside the snapshot through "
                             f"{self._snapshot_index}")
        del self._entries[key.start - self._snapshot_index:]

    def append(self, entry: LogEntry) -> None:
        self._entries.append(entry)

    def extend(self, entries) -> None:
        self._entries.extend(entries)

    def holds(self, index: int, term: int) -> bool:
        """Whether the log (the sentinel included) has an entry of `term` at `index`."""
        return (self._snapshot_index <= index <= self.last_index
                and self._entries[index - self._snapshot_index].term == term)

    def compact(self, index: int, term: int) -> None:
        """A snapshot now covers the log through (index, term): the entries after it stay if
        the log holds (index, term), otherwise the whole log goes (Figure 13, steps 6-7; the
        persister's save_snapshot follows the same rule). `index` is past the old snapshot."""
        if index <= self._snapshot_index:
            raise IndexError(f"snapshot through {index} is not past the one through "
                             f"{self._snapshot_index}")
        kept = self._entries[index - self._snapshot_index + 1:] if self.holds(index, term) else []
        self._entries = [LogEntry(term, None)] + kept
        self._snapshot_index = index

    def copy(self) -> "Log":
        twin = Log.__new__(Log)
        twin._entries = list(self._entries)
        twin._snapshot_index = self._snapshot_index
        return twin

    def __eq__(self, other) -> bool:
        if isinstance(other, Log):
            return (self._snapshot_index, self._entries) == (other._snapshot_index,
                                                            other._entries)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Log(snapshot through {self._snapshot_index}, {self._entries[1:]!r})"
