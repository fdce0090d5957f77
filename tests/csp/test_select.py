"""select rules (docs/architecture.md, "csp, briefly"): readiness, default, nil channels, close, exactly-one-fires,
cleanup of registrations, fairness, no CPU while blocked, and many-thread properties.
Every wait is bounded (see helpers)."""

from __future__ import annotations

import collections
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import csp
from csp import Recv, Send, select
from tests.csp.helpers import (
    call_within, finish, join_all, nothing_within, spawn, value_within, wait_blocked, waiting,
)

STILL_BLOCKED_SECONDS = 0.15


def filled(size, values):
    """A channel of `size` already holding `values`."""
    ch = csp.Chan(size)
    for v in values:
        ch.put_nowait(v)
    return ch


def assert_no_entries(*chans):
    for ch in chans:
        assert len(ch._recvq) == 0 and len(ch._sendq) == 0, (
            f"{ch!r} still has wait-queue entries: recvq={len(ch._recvq)} "
            f"sendq={len(ch._sendq)}")


# ---- results of a ready select ----------------------------------------------------------------

def test_recv_case_returns_index_value_true():
    a, b = csp.Chan(1), filled(1, ["vb"])
    assert call_within(select, Recv(a), Recv(b)) == (1, "vb", True)
    assert len(b) == 0


def test_recv_of_a_sent_none_is_ok_true():
    ch = filled(1, [None])
    assert call_within(select, Recv(ch)) == (0, None, True)


def test_send_case_returns_index_none_true_and_delivers():
    a, b = csp.Chan(), csp.Chan(1)
    assert call_within(select, Send(a, "x"), Send(b, "y")) == (1, None, True)
    assert b.get_nowait() == "y"


def test_send_case_to_a_blocked_receiver():
    ch = csp.Chan()
    thread, outcome = spawn(ch.recv, name="test-select:receiver")
    wait_blocked(ch, "recv")
    assert call_within(select, Recv(csp.Chan()), Send(ch, 7)) == (1, None, True)
    finish(thread, outcome)
    assert outcome.result == (7, True)


def test_recv_case_from_a_blocked_sender():
    ch = csp.Chan()
    thread, outcome = spawn(ch.send, "s", name="test-select:sender")
    wait_blocked(ch, "send")
    assert call_within(select, Send(csp.Chan(), 0), Recv(ch)) == (1, "s", True)
    finish(thread, outcome)
    assert outcome.error is None


def test_select_on_full_buffer_takes_a_blocked_senders_value_into_the_buffer():
    ch = filled(1, ["first"])
    thread, outcome = spawn(ch.send, "second", name="test-select:full-sender")
    wait_blocked(ch, "send")
    assert call_within(select, Recv(ch)) == (0, "first", True)
    finish(thread, outcome)
    assert ch.get_nowait() == "second"


# ---- default ----------------------------------------------------------------------------------

def test_default_with_nothing_ready_returns_at_once():
    a, b = csp.Chan(), filled(1, [1])
    start = time.monotonic()
    result = select(Recv(a), Send(b, 2), Send(a, 3), default=True)
    elapsed = time.monotonic() - start
    assert result == (-1, None, False)
    assert elapsed < 0.5, f"select(default=True) took {elapsed:.3f}s"
    assert len(b) == 1 and b.get_nowait() == 1, "a default select must not change the channels"
    assert_no_entries(a, b)


def test_default_is_not_taken_when_a_case_is_ready():
    ch = filled(1, ["ready"])
    assert select(Recv(csp.Chan()), Recv(ch), default=True) == (1, "ready", True)


def test_default_with_no_cases():
    assert select(default=True) == (-1, None, False)


# ---- nil (None) channels ----------------------------------------------------------------------

def test_only_none_channels_with_default():
    assert select(Recv(None), Send(None, 1), default=True) == (-1, None, False)


def test_none_cases_never_fire_while_select_is_blocked():
    result = csp.Chan(1)
    unblock = csp.Chan()
    # A select on only None channels never returns; so this one also has a real case that the
    # test uses to end it, and checks nothing came through the None cases first.
    thread = csp.go(lambda: result.send(select(Recv(None), Send(None, 1), Recv(unblock))),
                    name="test-select:nil-blocked")
    wait_blocked(unblock, "recv")
    nothing_within(result, STILL_BLOCKED_SECONDS, "None cases to stay not ready")
    unblock.close()
    assert value_within(result) == (2, None, False)
    join_all([thread])


