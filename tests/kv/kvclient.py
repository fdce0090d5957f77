"""A tiny test-side TCP line client for the KV server, and bounded waits for the kv tests.

Every blocking call here has a deadline and fails the test with a message that says what it was
waiting for; nothing here can hang a test. A `LineClient` owns one socket and its own receive
buffer; it is used from one thread at a time.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time

import csp

HOST = "127.0.0.1"
DEFAULT_WAIT = 5.0        # seconds: anything the server must do "now" happens well within this


class LineClient:
    """One TCP connection to the KV server that speaks the line protocol."""

    def __init__(self, port: int, host: str = HOST, timeout: float = DEFAULT_WAIT,
                 name: str = "client") -> None:
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.closed = False

    # ---- writing ---------------------------------------------------------------------------

    def send(self, data: bytes, timeout: float = DEFAULT_WAIT) -> None:
        """Write `data` (any bytes, not necessarily whole lines)."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise AssertionError(f"{self.name}: could not write {len(data)} bytes within "
                                 f"{timeout}s (is the server reading?)") from None

    def send_line(self, line: bytes | str, timeout: float = DEFAULT_WAIT) -> None:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\n", timeout)

    # ---- reading ---------------------------------------------------------------------------

    def _fill(self, deadline: float, what: str) -> None:
        """Receive at least one more byte into the buffer before `deadline`, or fail."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{self.name}: timed out waiting for {what}; "
                                 f"buffered so far: {_show(bytes(self._buf))}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError(f"{self.name}: timed out waiting for {what}; "
                                 f"buffered so far: {_show(bytes(self._buf))}") from None
        except ConnectionError as exc:
            raise AssertionError(f"{self.name}: connection lost ({exc!r}) while waiting for "
                                 f"{what}") from None
        if not chunk:
            raise AssertionError(f"{self.name}: the server closed the connection while waiting"
                                 f" for {what}; buffered: {_show(bytes(self._buf))}")
        self._buf += chunk

    def read_line(self, timeout: float = DEFAULT_WAIT, what: str = "a line") -> bytes:
        """The next line, including its `\\n`."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[:end + 1])
                del self._buf[:end + 1]
                return line
            self._fill(deadline, what)

    def read_exactly(self, size: int, timeout: float = DEFAULT_WAIT,
                     what: str = "bytes") -> bytes:
        deadline = time.monotonic() + timeout
        while len(self._buf) < size:
            self._fill(deadline, f"{what} ({len(self._buf)} of {size} bytes so far)")
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def read_until(self, last: bytes, timeout: float = DEFAULT_WAIT) -> list[bytes]:
        """Lines up to and including the line `last` (which must include its `\\n`)."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self.read_line(max(deadline - time.monotonic(), 0.0),
                                  what=f"the line {_show(last)} (after {len(lines)} others)")
            lines.append(line)
            if line == last:
                return lines

    def round_trip(self, key: str, value: bytes, timeout: float = DEFAULT_WAIT) -> None:
        """Put `value` under `key` and Get it back: a barrier proving that the server has
        handled everything this connection sent before."""
        self.send(b"Put:" + key.encode() + b":" + value + b"\n", timeout)
        self.send(b"Get:" + key.encode() + b"\n", timeout)
        expected = key.encode() + b":" + value + b"\n"
        line = self.read_line(timeout, what=f"the reply to Get:{key}")
        assert line == expected, f"{self.name}: expected {_show(expected)}, got {_show(line)}"

    def buffered(self) -> bytes:
        """Bytes received but not yet returned by a read."""
        return bytes(self._buf)

    def kernel_unread(self) -> int:
        """Bytes waiting in this socket's kernel receive queue (FIONREAD)."""
        raw = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
        return struct.unpack("i", raw)[0]

    def wait_closed_by_server(self, timeout: float = DEFAULT_WAIT) -> None:
        """Read (and discard) until the server closes or resets the connection."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: the server did not close the connection "
                                     f"within {timeout}s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionError:
                return
            if not chunk:
                return

    # ---- ending ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Close abruptly: SO_LINGER (on, 0 s) makes close() send an RST, not a FIN."""
        if self.closed:
            return
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def __enter__(self) -> "LineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _show(data: bytes, limit: int = 120) -> str:
    """A short, printable view of some bytes for failure messages."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}... ({len(data)} bytes)"


def call_within(fn, *args, timeout: float = DEFAULT_WAIT, what: str | None = None):
    """Run `fn(*args)` on a helper thread and return its result, or fail the test if it has
    not returned within `timeout` seconds (a hung server call must not hang the test). An
    exception raised by `fn` is re-raised here."""
    what = what or getattr(fn, "__qualname__", repr(fn))
    result = csp.Chan(1)

    def run() -> None:
        try:
            result.send((True, fn(*args)))
        except BaseException as exc:  # handed to the caller, which re-raises it
            result.send((False, exc))

    thread = csp.go(run, name=f"test/call:{what}")
    index, value, _ = csp.select(csp.Recv(result), csp.Recv(csp.after(timeout)))
    if index != 0:
        raise AssertionError(f"{what} did not return within {timeout}s")
    thread.join(timeout)
    ok, payload = value
    if not ok:
        raise payload
    return payload


def close_server_within(server, timeout: float = 10.0) -> None:
    """`server.close()`, bounded: fail the test if it does not return within `timeout`."""
    call_within(server.close, timeout=timeout, what="KeyValueServer.close()")
