"""`Mailbox`: an actor's unbounded FIFO, built on csp channels (no locks: the channel rule).

    box = Mailbox()
    box.push(msg)            never blocks; ignored after close()
    msg, ok = box.pop()      blocks until a message or close(); (None, False) once closed,
                             even if messages were left in it
    box.close()              wakes every blocked pop(); idempotent

Thread-safe: any number of pushers and poppers. Messages live in an unbounded csp.Chan; a
second channel, closed by close(), is what pop() and push() look at first, so nothing pushed
before close() is ever popped after it.
"""

from __future__ import annotations

import csp


class Mailbox:
    def __init__(self) -> None:
        self._items = csp.Chan(None)
        self._closed = csp.Chan()

    def push(self, message) -> None:
        if not self._closed.closed:
            self._items.send(message)   # unbounded: never blocks

    def pop(self):
        if self._closed.closed:
            return None, False
        index, message, _ = csp.select(csp.Recv(self._items), csp.Recv(self._closed))
        if index == 1 or self._closed.closed:
            return None, False
        return message, True

    def close(self) -> None:
        try:
            self._closed.close()
        except csp.ChannelClosed:
            pass   # closed already: close() is idempotent

    def __len__(self) -> int:
        """Messages waiting (0 once closed)."""
        return 0 if self._closed.closed else len(self._items)