def test_a_none_case_beside_a_ready_case_is_never_chosen():
    ready = csp.Chan(None)
    for i in range(300):
        ready.put_nowait(i)
    for i in range(300):
        index, value, ok = select(Recv(None), Send(None, "x"), Recv(ready), Send(None, "y"),
                                  default=True)
        assert (index, value, ok) == (2, i, True)


# ---- closed channels --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, None])
def test_recv_on_closed_drained_channel_is_ready(size):
    ch = csp.Chan(size)
    ch.close()
    assert call_within(select, Recv(csp.Chan()), Recv(ch)) == (1, None, False)
    assert select(Recv(ch), default=True) == (0, None, False)


def test_recv_on_closed_channel_gets_buffered_values_first():
    ch = filled(2, ["a", "b"])
    ch.close()
    results = [select(Recv(ch), default=True) for _ in range(3)]
    assert results == [(0, "a", True), (0, "b", True), (0, None, False)]


@pytest.mark.parametrize("size", [0, 1, None])
def test_send_on_closed_channel_raises_when_chosen(size):
    ch = csp.Chan(size)
    ch.close()
    with pytest.raises(csp.ChannelClosed):
        call_within(select, Send(ch, 1))
    with pytest.raises(csp.ChannelClosed):
        select(Send(ch, 1), Recv(csp.Chan()), default=True)  # closed send is ready: no default
    assert len(ch) == 0


def test_send_on_closed_channel_beside_a_ready_recv_raises_sometimes():
    """Both cases are ready: over many selects each is chosen at least once."""
    closed = csp.Chan()
    closed.close()
    ready = csp.Chan(None)
    outcomes = collections.Counter()
    for _ in range(200):
        ready.put_nowait("v")
        try:
            result = select(Send(closed, 1), Recv(ready), default=True)
        except csp.ChannelClosed:
            outcomes["raised"] += 1
            ready.get_nowait()
        else:
            assert result == (1, "v", True)
            outcomes["recv"] += 1
    assert outcomes["raised"] > 20 and outcomes["recv"] > 20, outcomes


# ---- close while a select is blocked ----------------------------------------------------------

@pytest.mark.parametrize("which", [0, 1])
def test_blocked_select_recv_woken_by_close(which):
    chans = [csp.Chan(), csp.Chan(2)]
    thread, outcome = spawn(select, Recv(chans[0]), Recv(chans[1]), name="test-select:recv2")
    wait_blocked(chans[0], "recv")
    wait_blocked(chans[1], "recv")
    chans[which].close()
    finish(thread, outcome)
    assert outcome.error is None and outcome.result == (which, None, False)
    assert_no_entries(*chans)


@pytest.mark.parametrize("size", [0, 1])
def test_blocked_select_send_woken_by_close_raises(size):
    ch = filled(size, ["kept"] * size)
    other = csp.Chan()
    thread, outcome = spawn(select, Recv(other), Send(ch, "lost"), name="test-select:send")
    wait_blocked(ch, "send")
    ch.close()
    finish(thread, outcome)
    assert isinstance(outcome.error, csp.ChannelClosed), outcome.error
    assert_no_entries(ch, other)
    assert [ch.get_nowait() for _ in range(size)] == ["kept"] * size
    with pytest.raises(csp.ChannelClosed):
        ch.get_nowait()


def test_blocked_mixed_select_when_the_recv_channel_is_closed():
    a, b = csp.Chan(), csp.Chan()
    thread, outcome = spawn(select, Recv(a), Send(b, "x"), name="test-select:mixed-a")
    wait_blocked(a, "recv")
    wait_blocked(b, "send")
    a.close()
    finish(thread, outcome)
    assert outcome.error is None and outcome.result == (0, None, False)
    assert_no_entries(a, b)
    # b's send case did not happen: a receiver on b gets nothing.
    assert select(Recv(b), default=True) == (-1, None, False)


def test_blocked_mixed_select_when_the_send_channel_is_closed():
    a, b = csp.Chan(), csp.Chan()
    thread, outcome = spawn(select, Recv(a), Send(b, "x"), name="test-select:mixed-b")
    wait_blocked(a, "recv")
    wait_blocked(b, "send")
    b.close()
    finish(thread, outcome)
    assert isinstance(outcome.error, csp.ChannelClosed), outcome.error
    assert_no_entries(a, b)
    # a's recv case did not happen: a later sender on a finds nobody.
    assert select(Send(a, 1), default=True) == (-1, None, False)


