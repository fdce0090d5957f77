"""Chan semantics (docs/architecture.md, "csp, briefly"): rendezvous, buffering, FIFO, close, iteration, and the
queue.Queue face of a channel. Every wait is bounded (see helpers)."""

from __future__ import annotations

import queue
import sys
import time

import pytest

import csp
from tests.csp.helpers import (
    call_within, finish, join_all, nothing_within, spawn, value_within, wait_blocked, waiting,
)

# How long a "still blocked" check watches: long enough that a thread which was wrongly
# released would have run on a loaded machine, short enough to keep the suite fast.
STILL_BLOCKED_SECONDS = 0.15


# ---- construction -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1, 1.5, "2", -10])
def test_invalid_size_raises_value_error(size):
    with pytest.raises(ValueError):
        csp.Chan(size)


@pytest.mark.parametrize("size, maxsize", [(0, 0), (3, 3), (None, None)])
def test_valid_sizes(size, maxsize):
    ch = csp.Chan(size)
    assert ch.maxsize == maxsize
    assert len(ch) == 0 and ch.qsize() == 0 and ch.empty()
    assert not ch.closed


def test_default_is_unbuffered():
    ch = csp.Chan()
    with pytest.raises(queue.Full):
        ch.put_nowait(1)  # nobody is receiving: an unbuffered send cannot complete
    assert len(ch) == 0


# ---- unbuffered rendezvous --------------------------------------------------------------------

def test_unbuffered_send_blocks_until_a_receiver_takes_the_value():
    ch = csp.Chan()
    sent = csp.Chan(1)

    def sender():
        ch.send("hello")
        sent.send("sent")

    thread = csp.go(sender, name="test-chan:rendezvous-sender")
    wait_blocked(ch, "send")
    # Before any receiver runs, the sender is parked in the send queue and has not returned.
    nothing_within(sent, STILL_BLOCKED_SECONDS, "no 'sent' before a receiver took the value")
    assert waiting(ch, "send") == 1
    assert len(ch) == 0, "an unbuffered channel must not buffer the value"
    assert call_within(ch.recv) == ("hello", True)
    assert value_within(sent, 5.0, "the sender to return after the receive") == "sent"
    join_all([thread])
    assert waiting(ch, "send") == 0 and waiting(ch, "recv") == 0


def test_unbuffered_receiver_first_then_sender():
    ch = csp.Chan()
    thread, outcome = spawn(ch.recv, name="test-chan:early-receiver")
    wait_blocked(ch, "recv")
    assert not outcome.finished
    call_within(ch.send, 42)
    finish(thread, outcome)
    assert outcome.error is None and outcome.result == (42, True)


def test_unbuffered_sender_stays_blocked_while_nobody_receives():
    ch = csp.Chan()
    thread, outcome = spawn(ch.send, "x", name="test-chan:lonely-sender")
    wait_blocked(ch, "send")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, "the send to stay blocked")
    assert call_within(ch.recv) == ("x", True)
    finish(thread, outcome)
    assert outcome.error is None


def test_unbuffered_many_messages_ping_pong():
    ch, back = csp.Chan(), csp.Chan()

    def echo():
        for v in ch:
            back.send(v * 2)

    def client():
        got = []
        for i in range(200):
            ch.send(i)
            got.append(back.recv())
        ch.close()
        return got

    thread = csp.go(echo, name="test-chan:echo")
    got = call_within(client, seconds=10.0, what="200 ping-pongs")
    join_all([thread])
    assert got == [(2 * i, True) for i in range(200)]


# ---- buffered and unbounded -------------------------------------------------------------------

