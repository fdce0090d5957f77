"""`python -m kv client` and `python -m kv server` as a user runs them: the client says where it
connected, notices at once when the server closes the connection (even while nobody types) and
exits non-zero; a normal end of input prints every reply and exits 0; the server's closing line
counts clients that left as disconnected."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from kv import KeyValueServer, KVStore
from tests.kv.kvclient import close_server_within
from tests.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE_SECONDS = 30   # a process start on a loaded machine included


@pytest.fixture
def server():
    kv_server = KeyValueServer(KVStore())
    kv_server.start(0)
    try:
        yield kv_server
    finally:
        close_server_within(kv_server)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kv", *args], cwd=ROOT, bufsize=0,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))


def read_line(stream, what: str, seconds: float = DEADLINE_SECONDS) -> str:
    """One line from an unbuffered pipe, or fail after `seconds` saying what was awaited."""
    deadline = time.monotonic() + seconds
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(remaining, 0))
        if not ready:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}; "
                                 f"got {data!r}")
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            raise AssertionError(f"the stream ended before {what}; got {data!r}")
        data += chunk
    return data.decode()


def finish(proc: subprocess.Popen, end_input: bool = True) -> tuple[int, str, str]:
    """End the process's input (unless told not to), wait for it to exit (bounded: killed and
    failed after DEADLINE_SECONDS) and return (exit status, rest of stdout, rest of stderr)."""
    if end_input and not proc.stdin.closed:
        proc.stdin.close()
    try:
        returncode = proc.wait(DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args[3:]} did not exit within {DEADLINE_SECONDS} s")
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    return returncode, out, err


def test_client_says_where_it_connected_and_ends_normally_with_every_reply(server):
    proc = start("client", f"127.0.0.1:{server.port}")
    try:
        assert read_line(proc.stderr, "'connected to' line") == \
            f"connected to 127.0.0.1:{server.port}\n"
        proc.stdin.write(b"Put:fruit:apple\nGet:fruit\n")
        assert read_line(proc.stdout, "reply to Get:fruit") == "fruit:apple\n"
        proc.stdin.write(b"Put:fruit:pear\nGet:fruit")   # the last line has no newline
        proc.stdin.close()
    finally:
        returncode, out, err = finish(proc)
    assert returncode == 0, err
    assert out == "fruit:apple\nfruit:pear\n"
    assert err == ""
    wait_until(lambda: server.count_dropped() == 1, "the server counting the client as "
               "disconnected", DEADLINE_SECONDS)


def test_client_notices_at_once_that_the_server_closed_while_nobody_types(server):
    proc = start("client", f"127.0.0.1:{server.port}")
    try:
        read_line(proc.stderr, "'connected to' line")
        proc.stdin.write(b"Put:k:v\nGet:k\n")
        assert read_line(proc.stdout, "reply to Get:k") == "k:v\n"
        close_server_within(server)
        # Standard input stays open and silent: the client must notice on its own.
        message = read_line(proc.stderr, "a message that the server closed the connection")
        assert message == "error: server closed the connection\n"
        returncode, _, err = finish(proc, end_input=False)
    finally:
        if proc.returncode is None:
            finish(proc)
    assert returncode == 1, err


def test_client_to_an_address_nobody_listens_on_fails_at_start():
    with_server = KeyValueServer(KVStore())
    with_server.start(0)
    port = with_server.port
    close_server_within(with_server)   # now nobody listens on `port`
    proc = start("client", f"127.0.0.1:{port}")
    returncode, out, err = finish(proc)
    assert returncode == 1
    assert re.fullmatch(rf"error: cannot connect to 127\.0\.0\.1:{port}: .+\n", err), err
    assert out == ""


def test_server_counts_a_client_that_left_as_disconnected():
    proc = start("server", "--port", "0", "-v")
    stopped = False
    try:
        port = int(re.search(r":(\d+)$", read_line(proc.stdout, "listening line")).group(1))
        assert finish(start("client", f"127.0.0.1:{port}"))[0] == 0
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:   # the server's log, one line per event, on stderr
            line = read_line(proc.stderr, "the departure log line",
                             max(deadline - time.monotonic(), 0))
            if "client 1 disconnected" in line:
                break
        assert "0 active, 1 disconnected so far" in line, line
        proc.send_signal(signal.SIGTERM)
        stopped = True
        assert read_line(proc.stdout, "closing line") == \
            "closed (0 clients connected, 1 disconnected)\n"
    finally:
        if not stopped:
            proc.send_signal(signal.SIGTERM)
        returncode, _, err = finish(proc)
    assert returncode == 0, err