def test_close_wakes_several_blocked_selects_of_both_kinds():
    rc, sc = csp.Chan(), csp.Chan()
    never = csp.Chan()
    receivers = [spawn(select, Recv(never), Recv(rc), name=f"test-select:r{i}") for i in range(4)]
    senders = [spawn(select, Send(sc, i), Recv(never), name=f"test-select:s{i}")
               for i in range(4)]
    wait_blocked(rc, "recv", 4)
    wait_blocked(sc, "send", 4)
    rc.close()
    sc.close()
    for thread, outcome in receivers:
        finish(thread, outcome)
        assert outcome.result == (1, None, False)
    for thread, outcome in senders:
        finish(thread, outcome)
        assert isinstance(outcome.error, csp.ChannelClosed)
    assert_no_entries(rc, sc, never)


# ---- exactly one case fires -------------------------------------------------------------------

def test_exactly_one_of_two_concurrent_senders_is_consumed():
    rounds = 120
    for r in range(rounds):
        a, b = csp.Chan(), csp.Chan()
        gate = csp.Chan()
        sel_thread, sel = spawn(select, Recv(a), Recv(b), name=f"test-select:one-of-two-{r}")
        wait_blocked(a, "recv")
        wait_blocked(b, "recv")

        def send_after_gate(ch, v):
            gate.recv()
            ch.send(v)

        sa = spawn(send_after_gate, a, ("a", r), name=f"test-select:sender-a-{r}")
        sb = spawn(send_after_gate, b, ("b", r), name=f"test-select:sender-b-{r}")
        wait_blocked(gate, "recv", 2)
        gate.close()  # release both senders at once
        finish(sel_thread, sel)
        assert sel.error is None
        index, value, ok = sel.result
        assert ok and index in (0, 1)
        winner, loser = (sa, sb) if index == 0 else (sb, sa)
        loser_chan, loser_value = (b, ("b", r)) if index == 0 else (a, ("a", r))
        assert value == (("a", r) if index == 0 else ("b", r))
        finish(*winner, what="(the sender whose value the select took)")
        assert winner[1].error is None
        # The other sender must still be blocked: nothing took its value.
        wait_blocked(loser_chan, "send")
        assert not loser[1].finished, f"round {r}: both sends completed for one select"
        assert loser_chan.get_nowait() == loser_value
        finish(*loser)
        assert loser[1].error is None
        assert_no_entries(a, b)


def test_exactly_one_of_two_concurrent_receivers_gets_a_value():
    rounds = 120
    for r in range(rounds):
        a, b = csp.Chan(), csp.Chan()
        gate = csp.Chan()
        sel_thread, sel = spawn(select, Send(a, ("a", r)), Send(b, ("b", r)),
                                name=f"test-select:send-one-of-two-{r}")
        wait_blocked(a, "send")
        wait_blocked(b, "send")

        def recv_after_gate(ch):
            gate.recv()
            return ch.recv()

        ra = spawn(recv_after_gate, a, name=f"test-select:receiver-a-{r}")
        rb = spawn(recv_after_gate, b, name=f"test-select:receiver-b-{r}")
        wait_blocked(gate, "recv", 2)
        gate.close()
        finish(sel_thread, sel)
        assert sel.error is None
        index, value, ok = sel.result
        assert (value, ok) == (None, True) and index in (0, 1)
        winner, loser = (ra, rb) if index == 0 else (rb, ra)
        loser_chan = b if index == 0 else a
        finish(*winner)
        assert winner[1].result == ((("a", r) if index == 0 else ("b", r)), True)
        wait_blocked(loser_chan, "recv")
        assert not loser[1].finished, f"round {r}: two receivers got a value from one select"
        loser_chan.close()
        finish(*loser)
        assert loser[1].result == (None, False)


# ---- registrations are removed ----------------------------------------------------------------

def test_blocked_select_registrations_are_removed_after_it_completes():
    never_r, never_s = csp.Chan(), csp.Chan()
    for r in range(50):
        ch = csp.Chan()
        thread, outcome = spawn(select, Recv(never_r), Send(never_s, r), Recv(ch),
                                name=f"test-select:cleanup-{r}")
        wait_blocked(ch, "recv")
        assert len(never_r._recvq) == 1 and len(never_s._sendq) == 1
        call_within(ch.send, r)
        finish(thread, outcome)
        assert outcome.result == (2, r, True)
        assert_no_entries(never_r, never_s, ch)


def test_select_with_timeout_does_not_grow_the_never_ready_channels_queue():
    never = csp.Chan()
    full = filled(1, ["x"])

    def many():
        for _ in range(100):
            index, _, _ = select(Recv(never), Send(full, "y"), Recv(csp.after(0.0005)))
            assert index == 2
        return len(never._recvq), len(full._sendq)

    assert call_within(many, seconds=20.0) == (0, 0)


