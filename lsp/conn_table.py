"""The LSP server's table of connections, as a pure object its event loop drives: no sockets,
threads or clocks. Events go in (a received message with its sender's address, an epoch, a
write, a close_conn, the server starting to close, read() taking the next read event); what
comes out is the messages to transmit, each with its address, in the order to send them, and
read events queued for read(): `(conn_id, payload)` or `Lost(conn_id)`.

Policy
- Ids count up from 1 and are never reused, so a stale message, write or close_conn can never
  reach a later connection.
- A Connect from an address:
  * whose connection is live (in the table, not closed with close_conn) with the SAME initial
    sequence number is a duplicate (its Ack may have been lost): it is acked again with the
    same id and nothing is created;
  * whose live connection has a DIFFERENT initial sequence number means its client restarted
    on the same port: the old connection is lost at once (read() reports it after its data,
    and nothing more is sent to it) and the Connect opens a new connection;
  * with no connection in the table (never had one, or it was lost, or closed with close_conn)
    opens a new connection with a new id, whatever its sequence number.
  A server that is closing opens no new connection (duplicates are still acked).
  A Connect with the same initial sequence number cannot tell a duplicate from a client that
  restarted on the same port before its old connection was lost; it is taken as a duplicate.
- Any other message counts only if it names a connection in the table and comes from that
  connection's address; anything else is ignored.
- A connection that hears nothing for epoch_limit epochs is lost: its Lost marker is queued
  for read() after its data (read() raises ConnectionLost once) and it leaves the table at once.
- close_conn: data of that connection waiting for read() is dropped and none is queued later
  (the peer's Data is still acked); what was written is still sent, and the connection leaves
  the table once all of it is acknowledged, or silently if it is lost first (the server closed
  it itself: no read() error). A write or close_conn for an id not in the table, or already
  closed, raises ConnectionLost; so does a write once the server is closing.
- `settled` (the server may stop) once every connection in the table has nothing unacked.
- Memory and work: a connection leaves every map the moment it is lost or its close is done
  (`remove`), so the table holds only connections that may still send or receive, and an epoch
  visits only them. Read events already queued stay until read() takes them.

Outputs: every event method returns a list of `(Message, addr)` to transmit, in order.
`receive_batch` takes what the reader handed over in one go and acknowledges each connection's
in-order Data with one Ack or CAck at the end (see lsp.connection).
Not thread-safe: one event loop owns it.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque

from lsp.connection import Connection
from lsp.errors import ConnectionLost
from lsp.message import Message, MsgType, new_ack
from lsp.params import Params

log = logging.getLogger("lsp")


class Lost:
    """A read event: connection `conn_id` was lost after the data queued before it."""
    __slots__ = ("conn_id",)

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id

    def __repr__(self) -> str:
        return f"Lost({self.conn_id})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Lost and other.conn_id == self.conn_id

    def __hash__(self) -> int:
        return hash(("Lost", self.conn_id))


class _Entry:
    __slots__ = ("conn", "addr", "initial_seq_num", "closing")

    def __init__(self, conn: Connection, addr, initial_seq_num: int) -> None:
        self.conn = conn
        self.addr = addr
        self.initial_seq_num = initial_seq_num
        self.closing = False   # close_conn'd: still sending what was written


class ConnTable:
    """Every connection of one LSP server; `name` only labels debug log lines."""

    def __init__(self, params: Params, name: str = "lsp-server") -> None:
        self._params = params
        self._name = name
        self._entries: dict[int, _Entry] = {}
        self._by_addr: dict[object, int] = {}   # addr -> its newest connection's id
        self._reads: deque = deque()            # (conn_id, payload) or Lost, for read()
        self._ids = itertools.count(1)
        self._accepting = True

    # ---- what the loop and tests may look at ------------------------------------------------

    def __len__(self) -> int:
        """Connections in the table (live or still sending after close_conn)."""
        return len(self._entries)

    def conn_ids(self) -> list[int]:
        return list(self._entries)

    def address_of(self, conn_id: int):
        """The address of connection `conn_id` in the table; None if it is not in it."""
        entry = self._entries.get(conn_id)
        return None if entry is None else entry.addr

    def ids_by_address(self) -> dict:
        """A copy of the address map: address -> the id a Connect from it would be acked with
        or would replace."""
        return dict(self._by_addr)

    def is_closing(self, conn_id: int) -> bool:
        entry = self._entries.get(conn_id)
        return entry is not None and entry.closing

    @property
    def next_read(self):
        """The read event read() would get now, or None."""
        return self._reads[0] if self._reads else None

    @property
    def reads_queued(self) -> int:
        """Read events waiting for read()."""
        return len(self._reads)

    @property
    def settled(self) -> bool:
        """Nothing written to any connection in the table waits to be sent or acknowledged."""
        return all(entry.conn.send.idle for entry in self._entries.values())

    def picture(self) -> list[dict]:
        """Every connection in the table, by id (Connection.picture plus its address and
        whether close_conn was called), for people to look at."""
        pictures = []
        for conn_id, entry in self._entries.items():
            picture = entry.conn.picture()
            picture["address"] = f"{entry.addr[0]}:{entry.addr[1]}" if isinstance(
                entry.addr, tuple) else str(entry.addr)
            picture["closing"] = entry.closing
            pictures.append(picture)
        return pictures

    # ---- events ------------------------------------------------------------------------------

    def receive(self, message: Message, addr) -> list[tuple[Message, object]]:
        """A message from `addr`."""
        return self.receive_batch([(message, addr)])

    def receive_batch(self, batch) -> list[tuple[Message, object]]:
        """Messages `(Message, addr)` received together, in arrival order. Each connection's
        in-order Data is acknowledged once, after the batch (lsp.connection: one CAck for a
        contiguous run, the plain Ack of a single one)."""
        out = []
        touched: dict[int, _Entry] = {}
        entries = self._entries
        for message, addr in batch:
            if message.type == MsgType.CONNECT:
                out.extend(self._connect(message.seq_num, addr))
                continue
            conn_id = message.conn_id
            entry = entries.get(conn_id)
            if entry is None or entry.addr != addr:
                continue
            touched[conn_id] = entry
            messages, delivered = entry.conn.receive(message, defer_ack=True)
            if entry.closing:
                if entry.conn.send.idle:
                    self.remove(conn_id)
            elif delivered:
                self._reads.extend((conn_id, payload) for payload in delivered)
            if messages:
                out.extend((m, addr) for m in messages)
        for entry in touched.values():
            # Also for a connection that left the table during the batch: the Data it sent
            # was received, and its client is owed the ack (as it would have had at once).
            out.extend((m, entry.addr) for m in entry.conn.closing_acks())
        return out

    def epoch(self) -> list[tuple[Message, object]]:
        """One epoch passed: retransmissions and heartbeats; connections silent for too long
        are lost."""
        out = []
        for conn_id, entry in list(self._entries.items()):
            messages = entry.conn.epoch()
            if entry.conn.lost:
                self._lose(conn_id)
            else:
                out.extend((m, entry.addr) for m in messages)
        return out

    def write(self, conn_id: int, payload: bytes) -> list[tuple[Message, object]]:
        """Queue `payload` for `conn_id`. Raises ConnectionLost for an id not in the table, a
        connection closed with close_conn, or any id once the server is closing."""
        entry = self._entries.get(conn_id)
        if entry is None or entry.closing or not self._accepting:
            raise ConnectionLost(conn_id)
        return [(m, entry.addr) for m in entry.conn.write(payload)]

    def close_conn(self, conn_id: int) -> None:
        """Stop delivering `conn_id`'s data; it leaves once what was written is acknowledged.
        Raises ConnectionLost for an id not in the table or already closed."""
        entry = self._entries.get(conn_id)
        if entry is None or entry.closing:
            raise ConnectionLost(conn_id)
        entry.closing = True
        if any(type(item) is tuple and item[0] == conn_id for item in self._reads):
            self._reads = deque(item for item in self._reads
                                if type(item) is not tuple or item[0] != conn_id)
        if entry.conn.send.idle:
            self.remove(conn_id)

    def stop_accepting(self) -> None:
        """The server is closing: no new connection, no more writes."""
        self._accepting = False

    def read_taken(self) -> None:
        """read() took `next_read`."""
        self._reads.popleft()

    def unread(self, event) -> None:
        """`event`, taken with read_taken() but not yet read, is back: it is `next_read` again
        (the server's loop takes back what waits in its capacity-1 channel to read() before a
        close_conn, whose connection's data read() must never get)."""
        self._reads.appendleft(event)

    def remove(self, conn_id: int) -> None:
        """Forget `conn_id` in every map (nothing more is sent to or accepted from it); read
        events already queued for it stay. No-op for an id not in the table."""
        entry = self._entries.pop(conn_id, None)
        if entry is not None and self._by_addr.get(entry.addr) == conn_id:
            del self._by_addr[entry.addr]

    # ---- the rules ---------------------------------------------------------------------------

    def _connect(self, initial_seq_num: int, addr) -> list[tuple[Message, object]]:
        known = self._by_addr.get(addr)
        if known is not None:
            entry = self._entries[known]
            if not entry.closing:
                if entry.initial_seq_num == initial_seq_num:
                    return [(new_ack(known, initial_seq_num), addr)]
                log.debug("%s: conn %d's client restarted (Connect from %s with a new "
                          "sequence number)", self._name, known, addr)
                self._lose(known)
        if not self._accepting:
            return []
        conn_id = next(self._ids)
        self._entries[conn_id] = _Entry(Connection(conn_id, initial_seq_num, self._params),
                                        addr, initial_seq_num)
        self._by_addr[addr] = conn_id
        log.debug("%s: conn %d from %s", self._name, conn_id, addr)
        return [(new_ack(conn_id, initial_seq_num), addr)]

    def _lose(self, conn_id: int) -> None:
        entry = self._entries[conn_id]
        if entry.closing:
            log.debug("%s: conn %d lost while closing", self._name, conn_id)
        else:
            log.debug("%s: conn %d lost", self._name, conn_id)
            self._reads.append(Lost(conn_id))
        self.remove(conn_id)
