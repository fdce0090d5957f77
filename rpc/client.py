"""The rpc client: `dial("host:port") -> Client`, Go's `rpc.Dial` / `Client.Call` / `Client.Go`.

Wire (shared with `rpc.server`): every message is one frame, `codec.frame(payload)`: a 4-byte
big-endian length, then UTF-8 JSON. The envelope is a plain JSON object written here (not a
codec-tagged dict); only the carried value inside it goes through `codec.to_wire`/`from_wire`:
    request   {"id": <int>, "method": "Service.method", "args": <to_wire(args)>}
    reply     {"id": <int>, "reply": <to_wire(reply)>}
    error     {"id": <int>, "error": "<message>"}      (the handler raised, or no such method)
Ids are chosen by the client, unique per client; replies may come in any order.

    client = rpc.dial("127.0.0.1:9000", timeout=5.0)    # ConnectionLost if it cannot connect
    reply = client.call("Arith.multiply", Args(7, 8), timeout=1.0)
    call = client.go("Arith.multiply", Args(7, 8)); call.done.recv(); call.reply / call.error
    client.close()

Threads (A is the address, K a process-wide client number):
    rpc-client:A#K/loop     owns the table of pending calls and writes the socket: takes new
                            calls (and cancellations of timed-out ones) from `_requests` in the
                            order they were made and writes their frames, batching what is
                            queued into one sendall; takes decoded replies from `_replies` and
                            completes the matching call. When the connection ends (closed,
                            lost, a malformed reply) it fails every pending and queued call with
                            ConnectionLost, closes `_requests` (later calls fail at once) and
                            exits.
    rpc-client:A#K/reader   blocks in recv(); splits frames, decodes replies, hands them to the
                            loop on an unbounded channel (so it never waits for the loop); tells
                            the loop when the connection ends, then exits.
    caller threads          `go` encodes the call (EncodeError at once, in the caller) and queues
                            it; `call` = `go` + a wait on the call's `done` channel.
Both threads stop on their own when the connection is lost; `close()` makes them stop and joins
them. The socket is closed by whoever runs the close (the first `close()`, or the loop when the
connection was lost without one), after the other threads are done with it.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket

import csp
from rpc import codec
from rpc.errors import CallTimeout, ConnectionLost, EncodeError, FrameError, RemoteError

DEFAULT_DIAL_TIMEOUT = 5.0   # seconds to establish the TCP connection
READ_CHUNK_BYTES = 256 * 1024
WRITE_BATCH_BYTES = 256 * 1024

log = logging.getLogger("rpc.client")

_client_numbers = itertools.count(1)
# Call ids come from one process-wide counter. next() on an itertools.count is atomic in CPython
# (the GIL is held for the whole C call; threading names its threads this way), so concurrent
# callers never share an id without any lock.
_call_ids = itertools.count(1)


# ---- frames and addresses (shared with rpc.server) --------------------------------------------

def iter_frames(sock: socket.socket):
    """Yield each frame's payload read from `sock`, in order, until end of stream or a socket
    error (then it just stops). Raises FrameError as soon as a header announces more than
    MAX_FRAME_BYTES. Blocks in recv(); wake it by shutting the socket down."""
    buf = bytearray()
    while True:
        try:
            data = sock.recv(READ_CHUNK_BYTES)
        except OSError:
            return
        if not data:
            return  # a frame cut short by the end of the stream is simply never delivered
        buf += data
        start = 0
        end = len(buf)
        while end - start >= 4:
            length = codec.frame_length(bytes(buf[start:start + 4]))
            if end - start - 4 < length:
                break
            yield bytes(buf[start + 4:start + 4 + length])
            start += 4 + length
        if start:
            del buf[:start]


def encode_envelope(envelope: dict) -> bytes:
    """One frame holding `envelope` (a dict whose carried value is already in wire form).
    Raises EncodeError if the frame would exceed MAX_FRAME_BYTES."""
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    try:
        payload = text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate in some str
        raise EncodeError(f"a str that is not valid Unicode cannot travel: {exc}") from None
    return codec.frame(payload)


def decode_envelope(payload: bytes) -> dict:
    """The JSON object in a frame's payload; FrameError if it is not one."""
    try:
        envelope = json.loads(payload.decode())  # UTF-8 only (json.loads would guess others)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FrameError(f"not UTF-8 JSON: {type(exc).__name__}: {exc}") from None
    if type(envelope) is not dict or type(envelope.get("id")) is not int:
        raise FrameError(f"not an rpc envelope: {payload[:80]!r}")
    return envelope


def encode_value(value):
    """`codec.to_wire(value)`; EncodeError for anything it cannot carry (also too deep)."""
    try:
        return codec.to_wire(value)
    except RecursionError:
        raise EncodeError("the value is nested too deeply to carry") from None