def test_registrations_removed_when_woken_by_close_of_another_channel():
    never = csp.Chan()
    for r in range(30):
        closing = csp.Chan()
        thread, outcome = spawn(select, Recv(never), Send(never, r), Recv(closing),
                                name=f"test-select:close-cleanup-{r}")
        wait_blocked(closing, "recv")
        closing.close()
        finish(thread, outcome)
        assert outcome.result == (2, None, False)
    assert_no_entries(never)


# ---- same channel in two cases ----------------------------------------------------------------

def test_same_channel_recv_and_send_with_an_external_sender():
    c = csp.Chan()
    thread, outcome = spawn(select, Recv(c), Send(c, "mine"), name="test-select:same-recv")
    wait_blocked(c, "recv")
    wait_blocked(c, "send")
    call_within(c.send, "theirs")
    finish(thread, outcome)
    assert outcome.result == (0, "theirs", True)
    assert_no_entries(c)


def test_same_channel_recv_and_send_with_an_external_receiver():
    c = csp.Chan()
    thread, outcome = spawn(select, Recv(c), Send(c, "mine"), name="test-select:same-send")
    wait_blocked(c, "recv")
    wait_blocked(c, "send")
    assert call_within(c.recv) == ("mine", True)
    finish(thread, outcome)
    assert outcome.result == (1, None, True)
    assert_no_entries(c)


def test_same_channel_select_does_not_meet_itself():
    c = csp.Chan()
    assert select(Recv(c), Send(c, 1), default=True) == (-1, None, False)
    thread, outcome = spawn(select, Recv(c), Send(c, 1), name="test-select:self")
    wait_blocked(c, "recv")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, "a select not to rendezvous with itself")
    c.close()
    finish(thread, outcome)
    # Both cases become ready on close; either is acceptable, but it must be one of them.
    assert outcome.result == (0, None, False) or isinstance(outcome.error, csp.ChannelClosed), (
        outcome.result, outcome.error)
    assert_no_entries(c)


def test_same_channel_buffered_both_ready():
    seen = collections.Counter()
    for _ in range(200):
        c = filled(2, ["old"])
        index, value, ok = select(Recv(c), Send(c, "new"), default=True)
        assert index != -1, "both cases were ready"
        seen[index] += 1
        if index == 0:
            assert (value, ok) == ("old", True) and len(c) == 0
        else:
            assert (value, ok) == (None, True) and list(c._buf) == ["old", "new"]
    assert seen[0] > 20 and seen[1] > 20, seen


def test_two_recv_cases_on_one_channel_consume_one_value():
    c = csp.Chan()
    thread, outcome = spawn(select, Recv(c), Recv(c), name="test-select:double-recv")
    wait_blocked(c, "recv", 2)
    call_within(c.send, "only")
    finish(thread, outcome)
    assert outcome.result[1:] == ("only", True) and outcome.result[0] in (0, 1)
    assert_no_entries(c)
    assert select(Send(c, "next"), default=True) == (-1, None, False)


# ---- select meets select ----------------------------------------------------------------------

def test_select_send_meets_select_recv_on_unbuffered_channels():
    c, d = csp.Chan(), csp.Chan()
    never = csp.Chan()
    n = 300

    def sender():
        for i in range(n):
            index, _, _ = select(Recv(never), Send(c, i), Send(None, "nil"))
            assert index == 1
        c.close()

    def receiver():
        got = []
        while True:
            index, value, ok = select(Recv(d), Recv(c), Recv(never))
            assert index == 1
            if not ok:
                return got
            got.append(value)

    sthread, sout = spawn(sender, name="test-select:sel-sender")
    rthread, rout = spawn(receiver, name="test-select:sel-receiver")
    finish(sthread, sout, 20.0)
    finish(rthread, rout, 20.0)
    assert sout.error is None and rout.error is None, (sout.error, rout.error)
    assert rout.result == list(range(n))
    assert_no_entries(c, d, never)


# ---- fairness ---------------------------------------------------------------------------------
# These selects are always ready; `default=True` only turns a wrongly blocking select into a
# visible -1 instead of a hang.

def test_fairness_two_unbounded_ready_channels():
    a, b = csp.Chan(None), csp.Chan(None)
    n = 2000
    for i in range(n):
        a.put_nowait(i)
        b.put_nowait(i)
    counts = collections.Counter(select(Recv(a), Recv(b), default=True)[0] for _ in range(n))
    assert counts[-1] == 0, counts
    for index in (0, 1):
        assert 0.35 * n <= counts[index] <= 0.65 * n, counts


