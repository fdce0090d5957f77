"""`Chan`: a Go channel on threads (unbuffered, buffered or unbounded), as a `queue.Queue`.

Semantics (Go's; see docs/architecture.md, "csp, briefly"):
- `Chan()` is unbuffered: `send` returns only once a receiver has taken the value.
  `Chan(n)` buffers `n` values; `Chan(None)` never blocks a sender.
- `send(v)` blocks while nobody can take `v`; raises `ChannelClosed` if the channel is closed
  (also when it is closed while the sender waits).
- `recv()` returns `(value, True)`, or `(None, False)` once the channel is closed and drained.
- `close()` wakes every blocked receiver and sender; closing twice raises `ChannelClosed`.
- Values are handed from thread to thread directly when someone is already waiting, so a
  ping-pong costs one wake-up per message, as with `queue.Queue`.

Thread-safety: every method may be called from any thread. Blocked callers use no CPU.

Threads: none of its own. All state (buffer, wait queues, closed flag) is guarded by the one
runtime lock of `csp._runtime`, held only for a few deque operations.
"""

from __future__ import annotations

import queue
from collections import deque

from csp._runtime import LOCK, Entry, Waiter


class ChannelClosed(Exception):
    """A send on (or close of) a closed channel, Go's panic; `get` on a closed, drained one."""


_UNBOUNDED = float("inf")


