"""Timers (`after`, `Ticker`, `Timer`), `go` and `WaitGroup` against docs/architecture.md ("csp, briefly").

Every blocking wait here has its own deadline that does not depend on the timer scheduler:
`Chan.get(timeout=...)` parks on a lock with a timeout, `Thread.join(timeout)` then
`is_alive()`. So a broken scheduler makes a test fail, never hang.

Timing thresholds are generous (a loaded 2-core machine): nothing may arrive earlier than its
deadline minus 10 ms, and everything must arrive within its deadline plus about a second.

Tests named `test_bug_*` demonstrate defects found in review; they fail until csp/ is fixed.
"""

from __future__ import annotations

import queue
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import csp
import csp.timers
from tests.waiting import wait_until

EARLY = 0.01   # how much earlier than its deadline a delivery may be seen (clock granularity)
LATE = 1.0     # how much later than its deadline a delivery must have arrived
REPO = Path(__file__).resolve().parents[2]


# ---- helpers -------------------------------------------------------------------------------

def recv_within(ch: csp.Chan, timeout: float):
    """The next value of `ch`, which must arrive within `timeout` seconds."""
    try:
        return ch.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"nothing arrived on {ch!r} within {timeout} s")


def assert_nothing_within(ch: csp.Chan, timeout: float) -> None:
    """Nothing arrives on `ch` for `timeout` seconds (and it is not closed: `get` on a closed,
    drained channel raises ChannelClosed)."""
    try:
        value = ch.get(timeout=timeout)
    except queue.Empty:
        return
    pytest.fail(f"unexpected value {value!r} on {ch!r}")


def assert_empty_now(ch: csp.Chan) -> None:
    """A non-blocking select finds nothing on `ch` (not a value, not a close)."""
    assert csp.select(csp.Recv(ch), default=True) == (-1, None, False)


def drain(ch: csp.Chan) -> None:
    while csp.select(csp.Recv(ch), default=True)[0] == 0:
        pass


def scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == csp.SCHEDULER_THREAD_NAME]


def join_all(threads, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.0))
        assert not t.is_alive(), f"thread {t.name} still running"


# ---- after ---------------------------------------------------------------------------------

def test_after_returns_chan1_that_fires_once_not_early():
    seconds = 0.2
    start = time.monotonic()
    ch = csp.after(seconds)
    assert isinstance(ch, csp.Chan)
    assert ch.maxsize == 1
    value = recv_within(ch, seconds + LATE)
    arrived = time.monotonic()
    assert isinstance(value, float)
    assert value >= start + seconds - EARLY, "delivered before its deadline"
    assert arrived - start >= seconds - EARLY
    assert value <= arrived  # a time.monotonic() reading taken at delivery
    assert arrived - start <= seconds + LATE
    # Once only, and never closed.
    assert_empty_now(ch)
    assert_nothing_within(ch, 0.25)
    assert not ch.closed
    assert_empty_now(ch)


@pytest.mark.parametrize("seconds", [0, 0.0, -1, -0.5])
def test_after_zero_or_negative_fires_promptly(seconds):
    start = time.monotonic()
    ch = csp.after(seconds)
    value = recv_within(ch, LATE)
    assert start <= value <= time.monotonic()
    assert_empty_now(ch)
    assert not ch.closed


def test_after_in_a_select_with_other_channels():
    quiet = csp.Chan()
    start = time.monotonic()
    index, value, ok = csp.select(csp.Recv(quiet), csp.Recv(csp.after(0.1)))
    assert (index, ok) == (1, True)
    assert value >= start + 0.1 - EARLY
    assert time.monotonic() - start < 0.1 + LATE


