"""Timers that deliver on channels: `after`, `Ticker`, `Timer` (Go's `time` package).

Each delivers `time.monotonic()` on a `Chan(1)` with a non-blocking send, so a tick nobody has
read yet makes the next one be dropped, as in Go. None of them starts a thread: they are alarms
in one heap served by the shared scheduler thread.

Threads:
    csp-timers   started on first use, lives as long as the process (daemon). Owns the heap of
                 alarms; sleeps on a condition until the earliest deadline or a new earlier
                 alarm; delivers due alarms under its lock (non-blocking). Never stops.
Timer/Ticker methods are thread-safe; they change alarms under the scheduler's lock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time

from csp.chan import Chan

SCHEDULER_THREAD_NAME = "csp-timers"


class _Alarm:
    """One pending delivery on `chan`; `period` > 0 repeats it (a ticker)."""

    __slots__ = ("chan", "deadline", "period", "active", "value")

    def __init__(self, chan: Chan, deadline: float, period: float, value=None) -> None:
        self.chan = chan
        self.deadline = deadline
        self.period = period
        self.active = True
        self.value = value   # what to deliver; None: the time it fires


class _Scheduler:
    # Longest single wait: Condition.wait rejects timeouts past threading.TIMEOUT_MAX, and the
    # loop re-checks the heap after every wake anyway.
    MAX_WAIT_SECONDS = 3600.0
    # Stopped alarms stay in the heap until they surface; purge them in one pass once they
    # are this many and a quarter of the heap (as Go's timer heap does).
    PURGE_AT_LEAST = 64

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list = []  # (deadline, seq, alarm); inactive alarms are skipped lazily
        self._inactive_in_heap = 0
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, alarm: _Alarm) -> None:
        with self._cond:
            self._push(alarm)

    def stop(self, owner) -> bool:
        """Deactivate `owner._alarm`; True if it was still pending."""
        with self._cond:
            return self._deactivate(owner._alarm)

    def replace(self, owner, new: _Alarm) -> bool:
        """Swap `owner._alarm` for `new` atomically; True if the old one was still pending."""
        with self._cond:
            was_pending = self._deactivate(owner._alarm)
            owner._alarm = new
            self._push(new)
            return was_pending

    def _deactivate(self, alarm: _Alarm) -> bool:
        # Caller holds _cond.
        if not alarm.active:
            return False
        alarm.active = False
        self._inactive_in_heap += 1
        heap = self._heap
        if self._inactive_in_heap >= self.PURGE_AT_LEAST and \
                self._inactive_in_heap * 4 >= len(heap):
            heap[:] = [item for item in heap if item[2].active]
            heapq.heapify(heap)
            self._inactive_in_heap = 0
        return True

    def _push(self, alarm: _Alarm) -> None:
        # Caller holds _cond.
        heapq.heappush(self._heap, (alarm.deadline, next(self._seq), alarm))
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=SCHEDULER_THREAD_NAME, daemon=True)
            self._thread.start()
        elif self._heap[0][2] is alarm:
            self._cond.notify()

    def _run(self) -> None:
        heap = self._heap
        with self._cond:
            while True:
                while heap and not heap[0][2].active:
                    heapq.heappop(heap)
                    self._inactive_in_heap -= 1
                if not heap:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                delay = heap[0][0] - now
                if delay > 0:
                    self._cond.wait(min(delay, self.MAX_WAIT_SECONDS))
                    continue
                alarm = heapq.heappop(heap)[2]
                if alarm.period > 0:
                    # Keep the cadence; ticks missed while nobody read are dropped.
                    alarm.deadline += alarm.period
                    if alarm.deadline <= now:
                        alarm.deadline = now + alarm.period
                    heapq.heappush(heap, (alarm.deadline, next(self._seq), alarm))
                else:
                    alarm.active = False
                # Delivered under _cond, so a stop() that returns means no tick is in flight.
                # _offer never blocks, and no channel operation ever takes _cond.
                alarm.chan._offer(now if alarm.value is None else alarm.value)


_scheduler = _Scheduler()


def after(seconds: float) -> Chan:
    """A `Chan(1)` that receives `time.monotonic()` once, `seconds` from now; never closed.

    Each call holds an alarm until it fires: in a loop, prefer one `Timer` and `reset` it.
    """
    chan = Chan(1)
    _scheduler.add(_Alarm(chan, _deadline(seconds), 0.0))
    return chan


def send_after(chan: Chan, value, seconds: float) -> None:
    """Offer `value` (not None) to `chan` `seconds` from now, from the shared timer thread,
    without blocking: dropped if `chan` is closed or has no room then (give it an unbounded
    `Chan(None)` to lose nothing). Go's `time.AfterFunc` for the case where the function only
    sends; no thread is started per call."""
    if value is None:
        raise ValueError("send_after needs a value (None is reserved)")
    _scheduler.add(_Alarm(chan, _deadline(seconds), 0.0, value))


class Timer:
    """A one-shot timer: `.c` receives `time.monotonic()` once, `seconds` from now.

    `stop()` and `reset(seconds)` return True if the timer was still pending. As in Go, neither
    drains `.c`: a value already delivered stays there.
    """

    def __init__(self, seconds: float) -> None:
        self.c = Chan(1)
        self._alarm = _Alarm(self.c, _deadline(seconds), 0.0)
        _scheduler.add(self._alarm)

    def stop(self) -> bool:
        return _scheduler.stop(self)

    def reset(self, seconds: float) -> bool:
        return _scheduler.replace(self, _Alarm(self.c, _deadline(seconds), 0.0))


class Ticker:
    """`.c` receives `time.monotonic()` every `seconds` until `stop()`; unread ticks are dropped.

    `seconds` must be positive (Go panics otherwise). `reset(seconds)` changes the period and
    restarts the count from now.
    """

    def __init__(self, seconds: float) -> None:
        _check_period(seconds)
        self.c = Chan(1)
        self._alarm = _Alarm(self.c, time.monotonic() + seconds, seconds)
        _scheduler.add(self._alarm)

    def stop(self) -> None:
        _scheduler.stop(self)

    def reset(self, seconds: float) -> None:
        _check_period(seconds)
        _scheduler.replace(self, _Alarm(self.c, time.monotonic() + seconds, seconds))


def _check_period(seconds: float) -> None:
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"ticker period must be positive and finite, not {seconds!r}")


def _deadline(seconds: float) -> float:
    """The monotonic deadline `seconds` from now (negative means now); NaN is refused."""
    if math.isnan(seconds):
        raise ValueError("timer duration is NaN")
    return time.monotonic() + max(seconds, 0.0)
