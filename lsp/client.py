"""The LSP client endpoint (its socket, reader thread and close: lsp.endpoint.Endpoint).

Threads (P is the local UDP port):
    lsp-client:P/reader   blocks on the socket; hands decoded messages to the loop.
    lsp-client:P/loop     owns the connection state (lsp.connection.Connection) and the queue
                          of payloads ready for read(); sends Connect until answered, then
                          selects over received messages, epoch ticks, close beginning
                          (`_life.stopping`), write()'s payloads and handing the next payload
                          to a blocked read(). Stops, closing the socket, once close has begun
                          and nothing is left unacked or the connection is lost (or when the
                          Connect is never answered).
Callers' threads only hand values to the loop over channels (no shared state).
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
from lsp.endpoint import Endpoint
from lsp.errors import ConnectionLost, LSPError
from lsp.message import MsgType, encode, new_connect
from lsp.params import Params

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
        client.close()
        raise LSPError(f"could not connect to {hostport}: no answer in "
                       f"{client._params.epoch_limit} epochs")
    return client


class Client(Endpoint):
    """Made by `new_client`. Thread-safe. `read()` blocks; `write()` never blocks; `close()`
    blocks until everything written is acknowledged or the server is lost."""

    def __init__(self, sock: lspnet.UDPConn, initial_seq_num: int, params: Params) -> None:
        super().__init__(sock, params, "client")
        self._isn = initial_seq_num
        self._id = 0
        self._connected = csp.Chan(1)    # loop -> new_client: the conn id, or None: no answer
        # write() -> loop: payloads. Capacity 1: write() returns without waiting for the loop
        # to come round (the loop closes it when the connection is lost and when it stops).
        self._writes = csp.Chan(1)
        self._lost = csp.Chan()          # closed by the loop when the connection is lost
        self._start()

    def conn_id(self) -> int:
        return self._id

    def read(self) -> bytes:
        """The next payload from the server, in order. Raises ConnectionLost once the
        connection is lost and drained, LSPError after close()."""
        value = self._next_read()
        if value is _LOST:
            raise ConnectionLost(self._id)
        return value

    def write(self, payload: bytes) -> None:
        """Queue `payload` for the server; never blocks (beyond handing it to the loop). Raises
        ConnectionLost if the connection is lost, LSPError after close()."""
        if self._lost.closed:
            raise ConnectionLost(self._id)
        if self._life.stopped.closed:
            raise LSPError("client closed")
        handed = csp.Send(self._writes, bytes(payload))
        lost = csp.Recv(self._lost)
        try:
            case, _, _ = csp.select_case(handed, lost, csp.Recv(self._life.stopped))
        except csp.ChannelClosed:   # the loop closed `_writes`: lost, or stopping
            case = lost if self._lost.closed else None
        if case is lost:
            raise ConnectionLost(self._id)
        if case is not handed:
            raise LSPError("client closed")

    def close(self) -> None:
        """Wait until everything written is acknowledged (or the server is lost), then stop.
        Idempotent; never raises; afterwards read() and write() raise LSPError."""
        self._life.close_once(self._shut_down)

    # ---- the loop ------------------------------------------------------------------------

    def _send(self, messages) -> None:
        for message in messages:
            self._sock.write(encode(message))

    def _receive(self, conn: Connection, batch: list, ready: deque) -> None:
        """A batch from the reader; the in-order Data in it is acknowledged once, at the end
        (one CAck for a run of them: lsp.connection)."""
        if conn.lost:
            return
        outgoing = []
        for message, _ in batch:
            if message.conn_id != conn.conn_id:
                continue
            out, delivered = conn.receive(message, defer_ack=True)
            outgoing += out
            ready.extend(delivered)
        outgoing += conn.closing_acks()
        # read() first, if it is waiting: its thread runs while we write the socket.
        if ready and csp.select_case(csp.Send(self._reads, ready[0]), default=True)[0]:
            ready.popleft()
        self._send(outgoing)

    def _loop(self) -> None:
        ticker = csp.Ticker(self._params.epoch_seconds)
        try:
            connected = self._connect(ticker)
            if connected is not None:
                self._serve(*connected, ticker)
        finally:
            ticker.stop()
            if not self._writes.closed:
                self._writes.close()   # a write() from now on raises

    def _connect(self, ticker: csp.Ticker):
        """Send Connect every epoch until acked: (connection, the messages that came with or
        after its Ack); None after epoch_limit silent epochs."""
        connect = encode(new_connect(self._isn))
        self._sock.write(connect)
        epochs = 0
        received = csp.Recv(self._inbox)
        tick = csp.Recv(ticker.c)
        while True:
            case, batch, ok = csp.select_case(received, tick)
            if case is tick:
                epochs += 1
                if epochs >= self._params.epoch_limit:
                    self._connected.send(None)
                    return None
                self._sock.write(connect)
                continue
            if not ok:   # the reader has stopped (it never does while the socket is open)
                received = csp.Recv(None)
                continue
            for position, (message, _) in enumerate(batch):
                if message.conn_id == 0:
                    continue
                # The Ack of our Connect, or (if that Ack was lost) the server's first message.
                self._id = message.conn_id
                conn = Connection(self._id, self._isn, self._params)
                self._connected.send(self._id)
                log.debug("%s: connected as conn %d", self._name, self._id)
                rest = batch[position:]
                if message.type == MsgType.ACK and message.seq_num == self._isn:
                    rest = rest[1:]
                return conn, rest

    def _serve(self, conn: Connection, early: list, ticker: csp.Ticker) -> None:
        """Until close() has begun and nothing written is unacknowledged (or the connection is
        lost)."""
        ready: deque = deque()
        self._receive(conn, early, ready)
        received = csp.Recv(self._inbox)
        tick = csp.Recv(ticker.c)
        stop = csp.Recv(self._life.stopping)
        closing = False
        writes = self._writes
        while True:
            if closing and (conn.lost or conn.send.idle):
                if not writes.closed:
                    writes.close()   # no more writes; one already in the channel goes out first
                if conn.lost or not len(writes):
                    return
            if ready:
                give = csp.Send(self._reads, ready[0])
            elif conn.lost:
                give = csp.Send(self._reads, _LOST)
            else:
                give = csp.Send(None, None)
            taking = not conn.lost and not (writes.closed and not len(writes))
            written = csp.Recv(writes if taking else None)
            case, value, ok = csp.select_case(received, tick, stop, give, written)
            if case is received:
                if ok:
                    self._receive(conn, value, ready)
                else:   # the reader has stopped (it never does while the socket is open)
                    received = csp.Recv(None)
            elif case is tick:
                if not conn.lost:
                    self._send(conn.epoch())
                    if conn.lost:
                        log.debug("%s: connection lost", self._name)
                        self._lost.close()
                        if not writes.closed:
                            writes.close()   # a write() from now on raises ConnectionLost
            elif case is stop:
                closing = True
                stop = csp.Recv(None)   # a closed channel stays ready: hear it once
            elif case is give:
                if ready:
                    ready.popleft()
            elif case is written and ok:
                self._send(conn.write(value))
