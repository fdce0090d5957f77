"""The sync actor: one per server, the only actor that talks to other servers.

It holds a replica (merged from the local query actors' batches and the remote sync actors'),
so it can answer a new server's snapshot request and resend what a remote server lost. Each
TICK_SECONDS it sends every remote sync actor one RemoteBatch (local Puts that server has not
had, resends it asked for, a snapshot if it asked, and the per-origin versions that reveal
losses: see cmud.coverage), or a heartbeat of versions alone when HEARTBEAT_SECONDS passed
without one; and it hands the local query actors, in one LocalBatch, the remote Puts that
changed its replica. The strategy as a whole is described in cmud.query_actor.

Threads: runs on its actor thread (the actor system's); its fields are touched by that thread
only. Nothing here blocks, sleeps or does I/O (the course's actor rules).
"""

from __future__ import annotations

import time

from actor import Actor, ActorRef
from cmud import lww
from cmud.coverage import Coverage
from cmud.messages import LocalBatch, RemoteBatch, SyncInit, Tick

TICK_SECONDS = 0.12
HEARTBEAT_SECONDS = 0.5
RETRY_SECONDS = 1.0   # between two requests for the same missing Puts or snapshot


class Peer:
    """What this sync actor knows of one remote sync actor."""

    def __init__(self, ref: ActorRef, has_our_snapshot_need: bool) -> None:
        self.ref = ref
        self.pending: dict[str, lww.Entry] = {}   # local Puts it has not been sent
        self.sent: dict[str, int] = {}            # local origin -> latest seq sent to it
        self.resend: dict[str, int] = {}          # local origin -> it lost what follows
        self.coverage = Coverage()                # what we are sure to have of its origins
        self.need: dict[str, int] = {}            # to ask it for, next batch
        self.asked_at = -RETRY_SECONDS            # last request for missing Puts
        self.snapshot_due = False                 # it asked for our whole state
        self.have_snapshot = not has_our_snapshot_need
        self.snapshot_asked_at = -RETRY_SECONDS
        self.last_sent_at = -HEARTBEAT_SECONDS


class SyncActor(Actor):
    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.store: dict[str, lww.Entry] = {}
        self.actors: list = []
        self.local_origins: set[str] = set()
        self.latest: dict[str, int] = {}          # local origin -> latest seq seen
        self.peers: dict[str, Peer] = {}          # remote sync actor uid -> Peer
        self.to_local: dict[str, lww.Entry] = {}  # remote Puts for the local query actors

    def on_message(self, message) -> None:
        kind = type(message)
        if kind is LocalBatch:
            self.from_local(message)
        elif kind is RemoteBatch:
            self.from_remote(message)
        elif kind is Tick:
            self.tick()
        elif kind is SyncInit:
            self.actors = list(message.actors)
            self.local_origins = {ref.uid() for ref in self.actors}
            for ref in message.remotes:
                self.peers.setdefault(ref.uid(), Peer(ref, has_our_snapshot_need=True))
            self.ctx.tell_after(self.ctx.self, Tick(), TICK_SECONDS)
        else:
            raise TypeError(f"sync actor: unexpected {kind.__name__}")

    def from_local(self, batch: LocalBatch) -> None:
        latest = self.latest
        for key, entry in lww.unpack(batch.origins, batch.rows):
            if entry.seq > latest.get(entry.origin, 0):
                latest[entry.origin] = entry.seq
            if lww.merge(self.store, key, entry):
                for peer in self.peers.values():
                    peer.pending[key] = entry

    def from_remote(self, batch: RemoteBatch) -> None:
        if type(batch.sender) is not ActorRef or type(batch.ranges) is not dict \
                or type(batch.latest) is not dict or type(batch.need) is not dict:
            raise ValueError("malformed remote batch")
        pairs = lww.unpack(batch.origins, batch.rows)
        peer = self.peers.get(batch.sender.uid())
        if peer is None:   # a newer server, met through its first batch
            peer = self.peers[batch.sender.uid()] = Peer(batch.sender,
                                                         has_our_snapshot_need=False)
            # Its first batch asks for our snapshot. Should that batch have been lost, our
            # ranges to it start at today's versions, so it sees the gap and asks for the rest.
            peer.sent = dict(self.latest)
        for origin, span in batch.ranges.items():
            if type(span) is list and len(span) == 2 and all(type(n) is int for n in span):
                peer.coverage.apply_range(origin, span[0], span[1])
        if batch.snapshot:
            peer.have_snapshot = True
        if batch.want_snapshot:
            peer.snapshot_due = True
        for origin, seq in batch.need.items():
            if origin in self.local_origins and type(seq) is int:
                peer.resend[origin] = min(seq, peer.resend.get(origin, seq))
        for key, entry in pairs:
            if entry.origin not in self.local_origins and lww.merge(self.store, key, entry):
                self.to_local[key] = entry
        latest = {o: s for o, s in batch.latest.items() if type(s) is int}
        missing = peer.coverage.missing(latest)
        if missing:
            peer.need = missing

    def tick(self) -> None:
        now = time.monotonic()
        for peer in self.peers.values():
            batch = self.batch_for(peer, now)
            if batch is not None:
                self.ctx.tell(peer.ref, batch)
                peer.last_sent_at = now
        if self.to_local:
            origins, rows = lww.pack(self.to_local)
            self.to_local = {}
            batch = LocalBatch(origins, rows)
            for ref in self.actors:
                self.ctx.tell(ref, batch)
        self.ctx.tell_after(self.ctx.self, Tick(), TICK_SECONDS)

    def batch_for(self, peer: Peer, now: float) -> RemoteBatch | None:
        """The next batch for `peer`, or None when it has nothing to say yet."""
        batch = RemoteBatch(self.ctx.self)
        if peer.snapshot_due:
            entries = self.store
            lows = {origin: 0 for origin in self.latest}
            peer.snapshot_due = False
            batch.snapshot = True
        else:
            entries = peer.pending
            lows = {origin: seq for origin, seq in peer.sent.items()
                    if seq < self.latest.get(origin, 0)}
            for origin, seq in self.latest.items():
                if origin not in peer.sent and seq > 0:
                    lows[origin] = 0
            if peer.resend:
                entries = dict(entries)
                for key, entry in self.store.items():
                    after = peer.resend.get(entry.origin)
                    if after is not None and entry.seq > after:
                        entries[key] = entry
                for origin, after in peer.resend.items():
                    lows[origin] = min(after, lows.get(origin, after))
        peer.resend = {}
        peer.pending = {}
        batch.ranges = {origin: [low, self.latest.get(origin, 0)] for origin, low in lows.items()}
        for origin in lows:
            peer.sent[origin] = self.latest.get(origin, 0)
        if entries:
            batch.origins, batch.rows = lww.pack(entries)
        if peer.need and now - peer.asked_at >= RETRY_SECONDS:
            batch.need, peer.need = peer.need, {}
            peer.asked_at = now
        if not peer.have_snapshot and now - peer.snapshot_asked_at >= RETRY_SECONDS:
            batch.want_snapshot = True
            peer.snapshot_asked_at = now
        urgent = batch.rows or batch.ranges or batch.need or batch.want_snapshot \
            or batch.snapshot
        if not urgent and now - peer.last_sent_at < HEARTBEAT_SECONDS:
            return None
        batch.latest = dict(self.latest)
        return batch
