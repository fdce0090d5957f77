"""The staff's remote sender: one outgoing queue and one thread per remote address, which
hands the student's `actor.remote.remote_tell` one batch at a time (the course's sender
goroutine, which calls `remoteTell` for each message in order).

A system has one `RemoteSender` per remote address it has told something: an unbounded channel
of (counter, marshalled message, due time) and the thread that drains it in order. The due time
is the push time plus the artificial latency (`Faults.latency_ms`, read when the sender is
made; 0.0, always due, without latency). The thread takes everything waiting, waits until the
oldest is due, then passes everything due as ONE `RemoteTellBatch` to `remote_tell`, which must
not wait for the reply (pipelining). The connection is dialled on the first batch and again
after a loss. A batch that cannot be delivered (the link is blocked by `Faults`, the dial
fails, the connection is lost) is dropped, never retried: tells are at most once. Each loss is
reported through the system's `report_link(address, exc, news)`, where `news` comes from the
link's `LinkReport` (a pure rule: only a change of the link's state is news), so the default
handler can log a peer that is down for an hour in two lines.

What a tell costs here: one channel send on the teller's thread and one receive on the
sender's; the rest (decoding the texts, the frame, the socket write, and at the receiver the
hand-off to the actor) is paid once per batch, and a busy sender's batches hold hundreds.

Threads:
    actor:A/to:B       one per remote address B of the system at A (a RemoteSender): owns the
                       connection to B, the backlog of tells not yet due and the calls in
                       flight; stops when its channel is closed or the system stops.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import csp
import rpc
from actor.faults import Faults, RemoteTellsBlocked
from actor.remote import remote_tell
from actor.wire import RemoteTellBatch

MAX_BATCH_BYTES = 1 << 20   # message text per remote call (a bigger message goes alone)
DIAL_TIMEOUT_SECONDS = 2.0


class LinkReport:
    """When the state of one remote link is news, the rule behind the default log: the first
    lost batch while the link worked ("dropped") and the first batch through after losses
    ("again"); the losses in between, however many, are no news. A link starts as working.
    Pure (no I/O, no clock); each remote sender thread owns one."""

    __slots__ = ("down",)

    def __init__(self) -> None:
        self.down = False

    def lost(self) -> bool:
        """A batch to the link was lost: True when the link had been working."""
        news = not self.down
        self.down = True
        return news

    def delivered(self) -> bool:
        """A batch reached the link: True when the link had been losing batches."""
        news = self.down
        self.down = False
        return news


class RemoteSender:
    """One remote address's outgoing queue and the thread that writes it, in order.

    `push` is thread-safe and never blocks; `close` too (the thread stops soon after; the
    system joins it). `report(exc)` gets errors that are not the link's (a batch over the
    frame limit, a batch the receiver refused); `report_link(address, exc, news)` gets each
    lost batch (`exc`) and, when it is news, the first batch through again (`exc` None)."""

    def __init__(self, source: str, destination: str, faults: Faults, stopping: csp.Chan,
                 report, report_link) -> None:
        self._source = source
        self._destination = destination
        self._faults = faults
        self._latency_seconds = faults.latency_ms / 1000
        self._stopping = stopping
        self._report = report
        self._report_link = report_link
        # (counter, payload, due time), in push order; closed by close(). A bare channel, not
        # a Mailbox: push runs on every remote tell, and this thread is its only receiver.
        self._items = csp.Chan(None)
        self._send = self._items.send
        if not self._latency_seconds:
            self.push = self._push_due_now

    def _push_due_now(self, counter: int, payload: bytes) -> None:
        """`push` without artificial latency: no clock read (every tell is due)."""
        try:
            self._send((counter, payload, 0.0))
        except csp.ChannelClosed:
            pass   # closed: the system is stopping, and later tells are dropped

    def start(self) -> threading.Thread:
        return csp.go(self._run, name=f"actor:{self._source}/to:{self._destination}")

    def push(self, counter: int, payload: bytes) -> None:
        try:
            self._send((counter, payload, time.monotonic() + self._latency_seconds))
        except csp.ChannelClosed:
            pass   # closed: the system is stopping, and later tells are dropped

    def close(self) -> None:
        try:
            self._items.close()
        except csp.ChannelClosed:
            pass   # closed already: close() is idempotent

    def _run(self) -> None:
        client = None
        pending: deque = deque()   # calls in flight, oldest first, to report failures
        backlog: deque = deque()   # (counter, payload, due) taken but not sent yet, in order
        items = self._items
        recv = items.recv
        stopping = csp.Recv(self._stopping)
        report = self._report
        source, address = self._source, self._destination
        link = LinkReport()

        def report_lost(exc: BaseException) -> None:
            self._report_link(address, exc, link.lost())

        monotonic = time.monotonic
        try:
            while True:
                if not backlog:
                    item, ok = recv()
                    if not ok:
                        return
                    backlog.append(item)
                # Take everything queued: this thread is the channel's only receiver, so the
                # values len() counts are there, and recv() takes each without blocking.
                for _ in range(len(items)):
                    backlog.append(recv()[0])
                if items.closed:
                    return
                now = monotonic()
                delay = backlog[0][2] - now
                if delay > 0:   # artificial latency: wait for the oldest, then take what is due
                    oldest_due = csp.Recv(csp.after(delay))
                    case, _, _ = csp.select_case(oldest_due, stopping)
                    if case is stopping:
                        return
                    continue
                counters, texts = take_due(backlog, now, MAX_BATCH_BYTES)
                if self._faults.is_blocked(source, address):
                    report_lost(RemoteTellsBlocked(f"{len(counters)} tells to {address} "
                                                   f"dropped: the link is blocked"))
                    continue
                if client is None:
                    try:
                        client = rpc.dial(address, timeout=DIAL_TIMEOUT_SECONDS)
                    except (rpc.RPCError, ValueError) as exc:
                        report_lost(exc)   # the batch is dropped: at most once
                        continue
                try:
                    call = remote_tell(client, RemoteTellBatch(counters, texts))
                except rpc.EncodeError as exc:   # over the frame limit
                    report(exc)
                    continue
                pending.append(call)
                while pending:   # report the calls that failed, without waiting
                    oldest_done = csp.Recv(pending[0].done)
                    case, _, _ = csp.select_case(oldest_done, default=True)
                    if case is not oldest_done:
                        break
                    call = pending.popleft()
                    if call.error is None:
                        if link.down and link.delivered():
                            self._report_link(address, None, True)
                    elif isinstance(call.error, rpc.ConnectionLost):
                        report_lost(call.error)   # one error per lost batch
                        client.close()
                        client = None
                        pending.clear()
                        break
                    else:   # the receiver refused this batch: the link itself works
                        report(call.error)
        finally:
            if client is not None:
                client.close()


def take_due(backlog: deque, now: float, max_bytes: int) -> tuple[list, list]:
    """Pop from `backlog` ((counter, payload, due) in due order, the oldest due by `now`) the
    tells due by `now`, oldest first, as many as fit in `max_bytes` of payload (the oldest
    always goes, whatever its size): `(counters, texts)`, texts decoded from the UTF-8
    payloads. Pure but for popping `backlog`.

    Without artificial latency every tell is due, so the usual call copies the whole backlog
    with list() and splits it with comprehensions instead of a Python loop step per pop."""
    if backlog[-1][2] <= now:
        taken = list(backlog)
        backlog.clear()
    else:   # pushes are in due order (give or take racing pushers' clock reads)
        taken = []
        while backlog and backlog[0][2] <= now:
            taken.append(backlog.popleft())
    sizes = [len(payload) for _, payload, _ in taken]
    if sum(sizes) > max_bytes:
        size = 0
        for count, length in enumerate(sizes):
            size += length
            if size > max_bytes:
                break
        count = max(count, 1)
        backlog.extendleft(reversed(taken[count:]))   # not sent now: back at the front
        taken = taken[:count]
    return [counter for counter, _, _ in taken], [payload.decode() for _, payload, _ in taken]
