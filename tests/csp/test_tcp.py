"""csp.tcp, the TCP plumbing the socket endpoints share: the accept loop, closing a listener,
shutting a socket down, and the batching writer (real loopback sockets, and a recording fake
socket for the batching rules, with hypothesis)."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import csp
from csp import tcp
from tests.csp.helpers import finish, nothing_within, spawn, value_within, wait_blocked

WAIT = 10.0


@pytest.fixture
def listener():
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def connect(listener: socket.socket) -> socket.socket:
    return socket.create_connection(listener.getsockname(), timeout=WAIT)


def read_all(sock: socket.socket) -> bytes:
    """Everything `sock` receives until the peer's end of stream."""
    sock.settimeout(WAIT)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# ---- accept_loop and close_listener -----------------------------------------------------------


def test_accept_loop_hands_each_connection_over_in_order(listener):
    connections, loop_done = csp.Chan(), csp.Chan()
    accept = csp.go(tcp.accept_loop, listener, connections, loop_done, name="test/accept")
    clients, accepted = [], []
    try:
        for _ in range(3):
            clients.append(connect(listener))
            accepted.append(value_within(connections, WAIT, "an accepted socket"))
        for client, sock in zip(clients, accepted):
            assert sock.getpeername() == client.getsockname()
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        tcp.close_listener(listener, accept)
        for sock in clients + accepted:
            sock.close()
    assert not accept.is_alive()


def test_close_listener_wakes_the_accept_thread_and_closes_the_socket(listener):
    connections, loop_done = csp.Chan(), csp.Chan()
    accept = csp.go(tcp.accept_loop, listener, connections, loop_done, name="test/accept")
    thread, outcome = spawn(tcp.close_listener, listener, accept, name="test/close-listener")
    finish(thread, outcome, WAIT, "close_listener with a thread blocked in accept()")
    assert outcome.error is None
    assert not accept.is_alive()
    assert listener.fileno() == -1, "the listener was not closed"
    nothing_within(connections, 0.05, "no socket after the listener closed")


def test_close_listener_without_a_thread_and_twice_never_raises(listener):
    tcp.close_listener(listener, None)
    assert listener.fileno() == -1
    tcp.close_listener(listener, None)


def test_accept_loop_closes_the_socket_in_hand_once_the_loop_is_done(listener):
    """`loop_done` closed: nobody takes sockets any more, so the accepted one is closed (the
    client sees the end of stream) and the accept thread ends without a close_listener."""
    connections, loop_done = csp.Chan(), csp.Chan()
    accept = csp.go(tcp.accept_loop, listener, connections, loop_done, name="test/accept")
    loop_done.close()
    client = connect(listener)
    try:
        assert read_all(client) == b""
        accept.join(WAIT)
        assert not accept.is_alive()
        assert len(connections) == 0
    finally:
        client.close()


# ---- shutdown ---------------------------------------------------------------------------------


def test_shutdown_wakes_a_thread_blocked_in_recv():
    left, right = socket.socketpair()
    try:
        thread, outcome = spawn(left.recv, 100, name="test/recv")
        tcp.shutdown(left)
        finish(thread, outcome, WAIT, "recv() after shutdown")
        assert outcome.result == b""
        assert read_all(right) == b"", "the peer did not see the end of stream"
    finally:
        left.close()
        right.close()


def test_shutdown_never_raises():
    unconnected = socket.socket()
    tcp.shutdown(unconnected)   # not connected: ENOTCONN
    unconnected.close()
    tcp.shutdown(unconnected)   # closed: EBADF


# ---- write_batches on a real socket -----------------------------------------------------------


def test_write_batches_sends_everything_then_returns_true_at_close():
    left, right = socket.socketpair()
    outgoing = csp.Chan(None)
    messages = [b"one ", (b"two", b" ", b"three "), bytearray(b"four"), (b"",), b""]
    for message in messages:
        outgoing.send(message)
    outgoing.close()
    try:
        assert tcp.write_batches(left, outgoing, 4) is True
        left.shutdown(socket.SHUT_WR)
        assert read_all(right) == b"one two three four"
    finally:
        left.close()
        right.close()


