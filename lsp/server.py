"""The LSP server endpoint.

Threads (P is the UDP port):
    lsp-server:P/reader   blocks on the socket; hands decoded messages with their sender's
                          address to the loop.
    lsp-server:P/loop     owns every connection (lsp.connection.Connection), the address map,
                          the queue of (conn_id, payload) ready for read() and the close
                          waiters; selects over received messages, epoch ticks, requests
                          (write, close_conn, close) and handing the next item to read().
                          Stops when close() finds every connection idle or lost.
Callers' threads only send requests and wait on reply channels.

Choices where the course is silent: a Connect from an address that already has a connection
is answered again with the same connection id (its first Ack may have been lost) and creates
nothing; a connection closed with close_conn still delivers what was written to it, then is
forgotten without a read() error (the server closed it itself); read() raises ConnectionLost
once per lost connection, after that connection's data.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque

import csp
from lsp import lspnet
from lsp.connection import Connection
from lsp.errors import ConnectionLost, LSPError
from lsp.message import MsgType, encode, new_ack
from lsp.params import Params
from lsp.reader import LoopEndpoint, ask_loop, read_datagrams

log = logging.getLogger("lsp")


def new_server(port: int, params: Params | None = None, host: str = "127.0.0.1") -> "Server":
    """Start an LSP server on `port` (0: a free one, then in `.port`); does not block.
    Raises OSError when the port is taken."""
    return Server(lspnet.listen_udp(port, host), params or Params())


class _Lost:
    """A marker in the read queue: conn_id was lost after the data queued before it."""
    __slots__ = ("conn_id",)

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id


class Server(LoopEndpoint):
    """Made by `new_server`. Thread-safe. `read()` blocks; `write`/`close_conn` never block;
    `close()` blocks until every connection's data is acknowledged or the client is lost."""

    def __init__(self, sock: lspnet.UDPConn, params: Params) -> None:
        self._sock = sock
        self._params = params
        self.port = sock.local_port
        self._name = f"lsp-server:{self.port}"
        self._inbox = csp.Chan()
        self._requests = csp.Chan()
        self._reads = csp.Chan()
        self._done = csp.Chan()
        self._close_token = csp.Chan(1)
        self._close_token.send(None)
        self._joined = csp.Chan()
        self._threads = [
            csp.go(self._loop, name=f"{self._name}/loop"),
            csp.go(read_datagrams, sock, self._inbox, self._done, self._name,
                   name=f"{self._name}/reader"),
        ]

    def read(self) -> tuple[int, bytes]:
        """The next (conn_id, payload) from any client. Raises ConnectionLost for a lost
        connection (once, after its data), LSPError after close()."""
        index, value, _ = csp.select(csp.Recv(self._reads), csp.Recv(self._done))
        if index == 1:
            raise LSPError("server closed")
        if type(value) is _Lost:
            raise ConnectionLost(value.conn_id)
        return value

    def write(self, conn_id: int, payload: bytes) -> None:
        """Queue `payload` for client `conn_id`; never blocks. Raises ConnectionLost for an
        unknown, lost or closed connection, LSPError after close()."""
        self._request("write", (conn_id, bytes(payload)))

    def close_conn(self, conn_id: int) -> None:
        """Finish sending what was written to `conn_id`, then drop it; does not block.
        Raises ConnectionLost for an unknown, lost or already closed connection."""
        self._request("close_conn", conn_id)

    def close(self) -> None:
        """Wait until every connection's data is acknowledged or its client lost, then stop.
        Idempotent; never raises."""
        self._shut_down()

    def _request(self, kind: str, argument) -> None:
        ask_loop(self._requests, self._done, kind, argument, "server")

    # ---- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        ticker = csp.Ticker(self._params.epoch_seconds)
        try:
            self._serve(ticker)
        finally:
            ticker.stop()
            self._done.close()

    def _serve(self, ticker: csp.Ticker) -> None:
        params = self._params
        sock = self._sock
        conns: dict[int, Connection] = {}
        addrs: dict[int, tuple] = {}
        by_addr: dict[tuple, tuple[int, int]] = {}   # addr -> (conn_id, initial seq num)
        closing_conns: set[int] = set()              # close_conn'd, still flushing
        ready: deque = deque()
        ids = itertools.count(1)
        closers: list = []

        def send(conn_id: int, messages) -> None:
            addr = addrs[conn_id]
            for message in messages:
                sock.write_to(encode(message), addr)

        def forget(conn_id: int) -> None:
            conns.pop(conn_id, None)
            closing_conns.discard(conn_id)

        def accept(message, addr) -> None:
            known = by_addr.get(addr)
            if known is not None:
                # Its first Ack may have been lost: answer again, create nothing.
                sock.write_to(encode(new_ack(known[0], known[1])), addr)
            elif not closers:  # a closing server takes no new connections
                conn_id = next(ids)
                conns[conn_id] = Connection(conn_id, message.seq_num, params)
                addrs[conn_id] = addr
                by_addr[addr] = (conn_id, message.seq_num)
                sock.write_to(encode(new_ack(conn_id, message.seq_num)), addr)
                log.debug("%s: conn %d from %s", self._name, conn_id, addr)

        while True:
            if closers and all(c.lost or c.send.idle for c in conns.values()):
                for reply in closers:
                    reply.send(None)
                return
            give = csp.Send(self._reads, ready[0]) if ready else csp.Send(None, None)
            index, value, _ = csp.select(csp.Recv(self._inbox), csp.Recv(ticker.c),
                                         csp.Recv(self._requests), give)
            if index == 0:
                for message, addr in value:
                    if message.type == MsgType.CONNECT:
                        accept(message, addr)
                        continue
                    conn = conns.get(message.conn_id)
                    if conn is None or conn.lost or addrs[conn.conn_id] != addr:
                        continue
                    out, delivered = conn.receive(message)
                    send(conn.conn_id, out)
                    if conn.conn_id in closing_conns:
                        if conn.send.idle:
                            forget(conn.conn_id)
                    else:
                        ready.extend((conn.conn_id, payload) for payload in delivered)
            elif index == 1:
                for conn in list(conns.values()):
                    if conn.lost:
                        continue
                    send(conn.conn_id, conn.epoch())
                    if conn.lost:
                        log.debug("%s: conn %d lost", self._name, conn.conn_id)
                        if conn.conn_id in closing_conns:
                            forget(conn.conn_id)
                        else:
                            ready.append(_Lost(conn.conn_id))
            elif index == 2:
                kind, argument, reply = value
                if kind == "write":
                    conn_id, payload = argument
                    conn = conns.get(conn_id)
                    if conn is None or conn.lost or conn_id in closing_conns or closers:
                        reply.send(ConnectionLost(conn_id))
                    else:
                        send(conn_id, conn.write(payload))
                        reply.send(None)
                elif kind == "close_conn":
                    conn = conns.get(argument)
                    if conn is None or conn.lost or argument in closing_conns:
                        reply.send(ConnectionLost(argument))
                        continue
                    closing_conns.add(argument)
                    # Never return data of a connection closed with close_conn.
                    ready = deque(item for item in ready
                                  if type(item) is _Lost or item[0] != argument)
                    if conn.send.idle:
                        forget(argument)
                    reply.send(None)
                else:
                    closers.append(reply)
            else:
                ready.popleft()