def decode_value(data):
    """`codec.from_wire(data)`, with every failure on bad input as a FrameError: a wrong
    field, a dataclass whose constructor refuses the values, nesting too deep."""
    try:
        return codec.from_wire(data)
    except FrameError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad input must never kill the reading thread
        raise FrameError(f"cannot decode the value: {type(exc).__name__}: {exc}") from None


def parse_address(address: str) -> tuple[str, int]:
    """`"host:port"` (or `"[v6 host]:port"`) -> `(host, port)`; ValueError if malformed."""
    if not isinstance(address, str):
        raise ValueError(f"rpc address must be a 'host:port' string, not {address!r}")
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    digits = port.isascii() and port.isdigit()
    if not sep or not host or not digits or not 0 < int(port) < 65536:
        raise ValueError(f"bad rpc address {address!r}: want 'host:port' with a port in 1-65535")
    return host, int(port)


# ---- the client -------------------------------------------------------------------------------

class Call:
    """One call made with `Client.go` (Go's `rpc.Call`).

    `method` and `args` as given; once the call ends exactly one of `reply` (the handler's
    result, possibly None) and `error` (an RPCError: RemoteError, ConnectionLost, ...) is set,
    and then `done` (a `csp.Chan(1)`) yields this Call, once. Read `reply`/`error` only after
    receiving from `done`.
    """

    __slots__ = ("method", "args", "reply", "error", "done", "id", "_frame")

    def __init__(self, method: str, args) -> None:
        self.method = method
        self.args = args
        self.reply = None
        self.error: Exception | None = None
        self.done = csp.Chan(1)
        self.id = 0
        self._frame = b""

    def __repr__(self) -> str:
        error = f" error={self.error!r}" if self.error is not None else ""
        return f"<rpc.Call {self.method} id={self.id}{error}>"


class _Cancel:
    """A timed-out call the loop should forget (its reply, if any, is dropped)."""

    __slots__ = ("id",)

    def __init__(self, call_id: int) -> None:
        self.id = call_id