class Chan(queue.Queue):
    """A Go channel. `size`: 0 unbuffered (default), n > 0 buffered, None unbounded.

    Subclasses `queue.Queue` so it can go where a queue is expected: `put`/`get` (and the
    `_nowait` forms) behave as `send`/`recv` with `queue.Queue`'s signatures and exceptions,
    except that `get` on a closed, drained channel raises `ChannelClosed`. `task_done`/`join`
    are not supported (a channel has no notion of finished work).
    """

    def __init__(self, size: int | None = 0) -> None:
        # queue.Queue.__init__ is not called: its mutex and conditions would be a second
        # synchronisation scheme beside the runtime lock.
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise ValueError(f"channel size must be a non-negative int or None, not {size!r}")
        self.maxsize = size
        self._cap = _UNBOUNDED if size is None else size
        self._buf: deque = deque()
        self._recvq: deque = deque()   # Entry of each waiting receiver, oldest first
        self._sendq: deque = deque()   # Entry of each waiting sender (entry.value is its value)
        self._closed = False
        self.mutex = LOCK

    # ---- the Go API ------------------------------------------------------------------------

    def send(self, value) -> None:
        """Send `value`, blocking as Go does. Raises `ChannelClosed` if closed."""
        with LOCK:
            if self._try_send(value):
                return
            waiter = Waiter()
            entry = Entry(waiter, 0, value)
            self._sendq.append(entry)
            waiter.entries.append((self._sendq, entry))
        waiter.block()
        if not waiter.ok:
            raise ChannelClosed("send on closed channel")

    def recv(self):
        """Receive: `(value, True)`, or `(None, False)` once closed and drained. Blocks."""
        with LOCK:
            result = self._poll_recv()
            if result is not None:
                return result
            waiter = Waiter()
            entry = Entry(waiter, 0)
            self._recvq.append(entry)
            waiter.entries.append((self._recvq, entry))
        waiter.block()
        return waiter.value, waiter.ok

    def close(self) -> None:
        """Close; wakes every blocked receiver (`(None, False)`) and sender (`ChannelClosed`).

        Values already buffered can still be received. Closing twice raises `ChannelClosed`.
        """
        with LOCK:
            if self._closed:
                raise ChannelClosed("close of closed channel")
            self._closed = True
            for entry in self._recvq:
                if not entry.waiter.fired:
                    entry.waiter.fire(entry.index, None, False)
            for entry in self._sendq:
                if not entry.waiter.fired:
                    entry.waiter.fire(entry.index, None, False)
            self._recvq.clear()
            self._sendq.clear()

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called (values may still be buffered)."""
        return self._closed

    def __iter__(self):
        """Yield received values until the channel is closed and drained (Go's `range ch`)."""
        while True:
            value, ok = self.recv()
            if not ok:
                return
            yield value

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        # A channel is an object, not a container: `if ch:` must not depend on its buffer.
        return True

    def __repr__(self) -> str:
        size = "unbounded" if self.maxsize is None else self.maxsize
        state = " closed" if self._closed else ""
        return f"<Chan size={size} len={len(self._buf)}{state}>"

    # ---- readiness and completion, called with LOCK held (also by select) -----------------

    def _try_send(self, value) -> bool:
        """Complete a send now if possible. Raises ChannelClosed if closed. Holds LOCK."""
        if self._closed:
            raise ChannelClosed("send on closed channel")
        recvq = self._recvq
        while recvq:
            entry = recvq.popleft()
            waiter = entry.waiter
            if not waiter.fired:
                waiter.fire(entry.index, value, True)
                return True
        if len(self._buf) < self._cap:
            self._buf.append(value)
            return True
        return False

    def _poll_recv(self):
        """Complete a recv now if possible: `(value, ok)`, or None if it would block. Holds LOCK.

        Taking a value also frees the oldest waiting sender: its value moves into the freed
        buffer slot (buffered) or is the value taken (unbuffered).
        """
        buf = self._buf
        sendq = self._sendq
        if buf:
            value = buf.popleft()
            while sendq:
                entry = sendq.popleft()
                if not entry.waiter.fired:
                    buf.append(entry.value)
                    entry.waiter.fire(entry.index, None, True)
                    break
            return value, True
        while sendq:
            entry = sendq.popleft()
            if not entry.waiter.fired:
                entry.waiter.fire(entry.index, None, True)
                return entry.value, True
        if self._closed:
            return None, False
        return None

    def _can_recv(self) -> bool:
        """A recv would complete now (with a value, or with ok=False). Holds LOCK."""
        if self._buf or self._closed:
            return True
        for entry in self._sendq:
            if not entry.waiter.fired:
                return True
        return False

    def _can_send(self) -> bool:
        """A send would complete now, or raise because closed. Holds LOCK."""
        if self._closed or len(self._buf) < self._cap:
            return True
        for entry in self._recvq:
            if not entry.waiter.fired:
                return True
        return False

    def _offer(self, value) -> bool:
        """Send without blocking; drop the value if nobody can take it (timers use this)."""
        with LOCK:
            if self._closed:
                return False
            return self._try_send(value)

    # ---- queue.Queue's API, mapped onto the channel ----------------------------------------

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        """`send` with `queue.Queue.put`'s signature: raises `queue.Full` on timeout or when
        `block` is false and nobody can take the item now; `ChannelClosed` if closed."""
        if block and timeout is None:
            return self.send(item)
        if block and timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        with LOCK:
            if self._try_send(item):
                return None
            if not block:
                raise queue.Full
            waiter = Waiter()
            entry = Entry(waiter, 0, item)
            self._sendq.append(entry)
            waiter.entries.append((self._sendq, entry))
        if not waiter.block(timeout):
            raise queue.Full
        if not waiter.ok:
            raise ChannelClosed("send on closed channel")
        return None

    def put_nowait(self, item) -> None:
        return self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None):
        """`recv` with `queue.Queue.get`'s signature: returns the value; raises `queue.Empty`
        on timeout or when `block` is false and nothing is ready; `ChannelClosed` once the
        channel is closed and drained."""
        if block and timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        with LOCK:
            result = self._poll_recv()
            if result is not None:
                if not result[1]:
                    raise ChannelClosed("get on closed, drained channel")
                return result[0]
            if not block:
                raise queue.Empty
            waiter = Waiter()
            entry = Entry(waiter, 0)
            self._recvq.append(entry)
            waiter.entries.append((self._recvq, entry))
        if not waiter.block(timeout):
            raise queue.Empty
        if not waiter.ok:
            raise ChannelClosed("get on closed, drained channel")
        return waiter.value

    def get_nowait(self):
        return self.get(block=False)

    def qsize(self) -> int:
        return len(self._buf)

    def empty(self) -> bool:
        return not self._buf

    def full(self) -> bool:
        """True when a send would block for want of buffer space (always, if unbuffered)."""
        return len(self._buf) >= self._cap

    def task_done(self) -> None:
        raise NotImplementedError("Chan does not track finished work; use a WaitGroup")

    def join(self) -> None:
        raise NotImplementedError("Chan does not track finished work; use a WaitGroup")

    def shutdown(self, immediate: bool = False) -> None:
        raise NotImplementedError("use close()")
