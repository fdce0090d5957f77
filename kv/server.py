"""`KeyValueServer`: the P0 key-value messaging server over TCP (protocol in `kv.protocol`).

Threads (N is the port, C a client number):
    kv-server:N/loop         owns the store, the client table and both counts; selects over
                             new connections, request batches and departures, drained
                             writers, count queries and close. Parses each line of a batch as
                             it applies it (`apply_lines`: one pass, no request objects).
                             Never blocks on a client: a batch's replies go straight onto the
                             client's socket with one non-blocking send while its writer holds
                             nothing; what the socket refuses goes into the client's outgoing
                             queue (non-blocking sends), and from then on every reply does,
                             until the writer says it has drained the queue. A reply that
                             finds the queue full (OUTGOING_QUEUE_MESSAGES) is dropped, never
                             the client.
    kv-server:N/accept       blocks in accept(); hands each connection to the loop.
    kv-server:N/client-C/reader   blocks in recv(); splits what it read into lines and hands
                             them to the loop as one batch per read (a buffered channel of
                             BATCHES_QUEUED, so it goes back to recv() without waiting for the
                             loop); hands over the client's departure on the same channel when
                             the peer is gone, so it never overtakes the last batch.
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
Why batches are buffered and parsed by the loop (measured, issue 20): with an unbuffered
hand-off every batch cost the reader a park and the loop a wake-up, each a thread switch and a
GIL hand-over, and parsing into request objects cost more than applying them.
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
BATCHES_QUEUED = 64         # batches readers may hand over before the loop takes them
REPLY_FLUSH_MESSAGES = 64   # replies the loop gathers before it delivers them


log = logging.getLogger("kv.server")


def apply_lines(store: KVStore, lines: list, deliver) -> None:
    """Parse each request line (bytes, without its `\\n`) and apply it to `store`, in order;
    call `deliver(replies)` with the reply messages (whole lines) in order, in lists of about
    REPLY_FLUSH_MESSAGES (a Get's replies are never split), never with an empty list.

    Same outcome as `kv.protocol.parse_request` on each line followed by the store call, in
    one pass and without request objects: a line the fast checks accept parses exactly as
    parse_request parses it (op, non-empty key with no ':', the fields the op needs, a UTF-8
    key); any other line goes to parse_request itself, whose BadRequest is answered."""
    put, get, delete, update = store.put, store.get, store.delete, store.update
    replies: list = []
    for line in lines:
        op, _, rest = line.partition(b":")
        # Why the checks look as they do (each costs per line): a colon is looked for in the
        # decoded key, because `b":" in some_bytes` first tries the needle as an integer and
        # formats and clears a TypeError every time (several times slower than the rest).
        try:
            if op == b"Get":
                key = rest.decode()
                if key and ":" not in key:
                    values = get(key)
                    if values:
                        prefix = rest + b":"
                        for value in values:
                            replies.append(prefix + value + b"\n")
                        if len(replies) >= REPLY_FLUSH_MESSAGES:
                            deliver(replies)
                            replies = []
                    continue
            elif op == b"Put":
                key, colon, value = rest.partition(b":")
                if key and colon:
                    put(key.decode(), value)
                    continue
            elif op == b"Delete":
                key = rest.decode()
                if key and ":" not in key:
                    delete(key)
                    continue
            elif op == b"Update":
                key, colon, tail = rest.partition(b":")
                old, colon, new = tail.partition(b":")
                if key and colon:
                    update(key.decode(), old, new)
                    continue
        except UnicodeDecodeError:
            pass   # a key that is not UTF-8: nothing was applied
        # Not a request the checks above accept: parse_request gives the reason.
        request = parse_request(line)
        if type(request) is BadRequest:
            replies.append(request.reply())
        else:  # cannot happen (the checks mirror parse_request); kept exact all the same
            _apply_request(store, request, replies)
    if replies:
        deliver(replies)


def _apply_request(store: KVStore, request, replies: list) -> None:
    op, key, value, new = request
    if op is PUT:
        store.put(key, value)
    elif op is GET:
        prefix = key.encode() + b":"
        replies += [prefix + stored + b"\n" for stored in store.get(key)]
    elif op is DELETE:
        store.delete(key)
    else:
        store.update(key, value, new)


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
        # From readers, in each client's order: (client, lines, clean) for a batch of request
        # lines, (client, None, True) once the peer is gone (the same channel, so a departure
        # never overtakes the client's last batches). Buffered, so a reader hands a batch over
        # and goes back to recv() without waiting for the loop to take it.
        self._batches = csp.Chan(BATCHES_QUEUED)
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
        batch = csp.Recv(self._batches)   # a batch or a departure
        connection = csp.Recv(self._connections)
        writer_done = csp.Recv(self._writers_done)
        drained = csp.Recv(self._drained)
        query = csp.Recv(self._queries)
        stopping = csp.Recv(self._life.stopping)
        cases = (batch, connection, drained, writer_done, query, stopping)
        while True:
            case, value, _ = csp.select_case(*cases)
            if case is batch:
                client, lines, clean = value
                if lines is not None:
                    if client.number in clients:
                        self._serve(client, lines, clean)
                    continue
                # The peer is gone.
                del clients[client.number]
                dropped += 1
                client.outgoing.close()  # the writer sends what is queued, then ends
                if not client.writer_done:
                    leaving[client.number] = client
                log.debug("client %d disconnected; %d active, %d disconnected so far",
                          client.number, len(clients), dropped)
            elif case is connection:
                client = _Client(next(numbers), value)
                clients[client.number] = client
                self._start_client(client)
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

    def _serve(self, client: _Client, lines: list, clean: bool) -> None:
        """Apply a batch of one client's request lines to the store, in order, delivering the
        replies every REPLY_FLUSH_MESSAGES or so (so a batch of many Gets never holds all its
        replies at once). `clean`: the batch holds only lines (no BadRequest of the reader)."""
        deliver = lambda replies: self._deliver(client, replies)  # noqa: E731
        if clean:
            apply_lines(self._store, lines, deliver)
            return
        start = 0
        for end, line in enumerate(lines):
            if type(line) is BadRequest:
                apply_lines(self._store, lines[start:end], deliver)
                deliver([line.reply()])
                start = end + 1
        apply_lines(self._store, lines[start:], deliver)

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
                    csp.select(csp.Send(self._batches, (client, None, True)),
                               csp.Recv(self._loop_done))
                    return
                reported = splitter.too_long_lines
                lines = splitter.feed(chunk)
                if not lines:
                    continue
                # One hand-off per read buffer; the loop parses each line as it applies it.
                hand_over = csp.Send(self._batches,
                                     (client, lines, splitter.too_long_lines == reported))
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