def test_fairness_two_refilled_buffered_channels():
    chans = [filled(1, ["v"]), filled(1, ["v"])]
    n = 2000
    counts = collections.Counter()
    for _ in range(n):
        index, value, ok = select(Recv(chans[0]), Recv(chans[1]), default=True)
        assert (value, ok) == ("v", True)
        counts[index] += 1
        chans[index].put_nowait("v")
    for index in (0, 1):
        assert 0.35 * n <= counts[index] <= 0.65 * n, counts


def test_fairness_between_a_ready_send_and_a_ready_recv():
    out, inp = csp.Chan(None), csp.Chan(None)
    n = 2000
    for i in range(n):
        inp.put_nowait(i)
    counts = collections.Counter(select(Send(out, 0), Recv(inp), default=True)[0]
                                 for _ in range(n))
    assert counts[-1] == 0, counts
    for index in (0, 1):
        assert 0.35 * n <= counts[index] <= 0.65 * n, counts


def test_fairness_two_closed_channels():
    a, b = csp.Chan(), csp.Chan()
    a.close()
    b.close()
    n = 2000
    counts = collections.Counter(select(Recv(a), Recv(b), default=True)[0] for _ in range(n))
    assert counts[-1] == 0, counts
    for index in (0, 1):
        assert 0.35 * n <= counts[index] <= 0.65 * n, counts


def test_fairness_three_ready_among_four():
    chans = [filled(1, ["v"]), csp.Chan(), filled(1, ["v"]), filled(1, ["v"])]
    n = 3000
    counts = collections.Counter()
    for _ in range(n):
        index, _, ok = select(*(Recv(c) for c in chans), default=True)
        assert ok and index != 1, "the empty channel was chosen"
        counts[index] += 1
        chans[index].put_nowait("v")
    assert counts[1] == 0
    for index in (0, 2, 3):
        assert 0.20 * n <= counts[index] <= 0.46 * n, counts


# ---- stale registrations (white-box) ----------------------------------------------------------
# Between the moment a blocked select is fired and the moment it unlinks its other entries, those
# entries stay in other channels' wait queues, marked fired. A select that peeks such a channel
# sees it as ready, finds nothing under the lock, and must fall back to a full re-check. These
# tests build that transient state by hand so the fallback is exercised every time.

def _stale_entry(queue_, value=None):
    from csp._runtime import Entry, Waiter
    waiter = Waiter()
    waiter.fire(0, None, True)  # some peer already completed it
    entry = Entry(waiter, 0, value)
    queue_.append(entry)
    return entry


def test_stale_sender_entry_is_not_a_ready_recv():
    ch = csp.Chan()
    _stale_entry(ch._sendq, "ghost")
    assert select(Recv(ch), default=True) == (-1, None, False)
    _stale_entry(ch._sendq, "ghost")
    thread, outcome = spawn(select, Recv(ch), name="test-select:stale-recv")
    wait_blocked(ch, "recv")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, "no value from a stale sender entry")
    call_within(ch.send, "real")
    finish(thread, outcome)
    assert outcome.result == (0, "real", True)


def test_stale_receiver_entry_is_not_a_ready_send():
    ch = csp.Chan()
    _stale_entry(ch._recvq)
    assert select(Send(ch, 1), default=True) == (-1, None, False)
    assert waiting(ch, "send") == 0


def test_fallback_after_a_stale_pick_still_finds_the_truly_ready_case():
    for _ in range(100):
        stale, ready = csp.Chan(), filled(1, ["v"])
        _stale_entry(stale._sendq)
        assert call_within(select, Recv(stale), Recv(ready)) == (1, "v", True)
        _stale_entry(stale._recvq)
        assert call_within(select, Send(stale, 0), Send(ready, "w")) == (1, None, True)
        assert ready.get_nowait() == "w"


def test_fallback_after_a_stale_pick_still_sees_closed_channels():
    for _ in range(100):
        stale, closed = csp.Chan(), csp.Chan()
        closed.close()
        _stale_entry(stale._sendq)
        with pytest.raises(csp.ChannelClosed):
            call_within(select, Recv(stale), Send(closed, 1))
        _stale_entry(stale._sendq)
        assert call_within(select, Recv(stale), Recv(closed)) == (1, None, False)


# ---- bad arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    lambda: (csp.Chan(1),),                   # a channel instead of a case
    lambda: (5,),
    lambda: (None,),
    lambda: (Recv(filled(1, [1])), "case"),   # a bad case after a ready one
    lambda: ("case", Recv(filled(1, [1]))),
    lambda: (Recv(5),),                       # a case whose channel is not a Chan
    lambda: (Send(object(), 1),),
])
def test_non_case_argument_raises_type_error(bad):
    cases = bad()
    with pytest.raises(TypeError):
        call_within(select, *cases)
    with pytest.raises(TypeError):
        select(*cases, default=True)


