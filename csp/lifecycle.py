"""`Lifecycle`: how every endpoint of the project closes, in one shape.

An endpoint (a server, a client, an actor system) is running, then stopping, then stopped:

    life = Lifecycle()
    life.stopping        # a Chan, closed when close begins: loops select on Recv(life.stopping)
    life.stopped         # a Chan, closed when close has finished (threads joined, ports freed)
    life.begin()         # True for exactly one caller, the one that does the closing
    life.finish()        # that caller, once everything is released
    life.wait(timeout)   # everyone else: blocks until finished

Most endpoints write `close()` as `self._life.close_once(self._shut_down)`: the first caller
runs `_shut_down` between `begin` and `finish`; later and concurrent callers return once it has
finished, so `close()` is idempotent and never returns before the endpoint is down. (The model
is trio's explicit lifecycle: stopping and stopped are separate, observable states.)

`stopping` and `stopped` are ordinary channels: receive on them, select on them, never send or
close them directly.

Threads: none; every method runs on its caller's thread and is thread-safe.
"""

from __future__ import annotations

from csp.chan import Chan, ChannelClosed
from csp.select import Recv, select_case
from csp.timers import after


class Lifecycle:
    """running -> stopping -> stopped. Thread-safe; see the module docstring."""

    __slots__ = ("stopping", "stopped")

    def __init__(self) -> None:
        self.stopping = Chan()
        self.stopped = Chan()

    def begin(self) -> bool:
        """Enter stopping. True for the first caller only (it must call `finish()` later);
        False for every later one. Never blocks."""
        try:
            self.stopping.close()  # atomic: exactly one close succeeds
        except ChannelClosed:
            return False
        return True

    def finish(self) -> None:
        """Enter stopped; wakes every `wait()`. Only the caller that `begin()` chose may call it,
        once."""
        self.stopped.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; False if `timeout` seconds passed first."""
        if timeout is None:
            self.stopped.recv()
            return True
        stopped = Recv(self.stopped)
        case, _, _ = select_case(stopped, Recv(after(timeout)))
        return case is stopped

    def close_once(self, shut_down) -> None:
        """Run `shut_down()` if this is the first close, then finish; otherwise wait until the
        first close has finished. `finish()` runs even if `shut_down` raises (the exception
        propagates to the first caller). Do not call it from a thread `shut_down` joins: that
        thread would wait for itself."""
        if not self.begin():
            self.wait()
            return
        try:
            shut_down()
        finally:
            self.finish()

    @property
    def is_stopping(self) -> bool:
        """Close has begun (it may have finished too)."""
        return self.stopping.closed

    @property
    def is_stopped(self) -> bool:
        """Close has finished."""
        return self.stopped.closed

    def __repr__(self) -> str:
        state = "stopped" if self.is_stopped else "stopping" if self.is_stopping else "running"
        return f"<Lifecycle {state}>"
