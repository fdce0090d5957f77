"""The course's sanity checks of P1 part B, each against a FAKE server built in the test with
`lsp.new_server`: the real `python -m miner client` (ctest: normal answer, server failure,
argument errors, no server) and the real `python -m miner miner` (mtest: Join, then a Result equal
to brute force for each Request, then exit once the server is gone)."""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

import lsp
from miner import bitcoin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Losses are detected after ELIM epochs of EMS ms (1 s), on both the fake server and the commands.
ELIM, EMS = 5, 200
PARAMS = lsp.Params(epoch_limit=ELIM, epoch_millis=EMS)
FLAGS = ["--elim", str(ELIM), "--ems", str(EMS)]

EVENT_TIMEOUT = 15.0      # waiting for one message from a command (includes its start-up)
EXIT_TIMEOUT = 15.0       # waiting for a command to exit once it should


def brute_force(data: str, lower: int, upper: int) -> tuple[int, int]:
    """min((hash, nonce)) over lower..upper, computed here from SHA-256 directly."""
    best = None
    for nonce in range(lower, upper + 1):
        value = int.from_bytes(hashlib.sha256(f"{data} {nonce}".encode()).digest()[:8], "big")
        if best is None or (value, nonce) < best:
            best = (value, nonce)
    return best


def test_brute_force_reference_matches_the_handout():
    assert brute_force("msg", 0, 2) == (4754799531757243342, 1)


def miner_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "miner", *args]


def spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen(miner_command(*args), cwd=ROOT, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float, what: str) -> tuple[str, str]:
    """(stdout, stderr) once `proc` exits; kills it and fails if it takes longer than timeout."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{what} did not exit within {timeout} s\nstdout: {out!r}\nstderr: {err!r}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


class FakeServer:
    """An in-process LSP server whose events (conn_id, payload) or ("lost", conn_id) are pumped
    into a queue by one thread, so the test can wait for each with a deadline."""

    def __init__(self) -> None:
        self.lsp = lsp.new_server(0, PARAMS)
        self.port = self.lsp.port
        self.hostport = f"127.0.0.1:{self.port}"
        self.events: queue.Queue = queue.Queue()
        self._pump = threading.Thread(target=self._run, name="fake-server-pump", daemon=True)
        self._pump.start()

    def _run(self) -> None:
        while True:
            try:
                self.events.put(self.lsp.read())
            except lsp.ConnectionLost as lost:
                self.events.put(("lost", lost.conn_id))
            except lsp.LSPError:
                return

    def next_event(self, timeout: float, what: str):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"fake server: no {what} within {timeout} s")

    def next_message(self, timeout: float, what: str) -> tuple[int, bitcoin.Message]:
        event = self.next_event(timeout, what)
        assert event[0] != "lost", f"fake server: connection {event[1]} lost while waiting for {what}"
        conn_id, payload = event
        try:
            return conn_id, bitcoin.decode(payload)
        except bitcoin.BadMessage as exc:
            pytest.fail(f"fake server: {what} is not a miner message ({exc}): {payload!r}")

    def send(self, conn_id: int, message: bitcoin.Message) -> None:
        self.lsp.write(conn_id, bitcoin.encode(message))

    def close(self) -> None:
        self.lsp.close()
        self._pump.join(EXIT_TIMEOUT)
        assert not self._pump.is_alive(), "fake server's read() did not end after close()"


@pytest.fixture
def fake_server():
    server = FakeServer()
    try:
        yield server
    finally:
        server.close()


# ---- ctest: the client --------------------------------------------------------------------


@pytest.mark.parametrize("data, max_nonce, answer", [
    ("msg", 2, (4754799531757243342, 1)),                    # the handout's check values
    ("hello world", 9999, (0, 0)),                           # a MESSAGE with a space
    ("bits", 2**64 - 1, (2**64 - 1, 2**64 - 2)),             # uint64 limits both ways
])
def test_ctest_normal(fake_server, data, max_nonce, answer):
    client = spawn("client", fake_server.hostport, data, str(max_nonce), *FLAGS)
    try:
        conn_id, request = fake_server.next_message(EVENT_TIMEOUT, "Request from the client")
        assert request.type == bitcoin.MsgType.REQUEST, f"client sent {request}, not a Request"
        assert (request.data, request.lower, request.upper) == (data, 0, max_nonce), str(request)
        fake_server.send(conn_id, bitcoin.new_result(*answer))
        out, err = finish(client, EXIT_TIMEOUT, "client after its Result")
    finally:
        stop(client)
    assert out == f"Result {answer[0]} {answer[1]}\n", f"stderr: {err!r}"
    assert client.returncode == 0, f"stderr: {err!r}"


def test_ctest_client_ignores_non_results_before_the_result(fake_server):
    client = spawn("client", fake_server.hostport, "msg", "2", *FLAGS)
    try:
        conn_id, request = fake_server.next_message(EVENT_TIMEOUT, "Request from the client")
        assert request == bitcoin.new_request("msg", 0, 2)
        fake_server.lsp.write(conn_id, b"not json at all")
        fake_server.send(conn_id, bitcoin.new_join())
        fake_server.send(conn_id, bitcoin.new_request("msg", 0, 2))
        fake_server.send(conn_id, bitcoin.new_result(4754799531757243342, 1))
        out, err = finish(client, EXIT_TIMEOUT, "client after its Result")
    finally:
        stop(client)
    assert out == "Result 4754799531757243342 1\n", f"stderr: {err!r}"
    assert client.returncode == 0


def test_ctest_server_failure(fake_server):
    client = spawn("client", fake_server.hostport, "msg", "1000", *FLAGS)
    try:
        _, request = fake_server.next_message(EVENT_TIMEOUT, "Request from the client")
        assert request == bitcoin.new_request("msg", 0, 1000)
        fake_server.close()                      # the server dies without answering
        started = time.monotonic()
        # Loss after ELIM * EMS = 1 s of silence; allow a generous multiple for a loaded machine.
        out, err = finish(client, 10.0, "client after the server closed")
        elapsed = time.monotonic() - started
    finally:
        stop(client)
    assert out == "Disconnected\n", f"stderr: {err!r}"
    assert client.returncode == 0, f"stderr: {err!r}"
    assert elapsed >= 0.5, f"client gave up after {elapsed:.2f} s, before the epoch limit"


def test_ctest_maxnonce_not_a_number():
    client = spawn("client", "127.0.0.1:1", "msg", "12x", *FLAGS)
    try:
        out, err = finish(client, EXIT_TIMEOUT, "client with a bad MAXNONCE")
    finally:
        stop(client)
    assert out.strip() == "12x is not a number.", f"stdout {out!r} stderr {err!r}"
    assert client.returncode != 0


@pytest.mark.parametrize("bad", ["-1", "18446744073709551616", "", "1.5"])
def test_ctest_maxnonce_out_of_range_is_not_a_number(bad):
    client = spawn("client", "127.0.0.1:1", "msg", bad, *FLAGS)
    try:
        out, err = finish(client, EXIT_TIMEOUT, "client with a bad MAXNONCE")
    finally:
        stop(client)
    assert client.returncode != 0, f"stdout {out!r} stderr {err!r}"
    if bad.startswith("-"):
        # May be taken for an option by the argument parser; either way it is refused.
        assert "Result" not in out and "Disconnected" not in out
    else:
        assert out == f"{bad} is not a number.\n", f"stdout {out!r} stderr {err!r}"


@pytest.mark.parametrize("args", [[], ["127.0.0.1:1"], ["127.0.0.1:1", "msg"]])
def test_ctest_too_few_arguments_prints_usage(args):
    client = spawn("client", *args)
    try:
        out, err = finish(client, EXIT_TIMEOUT, "client with too few arguments")
    finally:
        stop(client)
    assert client.returncode != 0
    assert "Usage" in out + err, f"stdout {out!r} stderr {err!r}"


def test_ctest_too_many_arguments_is_refused():
    client = spawn("client", "127.0.0.1:1", "msg", "5", "extra")
    try:
        out, err = finish(client, EXIT_TIMEOUT, "client with too many arguments")
    finally:
        stop(client)
    assert client.returncode != 0
    assert "Usage" in out + err, f"stdout {out!r} stderr {err!r}"


@pytest.mark.parametrize("listening", [False, True], ids=["closed-port", "silent-port"])
def test_ctest_no_server(listening):
    """Nobody answers: a closed UDP port (ICMP refusals) or a bound socket that never replies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if not listening:
            sock.close()
        client = spawn("client", f"127.0.0.1:{port}", "msg", "5", "--elim", "3", "--ems", "100")
        try:
            out, err = finish(client, EXIT_TIMEOUT, "client with no server")
        finally:
            stop(client)
    finally:
        sock.close()
    assert out.startswith("Failed to connect to server:"), f"stdout {out!r} stderr {err!r}"
    assert client.returncode != 0


