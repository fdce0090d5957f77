"""Small helpers for the csp tests: bounded waits with useful failure messages.

Every wait here has a deadline, so a bug shows as an assertion, never as a hang. Polling with
tiny sleeps is allowed here (tests waiting for a condition); the library itself never polls.
"""

from __future__ import annotations

import threading
import time

import csp
from tests.waiting import wait_until

POLL_SECONDS = 0.001


def recv_within(ch, seconds: float = 5.0, what: str = "a value"):
    """`ch.recv()` bounded by `seconds`: returns `(value, ok)` or fails the test."""
    index, value, ok = csp.select(csp.Recv(ch), csp.Recv(csp.after(seconds)))
    assert index == 0, f"timed out after {seconds}s waiting for {what} on {ch!r}"
    return value, ok


def value_within(ch, seconds: float = 5.0, what: str = "a value"):
    """A received value (ok must be True) within `seconds`."""
    value, ok = recv_within(ch, seconds, what)
    assert ok, f"{ch!r} was closed while waiting for {what}"
    return value


def send_within(ch, value, seconds: float = 5.0, what: str = "a send") -> None:
    """`ch.send(value)` bounded by `seconds`, or fail the test."""
    index, _, _ = csp.select(csp.Send(ch, value), csp.Recv(csp.after(seconds)))
    assert index == 0, f"timed out after {seconds}s: {what} of {value!r} on {ch!r} never completed"


def nothing_within(ch, seconds: float, what: str = "nothing") -> None:
    """Assert that no value and no close arrives on `ch` for `seconds`."""
    index, value, ok = csp.select(csp.Recv(ch), csp.Recv(csp.after(seconds)))
    assert index == 1, f"expected {what} on {ch!r} for {seconds}s, got {(value, ok)!r}"


def waiting(ch, kind: str) -> int:
    """Number of live (not yet fired) waiters in `ch`'s receive or send queue."""
    queue = ch._recvq if kind == "recv" else ch._sendq
    return sum(1 for entry in list(queue) if not entry.waiter.fired)


def wait_blocked(ch, kind: str, count: int = 1, seconds: float = 5.0) -> None:
    """Wait until at least `count` threads are parked on `ch` as `kind` ('recv' or 'send')."""
    assert kind in ("recv", "send"), kind
    wait_until(lambda: waiting(ch, kind) >= count, f"{count} blocked {kind}er(s) on {ch!r}",
               seconds, describe=lambda: f"{waiting(ch, kind)} blocked",
               poll_seconds=POLL_SECONDS)


def join_all(threads, seconds: float = 10.0) -> None:
    """Join every thread within one shared deadline; fail naming the ones still running."""
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running after {seconds}s: {alive}"


class Outcome:
    """What a thread's call did: its result, or the exception it raised (recorded, not
    re-raised, so tests that expect an exception do not trip the thread guard)."""

    def __init__(self) -> None:
        self.done = csp.Chan(1)
        self.result = None
        self.error: BaseException | None = None

    def run(self, fn, *args, **kwargs) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to inspect
            self.error = exc
        finally:
            self.done.send(True)

    @property
    def finished(self) -> bool:
        return len(self.done) > 0


def spawn(fn, *args, name: str, **kwargs):
    """Run `fn(*args, **kwargs)` in a named `csp.go` thread; returns `(thread, Outcome)`."""
    outcome = Outcome()
    thread = csp.go(lambda: outcome.run(fn, *args, **kwargs), name=name)
    return thread, outcome


def finish(thread: threading.Thread, outcome: Outcome, seconds: float = 5.0, what: str = ""):
    """Wait for a spawned call to finish; returns the Outcome."""
    value_within(outcome.done, seconds, f"thread {thread.name} {what}".strip() + " to finish")
    thread.join(seconds)
    assert not thread.is_alive(), f"thread {thread.name} did not exit"
    return outcome


def call_within(fn, *args, seconds: float = 5.0, what: str | None = None, **kwargs):
    """Run `fn(*args, **kwargs)` on a helper thread and wait for it at most `seconds`:
    returns its result or re-raises its exception here, so a call that should not block
    fails the test instead of hanging it."""
    label = what or getattr(fn, "__qualname__", repr(fn))
    thread, outcome = spawn(fn, *args, name=f"test-call:{label}", **kwargs)
    finish(thread, outcome, seconds, f"({label} should not block)")
    if outcome.error is not None:
        raise outcome.error
    return outcome.result
