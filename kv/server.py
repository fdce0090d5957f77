"""`KeyValueServer`: the P0 key-value messaging server over TCP (protocol in `kv.protocol`).

Threads (N is the port, C a client number):
    kv-server:N/loop         owns the store, the client table and both counts; selects over
                             new connections, request batches, departures, count queries and
                             close. Never blocks on a client: replies go into the client's
                             outgoing queue with a non-blocking send, and are dropped when it is
                             full (OUTGOING_QUEUE_MESSAGES), never the client.
    kv-server:N/accept       blocks in accept(); hands each connection to the loop.
    kv-server:N/client-C/reader   blocks in recv(); splits and parses lines; sends each batch of
                             requests to the loop; tells the loop when the peer is gone.
    kv-server:N/client-C/writer   drains the client's outgoing queue onto its socket; the only
                             thread that writes to or closes that socket. When the client has
                             gone, it still sends what was queued (a client that half-closes
                             gets its replies), then tells the loop and closes the socket.
close() asks the loop to stop: it closes the listener, shuts every client socket still in use
down (which wakes their readers and writers) and closes their queues; close() then joins every
thread.
Only channels and select synchronise these threads (no locks: the course's rule).
"""

from __future__ import annotations

import itertools
import logging
import socket

import csp
from kv.protocol import GET, PUT, DELETE, BadRequest, LineSplitter, parse_request
from kv.store import KVStore

OUTGOING_QUEUE_MESSAGES = 500
READ_CHUNK_BYTES = 64 * 1024
WRITE_BATCH_BYTES = 64 * 1024

log = logging.getLogger("kv.server")


class _Client:
    """The loop's record of one connection (owned by the loop thread)."""

    __slots__ = ("number", "sock", "outgoing", "reader_done", "threads", "writer_done")

    def __init__(self, number: int, sock: socket.socket) -> None:
        self.number = number
        self.sock = sock
        self.outgoing = csp.Chan(OUTGOING_QUEUE_MESSAGES)  # bytes or (key, value) pairs
        self.reader_done = csp.Chan()                     # closed when the reader exits
        self.threads: list = []
        self.writer_done = False  # the writer said it is done with the socket


