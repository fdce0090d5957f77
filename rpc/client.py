"""The rpc client: `dial("host:port") -> Client`, Go's `rpc.Dial` / `Client.Call` / `Client.Go`.
The frames and envelopes it exchanges with `rpc.server` are described in `rpc.wire`.

    client = rpc.dial("127.0.0.1:9000", timeout=5.0)    # ConnectionLost if it cannot connect
    reply = client.call("Arith.multiply", Args(7, 8), timeout=1.0)
    call = client.go("Arith.multiply", Args(7, 8)); call.done.recv(); call.reply / call.error
    client.close()

Threads (A is the address, K a process-wide client number):
    rpc-client:A#K/loop     owns the table of pending calls and writes the socket: takes new
                            calls (and cancellations of timed-out ones) from `_requests` in the
                            order they were made and writes their frames, batching what is
                            queued into one sendall; takes decoded replies from `_replies` and
                            completes the matching call. When the connection ends (close()
                            begins, the connection is lost, a reply is malformed) it fails every
                            pending and queued call with ConnectionLost, closes `_requests`
                            (later calls fail at once) and exits.
    rpc-client:A#K/reader   blocks in recv(); splits frames, decodes replies, hands them to the
                            loop on an unbounded channel (so it never waits for the loop); tells
                            the loop when the connection ends, then exits.
    caller threads          `go` encodes the call (EncodeError at once, in the caller) and queues
                            it; `call` = `go` + a wait on the call's `done` channel.
Close goes through `self._life` (csp.Lifecycle), begun by whichever comes first: `close()`, which
shuts the socket down (waking the reader, and the loop if it is in sendall), joins both threads
and closes the socket; or the loop, when the connection was lost without a close: it shuts the
socket down, joins the reader and closes the socket as its last act. Either way the socket is
closed once, after the other threads are done with it, and a later `close()` just waits.
"""

from __future__ import annotations

import itertools
import logging
import socket

import csp
from csp import tcp
from rpc.errors import CallTimeout, ConnectionLost, FrameError, RemoteError
from rpc.wire import WRITE_BATCH_BYTES, decode_reply, iter_frames, parse_address, request_frame

DEFAULT_DIAL_TIMEOUT = 5.0   # seconds to establish the TCP connection

log = logging.getLogger("rpc.client")

_client_numbers = itertools.count(1)
# Call ids come from one process-wide counter. next() on an itertools.count is atomic in CPython
# (the GIL is held for the whole C call; threading names its threads this way), so concurrent
# callers never share an id without any lock.
_call_ids = itertools.count(1)


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
        self._life = csp.Lifecycle()      # begun by close(), or by the loop when lost
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
        return f"<rpc.Client {self._name}{' closed' if self._life.is_stopping else ''}>"

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
        call._frame = request_frame(call.id, method, args)
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
            done = csp.Recv(call.done)
            case, _, _ = csp.select_case(done, csp.Recv(csp.after(timeout)))
            if case is not done:
                case, _, _ = csp.select_case(done, default=True)  # a photo finish
                if case is not done:
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
        self._life.close_once(self._shut_down)
        # A no-op unless the loop closed a lost connection itself: it finishes the lifecycle
        # as its last act, so wait for it to return too.
        self._loop_thread.join()

    def _shut_down(self) -> None:
        tcp.shutdown(self._sock)  # wakes the reader, and the loop if it is in sendall
        self._reader.join()
        self._loop_thread.join()
        self._sock.close()

    # ---- threads ----------------------------------------------------------------------------

    def _read(self) -> None:
        reason = "connection closed by the server"
        try:
            for payload in iter_frames(self._sock):
                self._replies.send(decode_reply(payload))  # (id, reply, error)
        except FrameError as exc:
            reason = f"malformed reply from the server: {exc}"
            tcp.shutdown(self._sock)
        log.debug("%s: reader ends: %s", self._name, reason)
        self._replies.send(_Lost(reason))

    def _loop(self) -> None:
        pending: dict[int, Call] = {}
        requests = self._requests
        new_call = csp.Recv(requests)        # a Call to send, or a _Cancel
        reply = csp.Recv(self._replies)      # (id, reply, error) from the reader, or _Lost
        stopping = csp.Recv(self._life.stopping)
        reason = "client closed"
        while True:
            case, value, _ = csp.select_case(new_call, reply, stopping)
            if case is stopping:
                break
            if case is new_call:
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
                        reason = ("client closed" if self._life.is_stopping
                                  else f"connection lost while sending: {exc}")
                        break
            elif case is reply:
                if type(value) is _Lost:
                    reason = "client closed" if self._life.is_stopping else value.reason
                    break
                call_id, result, error = value
                call = pending.pop(call_id, None)
                if call is None:
                    continue  # a reply to a call that timed out (or a confused server)
                if error is not None:
                    self._finish(call, error=RemoteError(error))
                else:
                    self._finish(call, reply=result)
        log.debug("%s: loop ends: %s (%d calls pending)", self._name, reason, len(pending))
        self._lost_reason = reason
        requests.close()  # from now on go() fails at once; what was queued is failed below
        for call in pending.values():
            self._finish(call, error=ConnectionLost(f"{call.method}: {reason}"))
        for value in requests:
            if type(value) is not _Cancel:
                self._finish(value, error=ConnectionLost(f"{value.method}: {reason}"))
        if self._life.begin():  # lost without close(): this thread closes the connection
            tcp.shutdown(self._sock)
            self._reader.join()
            self._sock.close()
            self._life.finish()

    @staticmethod
    def _finish(call: Call, reply=None, error: Exception | None = None) -> None:
        call.reply = reply
        call.error = error
        call.done.send(call)  # Chan(1), sent once: never blocks