def test_many_afters_fire_in_deadline_order():
    n = 30
    offsets = list(range(n))
    random.Random(1234).shuffle(offsets)
    chans, earliest, latest = {}, {}, {}
    for k in offsets:  # created out of order
        seconds = 0.05 + 0.01 * k
        # A loaded machine may pause between two calls for longer than the 10 ms that
        # separates their durations, so each deadline is known only between these bounds.
        earliest[k] = time.monotonic() + seconds
        chans[k] = csp.after(seconds)
        latest[k] = time.monotonic() + seconds
    values = {k: recv_within(chans[k], 0.05 + 0.01 * k + LATE + 1.0) for k in range(n)}
    for a in range(n):
        assert values[a] >= earliest[a] - EARLY, f"after({0.05 + 0.01 * a:.2f}) fired early"
        for b in range(n):
            if latest[a] < earliest[b]:
                assert values[a] <= values[b], (
                    f"deadline {a} (certainly earlier) was delivered after deadline {b}")
    assert sum(latest[a] < earliest[a + 1] for a in range(n - 1)) > 0, "no pair was ordered"
    for ch in chans.values():
        assert_empty_now(ch)


def test_afters_created_concurrently_all_fire_in_deadline_order():
    results: csp.Chan = csp.Chan(None)

    def make(k: int) -> None:
        seconds = 0.05 + 0.02 * k
        earliest = time.monotonic() + seconds
        chan = csp.after(seconds)
        results.send((k, (chan, earliest, time.monotonic() + seconds)))

    threads = [csp.go(make, k, name=f"test-after-maker-{k}") for k in range(8)]
    join_all(threads)
    made = dict(results.get(timeout=1) for _ in range(8))
    values = {k: recv_within(made[k][0], 0.05 + 0.02 * k + LATE + 1.0) for k in range(8)}
    # The threads may run in any order and be paused anywhere, so only deadlines whose
    # bounds do not overlap have a known order.
    for a in range(8):
        for b in range(8):
            if made[a][2] < made[b][1]:
                assert values[a] <= values[b], f"deadline {a} delivered after deadline {b}"


def test_timers_share_one_scheduler_thread():
    recv_within(csp.after(0), LATE)  # the scheduler exists from here on
    sched = scheduler_threads()
    assert len(sched) == 1, sched
    assert sched[0].daemon and sched[0].is_alive()
    before = set(threading.enumerate())
    chans = [csp.after(0.05 + 0.001 * i) for i in range(100)]
    timers = [csp.Timer(0.05) for _ in range(20)]
    tickers = [csp.Ticker(0.05) for _ in range(5)]
    try:
        assert set(threading.enumerate()) - before == set(), "a timer started a thread"
        for ch in chans:
            recv_within(ch, 0.2 + LATE + 1.0)
        for timer in timers:
            recv_within(timer.c, LATE + 1.0)
        for ticker in tickers:
            recv_within(ticker.c, LATE + 1.0)
        assert set(threading.enumerate()) - before == set(), "a delivery started a thread"
        assert scheduler_threads() == sched, "the scheduler thread was replaced"
    finally:
        for ticker in tickers:
            ticker.stop()


# ---- Ticker --------------------------------------------------------------------------------

def test_ticker_ticks_periodically():
    period = 0.05
    start = time.monotonic()
    ticker = csp.Ticker(period)
    try:
        assert isinstance(ticker.c, csp.Chan) and ticker.c.maxsize == 1
        values = [recv_within(ticker.c, period + LATE) for _ in range(5)]
    finally:
        ticker.stop()
    assert all(isinstance(v, float) for v in values)
    assert values == sorted(values) and len(set(values)) == 5
    assert values[0] >= start + period - EARLY
    # Five ticks cannot come sooner than five periods after the start (cadence from creation).
    assert values[-1] >= start + 5 * period - EARLY
    assert values[-1] <= start + 5 * period + 2 * LATE


def test_ticker_drops_ticks_nobody_reads():
    period = 0.1
    ticker = csp.Ticker(period)
    try:
        start = time.monotonic()
        time.sleep(5.5 * period)  # about five ticks come due; the channel holds one
        assert len(ticker.c) == 1
        assert ticker.c.qsize() == 1
        index, first, ok = csp.select(csp.Recv(ticker.c), default=True)
        drained_at = time.monotonic()
        assert (index, ok) == (0, True)
        # The buffered tick is the oldest one (later ticks were dropped, not queued behind it).
        assert first < start + 3.5 * period
        # Nothing else was buffered. (A brand-new tick could land in the microseconds between
        # the two calls; it would carry a fresh timestamp, which is still no backlog.)
        index, second, _ = csp.select(csp.Recv(ticker.c), default=True)
        assert index == -1 or second >= drained_at, "a second tick was buffered"
    finally:
        ticker.stop()