@pytest.mark.parametrize("capacity", [1, 3, 8])
def test_buffered_n_sends_do_not_block_and_the_next_one_does(capacity):
    ch = csp.Chan(capacity)

    def fill():
        for i in range(capacity):
            ch.send(i)

    call_within(fill, what=f"{capacity} sends on Chan({capacity})")
    assert len(ch) == capacity and ch.qsize() == capacity and ch.full()

    thread, outcome = spawn(ch.send, "extra", name="test-chan:overflow-sender")
    wait_blocked(ch, "send")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, f"send number {capacity + 1} to block")
    assert len(ch) == capacity

    assert call_within(ch.recv) == (0, True)
    finish(thread, outcome, what="(the blocked send after one recv)")
    assert outcome.error is None
    assert len(ch) == capacity
    got = [call_within(ch.recv)[0] for _ in range(capacity)]
    assert got == list(range(1, capacity)) + ["extra"]
    assert len(ch) == 0 and ch.empty()


def test_unbounded_channel_never_blocks_a_sender():
    ch = csp.Chan(None)
    n = 20_000

    def fill():
        for i in range(n):
            ch.send(i)

    call_within(fill, seconds=10.0, what="20000 sends on Chan(None)")
    assert len(ch) == n and not ch.full()
    got = call_within(lambda: [ch.recv()[0] for _ in range(n)], seconds=10.0)
    assert got == list(range(n))


@pytest.mark.parametrize("size", [1, 5, None])
def test_buffered_fifo_order(size):
    ch = csp.Chan(size)
    n = 500

    def produce():
        for i in range(n):
            ch.send(i)
        ch.close()

    thread = csp.go(produce, name="test-chan:fifo-producer")
    got = call_within(lambda: list(ch), seconds=10.0, what="draining the channel")
    join_all([thread])
    assert got == list(range(n))


def test_blocked_senders_are_served_in_arrival_order():
    ch = csp.Chan()
    threads = []
    for i in range(5):
        threads.append(csp.go(ch.send, i, name=f"test-chan:queued-sender-{i}"))
        wait_blocked(ch, "send", i + 1)  # sender i is parked before sender i+1 starts
    got = [call_within(ch.recv)[0] for _ in range(5)]
    join_all(threads)
    assert got == [0, 1, 2, 3, 4]


def test_blocked_receivers_are_served_in_arrival_order():
    ch = csp.Chan()
    spawned = []
    for i in range(5):
        spawned.append(spawn(ch.recv, name=f"test-chan:queued-receiver-{i}"))
        wait_blocked(ch, "recv", i + 1)
    for i in range(5):
        call_within(ch.send, i)
    for i, (thread, outcome) in enumerate(spawned):
        finish(thread, outcome)
        assert outcome.result == (i, True), f"receiver {i} got {outcome.result!r}"


def test_buffered_full_channel_blocked_senders_enter_buffer_in_order():
    ch = csp.Chan(2)
    call_within(lambda: (ch.send("a"), ch.send("b")))
    threads = []
    for i in range(3):
        threads.append(csp.go(ch.send, f"w{i}", name=f"test-chan:full-sender-{i}"))
        wait_blocked(ch, "send", i + 1)
    got = [call_within(ch.recv)[0] for _ in range(5)]
    join_all(threads)
    assert got == ["a", "b", "w0", "w1", "w2"]
    assert len(ch) == 0 and waiting(ch, "send") == 0


# ---- recv -------------------------------------------------------------------------------------

def test_recv_returns_value_and_true():
    ch = csp.Chan(3)
    call_within(lambda: (ch.send("v"), ch.send(None), ch.send(0)))
    assert call_within(ch.recv) == ("v", True)
    assert call_within(ch.recv) == (None, True), "a sent None is a value, not a close"
    assert call_within(ch.recv) == (0, True)


# ---- close ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 2, None])
def test_recv_on_closed_drained_channel_gives_none_false_every_time(size):
    ch = csp.Chan(size)
    ch.close()
    assert ch.closed
    for _ in range(3):
        assert call_within(ch.recv) == (None, False)


@pytest.mark.parametrize("size", [3, None])
def test_buffered_values_are_still_readable_after_close(size):
    ch = csp.Chan(size)
    call_within(lambda: [ch.send(i) for i in range(3)])
    ch.close()
    assert len(ch) == 3
    assert [call_within(ch.recv) for _ in range(4)] == [(0, True), (1, True), (2, True),
                                                        (None, False)]