def test_type_error_consumes_nothing():
    ch = filled(1, ["kept"])
    with pytest.raises(TypeError):
        select(Recv(ch), 42)
    assert len(ch) == 1


# ---- no CPU while blocked ---------------------------------------------------------------------

CPU_WINDOW_SECONDS = 1.0
CPU_LIMIT_SECONDS = 0.05          # whole process, over the 1 s window
THREAD_CPU_LIMIT_SECONDS = 0.005  # the blocked thread alone (a 1 ms poll loop costs ~0.01 s)
WAKEUP_LIMIT = 5                  # context switches of the blocked thread (a 10 ms poll: ~100)


def _thread_switches(thread):
    """Voluntary + involuntary context switches of `thread` so far (Linux), else None."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/status") as status:
            return sum(int(line.split(":")[1]) for line in status
                       if line.startswith(("voluntary_ctxt_switches",
                                           "nonvoluntary_ctxt_switches")))
    except (OSError, AttributeError, TypeError, ValueError):
        return None


def _thread_cpu_clock(thread):
    try:
        return time.pthread_getcpuclockid(thread.ident)
    except (AttributeError, OSError):
        return None


def _cpu_while_blocked(block, release, chans):
    """What a thread blocked in `block()` costs during a 1 s window in which the main thread
    only sleeps: (process CPU, the thread's own CPU or None, its wake-ups or None)."""
    thread, outcome = spawn(block, name="test-select:cpu-blocked")
    for ch, kind in chans:
        wait_blocked(ch, kind)
    time.sleep(0.05)  # let the thread settle into its wait
    clock = _thread_cpu_clock(thread)
    thread_cpu0 = time.clock_gettime(clock) if clock is not None else None
    switches0 = _thread_switches(thread)
    cpu0 = time.process_time()
    time.sleep(CPU_WINDOW_SECONDS)
    used = time.process_time() - cpu0
    switches1 = _thread_switches(thread)
    thread_cpu = time.clock_gettime(clock) - thread_cpu0 if clock is not None else None
    assert not outcome.finished, "the thread was supposed to stay blocked during the window"
    release()
    finish(thread, outcome)
    assert outcome.error is None, outcome.error
    wakeups = switches1 - switches0 if None not in (switches0, switches1) else None
    return used, thread_cpu, wakeups


def _assert_idle(what, used, thread_cpu, wakeups):
    assert used < CPU_LIMIT_SECONDS, f"{what}: the process used {used:.3f}s CPU in 1s"
    if thread_cpu is not None:
        assert thread_cpu < THREAD_CPU_LIMIT_SECONDS, (
            f"{what}: the blocked thread used {thread_cpu * 1000:.1f}ms CPU in 1s (polling?)")
    if wakeups is not None:
        assert wakeups <= WAKEUP_LIMIT, (
            f"{what}: the blocked thread woke up {wakeups} times in 1s (a polling loop or "
            f"sleeps)")


def test_blocked_select_uses_no_cpu():
    a, b, c = csp.Chan(), filled(1, [0]), csp.Chan()
    measured = _cpu_while_blocked(lambda: select(Recv(a), Send(b, 1), Recv(c), Send(None, 2)),
                                  c.close, [(a, "recv"), (b, "send"), (c, "recv")])
    _assert_idle("blocked select", *measured)


def test_blocked_recv_uses_no_cpu():
    ch = csp.Chan()
    _assert_idle("blocked recv", *_cpu_while_blocked(ch.recv, ch.close, [(ch, "recv")]))


def test_blocked_send_uses_no_cpu():
    ch = csp.Chan()
    _assert_idle("blocked send",
                 *_cpu_while_blocked(lambda: ch.send(1), ch.recv, [(ch, "send")]))


# ---- many producers and consumers (hypothesis) ------------------------------------------------

CAPACITIES = st.sampled_from([0, 1, 3, None])


@st.composite
def workloads(draw):
    n_chans = draw(st.integers(1, 4))
    caps = draw(st.lists(CAPACITIES, min_size=n_chans, max_size=n_chans))
    producers = draw(st.lists(st.integers(0, 3), min_size=n_chans, max_size=n_chans))
    select_producers = draw(st.integers(0, 2))
    if sum(producers) + select_producers == 0:
        producers[0] = 1
    return {
        "caps": caps,
        "producers": producers,                 # plain producers per channel
        "select_producers": select_producers,   # producers choosing among all channels
        "consumers": draw(st.integers(1, 3)),   # consumers selecting over all channels
        "iter_consumers": draw(st.lists(st.booleans(), min_size=n_chans, max_size=n_chans)),
        "messages": draw(st.integers(1, 50)),
    }


@settings(deadline=None, max_examples=25,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(workloads())
def test_many_producers_and_consumers_every_value_exactly_once(w):
    chans = [csp.Chan(cap) for cap in w["caps"]]
    m = w["messages"]
    single_channel = {}  # producer id -> channel index, for producers using one channel only
    errors: list = []
    threads = []

    def plain_producer(pid, ci):
        try:
            for seq in range(m):
                chans[ci].send((pid, seq))
        except BaseException as exc:  # recorded so a failure names itself
            errors.append(("producer", pid, exc))

    def select_producer(pid):
        try:
            for seq in range(m):
                cases = [Send(c, (pid, seq)) for c in chans] + [Send(None, "nil")]
                index, value, ok = select(*cases)
                assert index < len(chans) and (value, ok) == (None, True)
        except BaseException as exc:
            errors.append(("select-producer", pid, exc))

    received: dict = {}  # consumer name -> list of (channel index, value)

    def select_consumer(name):
        got = received.setdefault(name, [])
        cases = [Recv(c) for c in chans]
        try:
            while any(case.chan is not None for case in cases):
                index, value, ok = select(*cases)
                if not ok:
                    cases[index] = Recv(None)  # closed and drained: switch the case off
                    continue
                got.append((index, value))
        except BaseException as exc:
            errors.append(("consumer", name, exc))

    def iter_consumer(name, ci):
        got = received.setdefault(name, [])
        try:
            for value in chans[ci]:
                got.append((ci, value))
        except BaseException as exc:
            errors.append(("iter-consumer", name, exc))

    pid = 0
    producer_threads = []
    for ci, count in enumerate(w["producers"]):
        for _ in range(count):
            single_channel[pid] = ci
            producer_threads.append(csp.go(plain_producer, pid, ci, name=f"test-mpmc:p{pid}"))
            pid += 1
    for _ in range(w["select_producers"]):
        producer_threads.append(csp.go(select_producer, pid, name=f"test-mpmc:sp{pid}"))
        pid += 1
    n_producers = pid
    for k in range(w["consumers"]):
        threads.append(csp.go(select_consumer, f"c{k}", name=f"test-mpmc:c{k}"))
    for ci, on in enumerate(w["iter_consumers"]):
        if on:
            threads.append(csp.go(iter_consumer, f"i{ci}", ci, name=f"test-mpmc:i{ci}"))
    try:
        join_all(producer_threads, 20.0)
    finally:
        for ch in chans:  # also on failure, so stuck threads wake up instead of leaking
            if not ch.closed:
                ch.close()
    join_all(threads, 20.0)
    assert not errors, errors

    everything = [v for got in received.values() for _, v in got]
    counts = collections.Counter(everything)
    duplicates = [v for v, n in counts.items() if n > 1]
    assert not duplicates, f"received more than once: {duplicates[:10]}"
    expected = {(p, s) for p in range(n_producers) for s in range(m)}
    missing = expected - set(counts)
    extra = set(counts) - expected
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])
    # Per consumer: values of a one-channel producer arrive in the order they were sent.
    for name, got in received.items():
        last: dict = {}
        for ci, (p, seq) in got:
            if p in single_channel:
                assert ci == single_channel[p]
                assert seq > last.get(p, -1), f"{name} got {(p, seq)} after {(p, last[p])}"
                last[p] = seq
    assert_no_entries(*chans)


