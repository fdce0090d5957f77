"""Live endpoints on 127.0.0.1: garbage never crashes them, a silent peer is detected in time,
duplicate Connects make no second connection, a client restarted on the same port connects
again after its connection was lost or closed, and the stronger delivery target under loss."""

from __future__ import annotations

import json
import random
import socket
import time

import pytest

import csp
import lsp
from lsp import lspnet
from lsp.message import MsgType, data_message, decode, encode, new_ack, new_connect
from tests.waiting import wait_until

FAST = lsp.Params(epoch_limit=5, epoch_millis=100, window_size=4, max_unacked_messages=4)


def recv_within(ch, seconds, what):
    index, value, ok = csp.select(csp.Recv(ch), csp.Recv(csp.after(seconds)))
    assert index == 0, f"{what}: nothing within {seconds} s"
    return value


def in_thread(fn, *args):
    """Run fn on a thread; returns a Chan(1) with ('ok', result) or ('error', exception)."""
    result = csp.Chan(1)

    def run():
        try:
            result.send(("ok", fn(*args)))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            result.send(("error", exc))
    csp.go(run, name="test/call")
    return result


def raw_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def garbage(rng: random.Random) -> list[bytes]:
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(30)]
    junk += [json.dumps(v).encode() for v in (
        None, 1, "x", [], {}, {"Type": "Data"}, {"Type": 1, "ConnID": 1, "SeqNum": "a"},
        {"Type": 7}, {"Type": 1, "ConnID": 1, "SeqNum": 1, "Size": 99, "Payload": "!!"},
        {"Type": 1, "ConnID": 1, "SeqNum": 10**30}, {"Type": 2, "ConnID": -5, "SeqNum": -1},
        {"Type": 3, "ConnID": 1, "SeqNum": 10**12})]
    junk.append(b"x" * 1999)
    return junk


def test_garbage_at_a_live_server_and_client_changes_nothing():
    rng = random.Random(1234)
    server = lsp.new_server(0, FAST)
    client = lsp.new_client(f"127.0.0.1:{server.port}", 0, FAST)
    attacker = raw_socket()
    try:
        for datagram in garbage(rng):
            attacker.sendto(datagram, ("127.0.0.1", server.port))
            attacker.sendto(datagram, ("127.0.0.1", client._sock.local_port))
        for i in range(20):
            client.write(str(i).encode())
            assert recv_within(in_thread(server.read), 5, "server read") == \
                ("ok", (client.conn_id(), str(i).encode()))
            server.write(client.conn_id(), str(i).encode())
            assert recv_within(in_thread(client.read), 5, "client read") == \
                ("ok", str(i).encode())
    finally:
        attacker.close()
        client.close()
        server.close()


def test_a_silent_client_is_reported_lost_within_epoch_limit_plus_one_epochs():
    server = lsp.new_server(0, FAST)
    peer = raw_socket()
    try:
        peer.sendto(encode(new_connect(3)), ("127.0.0.1", server.port))
        ack = decode(peer.recv(2000))
        assert (ack.type, ack.seq_num) == (MsgType.ACK, 3)
        peer.sendto(encode(data_message(ack.conn_id, 4, b"hi")), ("127.0.0.1", server.port))
        started = time.monotonic()
        assert recv_within(in_thread(server.read), 5, "data") == ("ok", (ack.conn_id, b"hi"))
        kind, error = recv_within(in_thread(server.read), 5, "loss")
        elapsed = time.monotonic() - started
        assert kind == "error" and isinstance(error, lsp.ConnectionLost)
        assert error.conn_id == ack.conn_id
        limit = (FAST.epoch_limit + 1) * FAST.epoch_seconds
        assert elapsed <= limit + 0.25, f"loss reported after {elapsed:.2f} s (limit {limit} s)"
    finally:
        peer.close()
        server.close()


def test_a_silent_server_is_reported_to_the_client():
    fake = raw_socket()
    port = fake.getsockname()[1]
    connecting = in_thread(lsp.new_client, f"127.0.0.1:{port}", 9, FAST)
    connect, addr = fake.recvfrom(2000)
    assert decode(connect) == new_connect(9)
    fake.sendto(encode(new_ack(5, 9)), addr)
    kind, client = recv_within(connecting, 5, "connect")
    assert kind == "ok" and client.conn_id() == 5
    try:
        started = time.monotonic()
        kind, error = recv_within(in_thread(client.read), 5, "loss")
        elapsed = time.monotonic() - started
        assert kind == "error" and isinstance(error, lsp.ConnectionLost)
        assert elapsed <= (FAST.epoch_limit + 1) * FAST.epoch_seconds + 0.25
        with pytest.raises(lsp.ConnectionLost):
            client.write(b"late")
    finally:
        fake.close()
        client.close()


def test_connecting_to_nobody_fails_after_epoch_limit_epochs():
    nobody = raw_socket()
    port = nobody.getsockname()[1]
    nobody.close()
    started = time.monotonic()
    with pytest.raises(lsp.LSPError):
        lsp.new_client(f"127.0.0.1:{port}", 0, FAST)
    assert time.monotonic() - started < (FAST.epoch_limit + 2) * FAST.epoch_seconds


def test_a_duplicate_connect_is_acked_again_and_makes_no_second_connection():
    server = lsp.new_server(0, FAST)
    peer = raw_socket()
    try:
        for _ in range(3):
            peer.sendto(encode(new_connect(0)), ("127.0.0.1", server.port))
        ids = set()
        while len(ids) < 1 or True:
            message = decode(peer.recv(2000))
            if message.type == MsgType.ACK and message.seq_num == 0 and message.conn_id in ids:
                break  # a heartbeat: all three Connects were answered by now
            ids.add(message.conn_id)
        assert ids == {1}
    finally:
        peer.close()
        server.close()