@pytest.mark.parametrize("size", [0, 1, None])
def test_send_on_closed_channel_raises(size):
    ch = csp.Chan(size)
    ch.close()
    with pytest.raises(csp.ChannelClosed):
        call_within(ch.send, 1)
    assert len(ch) == 0


def test_send_on_closed_channel_with_free_buffer_raises_and_does_not_buffer():
    ch = csp.Chan(5)
    call_within(ch.send, "kept")
    ch.close()
    with pytest.raises(csp.ChannelClosed):
        call_within(ch.send, "dropped")
    assert [call_within(ch.recv) for _ in range(2)] == [("kept", True), (None, False)]


def test_close_twice_raises():
    ch = csp.Chan()
    ch.close()
    with pytest.raises(csp.ChannelClosed):
        ch.close()
    assert ch.closed


def test_close_wakes_every_blocked_receiver():
    ch = csp.Chan()
    spawned = [spawn(ch.recv, name=f"test-chan:closed-receiver-{i}") for i in range(6)]
    wait_blocked(ch, "recv", 6)
    ch.close()
    for thread, outcome in spawned:
        finish(thread, outcome, what="(receiver woken by close)")
        assert outcome.error is None and outcome.result == (None, False)
    assert waiting(ch, "recv") == 0


@pytest.mark.parametrize("size", [0, 2])
def test_close_wakes_every_blocked_sender_with_channel_closed(size):
    ch = csp.Chan(size)
    call_within(lambda: [ch.send(f"buffered{i}") for i in range(size)])
    spawned = [spawn(ch.send, i, name=f"test-chan:closed-sender-{i}") for i in range(6)]
    wait_blocked(ch, "send", 6)
    ch.close()
    for thread, outcome in spawned:
        finish(thread, outcome, what="(sender woken by close)")
        assert isinstance(outcome.error, csp.ChannelClosed), outcome.error
    assert waiting(ch, "send") == 0
    # What was buffered before the close is still there; what the senders held is not.
    got = [call_within(ch.recv) for _ in range(size + 1)]
    assert got == [(f"buffered{i}", True) for i in range(size)] + [(None, False)]


def test_close_wakes_receivers_on_one_channel_and_senders_on_another_at_once():
    rc, sc = csp.Chan(), csp.Chan()
    receivers = [spawn(rc.recv, name=f"test-chan:r{i}") for i in range(4)]
    senders = [spawn(sc.send, i, name=f"test-chan:s{i}") for i in range(4)]
    wait_blocked(rc, "recv", 4)
    wait_blocked(sc, "send", 4)
    rc.close()
    sc.close()
    for thread, outcome in receivers:
        finish(thread, outcome)
        assert outcome.result == (None, False)
    for thread, outcome in senders:
        finish(thread, outcome)
        assert isinstance(outcome.error, csp.ChannelClosed)


# ---- iteration ----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 10, None])
def test_iteration_ends_at_close(size):
    ch = csp.Chan(size)

    def produce():
        for i in range(100):
            ch.send(i)
        ch.close()

    thread = csp.go(produce, name="test-chan:iter-producer")
    got = call_within(lambda: [v for v in ch], seconds=10.0, what="for v in ch")
    join_all([thread])
    assert got == list(range(100))


def test_iteration_blocks_until_close():
    ch = csp.Chan()
    thread, outcome = spawn(lambda: list(ch), name="test-chan:iterator")
    call_within(ch.send, "a")
    wait_blocked(ch, "recv")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, "iteration to continue while open")
    ch.close()
    finish(thread, outcome)
    assert outcome.result == ["a"]


# ---- len / qsize ------------------------------------------------------------------------------

def test_len_and_qsize_count_buffered_values():
    ch = csp.Chan(4)
    for i in range(4):
        assert len(ch) == ch.qsize() == i
        call_within(ch.send, i)
    assert len(ch) == ch.qsize() == 4 and ch.full() and not ch.empty()
    call_within(ch.recv)
    assert len(ch) == ch.qsize() == 3 and not ch.full()