# ---- close racing with waiters ----------------------------------------------------------------

def test_close_races_with_senders_and_receivers_of_every_kind():
    """One thread closes a channel while others are (or are about to be) blocked on it in
    send/put/select-send and recv/get/select-recv. Every waiter wakes; a value whose send
    succeeded is received exactly once; a send that raised delivered nothing."""
    rng = random.Random(1234)
    for r in range(150):
        c = csp.Chan(rng.choice([0, 1, 2]))
        never = csp.Chan()        # select-senders also wait to receive on it
        never_out = csp.Chan()    # select-receivers also wait to send on it
        gate = csp.Chan()
        sent_ok: list = []
        got: list = []
        problems: list = []

        def sender(kind, value):
            gate.recv()
            try:
                if kind == "send":
                    c.send(value)
                elif kind == "put":
                    c.put(value, timeout=30.0)
                else:
                    index, _, _ = select(Recv(never), Send(c, value))
                    if index != 1:
                        problems.append(("select-send fired the wrong case", index))
                        return
            except csp.ChannelClosed:
                return
            sent_ok.append(value)

        def receiver(kind):
            gate.recv()
            try:
                while True:
                    if kind == "recv":
                        value, ok = c.recv()
                    elif kind == "get":
                        try:
                            value, ok = c.get(timeout=30.0), True
                        except csp.ChannelClosed:
                            value, ok = None, False
                    else:
                        index, value, ok = select(Send(never_out, "x"), Recv(c))
                        if index != 1:
                            problems.append(("select-recv fired the wrong case", index))
                            return
                    if not ok:
                        return
                    got.append(value)
            except BaseException as exc:
                problems.append(("receiver", kind, exc))

        def closer():
            gate.recv()
            if rng_delay:
                time.sleep(rng_delay)
            c.close()

        rng_delay = rng.choice([0, 0, 0.0002, 0.001])
        threads = []
        for i, kind in enumerate(["send", "put", "select", "send"]):
            threads.append(csp.go(sender, kind, (r, i), name=f"test-race:{r}:s{i}:{kind}"))
        for i, kind in enumerate(["recv", "get", "select"]):
            threads.append(csp.go(receiver, kind, name=f"test-race:{r}:r{i}:{kind}"))
        threads.append(csp.go(closer, name=f"test-race:{r}:closer"))
        wait_blocked(gate, "recv", len(threads))
        gate.close()
        join_all(threads, 10.0)
        assert not problems, (r, problems)
        assert sorted(got) == sorted(sent_ok), (
            f"round {r}: sends that succeeded {sorted(sent_ok)} != values received {sorted(got)}")
        assert len(set(got)) == len(got), f"round {r}: a value was received twice: {got}"
        assert_no_entries(c, never, never_out)