class _Lost:
    """The reader's last word: why the connection ended."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def dial(address: str, timeout: float | None = DEFAULT_DIAL_TIMEOUT) -> "Client":
    """Connect to the rpc server at `address` ("host:port") and return a Client.

    Blocks for at most `timeout` seconds (None: the system's limit) while connecting; it bounds
    the connection only, not the calls. Raises ConnectionLost if it cannot connect, ValueError
    for a malformed address.
    """
    host, port = parse_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:  # refused, unreachable, timed out, unknown host
        raise ConnectionLost(f"cannot connect to {address}: {exc}") from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Client(sock, address)


class Client:
    """A connection to one rpc server (made by `dial`). Every method is thread-safe.

    `call` blocks until the reply, the timeout or the end of the connection; concurrent calls
    are sent and answered independently (never serialised). `go` never waits. Calls reach the
    server in the order they were made (by `go`/`call`, across all threads). A CallTimeout
    leaves the client usable. After `close()`, or once the connection is lost, every call fails
    with ConnectionLost (`call` raises it; `go` returns a Call that has already ended with it);
    the client never reconnects: dial again.
    """

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.address = address
        self._sock = sock
        self._requests = csp.Chan(None)   # Call | _Cancel, from callers; closed by the loop
        self._replies = csp.Chan(None)    # (id, reply, error) | _Lost, from the reader
        self._stop = csp.Chan()           # closed by close()
        self._close_token = csp.Chan(1)   # whoever takes it closes the socket
        self._close_token.send(None)
        self._closed = csp.Chan()         # closed once the socket is closed
        self._lost_reason = "connection lost"  # written by the loop before it closes _requests
        name = f"rpc-client:{address}#{next(_client_numbers)}"
        self._name = name
        self._reader = csp.go(self._read, name=f"{name}/reader")
        self._loop_thread = csp.go(self._loop, name=f"{name}/loop")

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<rpc.Client {self._name}{' closed' if self._stop.closed else ''}>"

    # ---- public API ------------------------------------------------------------------------

    def go(self, method: str, args) -> Call:
        """Start a call of `method` ("Service.method") with `args` and return its Call at once.

        Never blocks. Raises EncodeError (before anything is sent) if `args` is not carried by
        the codec or the frame would exceed MAX_FRAME_BYTES; TypeError if `method` is not a
        str. On a closed or lost client the Call has already ended with ConnectionLost.
        """
        if not isinstance(method, str):
            raise TypeError(f"rpc method must be a str like 'Service.method', not {method!r}")
        call = Call(method, args)
        call.id = next(_call_ids)
        call._frame = encode_envelope({"id": call.id, "method": method,
                                       "args": encode_value(args)})
        try:
            self._requests.send(call)  # unbounded: never blocks
        except csp.ChannelClosed:
            self._finish(call, error=ConnectionLost(f"{method}: {self._lost_reason}"))
        return call

    def call(self, method: str, args, timeout: float | None = None):
        """Call `method` with `args` and return the reply. Blocks; thread-safe.

        Raises RemoteError (the handler raised, or no such method; carries its message),
        CallTimeout after `timeout` seconds (the client stays usable; a late reply is dropped),
        ConnectionLost if the connection is or gets closed or lost, EncodeError at once for
        `args` the codec does not carry.
        """
        call = self.go(method, args)
        if timeout is None:
            call.done.recv()
        else:
            index, _, _ = csp.select(csp.Recv(call.done), csp.Recv(csp.after(timeout)))
            if index != 0:
                index, _, _ = csp.select(csp.Recv(call.done), default=True)  # a photo finish
                if index != 0:
                    try:
                        self._requests.send(_Cancel(call.id))
                    except csp.ChannelClosed:
                        pass  # the loop is gone: nothing to forget
                    raise CallTimeout(f"{method}: no reply within {timeout} s from "
                                      f"{self.address}")
        if call.error is not None:
            raise call.error
        return call.reply

    def close(self) -> None:
        """Close the connection; pending calls end with ConnectionLost, later ones fail.

        Idempotent, thread-safe, never raises; returns once the client's threads are gone.
        """
        index, _, _ = csp.select(csp.Recv(self._close_token), default=True)
        if index != 0:
            self._closed.recv()  # someone else closes (or closed) the socket: wait for it
        else:
            self._stop.close()
            _shutdown(self._sock)  # wakes the reader, and the loop if it is in sendall
            self._reader.join()
            self._loop_thread.join()
            self._sock.close()
            self._closed.close()
        if not self._stop.closed:
            try:
                self._stop.close()
            except csp.ChannelClosed:
                pass  # two closers raced to it: it is closed either way
        self._reader.join()
        self._loop_thread.join()

    # ---- threads ----------------------------------------------------------------------------

    def _read(self) -> None:
        reason = "connection closed by the server"
        try:
            for payload in iter_frames(self._sock):
                envelope = decode_envelope(payload)
                if "error" in envelope and type(envelope["error"]) is str:
                    self._replies.send((envelope["id"], None, envelope["error"]))
                elif "reply" in envelope:
                    self._replies.send((envelope["id"], decode_value(envelope["reply"]), None))
                else:
                    raise FrameError(f"a reply without 'reply' or 'error': {payload[:80]!r}")
        except FrameError as exc:
            reason = f"malformed reply from the server: {exc}"
            _shutdown(self._sock)
        log.debug("%s: reader ends: %s", self._name, reason)
        self._replies.send(_Lost(reason))

    def _loop(self) -> None:
        pending: dict[int, Call] = {}
        requests = self._requests
        cases = (csp.Recv(requests), csp.Recv(self._replies), csp.Recv(self._stop))
        reason = "client closed"
        while True:
            index, value, _ = csp.select(*cases)
            if index == 0:
                batch = []
                size = 0
                # Batch what is already queued into one sendall. This loop is the channel's
                # only receiver, so the values counted by len() are there to take.
                more = len(requests)
                while True:
                    if type(value) is _Cancel:
                        pending.pop(value.id, None)
                    else:
                        pending[value.id] = value
                        batch.append(value._frame)
                        size += len(value._frame)
                    if size >= WRITE_BATCH_BYTES or more == 0:
                        break
                    more -= 1
                    value, _ = requests.recv()
                if batch:
                    try:
                        self._sock.sendall(b"".join(batch))
                    except OSError as exc:
                        reason = ("client closed" if self._stop.closed
                                  else f"connection lost while sending: {exc}")
                        break
            elif index == 1:
                if type(value) is _Lost:
                    reason = "client closed" if self._stop.closed else value.reason
                    break
                call_id, reply, error = value
                call = pending.pop(call_id, None)
                if call is None:
                    continue  # a reply to a call that timed out (or a confused server)
                if error is not None:
                    self._finish(call, error=RemoteError(error))
                else:
                    self._finish(call, reply=reply)
            else:
                break
        log.debug("%s: loop ends: %s (%d calls pending)", self._name, reason, len(pending))
        self._lost_reason = reason
        requests.close()  # from now on go() fails at once; what was queued is failed below
        for call in pending.values():
            self._finish(call, error=ConnectionLost(f"{call.method}: {reason}"))
        for value in requests:
            if type(value) is not _Cancel:
                self._finish(value, error=ConnectionLost(f"{value.method}: {reason}"))
        # Lost without close(): close the socket here unless a close() is already doing it.
        index, _, _ = csp.select(csp.Recv(self._close_token), default=True)
        if index == 0:
            _shutdown(self._sock)
            self._reader.join()
            self._sock.close()
            self._closed.close()

    @staticmethod
    def _finish(call: Call, reply=None, error: Exception | None = None) -> None:
        call.reply = reply
        call.error = error
        call.done.send(call)  # Chan(1), sent once: never blocks


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more: already as shut as it gets
