"""The pure send-window, backoff and receive-buffer rules (lsp/window.py, lsp/connection.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lsp import Params
from lsp.connection import Connection
from lsp.message import MsgType, data_message, new_ack, new_cack
from lsp.window import ReceiveBuffer, SendWindow


def seqs(sent):
    return [seq for seq, _ in sent]


def test_sends_go_out_at_once_while_the_window_and_the_cap_allow():
    window = SendWindow(1, window_size=3, max_unacked=3, max_backoff=0)
    assert seqs(window.write(b"a")) == [1]
    assert seqs(window.write(b"b")) == [2]
    assert seqs(window.write(b"c")) == [3]
    assert window.write(b"d") == []          # window full: 4 >= 1 + 3
    assert window.pending == 1 and window.in_flight == 3


def test_the_window_is_anchored_on_the_oldest_unacked_message():
    window = SendWindow(1, window_size=3, max_unacked=3, max_backoff=0)
    for payload in b"abcde":
        window.write(bytes([payload]))
    assert window.ack(3) == []               # acking a later one does not slide the window
    assert window.ack(2) == []
    assert seqs(window.ack(1)) == [4, 5]     # the left end moves: 4 and 5 now fit


def test_the_unacked_cap_limits_messages_in_flight_even_inside_the_window():
    window = SendWindow(1, window_size=10, max_unacked=2, max_backoff=0)
    sent = []
    for i in range(5):
        sent += seqs(window.write(bytes([i])))
    assert sent == [1, 2]
    assert seqs(window.ack(2)) == [3]
    assert seqs(window.ack(1)) == [4]


def test_a_cack_acknowledges_everything_up_to_its_number():
    window = SendWindow(1, window_size=4, max_unacked=4, max_backoff=0)
    for i in range(6):
        window.write(bytes([i]))
    assert seqs(window.cack(3)) == [5, 6]
    assert window.in_flight == 3             # 4, 5, 6


def test_unknown_and_duplicate_acks_change_nothing():
    window = SendWindow(1, window_size=1, max_unacked=1, max_backoff=0)
    window.write(b"a")
    window.write(b"b")
    assert window.ack(7) == [] and window.ack(0) == []
    assert seqs(window.ack(1)) == [2]
    assert window.ack(1) == []


def resend_epochs(max_backoff, epochs=21):
    window = SendWindow(1, window_size=1, max_unacked=1, max_backoff=max_backoff)
    window.write(b"x")
    return [epoch for epoch in range(1, epochs + 1) if window.epoch()]


def test_exponential_backoff_matches_the_handout():
    assert resend_epochs(1000) == [1, 3, 6, 11, 20]      # XXOXOOXOOOOXOOOOOOOOX
    assert resend_epochs(4) == [1, 3, 6, 11, 16, 21]
    assert resend_epochs(0) == list(range(1, 22))        # no backoff: every epoch


def test_backoff_is_per_message():
    window = SendWindow(1, window_size=2, max_unacked=2, max_backoff=1000)
    window.write(b"old")
    assert seqs(window.epoch()) == [1]                   # epoch 1
    window.write(b"new")                                 # sent during epoch 1
    assert seqs(window.epoch()) == [2]                   # epoch 2: only the new one is due
    assert seqs(window.epoch()) == [1]                   # epoch 3


@settings(max_examples=200)
@given(st.integers(1, 8), st.integers(1, 8), st.lists(st.integers(0, 30), max_size=60))
def test_window_invariants_hold_for_any_ack_order(window_size, max_unacked, acks):
    window = SendWindow(1, window_size, max_unacked, max_backoff=0)
    sent = []
    for i in range(20):
        sent += seqs(window.write(bytes([i])))
    for seq in acks:
        sent += seqs(window.ack(seq))
        in_flight = [s for s in window._in_flight]
        assert len(in_flight) <= max_unacked
        if in_flight:
            assert max(in_flight) < min(in_flight) + window_size
    assert sent == sorted(sent) and len(set(sent)) == len(sent)   # in order, never twice


def test_receive_buffer_delivers_in_order_exactly_once():
    buffer = ReceiveBuffer(5, horizon=10)
    assert buffer.on_data(7, b"c") == (True, [])
    assert buffer.on_data(6, b"b") == (True, [])
    assert buffer.on_data(5, b"a") == (True, [b"a", b"b", b"c"])
    assert buffer.on_data(6, b"b") == (True, [])         # duplicate: re-acked only
    assert buffer.on_data(100, b"far") == (False, [])    # past the horizon: ignored


@given(st.permutations(list(range(1, 16))), st.lists(st.integers(1, 15), max_size=15))
def test_receive_buffer_any_arrival_order(order, duplicates):
    buffer = ReceiveBuffer(1, horizon=64)
    delivered = []
    for seq in list(order) + duplicates:
        ack, ready = buffer.on_data(seq, str(seq).encode())
        assert ack
        delivered += ready
    assert delivered == [str(s).encode() for s in range(1, 16)]


def test_connection_heartbeat_and_loss():
    conn = Connection(3, 0, Params(epoch_limit=3, epoch_millis=10))
    assert conn.epoch() == [new_ack(3, 0)]               # nothing sent: heartbeat
    conn.write(b"x")
    out = conn.epoch()                                   # data went out: resend, no heartbeat
    assert [m.type for m in out] == [MsgType.DATA]
    assert not conn.lost
    conn.epoch()
    assert conn.lost                                     # three silent epochs


def test_connection_acks_valid_data_and_ignores_corrupt_data():
    conn = Connection(2, 10, Params())
    good = data_message(2, 11, b"hello")
    assert conn.receive(good) == ([new_ack(2, 11)], [b"hello"])
    corrupt = data_message(2, 12, b"world")
    corrupt = type(corrupt)(corrupt.type, 2, 12, 5, corrupt.checksum ^ 1, b"world")
    assert conn.receive(corrupt) == ([], [])


def test_connection_processes_cack():
    conn = Connection(1, 0, Params(window_size=5, max_unacked_messages=5))
    for i in range(5):
        conn.write(bytes([i]))
    conn.receive(new_cack(1, 5))
    assert conn.send.idle


def _receive_batch(conn, messages):
    out, ready = [], []
    for message in messages:
        sent, delivered = conn.receive(message, defer_ack=True)
        out += sent
        ready += delivered
    return out + conn.closing_acks(), ready


def test_a_batch_of_in_order_data_is_acked_by_one_cack_of_the_contiguous_prefix():
    conn = Connection(3, 0, Params(window_size=8, max_unacked_messages=8))
    out, ready = _receive_batch(conn, [data_message(3, s, b"%d" % s) for s in (1, 2, 3)])
    assert out == [new_cack(3, 3)]
    assert ready == [b"1", b"2", b"3"]
    # One in-order message alone gets its plain Ack; nothing owed afterwards.
    assert _receive_batch(conn, [data_message(3, 4, b"4")]) == ([new_ack(3, 4)], [b"4"])
    assert conn.closing_acks() == []


def test_data_with_a_gap_below_it_gets_a_plain_ack_never_a_cack():
    conn = Connection(3, 0, Params(window_size=8, max_unacked_messages=8))
    out, ready = _receive_batch(conn, [data_message(3, s, b"x") for s in (2, 3)])
    assert out == [new_ack(3, 2), new_ack(3, 3)] and ready == []
    # 1 fills the gap: one in order (its plain Ack), 2 and 3 released behind it.
    out, ready = _receive_batch(conn, [data_message(3, 1, b"x")])
    assert out == [new_ack(3, 1)] and len(ready) == 3
    # In order, a duplicate, in order: the duplicate is acked at once, the run by a CAck
    # covering everything received so far (1-6).
    out, _ = _receive_batch(conn, [data_message(3, s, b"x") for s in (4, 2, 5, 6)])
    assert out == [new_ack(3, 2), new_cack(3, 6)]


@settings(max_examples=200)
@given(st.lists(st.integers(1, 12), max_size=30), st.integers(1, 6))
def test_batched_acks_never_cack_a_message_not_received(arrivals, batch_size):
    """Whatever the arrival order and batching, a CAck n is sent only once 1..n have all
    arrived, and every arrived message is acknowledged (by its Ack or a CAck above it)."""
    conn = Connection(1, 0, Params(window_size=16, max_unacked_messages=16))
    arrived: set[int] = set()
    acked: set[int] = set()
    for start in range(0, len(arrivals), batch_size):
        batch = arrivals[start:start + batch_size]
        arrived.update(batch)
        out, _ = _receive_batch(conn, [data_message(1, s, b"p") for s in batch])
        for message in out:
            if message.type == MsgType.CACK:
                assert set(range(1, message.seq_num + 1)) <= arrived
                acked.update(range(1, message.seq_num + 1))
            else:
                assert message.type == MsgType.ACK and message.seq_num in arrived
                acked.add(message.seq_num)
        assert arrived <= acked
