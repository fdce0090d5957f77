"""The query actor: one full replica of the store, answering Get, Put and List at once.

Sync strategy. Local: each query actor stamps the Puts it accepts (wall-clock milliseconds,
its uid as the tie-break, cmud.lww) and keeps them in a small pending map, one entry per key,
so a key overwritten many times in a burst travels once. The first pending Put schedules a
Flush to itself FLUSH_SECONDS later; the Flush sends the pending entries as one LocalBatch to
every other query actor of the server and to the server's sync actor, then forgets them. So an
ordered pair of actors carries at most one message per FLUSH_SECONDS (under the course's 10/s
whatever the Put rate), a Put is everywhere on its server within about FLUSH_SECONDS (the
course allows 500 ms), only new Puts ever travel (never the state), and an idle server sends
nothing. A query actor merges what it receives with LWW and forwards nothing: every actor
hears each local Put from the actor that accepted it, and each remote Put from its sync actor.

Remote: one sync actor per server (cmud.sync_actor) holds a replica too and is the only one
that talks to other servers, so each Put crosses to a remote server once, not once per remote
actor (the course's NoBcast). Every TICK_SECONDS it sends each remote sync actor one
RemoteBatch of the local Puts that server has not had, and hands its own query actors, in one
LocalBatch, the remote Puts that changed its replica. A new server asks every server named in
its descs for a snapshot (their whole state, once) and starts sending its own Puts to them at
once; an older server learns a new one from its first batch. Beyond the course, which assumes
nothing is lost: each batch says which sequence numbers of each origin it covers and carries
the sender's latest ones, so a dropped batch or a partition shows up as a gap, and the
receiver asks for exactly the missing origins' Puts (cmud.coverage); heartbeats every
HEARTBEAT_SECONDS make a lost last batch visible too. Nothing but those small version maps is
added in steady state.

Threads: each actor runs on its own actor thread (the actor system's); its fields are touched
by that thread only. Nothing here blocks, sleeps or does I/O (the course's actor rules).
"""

from __future__ import annotations

import time

from actor import Actor
from cmud import lww
from cmud.common import GetArgs, GetReply, ListArgs, ListReply, PutArgs, PutReply
from cmud.messages import Flush, LocalBatch, Query, QueryInit, StatusArgs, StatusReply

FLUSH_SECONDS = 0.12


def batch_size_bytes(rows: list) -> int:
    """What a batch carries, roughly: keys and values plus a fixed cost per entry (for
    status figures; the actor system's stats count the real marshalled bytes)."""
    return sum(len(row[0]) + len(row[1]) + 24 for row in rows)


class QueryActor(Actor):
    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.uid = ctx.self.uid()
        self.store: dict[str, lww.Entry] = {}
        self.peers: list = []
        self.sync = None
        self.seq = 0                               # Puts accepted so far (the origin's version)
        self.pending: dict[str, lww.Entry] = {}    # accepted, not yet sent to the others
        self.flush_scheduled = False
        self.sync_in = [0, 0]                      # messages, bytes
        self.sync_out = [0, 0]
        self.last_sync_at = None

    def on_message(self, message) -> None:
        kind = type(message)
        if kind is Query:
            self.answer(message)
        elif kind is LocalBatch:
            self.merge_batch(message)
        elif kind is Flush:
            self.flush()
        elif kind is QueryInit:
            self.peers = list(message.peers)
            self.sync = message.sync
        else:
            raise TypeError(f"query actor {self.uid}: unexpected {kind.__name__}")

    def answer(self, query: Query) -> None:
        args = query.args
        kind = type(args)
        if kind is GetArgs:
            entry = self.store.get(args.key)
            reply = GetReply(entry.value, True) if entry else GetReply("", False)
        elif kind is PutArgs:
            self.put(args.key, args.value)
            reply = PutReply()
        elif kind is ListArgs:
            prefix = args.prefix
            reply = ListReply({key: entry.value for key, entry in self.store.items()
                               if key.startswith(prefix)})
        elif kind is StatusArgs:
            age = -1 if self.last_sync_at is None else \
                int((time.monotonic() - self.last_sync_at) * 1000)
            reply = StatusReply(self.uid, len(self.store), self.seq, self.sync_in[0],
                                self.sync_in[1], self.sync_out[0], self.sync_out[1], age)
        else:
            raise TypeError(f"query actor {self.uid}: unexpected query {kind.__name__}")
        self.ctx.tell(query.reply_to, reply)

    def put(self, key: str, value: str) -> None:
        current = self.store.get(key)
        self.seq += 1
        entry = lww.Entry(value, lww.new_stamp(int(time.time() * 1000), current), self.uid,
                          self.seq)
        self.store[key] = entry
        self.pending[key] = entry
        if not self.flush_scheduled and (self.peers or self.sync is not None):
            self.flush_scheduled = True
            self.ctx.tell_after(self.ctx.self, Flush(), FLUSH_SECONDS)

    def flush(self) -> None:
        self.flush_scheduled = False
        if not self.pending:
            return
        origins, rows = lww.pack(self.pending)
        self.pending = {}
        batch = LocalBatch(origins, rows)
        targets = self.peers + ([self.sync] if self.sync is not None else [])
        for ref in targets:
            self.ctx.tell(ref, batch)
        self.sync_out[0] += len(targets)
        self.sync_out[1] += len(targets) * batch_size_bytes(rows)

    def merge_batch(self, batch: LocalBatch) -> None:
        pairs = lww.unpack(batch.origins, batch.rows)
        store = self.store
        for key, entry in pairs:
            lww.merge(store, key, entry)
        self.sync_in[0] += 1
        self.sync_in[1] += batch_size_bytes(batch.rows)
        self.last_sync_at = time.monotonic()
