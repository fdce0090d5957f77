"""`select` over channel cases, as Go's `select` statement.

`select(Recv(a), Send(b, x), ...)` blocks until one case can complete, completes exactly that
one and returns `(index, value, ok)`: for a `Recv`, the value and Go's comma-ok flag; for a
`Send`, `(index, None, True)`. When several cases are ready one is chosen uniformly at random.
A case whose channel is `None` is never ready (Go's nil channel), so a loop can switch a case
off by passing `None`. With `default=True` and nothing ready, `(-1, None, False)` comes back at
once. A `Send` on a closed channel is ready, and choosing it raises `ChannelClosed` (Go panics);
a `Recv` on a closed, drained channel is ready and gives `(index, None, False)`.

`select_case` is the same choice answered with the case object instead of its index, for loops
that branch by name rather than by position.

A blocked select registers one waiter on every channel it names and sleeps on a private lock:
it uses no CPU until a peer completes one of its cases (see `csp._runtime`).

Threads: none; runs on the caller's thread, under the runtime lock for the bookkeeping only.
"""

from __future__ import annotations

import random

from csp._runtime import LOCK, Entry, Waiter
from csp.chan import ChannelClosed

_random = random.Random().random


class Recv:
    """A receive case: `Recv(ch)`; `ch` may be None (never ready)."""

    __slots__ = ("chan",)
    is_recv = True

    def __init__(self, chan) -> None:
        self.chan = chan

    def __repr__(self) -> str:
        return f"Recv({self.chan!r})"


class Send:
    """A send case: `Send(ch, value)`; `ch` may be None (never ready)."""

    __slots__ = ("chan", "value")
    is_recv = False

    def __init__(self, chan, value) -> None:
        self.chan = chan
        self.value = value

    def __repr__(self) -> str:
        return f"Send({self.chan!r}, {self.value!r})"


def select(*cases, default: bool = False):
    """Run one ready case (see the module docstring). Blocks unless `default` is true.

    Thread-safe. Raises TypeError for a case that is not `Recv`/`Send`, and `ChannelClosed`
    when the chosen case is a send on a closed channel.
    """
    # Fast path: find the ready cases without the lock (a racy peek: reads of a deque's length
    # are atomic under the GIL), then complete the chosen one under the lock if it is still
    # ready. Keeping the locked section this short matters: a thread preempted while holding
    # the runtime lock makes every other channel user queue up behind it.
    ready = []
    index = 0
    try:
        for case in cases:
            chan = case.chan
            if chan is not None:
                if case.is_recv:
                    if chan._buf or chan._closed or chan._sendq:
                        ready.append(index)
                elif chan._closed or chan._recvq or len(chan._buf) < chan._cap:
                    ready.append(index)
            index += 1
    except AttributeError:
        raise _bad_case(cases[index]) from None
    if ready:
        index = ready[0] if len(ready) == 1 else ready[int(_random() * len(ready))]
        case = cases[index]
        with LOCK:
            if case.is_recv:
                result = case.chan._poll_recv()
                if result is not None:
                    return index, result[0], result[1]
            elif case.chan._try_send(case.value):  # raises ChannelClosed on a closed channel
                return index, None, True
    # Slow path: nothing was ready, or the peeked case was taken meanwhile.
    with LOCK:
        ready = []
        for index, case in enumerate(cases):
            chan = case.chan
            if chan is None:
                continue
            if case.is_recv:
                if chan._buf or chan._closed or (chan._sendq and chan._can_recv()):
                    ready.append(index)
            elif chan._can_send():
                ready.append(index)
        if ready:
            index = ready[0] if len(ready) == 1 else ready[int(_random() * len(ready))]
            case = cases[index]
            if case.is_recv:
                value, ok = case.chan._poll_recv()
                return index, value, ok
            case.chan._try_send(case.value)  # raises ChannelClosed on a closed channel
            return index, None, True
        if default:
            return -1, None, False
        waiter = Waiter()
        entries = waiter.entries
        for index, case in enumerate(cases):
            chan = case.chan
            if chan is None:
                continue
            if case.is_recv:
                entry = Entry(waiter, index)
                queue = chan._recvq
            else:
                entry = Entry(waiter, index, case.value)
                queue = chan._sendq
            queue.append(entry)
            entries.append((queue, entry))
    # With no channel at all this blocks for ever, as an empty Go select does.
    waiter.block()
    if len(entries) > 1:
        with LOCK:
            waiter.unlink()
    index = waiter.index
    if not cases[index].is_recv:
        if not waiter.ok:
            raise ChannelClosed("send on closed channel")
        return index, None, True
    return index, waiter.value, waiter.ok


def select_case(*cases, default: bool = False):
    """`select`, answering with the case that ran instead of its position:
    `(case, value, ok)`, where `case` is one of the objects passed in, or None when `default`
    is true and nothing was ready. A loop names its cases once and branches on identity
    (`if case is tick:`), so adding a case never rewires the other branches."""
    index, value, ok = select(*cases, default=default)
    return (cases[index] if index >= 0 else None), value, ok


def _bad_case(case) -> TypeError:
    if isinstance(case, (Recv, Send)):
        return TypeError(f"select case {case!r}: its channel must be a csp.Chan or None")
    return TypeError(f"select cases must be csp.Recv or csp.Send, not {case!r}")
