"""The LSP server endpoint: a loop that feeds every event to its connection table
(lsp.conn_table.ConnTable, which holds the rules) and performs what the table returns.

Threads (P is the UDP port):
    lsp-server:P/reader   blocks on the socket; hands decoded messages with their sender's
                          address to the loop.
    lsp-server:P/loop     owns the ConnTable (every connection, the address map, the queue of
                          read events) and the close waiters; selects over received messages,
                          epoch ticks, requests (write, close_conn, close) and handing the next
                          read event to read(); transmits what the table returns. Stops when
                          close() finds nothing unacknowledged in the table.
Callers' threads only send requests and wait on reply channels.

Choices where the course is silent (the table's docstring has the details): a duplicate Connect
(same address, same initial sequence number) of a live connection is acked again with the same
id and creates nothing; any other Connect opens a new connection with a new id, so a client
restarted on the same port connects again once its old connection is lost or closed (a new
initial sequence number from a live connection's address means its client restarted: the old
connection is lost at once). Ids are never reused. A lost connection is forgotten as soon as
read() has its loss queued; read() raises ConnectionLost once per lost connection, after that
connection's data. A connection closed with close_conn still delivers what was written to it,
then is forgotten without a read() error (the server closed it itself).
"""

from __future__ import annotations

import csp
from lsp import lspnet
from lsp.conn_table import ConnTable, Lost
from lsp.errors import ConnectionLost, LSPError
from lsp.message import encode
from lsp.params import Params
from lsp.reader import LoopEndpoint, ask_loop, read_datagrams

def new_server(port: int, params: Params | None = None, host: str = "127.0.0.1") -> "Server":
    """Start an LSP server on `port` (0: a free one, then in `.port`); does not block.
    Raises OSError when the port is taken."""
    return Server(lspnet.listen_udp(port, host), params or Params())


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
        if type(value) is Lost:
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
        table = ConnTable(self._params, self._name)
        closers: list = []
        while True:
            if closers and table.settled:
                for reply in closers:
                    reply.send(None)
                return
            next_read = table.next_read
            give = csp.Send(self._reads if next_read is not None else None, next_read)
            index, value, _ = csp.select(csp.Recv(self._inbox), csp.Recv(ticker.c),
                                         csp.Recv(self._requests), give)
            if index == 0:
                for message, addr in value:
                    self._transmit(table.receive(message, addr))
            elif index == 1:
                self._transmit(table.epoch())
            elif index == 2:
                kind, argument, reply = value
                if kind == "close":
                    table.stop_accepting()   # a closing server takes no new connections
                    closers.append(reply)
                    continue
                try:
                    if kind == "write":
                        self._transmit(table.write(*argument))
                    else:
                        table.close_conn(argument)
                except ConnectionLost as lost:
                    reply.send(lost)
                else:
                    reply.send(None)
            else:
                table.read_taken()

    def _transmit(self, outgoing: list) -> None:
        write_to = self._sock.write_to
        for message, addr in outgoing:
            write_to(encode(message), addr)