def test_len_of_unbuffered_is_zero_even_with_a_blocked_sender():
    ch = csp.Chan()
    thread = csp.go(ch.send, 1, name="test-chan:len-sender")
    wait_blocked(ch, "send")
    assert len(ch) == 0 and ch.qsize() == 0
    assert call_within(ch.recv) == (1, True)
    join_all([thread])


# ---- queue.Queue compatibility ------------------------------------------------------------

def test_is_a_queue():
    assert isinstance(csp.Chan(), queue.Queue)
    assert isinstance(csp.Chan(None), queue.Queue)


def test_put_and_get_behave_as_send_and_recv():
    ch = csp.Chan(2)
    call_within(ch.put, "a")
    call_within(ch.put, "b", True, 1.0)
    assert ch.full()
    assert call_within(ch.get) == "a"
    assert call_within(ch.get, timeout=1.0) == "b"


def test_put_nowait_and_get_nowait():
    ch = csp.Chan(1)
    with pytest.raises(queue.Empty):
        ch.get_nowait()
    ch.put_nowait(1)
    with pytest.raises(queue.Full):
        ch.put_nowait(2)
    assert ch.get_nowait() == 1
    with pytest.raises(queue.Empty):
        ch.get(block=False)
    assert waiting(ch, "send") == 0 and waiting(ch, "recv") == 0


def test_put_nowait_on_unbuffered_completes_with_a_waiting_receiver():
    ch = csp.Chan()
    thread, outcome = spawn(ch.get, name="test-chan:get-waiter")
    wait_blocked(ch, "recv")
    ch.put_nowait("direct")
    finish(thread, outcome)
    assert outcome.result == "direct"


def test_get_nowait_on_unbuffered_takes_from_a_waiting_sender():
    ch = csp.Chan()
    thread, outcome = spawn(ch.put, "handed", name="test-chan:put-waiter")
    wait_blocked(ch, "send")
    assert ch.get_nowait() == "handed"
    finish(thread, outcome)
    assert outcome.error is None


def test_unbuffered_put_is_a_rendezvous():
    ch = csp.Chan()
    thread, outcome = spawn(ch.put, "p", name="test-chan:put-rendezvous")
    wait_blocked(ch, "send")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, "put to wait for a receiver")
    assert call_within(ch.get) == "p"
    finish(thread, outcome)


@pytest.mark.parametrize("size", [0, 1])
def test_put_timeout_raises_full_after_the_timeout(size):
    ch = csp.Chan(size)
    call_within(lambda: [ch.put(i) for i in range(size)])
    start = time.monotonic()
    with pytest.raises(queue.Full):
        call_within(ch.put, "late", timeout=0.1)
    elapsed = time.monotonic() - start
    assert elapsed >= 0.09, f"put(timeout=0.1) gave up after {elapsed:.3f}s"
    assert waiting(ch, "send") == 0 and len(ch._sendq) == 0


def test_get_timeout_raises_empty_after_the_timeout():
    ch = csp.Chan(1)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        call_within(ch.get, timeout=0.1)
    elapsed = time.monotonic() - start
    assert elapsed >= 0.09, f"get(timeout=0.1) gave up after {elapsed:.3f}s"
    assert len(ch._recvq) == 0


def test_get_with_timeout_receives_a_value_arriving_in_time():
    ch = csp.Chan()
    thread, outcome = spawn(ch.get, timeout=5.0, name="test-chan:timed-get")
    wait_blocked(ch, "recv")
    call_within(ch.send, "in time")
    finish(thread, outcome)
    assert outcome.error is None and outcome.result == "in time"


def test_put_with_timeout_completes_when_a_receiver_arrives_in_time():
    ch = csp.Chan()
    thread, outcome = spawn(ch.put, "in time", timeout=5.0, name="test-chan:timed-put")
    wait_blocked(ch, "send")
    assert call_within(ch.recv) == ("in time", True)
    finish(thread, outcome)
    assert outcome.error is None