def test_close_races_with_a_select_that_can_also_receive_elsewhere():
    """A select blocked on Send(a) and Recv(b); one thread closes a while another sends on b.
    Exactly one fires: either the select raises (and b's sender is still waiting), or it got
    b's value (and the close changed nothing for it). Never both."""
    for r in range(200):
        a, b = csp.Chan(), csp.Chan()
        gate = csp.Chan()
        sel_thread, sel = spawn(select, Send(a, "x"), Recv(b), name=f"test-race2:{r}:select")
        wait_blocked(a, "send")
        wait_blocked(b, "recv")

        def close_a():
            gate.recv()
            a.close()

        def send_b():
            gate.recv()
            b.send(("b", r))

        closer = csp.go(close_a, name=f"test-race2:{r}:closer")
        sb_thread, sb = spawn(send_b, name=f"test-race2:{r}:sender")
        wait_blocked(gate, "recv", 2)
        gate.close()
        finish(sel_thread, sel)
        join_all([closer])
        if sel.error is not None:
            assert isinstance(sel.error, csp.ChannelClosed), sel.error
            wait_blocked(b, "send")
            assert not sb.finished, f"round {r}: select raised but b's value was taken too"
            assert b.get_nowait() == ("b", r)
        else:
            assert sel.result == (1, ("b", r), True), sel.result
        finish(sb_thread, sb)
        assert sb.error is None
        assert_no_entries(a, b)


def test_close_while_blocked_many_rounds_every_waiter_wakes():
    """Waiters are all parked before the close: each wakes with the closed-channel outcome."""
    for r in range(60):
        rc, sc = csp.Chan(), filled(1, ["x"])
        never = csp.Chan()
        recvs = [spawn(rc.recv, name=f"test-wake:{r}:recv"),
                 spawn(select, Recv(never), Recv(rc), name=f"test-wake:{r}:sel-recv"),
                 spawn(rc.get, timeout=30.0, name=f"test-wake:{r}:get")]
        sends = [spawn(sc.send, 1, name=f"test-wake:{r}:send"),
                 spawn(select, Send(sc, 2), Recv(never), name=f"test-wake:{r}:sel-send"),
                 spawn(sc.put, 3, timeout=30.0, name=f"test-wake:{r}:put")]
        wait_blocked(rc, "recv", 3)
        wait_blocked(sc, "send", 3)
        closers = [csp.go(rc.close, name=f"test-wake:{r}:close-r"),
                   csp.go(sc.close, name=f"test-wake:{r}:close-s")]
        join_all(closers)
        results = [finish(*t).result for t in recvs[:2]]
        assert results == [(None, False), (1, None, False)], results
        assert isinstance(finish(*recvs[2]).error, csp.ChannelClosed)
        for t in sends:
            assert isinstance(finish(*t).error, csp.ChannelClosed), t[1].error
        assert_no_entries(rc, sc, never)
        assert sc.get_nowait() == "x"
