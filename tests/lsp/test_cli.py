"""`python -m lsp client`, run as a process against an in-process LSP echo server: it waits
for every echo at end of input (with drops on both sides), says how many are missing when the
server goes away, says what it waits for when nobody answers the connect, and `EchoTally`, its
pure counting rule."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

import lsp
from lsp import lspnet
from lsp.__main__ import EchoTally

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LINES = ["one", "two", "three", "four", "five"]
EXIT_TIMEOUT = 60.0        # a client process to finish (start-up, drops, loss detection)
LINE_TIMEOUT = 30.0        # one line from a client process (includes its start-up)


def client_command(hostport: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "lsp", "client", hostport, *flags]


def spawn_client(hostport: str, *flags: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen(client_command(hostport, *flags), cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, stdin_text: str | None = None) -> tuple[str, str]:
    """(stdout, stderr) once `proc` exits; kills it and fails after EXIT_TIMEOUT."""
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None        # communicate() would flush it
    try:
        return proc.communicate(stdin_text, timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"client did not exit within {EXIT_TIMEOUT} s\nstdout {out!r}\nstderr {err!r}")


class EchoServer:
    """An in-process LSP server whose one thread echoes the first `echo_limit` messages it
    reads (all of them when None) and counts every message it reads on `received` (after
    writing its echo, if it echoes it)."""

    def __init__(self, params: lsp.Params, echo_limit: int | None = None) -> None:
        self.lsp = lsp.new_server(0, params)
        self.hostport = f"127.0.0.1:{self.lsp.port}"
        self.echo_limit = echo_limit
        self.received: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="test-echo-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        echoed = 0
        while True:
            try:
                conn_id, payload = self.lsp.read()
            except lsp.ConnectionLost:
                continue
            except lsp.LSPError:
                return
            if self.echo_limit is None or echoed < self.echo_limit:
                echoed += 1
                try:
                    self.lsp.write(conn_id, payload)
                except lsp.ConnectionLost:
                    pass
            # Counted once its echo is written: a test that closes the server after
            # wait_received(n) must not race the echo of the n-th message.
            self.received.put(payload)

    def wait_received(self, count: int, timeout: float) -> list[bytes]:
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                got.append(self.received.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                pytest.fail(f"echo server read {got!r}, not {count} messages, in {timeout} s")
        return got

    def close(self) -> None:
        self.lsp.close()
        self._thread.join(EXIT_TIMEOUT)
        assert not self._thread.is_alive(), "echo server's read() did not end after close()"


def test_all_five_echoes_arrive_through_drops_on_both_sides():
    # 20 epochs of 100 ms before a loss: drops delay echoes but never lose the connection.
    server = EchoServer(lsp.Params(epoch_limit=20, epoch_millis=100))
    lspnet.set_server_read_drop_percent(20)
    lspnet.set_server_write_drop_percent(20)
    try:
        client = spawn_client(server.hostport, "--rdrop", "20", "--wdrop", "20",
                              "--elim", "20", "--ems", "100")
        out, err = finish(client, "".join(line + "\n" for line in LINES))
    finally:
        server.close()
    assert client.returncode == 0, f"stdout {out!r} stderr {err!r}"
    assert out.splitlines() == LINES, f"stderr {err!r}"
    assert "error" not in err, err


def test_missing_echoes_are_counted_when_the_server_goes_away():
    # The server echoes three of the five lines and then stops: the client must wait, notice
    # the loss, and say two are missing, with a non-zero status.
    params = lsp.Params(epoch_limit=5, epoch_millis=100)
    server = EchoServer(params, echo_limit=3)
    try:
        client = spawn_client(server.hostport, "--elim", "5", "--ems", "100")
        client.stdin.write("".join(line + "\n" for line in LINES))
        client.stdin.close()
        server.wait_received(len(LINES), LINE_TIMEOUT)
    finally:
        server.close()
    out, err = finish(client)
    assert client.returncode == 1, f"stdout {out!r} stderr {err!r}"
    assert out.splitlines() == LINES[:3], f"stderr {err!r}"
    assert "error: 2 of 5 echoes missing: connection lost" in err.splitlines(), err


def test_loss_while_input_is_still_open_ends_the_client():
    # Interactive use: the user has not ended input, the server goes away. The client must not
    # wait for more input: it reports the loss and exits non-zero.
    server = EchoServer(lsp.Params(epoch_limit=5, epoch_millis=100))
    client = spawn_client(server.hostport, "--elim", "5", "--ems", "100")
    try:
        client.stdin.write("one\ntwo\n")
        client.stdin.flush()
        server.wait_received(2, LINE_TIMEOUT)
        # both echoes written before the server closes: close() waits for their acks
    finally:
        server.close()
    try:
        client.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        client.kill()
        pytest.fail("client still waits for input after its server went away")
    finally:
        out, err = finish(client)
    assert client.returncode == 1, f"stdout {out!r} stderr {err!r}"
    assert out.splitlines() == ["one", "two"], f"stderr {err!r}"
    assert "error: connection lost (all 2 echoes received)" in err.splitlines(), err


def test_empty_input_exits_zero_at_once():
    server = EchoServer(lsp.Params(epoch_limit=5, epoch_millis=100))
    try:
        client = spawn_client(server.hostport, "--elim", "5", "--ems", "100")
        out, err = finish(client, "\n\n")
    finally:
        server.close()
    assert client.returncode == 0, f"stdout {out!r} stderr {err!r}"
    assert out == ""


def test_says_what_it_waits_for_when_nobody_answers_then_gives_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))          # bound but silent
        hostport = f"127.0.0.1:{sock.getsockname()[1]}"
        client = spawn_client(hostport, "--elim", "30", "--ems", "100")
        try:
            first_line = client.stderr.readline()   # blocks until the client says something
            still_waiting = client.poll() is None
            out, rest = finish(client, "")
        finally:
            if client.poll() is None:
                client.kill()
                client.communicate()
    assert first_line == f"connecting to {hostport} (gives up after 30 epochs of 100 ms)...\n"
    assert still_waiting, "the waiting line came only after the client had given up"
    assert client.returncode == 1, f"stdout {out!r} stderr {rest!r}"
    last = rest.strip().splitlines()[-1]
    assert last.startswith("error: ") and hostport in last, rest
    assert "Traceback" not in rest, rest


# ---- the pure rule -------------------------------------------------------------------------


def test_tally_is_complete_only_after_end_of_input_and_every_echo():
    tally = EchoTally()
    assert not tally.complete
    tally.line_sent()
    tally.line_sent()
    tally.end_of_input()
    assert not tally.complete and tally.missing == 2
    tally.echo_received()
    assert not tally.complete
    tally.echo_received()
    assert tally.complete and tally.missing == 0


def test_tally_shortfall_lines():
    tally = EchoTally()
    for _ in range(5):
        tally.line_sent()
    for _ in range(3):
        tally.echo_received()
    assert tally.shortfall("connection lost") == "error: 2 of 5 echoes missing: connection lost"
    tally.echo_received()
    tally.echo_received()
    assert tally.shortfall("connection lost") == "error: connection lost (all 5 echoes received)"