def free_udp_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def exchange(server, client, text):
    """One payload each way between `client` and the server; returns the server's conn id."""
    client.write(text)
    kind, got = recv_within(in_thread(server.read), 5, f"server read of {text!r}")
    assert kind == "ok" and got == (client.conn_id(), text), got
    server.write(client.conn_id(), text)
    assert recv_within(in_thread(client.read), 5, "client read") == ("ok", text)
    return client.conn_id()


def test_a_client_restarted_on_the_same_port_after_its_loss_gets_a_new_connection():
    server = lsp.new_server(0, FAST)
    port = free_udp_port()
    hostport = f"127.0.0.1:{server.port}"
    try:
        first = lsp.new_client(hostport, 5, FAST, local_port=port)
        first_id = exchange(server, first, b"first life")
        first.close()   # the client stops: the server notices its silence
        kind, error = recv_within(in_thread(server.read), 5, "loss of the first client")
        assert kind == "error" and isinstance(error, lsp.ConnectionLost)
        assert error.conn_id == first_id
        again = lsp.new_client(hostport, 5, FAST, local_port=port)   # same port, same isn
        try:
            assert again.conn_id() != first_id
            exchange(server, again, b"second life")
            with pytest.raises(lsp.ConnectionLost):
                server.write(first_id, b"to the dead one")
        finally:
            again.close()
    finally:
        server.close()


def test_a_client_restarted_on_the_same_port_after_close_conn_gets_a_new_connection():
    server = lsp.new_server(0, FAST)
    port = free_udp_port()
    hostport = f"127.0.0.1:{server.port}"
    try:
        first = lsp.new_client(hostport, 0, FAST, local_port=port)
        first_id = exchange(server, first, b"hello")
        server.write(first_id, b"goodbye")
        server.close_conn(first_id)
        assert recv_within(in_thread(first.read), 5, "the last write") == ("ok", b"goodbye")
        first.close()
        again = lsp.new_client(hostport, 0, FAST, local_port=port)
        try:
            assert again.conn_id() != first_id
            # The next thing read() returns is the new client's data: no loss of the closed one.
            exchange(server, again, b"back again")
        finally:
            again.close()
    finally:
        server.close()


def test_a_local_port_in_use_is_a_clear_lsp_error():
    server = lsp.new_server(0, FAST)
    taken = raw_socket()
    try:
        with pytest.raises(lsp.LSPError, match="cannot reach"):
            lsp.new_client(f"127.0.0.1:{server.port}", 0, FAST,
                           local_port=taken.getsockname()[1])
    finally:
        taken.close()
        server.close()


def test_port_in_use_raises_oserror_and_close_is_idempotent():
    server = lsp.new_server(0, FAST)
    try:
        with pytest.raises(OSError):
            lsp.new_server(server.port, FAST)
    finally:
        server.close()
        server.close()
    with pytest.raises(lsp.LSPError):
        server.write(1, b"x")
    with pytest.raises(lsp.LSPError):
        server.read()


def test_stronger_target_3_clients_1000_each_way_under_20_percent_loss():
    params = lsp.Params(epoch_limit=20, epoch_millis=50, window_size=8, max_unacked_messages=8)
    count = 1000
    server = lsp.new_server(0, params)
    clients = [lsp.new_client(f"127.0.0.1:{server.port}", i * 10, params) for i in range(3)]
    lspnet.set_write_drop_percent(20)
    finished = csp.Chan(None)
    deadline = time.monotonic() + 30

    def client_side(client):
        for i in range(count):
            client.write(f"up-{i}".encode())
        got = [client.read() for _ in range(count)]
        finished.send(("client", client.conn_id(), got))

    def server_side():
        got = {c.conn_id(): [] for c in clients}
        for conn_id in got:
            for i in range(count):
                server.write(conn_id, f"down-{i}".encode())
        while any(len(v) < count for v in got.values()):
            conn_id, payload = server.read()
            got[conn_id].append(payload)
        finished.send(("server", 0, got))

    threads = [csp.go(client_side, c, name=f"test/client-{c.conn_id()}") for c in clients]
    threads.append(csp.go(server_side, name="test/server"))
    try:
        for _ in threads:
            kind, conn_id, got = recv_within(finished, max(deadline - time.monotonic(), 0.1),
                                             "delivery under 20% loss")
            if kind == "client":
                assert got == [f"down-{i}".encode() for i in range(count)], conn_id
            else:
                for per_conn in got.values():
                    assert per_conn == [f"up-{i}".encode() for i in range(count)]
    finally:
        lspnet.reset()
        for client in clients:
            client.close()
        server.close()
        for thread in threads:
            thread.join(5)


def test_read_never_returns_data_of_a_connection_closed_while_its_data_waited():
    # The loop hands read() events through a capacity-1 channel; close_conn must take back
    # one already waiting there when it belongs to the closed connection.
    server = lsp.new_server(0, FAST)
    closed = lsp.new_client(f"127.0.0.1:{server.port}", 0, FAST)
    other = None
    try:
        for i in range(3):
            closed.write(b"unread %d" % i)
        # The data arrives; nobody reads it: one waits in the channel, two in the table.
        wait_until(lambda: server.picture()["reads_queued"] == 2, "the data arrived, unread")
        server.close_conn(closed.conn_id())
        other = lsp.new_client(f"127.0.0.1:{server.port}", 0, FAST)
        other.write(b"after")
        assert recv_within(in_thread(server.read), 5, "read") == \
            ("ok", (other.conn_id(), b"after"))
    finally:
        closed.close()
        if other is not None:
            other.close()
        server.close()
