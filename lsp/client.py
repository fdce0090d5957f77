"""The LSP client endpoint.

Threads (P is the local UDP port):
    lsp-client:P/reader   blocks on the socket; hands decoded messages to the loop.
    lsp-client:P/loop     owns the connection state (lsp.connection.Connection), the queue of
                          payloads ready for read(), and the close waiters; selects over
                          received messages, epoch ticks, requests (write, close) and handing
                          the next payload to a blocked read(). Stops when the connection is
                          lost during a close, or when a close finds nothing left unacked.
Callers' threads only send requests and wait on reply channels (no shared state).
The channels are unbuffered or of capacity 1, as the course requires; what can grow (payloads
waiting for read()) lives in a deque owned by the loop. A client has one connection and keeps
no table: what it holds grows only with payloads written and not yet acknowledged, and payloads
received and not yet read (messages for any other connection id are ignored).
"""

from __future__ import annotations

import logging
from collections import deque

import csp
from lsp import lspnet
from lsp.connection import Connection
from lsp.errors import ConnectionLost, LSPError
from lsp.message import MsgType, encode, new_connect
from lsp.params import Params
from lsp.reader import LoopEndpoint, ask_loop, read_datagrams

log = logging.getLogger("lsp")

_LOST = object()  # handed to read() once the connection is lost and its data drained


def new_client(hostport: str, initial_seq_num: int, params: Params | None = None, *,
               local_port: int = 0) -> "Client":
    """Connect to the LSP server at 'host:port'; blocks until connected. Raises LSPError when
    no Ack came within epoch_limit epochs, or the address is bad, or `local_port` (the UDP
    port to send from; 0: any free one) is taken."""
    try:
        sock = lspnet.dial_udp(hostport, local_port)
    except OSError as exc:
        raise LSPError(f"cannot reach {hostport}: {exc}") from None
    client = Client(sock, initial_seq_num, params or Params())
    conn_id, _ = client._connected.recv()
    if conn_id is None:
        client._join()
        raise LSPError(f"could not connect to {hostport}: no answer in "
                       f"{client._params.epoch_limit} epochs")
    return client


class Client(LoopEndpoint):
    """Made by `new_client`. Thread-safe. `read()` blocks; `write()` never blocks; `close()`
    blocks until everything written is acknowledged or the server is lost."""

    def __init__(self, sock: lspnet.UDPConn, initial_seq_num: int, params: Params) -> None:
        self._sock = sock
        self._params = params
        self._isn = initial_seq_num
        self._id = 0
        self._name = f"lsp-client:{sock.local_port}"
        self._inbox = csp.Chan()
        self._requests = csp.Chan()
        self._reads = csp.Chan()
        self._connected = csp.Chan(1)
        self._writes = csp.Chan()        # payloads from write(), straight to the loop
        self._lost = csp.Chan()          # closed by the loop when the connection is lost
        self._done = csp.Chan()          # closed when the loop has stopped
        self._close_token = csp.Chan(1)
        self._close_token.send(None)
        self._joined = csp.Chan()        # closed once every thread is joined
        self._threads = [
            csp.go(self._loop, name=f"{self._name}/loop"),
            csp.go(read_datagrams, sock, self._inbox, self._done, self._name,
                   name=f"{self._name}/reader"),
        ]

    def conn_id(self) -> int:
        return self._id

    def read(self) -> bytes:
        """The next payload from the server, in order. Raises ConnectionLost once the
        connection is lost and drained, LSPError after close()."""
        index, value, ok = csp.select(csp.Recv(self._reads), csp.Recv(self._done))
        if index == 1:
            raise LSPError("client closed")
        if value is _LOST:
            raise ConnectionLost(self._id)
        return value

    def write(self, payload: bytes) -> None:
        """Queue `payload` for the server; never blocks (beyond handing it to the loop). Raises
        ConnectionLost if the connection is lost, LSPError after close()."""
        index, _, _ = csp.select(csp.Send(self._writes, bytes(payload)), csp.Recv(self._lost),
                                 csp.Recv(self._done))
        if index == 1:
            raise ConnectionLost(self._id)
        if index == 2:
            raise LSPError("client closed")

    def close(self) -> None:
        """Wait until everything written is acknowledged (or the server is lost), then stop.
        Idempotent; never raises."""
        self._shut_down()

    def _request(self, kind: str, argument) -> None:
        ask_loop(self._requests, self._done, kind, argument, "client")

    # ---- the loop ------------------------------------------------------------------------

    def _send(self, messages) -> None:
        for message in messages:
            self._sock.write(encode(message))

    def _receive(self, conn: Connection, batch: list, ready: deque) -> None:
        for message, _ in batch:
            if conn.lost or message.conn_id != conn.conn_id:
                continue
            out, delivered = conn.receive(message)
            self._send(out)
            ready.extend(delivered)

    def _loop(self) -> None:
        params = self._params
        ticker = csp.Ticker(params.epoch_seconds)
        try:
            connected = self._connect(ticker)
            if connected is not None:
                self._serve(*connected, ticker)
        finally:
            ticker.stop()
            self._done.close()

    def _connect(self, ticker: csp.Ticker):
        """Send Connect every epoch until acked: (connection, the messages that came with or
        after its Ack); None after epoch_limit silent epochs."""
        connect = encode(new_connect(self._isn))
        self._sock.write(connect)
        epochs = 0
        while True:
            index, value, _ = csp.select(csp.Recv(self._inbox), csp.Recv(ticker.c))
            if index == 1:
                epochs += 1
                if epochs >= self._params.epoch_limit:
                    self._connected.send(None)
                    return None
                self._sock.write(connect)
                continue
            for position, (message, _) in enumerate(value):
                if message.conn_id == 0:
                    continue
                # The Ack of our Connect, or (if that Ack was lost) the server's first message.
                self._id = message.conn_id
                conn = Connection(self._id, self._isn, self._params)
                self._connected.send(self._id)
                log.debug("%s: connected as conn %d", self._name, self._id)
                rest = value[position:]
                if message.type == MsgType.ACK and message.seq_num == self._isn:
                    rest = rest[1:]
                return conn, rest

    def _serve(self, conn: Connection, early: list, ticker: csp.Ticker) -> None:
        ready: deque = deque()
        closers: list = []
        self._receive(conn, early, ready)
        while True:
            if closers and (conn.lost or conn.send.idle):
                for reply in closers:
                    reply.send(None)
                return
            if ready:
                give = csp.Send(self._reads, ready[0])
            elif conn.lost:
                give = csp.Send(self._reads, _LOST)
            else:
                give = csp.Send(None, None)
            writes = None if conn.lost else self._writes
            index, value, _ = csp.select(csp.Recv(self._inbox), csp.Recv(ticker.c),
                                         csp.Recv(self._requests), give, csp.Recv(writes))
            if index == 0:
                self._receive(conn, value, ready)
            elif index == 1:
                if not conn.lost:
                    self._send(conn.epoch())
                    if conn.lost:
                        log.debug("%s: connection lost", self._name)
                        self._lost.close()
            elif index == 2:
                _, _, reply = value  # the only request left is close
                closers.append(reply)
            elif index == 3:
                if ready:
                    ready.popleft()
            else:
                self._send(conn.write(value))
