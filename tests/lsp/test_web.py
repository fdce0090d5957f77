"""The live picture of an LSP server's sliding windows (lsp.web, `python -m lsp server --web`),
over HTTP without a browser: the pictures the pure rules give (SendWindow, ReceiveBuffer,
ConnTable), the server's picture through its loop, the page's endpoints and their 4xx answers,
and the command line. A client speaking LSP by hand (`HandClient`, a bare UDP socket) holds
acks back, so the window's state is known exactly.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

from hypothesis import given, strategies as st

import lsp
from lsp.conn_table import ConnTable
from lsp.message import data_message, decode, encode, new_ack, new_connect, MsgType
from lsp.web import WindowView
from lsp.window import SHOWN_MESSAGES, ReceiveBuffer, SendWindow
from tests.processes import ROOT, http, read_until, stop

DEADLINE_SECONDS = 30.0


# ---- the pure pictures -------------------------------------------------------------------------

@given(st.lists(st.one_of(st.tuples(st.just("write"), st.integers(0, 3)),
                          st.tuples(st.just("ack"), st.integers(0, 40)),
                          st.tuples(st.just("cack"), st.integers(0, 40)),
                          st.tuples(st.just("epoch"), st.just(0))), max_size=80),
       st.integers(1, 5), st.integers(1, 5), st.integers(0, 4))
def test_the_send_windows_picture_always_adds_up(events, window, max_unacked, max_backoff):
    send = SendWindow(1, window, max_unacked, max_backoff)
    retransmitted = 0
    for kind, value in events:
        if kind == "write":
            send.write(b"x" * value)
        elif kind == "ack":
            send.ack(value)
        elif kind == "cack":
            send.cack(value)
        else:
            retransmitted += len(send.epoch())
        picture = send.picture()
        assert picture["sent"] == picture["acked"] + picture["unacked"]
        assert picture["next_seq"] == 1 + picture["sent"] + picture["pending"]
        assert picture["retransmissions"] == retransmitted
        assert picture["unacked"] == send.in_flight <= max_unacked
        flights = [m["seq"] for m in picture["in_flight"]]
        assert flights == sorted(flights)
        assert picture["window_start"] == (flights[0] if flights else
                                           (picture["pending_seqs"] or [picture["next_seq"]])[0])
        assert all(picture["window_start"] <= seq < picture["window_end"] for seq in flights)
        assert picture["window_end"] - picture["window_start"] == window
        assert all(0 <= m["waited"] <= m["backoff"] <= max_backoff for m in picture["in_flight"])
    json.dumps(send.picture())   # JSON-ready


def test_the_picture_lists_at_most_shown_messages():
    send = SendWindow(1, 1000, 1000, 0)
    for _ in range(SHOWN_MESSAGES + 10):
        send.write(b"p")
    picture = send.picture()
    assert picture["unacked"] == SHOWN_MESSAGES + 10
    assert [m["seq"] for m in picture["in_flight"]] == list(range(1, SHOWN_MESSAGES + 1))


def test_the_receive_picture_shows_the_gap():
    buffer = ReceiveBuffer(5, 100)
    buffer.on_data(7, b"c")
    buffer.on_data(9, b"e")
    assert buffer.picture() == {"expected": 5, "buffered_seqs": [7, 9]}
    buffer.on_data(5, b"a")
    buffer.on_data(6, b"b")
    assert buffer.picture() == {"expected": 8, "buffered_seqs": [9]}


def test_the_tables_picture_names_each_connection_and_its_address():
    table = ConnTable(lsp.Params(5, 100, 2, 1, 2))
    table.receive(new_connect(10), ("127.0.0.1", 4000))
    table.receive(new_connect(20), ("127.0.0.1", 4001))
    table.write(2, b"hello")
    table.close_conn(1)      # idle: leaves at once
    (only,) = table.picture()
    assert only["conn_id"] == 2 and only["address"] == "127.0.0.1:4001"
    assert not only["closing"] and only["silent_epochs"] == 0 and only["epoch_limit"] == 5
    assert only["send"]["unacked"] == 1 and only["receive"]["expected"] == 21


# ---- a client speaking LSP by hand -------------------------------------------------------------

class HandClient:
    """A bare UDP socket that connects to an LSP server and acks only when told to."""

    def __init__(self, port: int, initial_seq_num: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(DEADLINE_SECONDS)
        self.server = ("127.0.0.1", port)
        self.sock.sendto(encode(new_connect(initial_seq_num)), self.server)
        reply = self.next_message()
        assert reply.type == MsgType.ACK and reply.seq_num == initial_seq_num
        self.conn_id = reply.conn_id
        self.next_seq = initial_seq_num + 1

    def next_message(self):
        return decode(self.sock.recv(65536))

    def send_data(self, payload: bytes) -> None:
        self.sock.sendto(encode(data_message(self.conn_id, self.next_seq, payload)), self.server)
        self.next_seq += 1

    def ack(self, seq: int) -> None:
        """Ack `seq` (0: a heartbeat)."""
        self.sock.sendto(encode(new_ack(self.conn_id, seq)), self.server)

    def close(self) -> None:
        self.sock.close()


def wait_for_windows(url: str, holds, what: str) -> dict:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status, document = http(url + "windows")
        assert status == 200, document
        if holds(document):
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}; last {document}")
        time.sleep(0.05)   # the server's state moves by epochs; nothing to wait on


# ---- the server's picture and the page ---------------------------------------------------------

def test_a_held_back_window_shows_in_flight_pending_backoff_then_slides():
    """Window 3, max unacked 3, backoff cap 2: five writes to a client that acks nothing put
    three in flight (their backoff growing epoch by epoch) and two pending; acking the oldest
    slides the window by one; then a client that falls silent is lost and leaves the table."""
    params = lsp.Params(epoch_limit=8, epoch_millis=100, window_size=3,
                        max_back_off_interval=2, max_unacked_messages=3)
    server = lsp.new_server(0, params)
    view = WindowView(server)
    client = HandClient(server.port, initial_seq_num=40)
    try:
        for i in range(5):
            server.write(client.conn_id, b"payload %d" % i)
        client.send_data(b"from the client")
        assert server.read() == (client.conn_id, b"from the client")

        def held(document):
            client.ack(0)                      # a heartbeat: keeps the connection alive
            (conn,) = document["connections"]
            return conn["send"]["retransmissions"] >= 6
        document = wait_for_windows(view.url, held, "six retransmissions")
        assert document["port"] == server.port and document["params"]["window_size"] == 3
        (conn,) = document["connections"]
        send = conn["send"]
        assert conn["conn_id"] == client.conn_id and conn["receive"]["expected"] == 42
        assert [m["seq"] for m in send["in_flight"]] == [41, 42, 43]
        assert send["pending_seqs"] == [44, 45]
        assert (send["sent"], send["acked"], send["unacked"], send["pending"]) == (3, 0, 3, 2)
        assert (send["window_start"], send["window_end"]) == (41, 44)
        assert all(m["backoff"] >= 1 and m["bytes"] == 9 for m in send["in_flight"])

        client.ack(41)
        document = wait_for_windows(
            view.url, lambda d: d["connections"][0]["send"]["acked"] == 1, "the ack of 41")
        send = document["connections"][0]["send"]
        assert [m["seq"] for m in send["in_flight"]] == [42, 43, 44]
        assert send["pending_seqs"] == [45] and send["window_start"] == 42

        client.close()                         # silent from here on: lost after 8 epochs
        wait_for_windows(view.url, lambda d: d["connections"] == [], "the connection lost")
        try:
            server.read()
            raise AssertionError("read() should report the lost connection")
        except lsp.ConnectionLost as lost:
            assert lost.conn_id == document["connections"][0]["conn_id"]
    finally:
        client.close()
        view.close()
        server.close()


def test_the_page_its_files_and_bad_requests():
    server = lsp.new_server(0, lsp.Params(epoch_millis=100))
    view = WindowView(server)
    try:
        status, page = http(view.url)
        assert status == 200 and "<script src=\"/page.js\"></script>" in page
        for name in ("page.js", "style.css", "index.html"):
            assert http(view.url + name)[0] == 200
        status, document = http(view.url + "windows")
        assert status == 200 and document["connections"] == []
        assert str(server.port) in document["title"] and document["epoch_millis"] > 0
        for path, wanted in (("windows?seq=1", 400), ("frame", 404), ("node/0/kill", 404)):
            status, answer = http(view.url + path)
            assert status == wanted and answer["error"], (path, answer)
        status, answer = http(view.url + "windows", "POST", {})
        assert status == 405 and "POST" in answer["error"]
        server.close()
        status, answer = http(view.url + "windows")
        assert status == 503 and "not answering" in answer["error"]
    finally:
        view.close()
        view.close()                           # idempotent
        server.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("lsp-web")]


def test_the_echo_server_command_serves_the_page(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "lsp", "server", "--port", "0", "--web", "0",
                             "--ems", "100", "--quiet"], cwd=ROOT, bufsize=0,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    client = None
    try:
        listening, url_line = read_until(proc, "window view at ")
        port = int(listening.split("127.0.0.1:")[1].split()[0])
        url = url_line.removeprefix("window view at ")
        client = HandClient(port)
        client.send_data(b"echo me")
        echo = client.next_message()
        while echo.type != MsgType.DATA:       # the ack of our Data may come first
            echo = client.next_message()
        assert echo.payload == b"echo me"
        document = wait_for_windows(
            url, lambda d: len(d["connections"]) == 1 and d["connections"][0]["send"]["sent"],
            "the echo sent")
        assert document["connections"][0]["conn_id"] == client.conn_id
        proc.terminate()
        assert proc.wait(DEADLINE_SECONDS) == 0
    finally:
        if client is not None:
            client.close()
        stop(proc)


def test_the_command_says_when_the_web_port_is_taken():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        result = subprocess.run([sys.executable, "-m", "lsp", "server", "--port", "0", "--web",
                                 str(taken.getsockname()[1])], cwd=ROOT, capture_output=True,
                                text=True, timeout=DEADLINE_SECONDS)
    finally:
        taken.close()
    assert result.returncode == 1
    assert "cannot serve the web view" in result.stderr and "Traceback" not in result.stderr
