"""`Mailbox`: an actor's unbounded FIFO, built on csp channels (no locks: the channel rule).

    box = Mailbox()
    box.push(msg)            never blocks; ignored after close()
    msg, ok = box.pop()      blocks until a message or close(); (None, False) once closed,
                             even if messages were left in it
    msgs = box.pop_all()     never blocks: every message waiting now, oldest first ([] when
                             none, or once closed)
    box.close()              wakes every blocked pop(); idempotent

Thread-safe: any number of pushers and poppers. Messages live in one unbounded csp.Chan, and
close() closes that channel: a closed channel wakes every blocked receiver, and pop() looks at
the closed flag after every receive (a closed channel still hands out what it buffered), so
nothing is ever popped once close() has returned. One channel rather than a message channel
plus a "closed" channel keeps pop() a plain receive instead of a two-case select.
"""

from __future__ import annotations

import queue

import csp


class Mailbox:
    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items = csp.Chan(None)

    def push(self, message) -> None:
        """Never blocks; a message pushed after (or while) close() runs is dropped."""
        items = self._items
        if not items.closed:
            try:
                items.send(message)   # unbounded: never blocks
            except csp.ChannelClosed:
                pass   # closed since the check: dropped, as after close()

    def pop(self):
        """`(message, True)`, blocking until there is one; `(None, False)` once closed."""
        items = self._items
        if items.closed:
            return None, False
        message, ok = items.recv()
        if not ok or items.closed:
            return None, False
        return message, True

    def pop_all(self) -> list:
        """Every message waiting now, oldest first, without blocking ([] once closed).
        With several poppers each message still goes to exactly one of them."""
        items = self._items
        taken = []
        get = items.get_nowait
        while len(items):
            try:
                taken.append(get())
            except (queue.Empty, csp.ChannelClosed):
                break   # another popper took the rest
        if items.closed:
            return []
        return taken

    def close(self) -> None:
        try:
            self._items.close()
        except csp.ChannelClosed:
            pass   # closed already: close() is idempotent

    @property
    def closed(self) -> bool:
        return self._items.closed

    def __len__(self) -> int:
        """Messages waiting (0 once closed)."""
        items = self._items
        return 0 if items.closed else len(items)