def test_ticker_stop_stops_ticks():
    period = 0.05
    ticker = csp.Ticker(period)
    recv_within(ticker.c, period + LATE)
    ticker.stop()  # right after a tick: the next one is a period away
    drain(ticker.c)
    assert_nothing_within(ticker.c, 5 * period)
    assert not ticker.c.closed  # Go's Stop does not close the channel
    ticker.stop()  # stopping twice is harmless


def test_ticker_stop_before_first_tick():
    ticker = csp.Ticker(0.1)
    ticker.stop()
    assert_nothing_within(ticker.c, 0.4)


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.01])
def test_ticker_rejects_non_positive_period(bad):
    with pytest.raises(ValueError):
        csp.Ticker(bad)


def test_ticker_reset_rejects_non_positive_period():
    ticker = csp.Ticker(10.0)
    try:
        with pytest.raises(ValueError):
            ticker.reset(0)
        with pytest.raises(ValueError):
            ticker.reset(-1)
    finally:
        ticker.stop()


def test_ticker_reset_changes_period():
    ticker = csp.Ticker(10.0)
    try:
        start = time.monotonic()
        ticker.reset(0.1)
        values = [recv_within(ticker.c, 0.1 + LATE) for _ in range(3)]
        assert values[0] >= start + 0.1 - EARLY
        assert values[-1] >= start + 3 * 0.1 - EARLY
        assert values[-1] < start + 10.0 - 1.0, "still ticking at the old period"
        # And back to a long period: nothing for a while.
        ticker.reset(10.0)
        drain(ticker.c)
        assert_nothing_within(ticker.c, 0.4)
    finally:
        ticker.stop()


def test_ticker_keeps_cadence_after_a_slow_reader():
    """A reader that falls behind gets one stale tick, then ticks on the original grid again
    (no burst of catch-up ticks)."""
    period = 0.05
    ticker = csp.Ticker(period)
    try:
        time.sleep(6 * period)
        recv_within(ticker.c, LATE)  # the stale one
        after_drain = time.monotonic()
        fresh = recv_within(ticker.c, period + LATE)
        assert fresh >= after_drain, "a second stale tick was queued"
        third = recv_within(ticker.c, period + LATE)
        assert third - fresh >= period / 2 - EARLY, "catch-up burst"
    finally:
        ticker.stop()


# ---- Timer ---------------------------------------------------------------------------------

def test_timer_fires_once():
    start = time.monotonic()
    timer = csp.Timer(0.1)
    assert isinstance(timer.c, csp.Chan) and timer.c.maxsize == 1
    value = recv_within(timer.c, 0.1 + LATE)
    assert isinstance(value, float)
    assert value >= start + 0.1 - EARLY
    assert_nothing_within(timer.c, 0.25)
    assert not timer.c.closed


def test_timer_stop_before_firing():
    timer = csp.Timer(0.2)
    assert timer.stop() is True
    assert_nothing_within(timer.c, 0.5)
    assert timer.stop() is False  # already stopped, as in Go


def test_timer_stop_after_firing_returns_false():
    timer = csp.Timer(0.02)
    recv_within(timer.c, LATE)
    assert timer.stop() is False


def test_timer_reset_pending_moves_deadline_earlier():
    start = time.monotonic()
    timer = csp.Timer(3.0)
    assert timer.reset(0.1) is True
    value = recv_within(timer.c, 0.1 + LATE)
    assert value >= start + 0.1 - EARLY
    assert value < start + 3.0 - 0.5, "fired at the old deadline"
    timer.stop()