def test_write_batches_waits_for_messages_until_the_channel_closes():
    left, right = socket.socketpair()
    outgoing = csp.Chan(None)
    thread, outcome = spawn(tcp.write_batches, left, outgoing, 1024, name="test/writer")
    try:
        wait_blocked(outgoing, "recv")
        outgoing.send(b"hello")
        right.settimeout(WAIT)
        assert right.recv(100) == b"hello"
        outgoing.send(b" again")
        assert right.recv(100) == b" again"
        outgoing.close()
        finish(thread, outcome, WAIT, "write_batches after close")
        assert outcome.result is True
    finally:
        left.close()
        right.close()


def test_write_batches_returns_false_when_the_socket_is_shut_down_and_keeps_the_rest():
    left, right = socket.socketpair()
    tcp.shutdown(left)
    outgoing = csp.Chan(None)
    for message in (b"lost", b"still queued"):
        outgoing.send(message)
    try:
        assert tcp.write_batches(left, outgoing, 1) is False
        assert outgoing.recv() == (b"still queued", True)
    finally:
        left.close()
        right.close()


# ---- write_batches: the batching rules --------------------------------------------------------


class RecordingSocket:
    """Enough of a socket for write_batches: records each sendall."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data) -> None:
        self.sends.append(bytes(data))


def size_of(message) -> int:
    return sum(map(len, message)) if type(message) is tuple else len(message)


def test_write_batches_joins_what_is_queued_up_to_the_limit():
    sock = RecordingSocket()
    outgoing = csp.Chan(None)
    for _ in range(10):
        outgoing.send(b"x" * 30)
    outgoing.close()
    assert tcp.write_batches(sock, outgoing, 100) is True
    # A batch closes at the first message that reaches the limit: 4 x 30 >= 100.
    assert [len(data) for data in sock.sends] == [120, 120, 60]


messages_strategy = st.lists(
    st.one_of(st.binary(max_size=40),
              st.lists(st.binary(max_size=20), min_size=1, max_size=4).map(tuple)),
    max_size=40)


@settings(max_examples=300, deadline=None)
@given(messages_strategy, st.integers(1, 200))
def test_property_batches_keep_every_byte_in_order_within_the_limit(messages, limit):
    """With everything queued up front: the bytes sent are the messages back to back; each
    sendall carries whole messages and stops at the first one reaching `limit`, so every batch
    but the last reaches it and none passes it by more than its last message."""
    sock = RecordingSocket()
    outgoing = csp.Chan(None)
    for message in messages:
        outgoing.send(message)
    outgoing.close()
    assert tcp.write_batches(sock, outgoing, limit) is True
    assert b"".join(sock.sends) == b"".join(
        b"".join(m) if type(m) is tuple else m for m in messages)
    # Re-split the messages the way the batches must have cut them.
    sizes = [size_of(m) for m in messages]
    expected, current, count = [], 0, 0
    for size in sizes:
        current += size
        count += 1
        if current >= limit:
            expected.append(current)
            current, count = 0, 0
    if count:
        expected.append(current)
    assert [len(data) for data in sock.sends] == expected


def test_on_drained_counts_messages_and_is_called_only_when_nothing_is_queued():
    sock = RecordingSocket()
    outgoing = csp.Chan(None)
    reports = []
    for _ in range(5):
        outgoing.send(b"x" * 30)
    outgoing.close()
    assert tcp.write_batches(sock, outgoing, 100, on_drained=reports.append) is True
    # Batches of 4 then 1 message: only the last left the queue empty.
    assert [len(data) for data in sock.sends] == [120, 30]
    assert reports == [5]


def test_on_drained_reports_each_time_the_writer_catches_up():
    left, right = socket.socketpair()
    outgoing = csp.Chan(None)
    reports = csp.Chan(None)
    thread, outcome = spawn(tcp.write_batches, left, outgoing, 1024, reports.send,
                            name="test/writer")
    try:
        outgoing.send(b"a")
        assert reports.recv() == (1, True)
        outgoing.send((b"b", b"c"))   # one message of two pieces
        assert reports.recv() == (2, True)
        outgoing.close()
        finish(thread, outcome, WAIT, "write_batches after close")
        right.settimeout(WAIT)
        assert right.recv(10) == b"abc"
    finally:
        left.close()
        right.close()