def test_timed_out_put_does_not_deliver_its_value_later():
    ch = csp.Chan()
    with pytest.raises(queue.Full):
        call_within(ch.put, "ghost", timeout=0.02)
    thread, outcome = spawn(ch.recv, name="test-chan:ghost-receiver")
    wait_blocked(ch, "recv")
    nothing_within(outcome.done, STILL_BLOCKED_SECONDS, "no value from a put that timed out")
    ch.close()
    finish(thread, outcome)
    assert outcome.result == (None, False)


@pytest.mark.parametrize("size", [0, 2])
def test_timeouts_leave_no_entries_in_the_wait_queues(size):
    ch = csp.Chan(size)
    call_within(lambda: [ch.put(i) for i in range(size)])

    def many_timeouts():
        for _ in range(50):
            with pytest.raises(queue.Full):
                ch.put("x", timeout=0.001)
            with pytest.raises(queue.Full):
                ch.put("x", True, 0)
        return len(ch._sendq)

    assert call_within(many_timeouts, seconds=10.0) == 0
    empty = csp.Chan(size)

    def many_get_timeouts():
        for _ in range(50):
            with pytest.raises(queue.Empty):
                empty.get(timeout=0.001)
            with pytest.raises(queue.Empty):
                empty.get(True, 0)
        return len(empty._recvq)

    assert call_within(many_get_timeouts, seconds=10.0) == 0


def test_get_on_closed_drained_channel_raises_channel_closed():
    ch = csp.Chan(2)
    call_within(ch.put, "last")
    ch.close()
    assert call_within(ch.get) == "last"
    with pytest.raises(csp.ChannelClosed):
        call_within(ch.get)
    with pytest.raises(csp.ChannelClosed):
        ch.get_nowait()
    with pytest.raises(csp.ChannelClosed):
        call_within(ch.get, timeout=0.5)


def test_blocked_get_is_woken_by_close_with_channel_closed():
    ch = csp.Chan()
    plain = spawn(ch.get, name="test-chan:blocked-get")
    timed = spawn(ch.get, timeout=30.0, name="test-chan:blocked-timed-get")
    wait_blocked(ch, "recv", 2)
    ch.close()
    for thread, outcome in (plain, timed):
        finish(thread, outcome)
        assert isinstance(outcome.error, csp.ChannelClosed), outcome.error


def test_put_on_closed_channel_raises_channel_closed():
    ch = csp.Chan(3)
    ch.close()
    with pytest.raises(csp.ChannelClosed):
        call_within(ch.put, 1)
    with pytest.raises(csp.ChannelClosed):
        ch.put_nowait(1)
    with pytest.raises(csp.ChannelClosed):
        call_within(ch.put, 1, timeout=0.5)


def test_blocked_put_is_woken_by_close_with_channel_closed():
    ch = csp.Chan()
    plain = spawn(ch.put, 1, name="test-chan:blocked-put")
    timed = spawn(ch.put, 2, timeout=30.0, name="test-chan:blocked-timed-put")
    wait_blocked(ch, "send", 2)
    ch.close()
    for thread, outcome in (plain, timed):
        finish(thread, outcome)
        assert isinstance(outcome.error, csp.ChannelClosed), outcome.error


def test_task_done_and_join_are_not_supported():
    ch = csp.Chan(1)
    with pytest.raises(NotImplementedError):
        ch.task_done()
    with pytest.raises(NotImplementedError):
        ch.join()