class KeyValueServer:
    """A KV messaging server on `store` (which only the server's loop thread touches).

    `start(port)` listens and returns at once. `count_active()` (clients connected now) and
    `count_dropped()` (clients that have disconnected so far) block briefly (a question to the
    loop) and are thread-safe; after close they return the final counts.
    `close()` is idempotent, closes every connection at once and returns when no server thread
    is left.
    """

    def __init__(self, store: KVStore) -> None:
        self._store = store
        self._listener: socket.socket | None = None
        self.port: int | None = None
        self._connections = csp.Chan()   # accepted sockets, from the accept thread
        self._batches = csp.Chan()       # (client, [Request | BadRequest]) from readers
        self._departures = csp.Chan()    # client whose peer is gone, from its reader
        self._writers_done = csp.Chan()  # client whose writer no longer uses the socket
        self._queries = csp.Chan()       # reply Chan for (active, dropped)
        self._close_token = csp.Chan(1)  # whoever takes it runs the close
        self._close_token.send(None)
        self._stop = csp.Chan()          # closed by close(): tells the loop to stop
        self._stopped = csp.Chan()       # closed by the loop when it has stopped
        self._final_counts = (0, 0)
        self._threads: list = []
        self._client_threads: list = []  # loop-owned: threads of clients, pruned as they end

    # ---- public API ------------------------------------------------------------------------

    def start(self, port: int, host: str = "127.0.0.1") -> None:
        """Listen on `host:port` (0: a free port, then in `.port`) and return at once.

        Raises OSError when it cannot listen, RuntimeError if started twice or after close.
        """
        if self._listener is not None or self._stop.closed:
            raise RuntimeError("KeyValueServer.start: already started or closed")
        listener = socket.create_server((host, port), reuse_port=False, backlog=128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        name = f"kv-server:{self.port}"
        self._threads = [
            csp.go(self._loop, name=f"{name}/loop"),
            csp.go(self._accept, listener, name=f"{name}/accept"),
        ]

    def count_active(self) -> int:
        """Clients connected now."""
        return self._counts()[0]

    def count_dropped(self) -> int:
        """Clients that have disconnected so far, for any reason: closed normally, reset or
        vanished (the course calls them "dropped"; the server never drops a client itself)."""
        return self._counts()[1]

    def close(self) -> None:
        """Close every connection and stop; returns when every server thread is gone."""
        index, _, _ = csp.select(csp.Recv(self._close_token), default=True)
        if index != 0:
            self._stopped.recv()  # another caller is closing: wait for it
            return
        self._stop.close()
        if self._listener is None:  # never started
            self._stopped.close()
            return
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread
        except OSError:
            pass
        for thread in self._threads:
            thread.join()
        self._listener.close()

    # ---- the loop ---------------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        reply = csp.Chan(1)
        index, _, _ = csp.select(csp.Send(self._queries, reply), csp.Recv(self._stopped))
        if index == 1:
            return self._final_counts
        return reply.recv()[0]

    def _loop(self) -> None:
        clients: dict[int, _Client] = {}   # connected
        leaving: dict[int, _Client] = {}   # departed; the writer still flushes their replies
        dropped = 0   # clients that disconnected (the course's word; see count_dropped)
        numbers = itertools.count(1)
        cases = [csp.Recv(self._batches), csp.Recv(self._connections),
                 csp.Recv(self._departures), csp.Recv(self._writers_done),
                 csp.Recv(self._queries), csp.Recv(self._stop)]
        while True:
            index, value, _ = csp.select(*cases)
            if index == 0:
                client, requests = value
                if client.number in clients:
                    self._serve(client, requests)
            elif index == 1:
                client = _Client(next(numbers), value)
                clients[client.number] = client
                self._start_client(client)
            elif index == 2:
                client = value
                del clients[client.number]
                dropped += 1
                client.outgoing.close()  # the writer sends what is queued, then ends
                if not client.writer_done:
                    leaving[client.number] = client
                log.debug("client %d disconnected; %d active, %d disconnected so far",
                          client.number, len(clients), dropped)
            elif index == 3:
                value.writer_done = True
                leaving.pop(value.number, None)
            elif index == 4:
                value.send((len(clients), dropped))
            else:
                break
        self._final_counts = (len(clients), dropped)
        for client in list(clients.values()) + list(leaving.values()):
            if not client.writer_done:
                try:
                    client.sock.shutdown(socket.SHUT_RDWR)  # wakes its reader and writer
                except OSError:
                    pass
            if not client.outgoing.closed:
                client.outgoing.close()
        self._stopped.close()
        # Threads of departed clients are joined here too, so close() leaves none behind.
        for thread in self._client_threads:
            thread.join()

    def _start_client(self, client: _Client) -> None:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        name = f"kv-server:{self.port}/client-{client.number}"
        client.threads = [
            csp.go(self._read, client, name=f"{name}/reader"),
            csp.go(self._write, client, name=f"{name}/writer"),
        ]
        self._client_threads = [t for t in self._client_threads if t.is_alive()]
        self._client_threads += client.threads

    def _serve(self, client: _Client, requests: list) -> None:
        """Apply a batch of one client's requests to the store, in order."""
        store = self._store
        outgoing = client.outgoing
        for request in requests:
            if type(request) is BadRequest:
                _offer(outgoing, request.reply())
                continue
            op, key, value, new = request
            if op is PUT:
                store.put(key, value)
            elif op is GET:
                key_bytes = key.encode()
                for stored in store.get(key):
                    _offer(outgoing, (key_bytes, stored))
            elif op is DELETE:
                store.delete(key)
            else:
                store.update(key, value, new)

    # ---- per-connection threads -------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # the listener was shut down by close()
            index, _, _ = csp.select(csp.Send(self._connections, sock), csp.Recv(self._stopped))
            if index == 1:
                sock.close()
                return

    def _read(self, client: _Client) -> None:
        splitter = LineSplitter()
        sock = client.sock
        try:
            while True:
                try:
                    chunk = sock.recv(READ_CHUNK_BYTES)
                except OSError:
                    chunk = b""  # reset by the peer, or shut down by the loop
                if not chunk:
                    csp.select(csp.Send(self._departures, client), csp.Recv(self._stopped))
                    return
                lines = splitter.feed(chunk)
                if not lines:
                    continue
                requests = [line if type(line) is BadRequest else parse_request(line)
                            for line in lines]
                index, _, _ = csp.select(csp.Send(self._batches, (client, requests)),
                                         csp.Recv(self._stopped))
                if index == 1:
                    return
        finally:
            client.reader_done.close()

    def _write(self, client: _Client) -> None:
        outgoing = client.outgoing
        sock = client.sock
        try:
            while True:
                message, ok = outgoing.recv()
                if not ok:
                    return
                pieces = []
                size = 0
                # Batch what is already queued into one sendall. This thread is the queue's
                # only receiver, so the values counted by len() are there to take.
                more = len(outgoing)
                while True:
                    if type(message) is tuple:
                        key, value = message
                        pieces += (key, b":", value, b"\n")
                        size += len(key) + len(value) + 2
                    else:
                        pieces.append(message)
                        size += len(message)
                    if size >= WRITE_BATCH_BYTES or more == 0:
                        break
                    more -= 1
                    message, ok = outgoing.recv()
                try:
                    sock.sendall(b"".join(pieces))
                except OSError:
                    return  # the peer is gone; its reader reports the departure
        finally:
            client.reader_done.recv()  # the reader no longer uses the socket
            # Once the loop has this (or has stopped), it never touches the socket again.
            csp.select(csp.Send(self._writers_done, client), csp.Recv(self._stopped))
            sock.close()


def _offer(chan: csp.Chan, message) -> None:
    """Queue `message` without blocking; when the queue is full it is dropped (the course's
    rule for slow clients: drop the message, never the client). Only the loop sends on a
    client's queue and its writer only takes from it, so a queue with room now still has
    room when the send runs: the send cannot block."""
    if len(chan) < OUTGOING_QUEUE_MESSAGES:
        chan.send(message)
