"""`KeyValueServer`: the P0 key-value messaging server over TCP (protocol in `kv.protocol`).

Threads (N is the port, C a client number):
    kv-server:N/loop         owns the store, the client table and both counts; selects over
                             new connections, request batches, departures, drained writers,
                             count queries and close. Never blocks on a client: a batch's
                             replies go straight onto the client's socket with one
                             non-blocking send while its writer holds nothing; what the socket
                             refuses goes into the client's outgoing queue (non-blocking
                             sends), and from then on every reply does, until the writer says
                             it has drained the queue. A reply that finds the queue full
                             (OUTGOING_QUEUE_MESSAGES) is dropped, never the client.
    kv-server:N/accept       blocks in accept(); hands each connection to the loop.
    kv-server:N/client-C/reader   blocks in recv(); splits and parses lines; sends each batch of
                             requests to the loop; tells the loop when the peer is gone.
    kv-server:N/client-C/writer   drains the client's outgoing queue onto its socket and tells
                             the loop each time it has sent everything queued so far (a count
                             of messages, so the loop knows nothing is in its hands); the only
                             thread that closes the socket. When the client has gone, it still
                             sends what was queued (a client that half-closes gets its
                             replies), then tells the loop and closes the socket.
Why the loop writes: with only a writer thread, a batch of a few hundred Gets fills the
500-message queue before a writer starved of CPU (a loaded machine) is scheduled, and a client
that reads perfectly well loses replies. The socket's own buffer takes them at once. The two
writers never overlap: the loop writes only while the writer's count of sent messages equals
the loop's count of queued ones, so the writer is idle and holds nothing; and the loop never
writes after a client's departure, which comes before the writer closes the socket.
close() (through csp.Lifecycle) closes `stopping`, which tells the loop to stop: it shuts
every client socket still in use down (which wakes their readers and writers) and closes their
queues; close() closes the listener (csp.tcp), joins every thread, then the lifecycle is
stopped. Only channels and select synchronise these threads (no locks: the course's rule).
"""

from __future__ import annotations

import itertools
import logging
import socket

import csp
from csp import tcp
from kv.protocol import GET, PUT, DELETE, BadRequest, LineSplitter, parse_request
from kv.store import KVStore

OUTGOING_QUEUE_MESSAGES = 500
READ_CHUNK_BYTES = 64 * 1024
WRITE_BATCH_BYTES = 64 * 1024

log = logging.getLogger("kv.server")


