"""How the server delivers replies: straight onto the socket while the client's writer is idle,
through the outgoing queue once the socket refuses, and back to direct writes when the writer
has drained the queue (kv/server.py's docstring)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from csp import tcp
from kv import KeyValueServer, KVStore
from kv import server as kv_server
from tests.kv.kvclient import close_server_within

WAIT_SECONDS = 20.0


@pytest.fixture
def held_writers(monkeypatch):
    """Every client writer of the servers started in the test waits for `release` before it
    takes anything from its queue: a writer that the machine has not scheduled yet."""
    release = threading.Event()
    real = tcp.write_batches

    def held(*args, **kwargs):
        release.wait(WAIT_SECONDS)
        return real(*args, **kwargs)

    monkeypatch.setattr(kv_server.tcp, "write_batches", held)
    yield release
    release.set()


def read_lines(sock: socket.socket, count: int) -> list[bytes]:
    sock.settimeout(WAIT_SECONDS)
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n")[:count]


def test_a_batch_of_gets_larger_than_the_queue_reaches_a_reading_client_while_the_writer_waits(
        held_writers):
    """1,000 replies to one batch: twice the queue, so a writer-only server that has not yet
    run its writer drops half of them. The socket takes them all at once."""
    store = KVStore()
    server = KeyValueServer(store)
    server.start(0)
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        count = 2 * kv_server.OUTGOING_QUEUE_MESSAGES
        client.sendall(b"Put:k:v\n" + b"Get:k\n" * count)
        assert read_lines(client, count) == [b"k:v"] * count
    finally:
        client.close()
        held_writers.set()
        close_server_within(server)


def test_what_the_socket_refuses_is_queued_whole_and_arrives_in_order_after_the_writer_runs(
        held_writers):
    """A client that does not read while 20 MB of replies are due: the direct send fills the
    socket's buffers (cutting a line), the rest goes to the queue until it is full, then
    replies are dropped. Once the writer runs and the client reads, every line that arrives is
    whole: the cut line is completed from the queue, never lost or mixed."""
    store = KVStore()
    server = KeyValueServer(store)
    server.start(0)
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        value = b"v" * 1000
        gets = 20_000
        client.sendall(b"Put:k:" + value + b"\n" + b"Get:k\n" * gets + b"Put:done:yes\n")
        # The loop has served every Get once it has stored "done" (a peek at the store from
        # the test thread: a dict lookup, safe under the GIL).
        deadline = time.monotonic() + WAIT_SECONDS
        while not store.get("done"):
            assert time.monotonic() < deadline, "the server did not serve the batch in time"
            time.sleep(0.01)
        held_writers.set()
        data = b""
        while True:
            try:
                client.settimeout(2.0 if data else WAIT_SECONDS)
                chunk = client.recv(1 << 20)
            except socket.timeout:
                break   # nothing more for two seconds: the queue has been sent
            if not chunk:
                break
            data += chunk
        lines = data.split(b"\n")
        assert lines[-1] == b"", "the stream ends in the middle of a line"
        lines = lines[:-1]
        assert set(lines) == {b"k:" + value}, "a line arrived cut or mixed"
        assert kv_server.OUTGOING_QUEUE_MESSAGES < len(lines) < gets, (
            f"{len(lines)} lines: expected the socket's share, a full queue, and drops")
    finally:
        client.close()
        close_server_within(server)


def test_a_client_reading_each_round_gets_every_reply_in_order_round_after_round(held_writers):
    store = KVStore()
    server = KeyValueServer(store)
    server.start(0)
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        held_writers.set()
        for round_number in range(50):
            client.sendall(b"Put:k%d:%d\n" % (round_number, round_number)
                           + b"Get:k%d\n" % round_number * 20)
            assert read_lines(client, 20) == [b"k%d:%d" % (round_number, round_number)] * 20
    finally:
        client.close()
        close_server_within(server)