@pytest.fixture
def fast_thread_switching():
    """Switch threads every microsecond so that races between a timeout and a peer, which
    CPython's default 5 ms switch interval almost never shows, happen often."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.parametrize("timeout", [0, 1e-5, 1e-4])
def test_timed_put_racing_a_receiver_reports_exactly_what_was_delivered(
        timeout, fast_thread_switching):
    """A put whose timeout expires just as a receiver arrives must either complete (the value
    is delivered, once) or raise Full (the value is never delivered)."""
    ch = csp.Chan()
    # How often a put beats its timeout depends on the machine's load, not on the channel:
    # keep racing until enough puts went through (or the attempts run out), so the race is
    # exercised as much on a loaded machine as on an idle one.
    wanted_deliveries = 500
    max_attempts = 50_000
    delivered_ok: list[int] = []
    received: list[int] = []

    def producer():
        for i in range(max_attempts):
            if timeout > 0 and len(delivered_ok) >= wanted_deliveries:
                break
            if timeout == 0 and i >= 1000:
                break
            try:
                ch.put(i, timeout=timeout)
            except queue.Full:
                continue
            delivered_ok.append(i)
        ch.close()

    def consumer():
        for v in ch:
            received.append(v)

    threads = [csp.go(producer, name="test-chan:timed-put-producer"),
               csp.go(consumer, name="test-chan:plain-consumer")]
    join_all(threads, 30.0)
    assert received == delivered_ok, (
        f"put reported success for {len(delivered_ok)} values, the receiver got "
        f"{len(received)}; received although put raised Full: "
        f"{sorted(set(received) - set(delivered_ok))[:10]}, reported but never received: "
        f"{sorted(set(delivered_ok) - set(received))[:10]}")
    if timeout > 0:
        assert len(received) >= wanted_deliveries, (
            f"the race was hardly exercised: {len(received)} puts went through in "
            f"{max_attempts} attempts")
    assert len(ch._sendq) == 0 and len(ch._recvq) == 0


@pytest.mark.parametrize("timeout", [0, 1e-5, 1e-4])
def test_timed_get_racing_a_sender_never_loses_a_value(timeout, fast_thread_switching):
    """A get whose timeout expires just as a sender arrives must either return the value or
    raise Empty without having taken it: every completed send is received exactly once."""
    ch = csp.Chan()
    producer_done = csp.Chan()
    rounds = 1000
    received: list[int] = []

    def producer():
        for i in range(rounds):
            ch.send(i)
        producer_done.close()

    def consumer():
        # Once the producer is done, each of its (unbuffered) sends has been taken by a get.
        while not producer_done.closed:
            try:
                received.append(ch.get(timeout=timeout))
            except queue.Empty:
                pass

    threads = [csp.go(producer, name="test-chan:plain-producer"),
               csp.go(consumer, name="test-chan:timed-get-consumer")]
    join_all(threads, 30.0)
    assert received == list(range(rounds)), (
        f"{rounds} sends completed but the gets returned {len(received)} values; missing: "
        f"{sorted(set(range(rounds)) - set(received))[:10]}")
    assert len(ch._sendq) == 0 and len(ch._recvq) == 0


def test_timed_put_and_get_race_each_other(fast_thread_switching):
    """Both sides time out: what put reports as delivered is exactly what get returned."""
    ch = csp.Chan()
    rounds = 1000
    delivered_ok: list[int] = []
    received: list[int] = []

    def producer():
        for i in range(rounds):
            try:
                ch.put(i, timeout=0.0002)
            except queue.Full:
                continue
            delivered_ok.append(i)

    def consumer():
        while True:
            try:
                received.append(ch.get(timeout=0.0002))
            except queue.Empty:
                continue
            except csp.ChannelClosed:
                return

    threads = [csp.go(producer, name="test-chan:race-producer"),
               csp.go(consumer, name="test-chan:race-consumer")]
    threads[0].join(30.0)
    assert not threads[0].is_alive(), "producer did not finish"
    ch.close()
    join_all(threads)
    assert received == delivered_ok, (
        f"put reported success for {len(delivered_ok)} values, get returned {len(received)}; "
        f"only put: {sorted(set(delivered_ok) - set(received))[:10]}, "
        f"only get: {sorted(set(received) - set(delivered_ok))[:10]}")
    assert len(ch._sendq) == 0 and len(ch._recvq) == 0


def test_an_empty_channel_is_still_truthy():
    # len() counts buffered values, but `if ch:` / `ch or default` must not mean "non-empty".
    ch = csp.Chan(3)
    assert len(ch) == 0
    assert bool(ch) is True
    assert (ch or None) is ch
