"""The actor system (the course's `actor` package): actors with mailboxes, every message
marshalled with the rpc codec (even between local actors), remote tells over rpc/TCP, stats.

    system = ActorSystem(port=0)          listens for remote tells at once; .address
    ref = system.start_actor(Counter)     Counter(ctx) -> Actor; one thread per actor
    system.tell(ref, MAdd(1))             from outside (counted as external)
    ref2, chan = system.new_channel_ref() the first message sent to ref2 appears on chan
    system.close()

Threads (A is the system's address, N an actor's counter):
    actor:A/N          one per actor: pops marshalled messages from its Mailbox, unmarshals
                       them, calls on_message; an exception goes to the error handler and
                       the actor goes on.
    actor:A/timers     delivers tell_after messages, which csp's shared timer thread hands
                       it when due (no thread per timer).
    actor:A/to:B       one per remote address B: owns the connection to B and a backlog;
                       takes (due time, counter, bytes) from its own Mailbox (pop, then
                       pop_all: everything waiting), waits until the oldest is due (the
                       artificial latency), then writes everything due, in order, as ONE
                       RemoteTellBatch call with rpc's go() (pipelined: it never waits for
                       a reply); a failed call drops its batch and reports one error (at
                       most once) to a handler set with on_error, while the default handler
                       logs only a change of the link's state (LinkReport: "dropped" once,
                       "get through again" once). Stops when its Mailbox is closed (close()).
    (the rpc server's threads: the remote-tell service is `ordered`, so the calls of one
    connection run one at a time, in order, on that connection's RemoteTell thread, which
    unpacks each batch into the mailboxes; bad batches are reported and dropped.)
State: the tables of mailboxes, channel refs and remote senders are dicts written with single
atomic operations (setdefault, pop); counters are per thread (threading.local) and summed by
stats(), so no thread ever updates another's number; no locks (the channel rule).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import csp
import rpc
from rpc import codec
from actor.mailbox import Mailbox

log = logging.getLogger("actor")

_last_system: "ActorSystem | None" = None
_artificial_latency_ms = 0


def last_actor_system() -> "ActorSystem | None":
    """The most recently created system, forgotten as it is returned (the course's hook)."""
    global _last_system
    system, _last_system = _last_system, None
    return system


def set_artificial_latency_ms(ms: int) -> None:
    """Remote-tell connections dialled from now on deliver each write `ms` later, in order,
    without serialising the pipeline (the course's staff.SetArtiLatencyMs)."""
    global _artificial_latency_ms
    if ms < 0:
        raise ValueError("latency must be >= 0 ms")
    _artificial_latency_ms = ms


class RemoteTellsBlocked(rpc.RPCError):
    """A remote tell dropped by block_remote_tells (fault injection in tests and demos)."""


# Links whose remote tells are dropped: frozensets of two addresses ("*" matches any). Read by
# the sender threads, replaced whole by the functions below (never mutated in place).
_blocked_links: frozenset = frozenset()


def block_remote_tells(address_a: str, address_b: str) -> None:
    """From now on drop, in both directions, the remote tells between the systems at
    `address_a` and `address_b` (`"*"` for any), as a network partition would; each dropped
    batch is reported to the sender's error handler. Undone by unblock_remote_tells()."""
    global _blocked_links
    _blocked_links = _blocked_links | {frozenset((address_a, address_b))}


def unblock_remote_tells() -> None:
    """Let every remote tell through again (tells dropped meanwhile stay lost)."""
    global _blocked_links
    _blocked_links = frozenset()


def _is_blocked(source: str, destination: str) -> bool:
    links = _blocked_links
    return bool(links) and any(link in links for link in (
        frozenset((source, destination)), frozenset((source, "*")),
        frozenset((destination, "*"))))


@rpc.register
@dataclass(frozen=True)
class ActorRef:
    address: str
    counter: int

    def uid(self) -> str:
        return f"{self.address}/{self.counter}"


@rpc.register
@dataclass
class RemoteTell:
    """One tell from one system to another: the destination and the marshalled message.
    (Senders write RemoteTellBatch; this single form is still served.)"""
    ref: ActorRef
    payload: bytes


@rpc.register
@dataclass
class RemoteTellBatch:
    """Tells from one system to another, in the order they were made: message `texts[i]`
    (the rpc codec's UTF-8 JSON, as text, which travels cheaper than base64) goes to the
    receiving system's actor or channel ref number `counters[i]`."""
    counters: list
    texts: list


@dataclass
class Stats:
    messages_sent: int = 0
    messages_sent_external: int = 0
    messages_sent_actor: int = 0
    bytes_sent: int = 0
    remote_bytes_received: int = 0
    channel_refs_used: int = 0
    max_message_rate: float = 0.0


class Actor:
    """Subclass it and define on_message(message). Runs on its own thread, one message at a
    time; talks to the world only through `self.ctx`."""

    def __init__(self, ctx: "ActorContext") -> None:
        self.ctx = ctx

    def on_message(self, message) -> None:
        raise NotImplementedError


class ActorContext:
    """An actor's handle on the system. Used from the actor's own thread only."""

    def __init__(self, system: "ActorSystem", self_ref: ActorRef) -> None:
        self.self = self_ref
        self._system = system
        self._born = time.monotonic()
        # (address, counter) of each destination -> tells, for the message rate
        self._sent_to: dict[tuple[str, int], int] = {}

    def tell(self, ref: ActorRef, message) -> None:
        """Send asynchronously; never blocks. Raises rpc.EncodeError for what cannot travel."""
        key = (ref.address, ref.counter)
        sent_to = self._sent_to
        sent_to[key] = sent_to.get(key, 0) + 1
        self._system._send(ref, message, False)

    def tell_after(self, ref: ActorRef, message, seconds: float) -> None:
        """Send `seconds` from now (the way to build timers); never blocks."""
        self._count(ref)
        self._system._send_after(ref, message, seconds, external=False)

    def is_local(self, ref: ActorRef) -> bool:
        return self._system.is_local(ref)

    def _count(self, ref: ActorRef) -> None:
        key = (ref.address, ref.counter)
        self._sent_to[key] = self._sent_to.get(key, 0) + 1

    def _max_rate(self, now: float) -> float:
        window = math.floor(now - self._born + 1.1)
        return max(self._sent_to.values(), default=0) / window


class _Counters:
    __slots__ = ("sent", "external", "bytes", "remote_bytes", "channel_refs")

    def __init__(self) -> None:
        self.sent = self.external = self.bytes = self.remote_bytes = self.channel_refs = 0


class _RemoteTellService:
    """Served `ordered`: one connection's tells are delivered one call at a time, in order.
    Bad input is reported to the error handler and dropped (the whole call), never raised."""

    def __init__(self, system: "ActorSystem") -> None:
        self._system = system

    def tell(self, message: RemoteTell) -> bool:
        system = self._system
        if type(message) is not RemoteTell or type(message.ref) is not ActorRef \
                or type(message.ref.counter) is not int or type(message.payload) is not bytes:
            system._report(ValueError(f"malformed remote tell: {message!r:.100}"))
            return False
        system._counters().remote_bytes += len(message.payload)
        system._deliver_local(message.ref.counter, message.payload)
        return True

    def tell_batch(self, batch: RemoteTellBatch) -> bool:
        system = self._system
        if type(batch) is not RemoteTellBatch or type(batch.counters) is not list \
                or type(batch.texts) is not list or len(batch.counters) != len(batch.texts):
            system._report(ValueError(f"malformed remote tell batch: {batch!r:.100}"))
            return False
        counters = batch.counters
        payloads = []
        size = 0
        try:
            for counter, text in zip(counters, batch.texts):
                if type(counter) is not int or type(text) is not str:
                    raise ValueError(f"a tell to {counter!r:.40} of {text!r:.60}")
                payload = text.encode()   # UnicodeEncodeError (a ValueError): lone surrogate
                size += len(payload)
                payloads.append(payload)
        except ValueError as exc:
            system._report(ValueError(f"malformed remote tell batch: {exc}"))
            return False
        system._counters().remote_bytes += size
        deliver = system._deliver_local
        for counter, payload in zip(counters, payloads):
            deliver(counter, payload)
        return True


class ActorSystem:
    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        """Listens for remote tells at once; OSError if the port is taken."""
        global _last_system
        self._server = rpc.Server()
        self._server.register(_RemoteTellService(self), name="RemoteTell", ordered=True)
        bound = self._server.listen(port, host)
        self.address = f"{host}:{bound}"
        self._closed = csp.Chan()
        self._counter_ids = itertools.count()
        self._mailboxes: dict[int, Mailbox] = {}
        self._contexts: dict[int, ActorContext] = {}
        self._channel_refs: dict[int, csp.Chan] = {}   # unused channel refs
        self._senders: dict[str, _RemoteSender] = {}
        self._threads: list[threading.Thread] = []
        self._all_counters: list[_Counters] = []
        self._local = threading.local()
        self._error_handler = self._log_error
        self._handler_is_default = True   # link failures are logged on change only
        self._delayed = csp.Chan(None)
        self._threads.append(csp.go(self._deliver_delayed, name=f"actor:{self.address}/timers"))
        _last_system = self

    # ---- the public API ----------------------------------------------------------------------

    def start_actor(self, constructor) -> ActorRef:
        """Start `constructor(ctx)` on its own thread; after close(), ActorRef(address, -1)."""
        if self._closed.closed:
            return ActorRef(self.address, -1)
        counter = next(self._counter_ids)
        ref = ActorRef(self.address, counter)
        ctx = ActorContext(self, ref)
        actor = constructor(ctx)
        mailbox = Mailbox()
        self._contexts[counter] = ctx
        self._mailboxes[counter] = mailbox
        self._threads.append(csp.go(self._run_actor, actor, mailbox,
                                    name=f"actor:{ref.uid()}"))
        if self._closed.closed:   # closed meanwhile: this actor stops with the rest
            mailbox.close()
        return ref

    def tell(self, ref: ActorRef, message) -> None:
        """From outside the system (counted as external). Raises rpc.EncodeError."""
        self._send(ref, message, external=True)

    def tell_after(self, ref: ActorRef, message, seconds: float) -> None:
        self._send_after(ref, message, seconds, external=True)

    def new_channel_ref(self) -> tuple[ActorRef, csp.Chan]:
        """A ref whose first message (unmarshalled) appears on the returned Chan(1); later
        ones are dropped and reported to the error handler."""
        counter = next(self._counter_ids)
        chan = csp.Chan(1)
        self._channel_refs[counter] = chan
        return ActorRef(self.address, counter), chan

    def is_local(self, ref: ActorRef) -> bool:
        return ref.address == self.address

    def on_error(self, handler) -> None:
        """`handler(exc)` gets every error from now on (replacing any earlier handler),
        one per lost batch of remote tells."""
        self._error_handler = handler
        self._handler_is_default = False

    def stats(self) -> Stats:
        totals = Stats()
        for c in list(self._all_counters):
            totals.messages_sent += c.sent
            totals.messages_sent_external += c.external
            totals.bytes_sent += c.bytes
            totals.remote_bytes_received += c.remote_bytes
            totals.channel_refs_used += c.channel_refs
        totals.messages_sent_actor = totals.messages_sent - totals.messages_sent_external
        now = time.monotonic()
        totals.max_message_rate = max((ctx._max_rate(now) for ctx in
                                       list(self._contexts.values())), default=0.0)
        return totals

    def close(self) -> None:
        """Stops every actor, sender and the listener, joins their threads; later tells are
        dropped. Idempotent."""
        try:
            self._closed.close()
        except csp.ChannelClosed:
            return
        self._server.close()
        for mailbox in list(self._mailboxes.values()):
            mailbox.close()
        for sender in list(self._senders.values()):
            sender.close()
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join()

    # ---- sending ------------------------------------------------------------------------------

    def _counters(self) -> _Counters:
        counters = getattr(self._local, "counters", None)
        if counters is None:
            counters = self._local.counters = _Counters()
            self._all_counters.append(counters)
        return counters

    def _marshal(self, message, external: bool) -> bytes:
        payload = codec.dumps(message)   # rpc.EncodeError for what cannot travel
        counters = self._counters()
        counters.sent += 1
        counters.external += external
        counters.bytes += len(payload)
        return payload

    def _send(self, ref: ActorRef, message, external: bool) -> None:
        payload = codec.dumps(message)   # rpc.EncodeError for what cannot travel
        try:
            counters = self._local.counters
        except AttributeError:
            counters = self._counters()
        counters.sent += 1
        counters.external += external
        counters.bytes += len(payload)
        if self._closed.closed:
            return
        if ref.address == self.address:
            self._deliver_local(ref.counter, payload)
        else:
            self._deliver(ref, payload)

    def _send_after(self, ref: ActorRef, message, seconds: float, external: bool) -> None:
        payload = self._marshal(message, external)
        if not self._closed.closed:
            csp.send_after(self._delayed, (ref, payload), max(seconds, 0.0))

    def _deliver_delayed(self) -> None:
        while True:
            index, item, _ = csp.select(csp.Recv(self._delayed), csp.Recv(self._closed))
            if index == 1:
                return
            self._deliver(*item)

    def _deliver(self, ref: ActorRef, payload: bytes) -> None:
        if ref.address == self.address:
            self._deliver_local(ref.counter, payload)
            return
        sender = self._senders.get(ref.address)
        if sender is None:
            candidate = _RemoteSender(self, ref.address, _artificial_latency_ms)
            sender = self._senders.setdefault(ref.address, candidate)
            if sender is candidate:
                self._threads.append(candidate.start())
                if self._closed.closed:
                    candidate.close()
        sender.push(ref.counter, payload)

    def _deliver_local(self, counter: int, payload: bytes) -> None:
        """To this system's actor or channel ref number `counter`. Never blocks."""
        mailbox = self._mailboxes.get(counter)
        if mailbox is not None:
            mailbox.push(payload)
            return
        # A channel ref takes one message: whoever pops its entry delivers (an atomic dict
        # operation, so two racing senders cannot both win); the entry is gone afterwards,
        # so refs used once cost nothing in a long-running system.
        chan = self._channel_refs.pop(counter, None)
        if chan is None:
            self._report(LookupError(f"no actor or unused channel ref {self.address}/{counter}: "
                                     f"message dropped"))
            return
        try:
            message = codec.loads(payload)
        except rpc.FrameError as exc:
            self._report(exc)
            return
        self._counters().channel_refs += 1
        chan._offer(message)

    # ---- actors and errors ---------------------------------------------------------------------

    def _run_actor(self, actor: Actor, mailbox: Mailbox) -> None:
        pop = mailbox.pop
        loads = codec.loads
        while True:
            payload, ok = pop()
            if not ok:
                return
            try:
                message = loads(payload)
            except rpc.FrameError as exc:
                self._report(exc)
                continue
            try:
                actor.on_message(message)   # looked up each time: an actor may swap it
            except Exception as exc:   # the actor keeps running (no supervision, as the course)
                self._report(exc)

    def _report(self, exc: BaseException) -> None:
        try:
            self._error_handler(exc)
        except Exception:
            log.exception("%s: the error handler raised", self.address)

    def _log_error(self, exc: BaseException) -> None:
        log.warning("%s: %s: %s", self.address, type(exc).__name__, exc)

    def _report_link(self, address: str, exc: BaseException | None, news: bool) -> None:
        """A batch of remote tells to `address` was lost (`exc`) or got through (None);
        `news`: the link's state changed (LinkReport). A handler set with on_error gets every
        loss; the default handler logs the news only, so a peer that is down for an hour
        costs two lines, not one per heartbeat."""
        if not self._handler_is_default:
            if exc is not None:
                self._report(exc)
            return
        if not news:
            return
        if exc is None:
            log.warning("%s: remote tells to %s get through again", self.address, address)
        else:
            log.warning("%s: remote tells to %s are dropped: %s: %s (said again only when "
                        "they get through)", self.address, address, type(exc).__name__, exc)


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


MAX_BATCH_BYTES = 1 << 20   # message text per remote call (a bigger message goes alone)


class _RemoteSender:
    """One remote address's outgoing queue and the thread that writes it, in order."""

    def __init__(self, system: ActorSystem, address: str, latency_ms: int) -> None:
        self._system = system
        self._address = address
        self._latency = latency_ms / 1000
        self._mailbox = Mailbox()

    def start(self) -> threading.Thread:
        return csp.go(self._run, name=f"actor:{self._system.address}/to:{self._address}")

    def push(self, counter: int, payload: bytes) -> None:
        self._mailbox.push((time.monotonic() + self._latency, counter, payload))

    def close(self) -> None:
        self._mailbox.close()

    def _run(self) -> None:
        client = None
        pending: deque = deque()   # calls in flight, oldest first, to report failures
        backlog: deque = deque()   # (due, counter, payload) popped but not sent yet, in order
        mailbox = self._mailbox
        closed = self._system._closed
        report = self._system._report
        address = self._address
        link = LinkReport()

        def report_lost(exc: BaseException) -> None:
            self._system._report_link(address, exc, link.lost())

        monotonic = time.monotonic
        try:
            while True:
                if not backlog:
                    item, ok = mailbox.pop()
                    if not ok:
                        return
                    backlog.append(item)
                backlog.extend(mailbox.pop_all())
                if mailbox.closed:
                    return
                now = monotonic()
                delay = backlog[0][0] - now
                if delay > 0:   # artificial latency: wait for the oldest, then take what is due
                    index, _, _ = csp.select(csp.Recv(csp.after(delay)), csp.Recv(closed))
                    if index == 1:
                        return
                    continue
                # Everything due goes in one call (pushes are in due order, give or take
                # the clock reads of racing pushers).
                counters = []
                texts = []
                size = 0
                while backlog and backlog[0][0] <= now and size < MAX_BATCH_BYTES:
                    _, counter, payload = backlog.popleft()
                    counters.append(counter)
                    texts.append(payload.decode())
                    size += len(payload)
                if _is_blocked(self._system.address, self._address):
                    report_lost(RemoteTellsBlocked(f"{len(counters)} tells to {address} "
                                                   f"dropped: the link is blocked"))
                    continue
                if client is None:
                    try:
                        client = rpc.dial(address, timeout=2.0)
                    except (rpc.RPCError, ValueError) as exc:
                        report_lost(exc)   # the batch is dropped: at most once
                        continue
                try:
                    call = client.go("RemoteTell.tell_batch", RemoteTellBatch(counters, texts))
                except rpc.EncodeError as exc:   # over the frame limit
                    report(exc)
                    continue
                pending.append(call)
                while pending:   # report the calls that failed, without waiting
                    index, _, _ = csp.select(csp.Recv(pending[0].done), default=True)
                    if index != 0:
                        break
                    call = pending.popleft()
                    if call.error is None:
                        if link.down and link.delivered():
                            self._system._report_link(address, None, True)
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