def test_timer_reset_pending_moves_deadline_later():
    timer = csp.Timer(0.1)
    start = time.monotonic()
    assert timer.reset(1.0) is True
    assert_nothing_within(timer.c, 0.4)  # the old deadline (0.1 s) came and went
    value = recv_within(timer.c, 1.0 + LATE)
    assert value >= start + 1.0 - EARLY
    assert_empty_now(timer.c)
    assert_nothing_within(timer.c, 0.1)  # once only


def test_timer_reset_after_firing_returns_false_and_fires_again():
    timer = csp.Timer(0.02)
    recv_within(timer.c, LATE)
    rearmed = time.monotonic()
    assert timer.reset(0.1) is False
    value = recv_within(timer.c, 0.1 + LATE)
    assert value >= rearmed + 0.1 - EARLY
    assert_nothing_within(timer.c, 0.15)


def test_timer_reset_after_stop_returns_false_and_fires():
    timer = csp.Timer(5.0)
    assert timer.stop() is True
    rearmed = time.monotonic()
    assert timer.reset(0.05) is False
    value = recv_within(timer.c, 0.05 + LATE)
    assert value >= rearmed + 0.05 - EARLY


def test_timer_stop_and_reset_do_not_drain_channel():
    timer = csp.Timer(0.01)
    wait_until(lambda: len(timer.c) == 1, "the timer firing", poll_seconds=0.005)
    assert timer.stop() is False
    assert len(timer.c) == 1, "stop drained the channel"
    assert timer.reset(10.0) is False
    assert len(timer.c) == 1, "reset drained the channel"
    value = recv_within(timer.c, 0.1)
    assert isinstance(value, float)
    assert timer.stop() is True  # the 10 s deadline was pending
    assert_empty_now(timer.c)


@pytest.mark.parametrize("seconds", [0, -1])
def test_timer_zero_or_negative_fires_promptly(seconds):
    start = time.monotonic()
    timer = csp.Timer(seconds)
    value = recv_within(timer.c, LATE)
    assert value >= start


# ---- go ------------------------------------------------------------------------------------

def test_go_starts_named_daemon_thread_with_args():
    out = csp.Chan(1)
    release = csp.Chan()

    def work(a, b, c):
        release.recv()
        out.send((a, b, c, threading.current_thread().name))

    thread = csp.go(work, 1, "two", [3], name="test-go/worker")
    try:
        assert isinstance(thread, threading.Thread)
        assert thread.ident is not None and thread.is_alive(), "not started"
        assert thread.daemon
        assert thread.name == "test-go/worker"
    finally:
        release.put(None, timeout=2)
    assert recv_within(out, 2) == (1, "two", [3], "test-go/worker")
    join_all([thread])


def test_go_default_names_are_distinct_and_non_empty():
    def noop():
        pass

    threads = [csp.go(noop) for _ in range(5)] + [csp.go(lambda: None)]
    join_all(threads)
    names = [t.name for t in threads]
    assert all(isinstance(n, str) and n for n in names)
    assert len(set(names)) == len(names)
    assert all(t.daemon for t in threads)


def test_go_exception_reaches_excepthook_and_stderr(thread_guard, capfd):
    error = RuntimeError("boom-7f3a")

    def explode():
        raise error

    thread = csp.go(explode, name="test-go/exploder")
    join_all([thread])
    assert len(thread_guard.exceptions) == 1
    name, exc = thread_guard.exceptions[0]
    assert name == "test-go/exploder"
    assert exc is error
    thread_guard.exceptions.clear()
    err = capfd.readouterr().err
    assert "test-go/exploder" in err
    assert "boom-7f3a" in err and "RuntimeError" in err


def test_go_exception_with_default_name_is_attributed(thread_guard, capfd):
    def explode_quietly():
        raise ValueError("default-name-boom")

    thread = csp.go(explode_quietly)
    join_all([thread])
    assert [(n, type(e)) for n, e in thread_guard.exceptions] == [(thread.name, ValueError)]
    thread_guard.exceptions.clear()
    err = capfd.readouterr().err
    assert thread.name in err and "default-name-boom" in err


# ---- WaitGroup -----------------------------------------------------------------------------

