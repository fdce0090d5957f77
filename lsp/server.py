"""The LSP server endpoint: a loop that feeds every event to its connection table
(lsp.conn_table.ConnTable, which holds the rules) and performs what the table returns (its
socket, reader thread and close: lsp.endpoint.Endpoint).

Threads (P is the UDP port):
    lsp-server:P/reader   blocks on the socket; hands decoded messages with their sender's
                          address to the loop.
    lsp-server:P/loop     owns the ConnTable (every connection, the address map, the queue of
                          read events); selects over received messages, epoch ticks, requests
                          (write, close_conn, picture), close beginning (`_life.stopping`) and
                          handing the next read event to read(); transmits what the table
                          returns.
                          Stops, closing the socket, once close has begun and nothing in the
                          table is unacknowledged.
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

import dataclasses

import csp
from lsp import lspnet
from lsp.conn_table import ConnTable, Lost
from lsp.endpoint import Endpoint
from lsp.errors import ConnectionLost, LSPError
from lsp.message import encode
from lsp.params import Params


def new_server(port: int, params: Params | None = None, host: str = "127.0.0.1") -> "Server":
    """Start an LSP server on `port` (0: a free one, then in `.port`); does not block.
    Raises OSError when the port is taken."""
    return Server(lspnet.listen_udp(port, host), params or Params())


class Server(Endpoint):
    """Made by `new_server`. Thread-safe. `read()` blocks; `write`/`close_conn` never block;
    `close()` blocks until every connection's data is acknowledged or the client is lost."""

    def __init__(self, sock: lspnet.UDPConn, params: Params) -> None:
        super().__init__(sock, params, "server")
        self.port = sock.local_port
        self._requests = csp.Chan()   # callers -> loop: (kind, argument, reply Chan(1))
        self._start()

    def read(self) -> tuple[int, bytes]:
        """The next (conn_id, payload) from any client. Raises ConnectionLost for a lost
        connection (once, after its data), LSPError after close()."""
        value = self._next_read()
        if type(value) is Lost:
            raise ConnectionLost(value.conn_id)
        return value

    def write(self, conn_id: int, payload: bytes) -> None:
        """Queue `payload` for client `conn_id`; never blocks. Raises ConnectionLost for an
        unknown, lost or closed connection, LSPError after close()."""
        self._ask("write", (conn_id, bytes(payload)))

    def close_conn(self, conn_id: int) -> None:
        """Finish sending what was written to `conn_id`, then drop it; does not block.
        Raises ConnectionLost for an unknown, lost or already closed connection."""
        self._ask("close_conn", conn_id)

    def close(self) -> None:
        """Wait until every connection's data is acknowledged or its client lost, then stop.
        Idempotent; never raises; afterwards read() and write() raise LSPError."""
        self._life.close_once(self._shut_down)

    def picture(self) -> dict:
        """What the server's loop holds now, for people to look at (the `--web` page, lsp.web):
        {"port", "params", "epochs" (ticks so far), "closing", "reads_queued", "connections"
        (ConnTable.picture)}. Thread-safe; waits for the loop; LSPError after close()."""
        return self._ask("picture", None)

    def _ask(self, kind: str, argument):
        """A request to the loop carrying its own reply channel: waits for the loop's answer,
        raises the error it returns, else returns its result; raises LSPError once the server
        has stopped."""
        reply = csp.Chan(1)
        asked = csp.Send(self._requests, (kind, argument, reply))
        case, _, _ = csp.select_case(asked, csp.Recv(self._life.stopped))
        if case is not asked:
            raise LSPError("server closed")
        (error, result), _ = reply.recv()
        if error is not None:
            raise error
        return result

    # ---- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        ticker = csp.Ticker(self._params.epoch_seconds)
        try:
            self._serve(ticker)
        finally:
            ticker.stop()

    def _serve(self, ticker: csp.Ticker) -> None:
        """Until close() has begun and nothing in the table is unacknowledged."""
        table = ConnTable(self._params, self._name)
        received = csp.Recv(self._inbox)
        tick = csp.Recv(ticker.c)
        asked = csp.Recv(self._requests)
        stop = csp.Recv(self._life.stopping)
        closing = False
        epochs = 0
        while True:
            if closing and table.settled:
                return
            next_read = table.next_read
            give = csp.Send(self._reads if next_read is not None else None, next_read)
            case, value, ok = csp.select_case(received, tick, asked, stop, give)
            if case is received:
                if not ok:   # the reader has stopped (it never does while the socket is open)
                    received = csp.Recv(None)
                    continue
                outgoing = table.receive_batch(value)
                # read() first, if it is waiting: its thread runs while we write the socket.
                self._offer_read(table)
                self._transmit(outgoing)
            elif case is tick:
                epochs += 1
                self._transmit(table.epoch())
            elif case is asked:
                kind, argument, reply = value
                result = None
                try:
                    if kind == "write":
                        self._transmit(table.write(*argument))
                    elif kind == "close_conn":
                        self._take_back_read(table)
                        table.close_conn(argument)
                    else:
                        result = self._picture(table, epochs, closing)
                except ConnectionLost as lost:
                    reply.send((lost, None))
                else:
                    reply.send((None, result))
            elif case is stop:
                table.stop_accepting()   # a closing server takes no new connections
                closing = True
                stop = csp.Recv(None)    # a closed channel stays ready: hear it once
            elif case is give:
                table.read_taken()

    def _picture(self, table: ConnTable, epochs: int, closing: bool) -> dict:
        return {"port": self.port, "epochs": epochs, "closing": closing,
                "params": dataclasses.asdict(self._params),
                "reads_queued": table.reads_queued, "connections": table.picture()}

    def _offer_read(self, table: ConnTable) -> None:
        """Hand read() its next event now if a read() is already waiting (never blocks)."""
        next_read = table.next_read
        if next_read is not None:
            case, _, _ = csp.select_case(csp.Send(self._reads, next_read), default=True)
            if case is not None:
                table.read_taken()

    def _take_back_read(self, table: ConnTable) -> None:
        """Take back the read event waiting in `_reads` (capacity 1), if read() has not taken
        it yet, so that the table's rules decide about it again (close_conn drops its data)."""
        case, event, ok = csp.select_case(csp.Recv(self._reads), default=True)
        if case is not None and ok:
            table.unread(event)

    def _transmit(self, outgoing: list) -> None:
        write_to = self._sock.write_to
        for message, addr in outgoing:
            write_to(encode(message), addr)