# ---- mtest: the miner ---------------------------------------------------------------------


def wait_for_join(server: FakeServer) -> int:
    conn_id, message = server.next_message(EVENT_TIMEOUT, "Join from the miner")
    assert message.type == bitcoin.MsgType.JOIN, f"miner's first message is {message}, not Join"
    return conn_id


def expect_result(server: FakeServer, miner_id: int, data: str, lower: int, upper: int) -> None:
    conn_id, message = server.next_message(EVENT_TIMEOUT, f"Result for {data!r} {lower}..{upper}")
    assert conn_id == miner_id
    assert message.type == bitcoin.MsgType.RESULT, f"miner answered {message}, not a Result"
    assert (message.hash, message.nonce) == brute_force(data, lower, upper), \
        f"wrong Result for [Request {data!r} {lower} {upper}]: {message}"


MTEST_REQUESTS = [
    ("msg", 0, 2),                       # the handout's check values
    ("single", 7, 7),                    # one nonce, not at 0
    ("zero", 0, 0),                      # one nonce, at 0
    ("offset", 1000, 4999),              # not starting at 0
    ("", 0, 300),                        # empty data
    ("héllo wörld", 123, 2345),          # non-ASCII data with a space
    ("top", 2**64 - 40, 2**64 - 1),      # the end of the uint64 range
    ("bigger", 50_000, 90_000),
]


def test_mtest_answers_requests_then_exits_when_the_server_is_lost(fake_server):
    miner = spawn("miner", fake_server.hostport, *FLAGS)
    try:
        miner_id = wait_for_join(fake_server)
        for data, lower, upper in MTEST_REQUESTS:
            fake_server.send(miner_id, bitcoin.new_request(data, lower, upper))
            expect_result(fake_server, miner_id, data, lower, upper)
        assert miner.poll() is None, "miner exited while its server was up"
        fake_server.close()
        out, err = finish(miner, EXIT_TIMEOUT, "miner after its server closed")
    finally:
        stop(miner)
    assert miner.returncode == 0, f"stdout {out!r} stderr {err!r}"


def test_mtest_answers_queued_requests_in_order(fake_server):
    miner = spawn("miner", fake_server.hostport, *FLAGS)
    try:
        miner_id = wait_for_join(fake_server)
        for data, lower, upper in MTEST_REQUESTS:
            fake_server.send(miner_id, bitcoin.new_request(data, lower, upper))
        for data, lower, upper in MTEST_REQUESTS:
            expect_result(fake_server, miner_id, data, lower, upper)
    finally:
        stop(miner)


def test_mtest_ignores_messages_that_are_not_requests(fake_server):
    miner = spawn("miner", fake_server.hostport, *FLAGS)
    try:
        miner_id = wait_for_join(fake_server)
        fake_server.lsp.write(miner_id, b"\xff not json")
        fake_server.send(miner_id, bitcoin.new_join())
        fake_server.send(miner_id, bitcoin.new_result(1, 2))
        fake_server.send(miner_id, bitcoin.new_request("empty", 5, 4))   # lower > upper
        fake_server.send(miner_id, bitcoin.new_request("after", 10, 20))
        expect_result(fake_server, miner_id, "after", 10, 20)
        assert miner.poll() is None, "miner exited after messages it should ignore"
        with pytest.raises(queue.Empty):
            fake_server.events.get(timeout=0.5)   # and nothing answered the ignored ones
    finally:
        stop(miner)


def test_mtest_no_server():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))          # bound but silent
        miner = spawn("miner", f"127.0.0.1:{sock.getsockname()[1]}", "--elim", "3", "--ems", "100")
        try:
            out, err = finish(miner, EXIT_TIMEOUT, "miner with no server")
        finally:
            stop(miner)
    assert miner.returncode != 0, f"stdout {out!r} stderr {err!r}"
    assert out.startswith("Failed to join with server:"), f"stdout {out!r} stderr {err!r}"