def test_waitgroup_zero_count_returns_immediately():
    wg = csp.WaitGroup()
    start = time.monotonic()
    assert wg.wait() is True
    assert wg.wait(timeout=0) is True
    assert wg.wait(timeout=5) is True
    assert time.monotonic() - start < 0.5


def test_waitgroup_add_done_wait():
    wg = csp.WaitGroup()
    results = csp.Chan(None)

    def work(i):
        time.sleep(0.02 * (i % 3))
        results.send(i)
        wg.done()

    wg.add(5)
    threads = [csp.go(work, i, name=f"test-wg-worker-{i}") for i in range(5)]
    assert wg.wait(timeout=5) is True
    assert len(results) == 5  # every done() came after its send
    join_all(threads)
    wg.add(2)
    wg.done()
    assert wg.wait(timeout=0.05) is False
    wg.done()
    assert wg.wait(timeout=0.05) is True


def test_waitgroup_wait_times_out():
    wg = csp.WaitGroup()
    wg.add(1)
    start = time.monotonic()
    assert wg.wait(timeout=0.2) is False
    elapsed = time.monotonic() - start
    assert 0.2 - EARLY <= elapsed <= 0.2 + LATE
    wg.done()
    assert wg.wait(timeout=1) is True


def test_waitgroup_negative_counter_raises():
    wg = csp.WaitGroup()
    with pytest.raises(ValueError):
        wg.done()
    assert wg.wait(timeout=0) is True  # the counter stayed at zero
    wg.add(1)
    with pytest.raises(ValueError):
        wg.add(-2)
    assert wg.wait(timeout=0) is False  # still one outstanding
    wg.done()
    assert wg.wait(timeout=0) is True


def test_waitgroup_releases_all_waiters():
    wg = csp.WaitGroup()
    wg.add(1)
    released = csp.Chan(None)
    waiters = [csp.go(lambda: released.send(wg.wait(timeout=5)), name=f"test-wg-waiter-{i}")
               for i in range(10)]
    time.sleep(0.1)  # let them block
    assert len(released) == 0, "a waiter returned while the counter was 1"
    wg.done()
    got = [recv_within(released, 3) for _ in range(10)]
    assert got == [True] * 10
    join_all(waiters)


# ---- bugs found in review (these fail until csp/ is fixed) --------------------------------

def _run_script(body: str, timeout: float = 20.0) -> str:
    script = "import sys\nsys.path.insert(0, %r)\n" % str(REPO) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("seconds", ["float('inf')", "1e10"])
def test_bug_huge_delay_kills_scheduler(seconds):
    """`after(inf)` (or any delay above threading.TIMEOUT_MAX, ~292 years) makes the scheduler
    call Condition.wait(delay), which raises OverflowError and kills `csp-timers` for good:
    every timer in the process stops firing. Run in a subprocess so the suite survives."""
    out = _run_script(f"""
        import queue, threading, time, csp
        csp.after(0).get(timeout=5)  # the scheduler is up and idle
        never = csp.after({seconds})  # now the earliest (only) alarm: the scheduler waits on it
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(
                t.name == csp.SCHEDULER_THREAD_NAME for t in threading.enumerate()):
            time.sleep(0.01)  # give the scheduler time to act on it (and, today, to die)
        ch = csp.after(0.05)
        try:
            ch.get(timeout=1.5)
            print("FIRED")
        except queue.Empty:
            print("DEAD")
    """)
    assert "FIRED" in out, out


def test_bug_nan_delay_wedges_scheduler():
    """`after(nan)`: max(nan, 0.0) is nan, the delay is nan, `delay > 0` is false and nothing
    is `<= now`, so the scheduler spins for ever holding its lock: 100% CPU, no timer fires, and
    every later after()/Timer() call blocks. It should be rejected (ValueError) up front."""
    out = _run_script("""
        import queue, threading, csp
        try:
            csp.after(float("nan"))
        except (ValueError, TypeError):
            print("REJECTED")
        box = []
        def later():
            try:
                csp.after(0.05).get(timeout=1.5)
                box.append("FIRED")
            except queue.Empty:
                box.append("NOT FIRED")
        t = threading.Thread(target=later, daemon=True)
        t.start()
        t.join(2.5)
        print(box[0] if box else "after() BLOCKED")
    """)
    assert "FIRED" in out and "NOT FIRED" not in out, out