class _Client:
    """The loop's record of one connection (owned by the loop thread)."""

    __slots__ = ("number", "sock", "outgoing", "reader_done", "threads", "writer_done",
                 "queued", "backlogged")

    def __init__(self, number: int, sock: socket.socket) -> None:
        self.number = number
        self.sock = sock
        self.outgoing = csp.Chan(OUTGOING_QUEUE_MESSAGES)  # bytes, or a tuple of pieces
        self.reader_done = csp.Chan()                     # closed when the reader exits
        self.threads: list = []
        self.writer_done = False  # the writer said it is done with the socket
        self.queued = 0           # messages put on `outgoing` so far
        self.backlogged = False   # the writer may hold replies: queue, do not write directly


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
        self._drained = csp.Chan()       # (client, messages sent) from an idle writer
        self._queries = csp.Chan()       # reply Chan for (active, dropped)
        self._life = csp.Lifecycle()     # stopping tells the loop to stop
        self._loop_done = csp.Chan()     # closed by the loop when it has stopped
        self._final_counts = (0, 0)
        self._loop_thread = None
        self._accept_thread = None
        self._client_threads: list = []  # loop-owned: threads of clients, pruned as they end

    # ---- public API ------------------------------------------------------------------------

    def start(self, port: int, host: str = "127.0.0.1") -> None:
        """Listen on `host:port` (0: a free port, then in `.port`) and return at once.

        Raises OSError when it cannot listen, RuntimeError if started twice or after close.
        """
        if self._listener is not None or self._life.is_stopping:
            raise RuntimeError("KeyValueServer.start: already started or closed")
        listener = socket.create_server((host, port), reuse_port=False, backlog=128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        name = f"kv-server:{self.port}"
        self._loop_thread = csp.go(self._loop, name=f"{name}/loop")
        self._accept_thread = csp.go(tcp.accept_loop, listener, self._connections,
                                     self._loop_done, name=f"{name}/accept")

    def count_active(self) -> int:
        """Clients connected now."""
        return self._counts()[0]

    def count_dropped(self) -> int:
        """Clients that have disconnected so far, for any reason: closed normally, reset or
        vanished (the course calls them "dropped"; the server never drops a client itself)."""
        return self._counts()[1]

    def close(self) -> None:
        """Close every connection and stop; returns when every server thread is gone."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        if self._listener is None:  # never started
            self._loop_done.close()
            return
        tcp.close_listener(self._listener, self._accept_thread)
        self._loop_thread.join()  # the loop saw `stopping` and joins its client threads

    # ---- the loop ---------------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        reply = csp.Chan(1)
        ask = csp.Send(self._queries, reply)
        case, _, _ = csp.select_case(ask, csp.Recv(self._loop_done))
        if case is not ask:
            return self._final_counts
        return reply.recv()[0]

    def _loop(self) -> None:
        clients: dict[int, _Client] = {}   # connected
        leaving: dict[int, _Client] = {}   # departed; the writer still flushes their replies
        dropped = 0   # clients that disconnected (the course's word; see count_dropped)
        numbers = itertools.count(1)
        batch = csp.Recv(self._batches)
        connection = csp.Recv(self._connections)
        departure = csp.Recv(self._departures)
        writer_done = csp.Recv(self._writers_done)
        drained = csp.Recv(self._drained)
        query = csp.Recv(self._queries)
        stopping = csp.Recv(self._life.stopping)
        cases = (batch, connection, departure, drained, writer_done, query, stopping)
        while True:
            case, value, _ = csp.select_case(*cases)
            if case is batch:
                client, requests = value
                if client.number in clients:
                    self._serve(client, requests)
            elif case is connection:
                client = _Client(next(numbers), value)
                clients[client.number] = client
                self._start_client(client)
            elif case is departure:
                client = value
                del clients[client.number]
                dropped += 1
                client.outgoing.close()  # the writer sends what is queued, then ends
                if not client.writer_done:
                    leaving[client.number] = client
                log.debug("client %d disconnected; %d active, %d disconnected so far",
                          client.number, len(clients), dropped)
            elif case is drained:
                client, sent = value
                if sent == client.queued:   # else more was queued since: still backlogged
                    client.backlogged = False
            elif case is writer_done:
                value.writer_done = True
                leaving.pop(value.number, None)
            elif case is query:
                value.send((len(clients), dropped))
            else:  # stopping
                break
        self._final_counts = (len(clients), dropped)
        for client in list(clients.values()) + list(leaving.values()):
            if not client.writer_done:
                tcp.shutdown(client.sock)  # wakes its reader and writer
            if not client.outgoing.closed:
                client.outgoing.close()
        self._loop_done.close()
        # Threads of departed clients are joined here too, so close() leaves none behind.
        for thread in self._client_threads:
            thread.join()

    def _start_client(self, client: _Client) -> None:
        name = f"kv-server:{self.port}/client-{client.number}"
        client.threads = [
            csp.go(self._read, client, name=f"{name}/reader"),
            csp.go(self._write, client, name=f"{name}/writer"),
        ]
        self._client_threads = [t for t in self._client_threads if t.is_alive()]
        self._client_threads += client.threads

    def _serve(self, client: _Client, requests: list) -> None:
        """Apply a batch of one client's requests to the store, in order, and deliver the
        replies."""
        store = self._store
        replies = []
        for request in requests:
            if type(request) is BadRequest:
                replies.append(request.reply())
                continue
            op, key, value, new = request
            if op is PUT:
                store.put(key, value)
            elif op is GET:
                prefix = key.encode() + b":"
                for stored in store.get(key):
                    replies.append(prefix + stored + b"\n")
            elif op is DELETE:
                store.delete(key)
            else:
                store.update(key, value, new)
        if replies:
            self._deliver(client, replies)

    def _deliver(self, client: _Client, replies: list) -> None:
        """Write `replies` (whole messages) onto the client's socket without blocking while the
        writer is idle; queue what the socket refuses (the unsent tail of a message included,
        so the stream stays whole), dropping messages that find the queue full."""
        if not client.backlogged:
            data = replies[0] if len(replies) == 1 else b"".join(replies)
            try:
                sent = client.sock.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return   # the peer is gone: its reader reports the departure
            if sent == len(data):
                return
            cut = 0
            while sent >= len(replies[cut]):
                sent -= len(replies[cut])
                cut += 1
            replies = replies[cut:]
            if sent:
                replies[0] = replies[0][sent:]
            client.backlogged = True   # the queue is empty now: the tail fits
        outgoing = client.outgoing
        for reply in replies:
            # Only the loop sends on a client's queue and its writer only takes from it, so a
            # queue with room now still has room when the send runs: it cannot block.
            if len(outgoing) < OUTGOING_QUEUE_MESSAGES:
                outgoing.send(reply)
                client.queued += 1

    # ---- per-connection threads -------------------------------------------------------------

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
                    csp.select(csp.Send(self._departures, client), csp.Recv(self._loop_done))
                    return
                lines = splitter.feed(chunk)
                if not lines:
                    continue
                requests = [line if type(line) is BadRequest else parse_request(line)
                            for line in lines]
                hand_over = csp.Send(self._batches, (client, requests))
                case, _, _ = csp.select_case(hand_over, csp.Recv(self._loop_done))
                if case is not hand_over:
                    return
        finally:
            client.reader_done.close()

    def _write(self, client: _Client) -> None:
        try:
            # False when the peer is gone: its reader reports the departure.
            tcp.write_batches(client.sock, client.outgoing, WRITE_BATCH_BYTES,
                              on_drained=lambda sent: self._say_drained(client, sent))
        finally:
            client.reader_done.recv()  # the reader no longer uses the socket
            # Once the loop has this (or has stopped), it never touches the socket again.
            csp.select(csp.Send(self._writers_done, client), csp.Recv(self._loop_done))
            client.sock.close()

    def _say_drained(self, client: _Client, sent: int) -> None:
        csp.select(csp.Send(self._drained, (client, sent)), csp.Recv(self._loop_done))