def test_bug_ticker_tick_delivered_after_stop():
    """The scheduler pops a due alarm under its lock but delivers it after releasing the lock
    (it must also take the channel runtime's lock, which any channel user may hold). A `stop()`
    in that window returns at once, the caller drains `.c`, and then the in-flight tick lands:
    a tick after Stop, which Go's documentation rules out. The slow `_offer` below only widens
    the window that preemption or LOCK contention opens in real runs."""
    ticker = csp.Ticker(0.05)
    entered = threading.Event()
    real_offer = ticker.c._offer
    first = [True]

    def slow_offer(value):
        if first[0]:
            first[0] = False
            entered.set()
            time.sleep(0.3)
        return real_offer(value)

    ticker.c._offer = slow_offer
    assert entered.wait(3), "the ticker never ticked"
    ticker.stop()
    drain(ticker.c)
    assert_nothing_within(ticker.c, 0.8)


def test_bug_concurrent_reset_leaves_two_live_alarms(monkeypatch):
    """`Timer.reset` reads `self._alarm` and stores the new alarm outside the scheduler's lock.
    Two threads resetting the same timer can both retire the same old alarm and each push a
    new one: the timer then has two live alarms, `stop()` (returning True) cancels only one,
    and the other still fires. The barrier below forces the interleaving a thread switch can
    produce; with the read-swap under the lock it just times out and the test passes."""
    timer = csp.Timer(5.0)
    barrier = threading.Barrier(2)

    class RendezvousAlarm(csp.timers._Alarm):
        def __init__(self, *args):
            if threading.current_thread().name.startswith("test-bug-reset-"):
                try:
                    barrier.wait(0.5)
                except threading.BrokenBarrierError:
                    pass
            super().__init__(*args)

    monkeypatch.setattr(csp.timers, "_Alarm", RendezvousAlarm)
    resetters = [csp.go(timer.reset, 1.0, name=f"test-bug-reset-{i}") for i in range(2)]
    join_all(resetters)
    assert timer.stop() is True
    assert_nothing_within(timer.c, 1.6)  # the orphan alarm would fire about 1 s after reset


def test_bug_stopped_timer_entries_accumulate_in_heap():
    """`stop()` and `reset()` only mark the old alarm inactive; its heap entry stays until its
    deadline passes. A long idle timeout that is reset per message (a lease, an epoch timer)
    therefore grows the heap by one entry per reset for the whole timeout (the scheduler only
    discards dead entries that reach the top of the heap, and any earlier live timer keeps
    them from getting there): 4000 resets of a 1-hour timer leave 4000 dead entries, each
    keeping its channel alive. Go purges deleted timers once they are a quarter of the heap."""
    heap = csp.timers._scheduler._heap
    other = csp.Timer(600)  # any earlier pending timer: dead entries behind it are never popped
    timer = csp.Timer(3600)
    before = len(heap)
    try:
        for _ in range(4000):
            timer.reset(3600)
    finally:
        timer.stop()
        other.stop()
    growth = len(heap) - before
    assert growth < 1000, f"{growth} dead entries left in the timer heap"


def test_send_after_delivers_the_value_later_without_a_thread():
    import threading
    import time
    chan = csp.Chan(None)
    before = threading.active_count()
    start = time.monotonic()
    for i in range(50):
        csp.send_after(chan, i, 0.05)
    assert threading.active_count() <= before + 1   # at most the shared timer thread
    got = sorted(chan.recv()[0] for _ in range(50))
    assert got == list(range(50))
    assert time.monotonic() - start >= 0.05


def test_send_after_drops_when_closed_and_refuses_none():
    import pytest
    chan = csp.Chan(None)
    chan.close()
    csp.send_after(chan, "late", 0.0)   # dropped, no error
    with pytest.raises(ValueError):
        csp.send_after(csp.Chan(1), None, 0.0)
