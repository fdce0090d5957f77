"""The actor system (the course's `actor` package): actors with mailboxes, every message
marshalled with the rpc codec (even between local actors), remote tells over rpc/TCP, stats.

    system = ActorSystem(port=0)          listens for remote tells at once; .address
    ref = system.start_actor(Counter)     Counter(ctx) -> Actor; one thread per actor
    system.tell(ref, MAdd(1))             from outside (counted as external)
    ref2, chan = system.new_channel_ref() the first message sent to ref2 appears on chan
    system.faults                         its fault settings (actor.faults), shared by default
    system.close()

This module is the local system; its parts live beside it: the wire types in actor.wire, the
remote sender in actor.sender (staff), the remote tell call and its receiving service in
actor.remote (the student's), the fault settings in actor.faults, the counters in actor.stats.

Threads (A is the system's address, N an actor's counter):
    actor:A/N          one per actor: pops marshalled messages from its Mailbox (one, or a
                       run from a remote batch), unmarshals them, calls on_message; an exception goes to the error handler and
                       the actor goes on. Stops when its Mailbox is closed (close()).
    actor:A/timers     delivers tell_after messages, which csp's shared timer thread hands
                       it when due (no thread per timer). Stops when the system stops.
    actor:A/to:B       one per remote address B: actor.sender.RemoteSender's thread.
    (the rpc server's threads: the remote-tell service is `ordered`, so the calls of one
    connection run one at a time, in order, on that connection's RemoteTell thread, which
    unpacks each batch into the mailboxes, a run of tells to one actor as ONE item (a list
    of payloads, one hand-off and one wake-up); bad batches are reported and dropped.)
State: the tables of mailboxes, channel refs and remote senders are dicts written with single
atomic operations (setdefault, pop); counters are per thread (actor.stats), so no thread ever
updates another's number; no locks (the channel rule). close() goes through a csp.Lifecycle:
`stopping` is closed when it begins (loops select on it), `stopped` when every thread has
been joined.
"""

from __future__ import annotations

import itertools
import logging
import operator
import threading
import time

import csp
import rpc
from rpc import codec
from actor.faults import Faults, process_faults
from actor.mailbox import Mailbox
from actor.remote import RemoteTellService
from actor.sender import RemoteSender
from actor.stats import CountersByThread, Stats, max_message_rate
from actor.wire import ActorRef
# Importable from here as before their modules existed (tests and scripts/bench/actor.py
# name them actor.system.X):
from actor.faults import (RemoteTellsBlocked, block_remote_tells,  # noqa: F401
                          set_artificial_latency_ms, unblock_remote_tells)
from actor.sender import LinkReport  # noqa: F401
from actor.wire import RemoteTellBatch  # noqa: F401

log = logging.getLogger("actor")

_last_system: "ActorSystem | None" = None


def last_actor_system() -> "ActorSystem | None":
    """The most recently created system, forgotten as it is returned (the course's hook)."""
    global _last_system
    system, _last_system = _last_system, None
    return system


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
        self._count(ref)
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
        return max_message_rate(self._sent_to.values(), now - self._born)


class ActorSystem:
    def __init__(self, port: int = 0, host: str = "127.0.0.1", *,
                 faults: Faults | None = None) -> None:
        """Listens for remote tells at once; OSError if the port is taken. `faults`: its own
        fault settings; by default the ones every system shares (actor.faults)."""
        global _last_system
        self.faults = faults if faults is not None else process_faults()
        self._life = csp.Lifecycle()
        self._stopping = self._life.stopping   # closed once close() begins
        self._counter_ids = itertools.count()
        self._mailboxes: dict[int, Mailbox] = {}
        self._contexts: dict[int, ActorContext] = {}
        self._channel_refs: dict[int, csp.Chan] = {}   # unused channel refs
        self._senders: dict[str, RemoteSender] = {}
        self._threads: list[threading.Thread] = []
        self._counters = CountersByThread()
        self._error_handler = self._log_error
        self._handler_is_default = True   # link failures are logged on change only
        self._server = rpc.Server()
        self._server.register(RemoteTellService(self._deliver_batch, self._report,
                                                self._counters),
                              name="RemoteTell", ordered=True)
        bound = self._server.listen(port, host)
        self.address = f"{host}:{bound}"
        self._delayed = csp.Chan(None)
        self._threads.append(csp.go(self._deliver_delayed, name=f"actor:{self.address}/timers"))
        _last_system = self

    # ---- the public API ----------------------------------------------------------------------

    def start_actor(self, constructor) -> ActorRef:
        """Start `constructor(ctx)` on its own thread; after close(), ActorRef(address, -1)."""
        if self._life.is_stopping:
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
        if self._life.is_stopping:   # closed meanwhile: this actor stops with the rest
            mailbox.close()
        return ref

    def tell(self, ref: ActorRef, message) -> None:
        """From outside the system (counted as external). Raises rpc.EncodeError."""
        self._send(ref, message, True)   # positional: the cheaper call

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
        totals = self._counters.totals()
        now = time.monotonic()
        totals.max_message_rate = max((ctx._max_rate(now) for ctx in
                                       list(self._contexts.values())), default=0.0)
        return totals

    def close(self) -> None:
        """Stops every actor, sender and the listener, joins their threads; later tells are
        dropped. Idempotent: a later or concurrent call returns once the first has finished,
        except on one of the system's own threads (an actor closing its system), which
        cannot wait for its own end and returns at once."""
        if threading.current_thread() not in self._threads:
            self._life.close_once(self._shut_down)
        elif self._life.begin():
            try:
                self._shut_down()
            finally:
                self._life.finish()

    def _shut_down(self) -> None:
        self._server.close()
        for mailbox in list(self._mailboxes.values()):
            mailbox.close()
        for sender in list(self._senders.values()):
            sender.close()
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join()

    # ---- sending ------------------------------------------------------------------------------

    def _marshal(self, message, external: bool) -> bytes:
        payload = codec.dumps(message)   # rpc.EncodeError for what cannot travel
        counters = self._counters.mine()
        counters.sent += 1
        counters.external += external
        counters.bytes += len(payload)
        return payload

    def _send(self, ref: ActorRef, message, external: bool) -> None:
        # Every tell runs this on the teller's thread: _marshal and _deliver inlined (a remote
        # tell's cost beyond the codec is mostly calls like theirs).
        payload = codec.dumps(message)   # rpc.EncodeError for what cannot travel
        counters = self._counters.mine()
        counters.sent += 1
        counters.external += external
        counters.bytes += len(payload)
        if self._stopping.closed:
            return
        address = ref.address
        if address == self.address:
            self._deliver_local(ref.counter, payload)
            return
        sender = self._senders.get(address)
        if sender is None:
            sender = self._start_sender(address)
        sender.push(ref.counter, payload)

    def _send_after(self, ref: ActorRef, message, seconds: float, external: bool) -> None:
        payload = self._marshal(message, external)
        if not self._life.is_stopping:
            csp.send_after(self._delayed, (ref, payload), max(seconds, 0.0))

    def _deliver_delayed(self) -> None:
        due = csp.Recv(self._delayed)
        stopping = csp.Recv(self._life.stopping)
        while True:
            case, item, _ = csp.select_case(due, stopping)
            if case is stopping:
                return
            self._deliver(*item)

    def _deliver(self, ref: ActorRef, payload: bytes) -> None:
        if ref.address == self.address:
            self._deliver_local(ref.counter, payload)
            return
        sender = self._senders.get(ref.address)
        if sender is None:
            sender = self._start_sender(ref.address)
        sender.push(ref.counter, payload)

    def _start_sender(self, address: str) -> RemoteSender:
        """The sender to `address`, started now unless a racing teller's got in first."""
        candidate = RemoteSender(self.address, address, self.faults, self._life.stopping,
                                 self._report, self._report_link)
        sender = self._senders.setdefault(address, candidate)
        if sender is candidate:
            self._threads.append(candidate.start())
            if self._life.is_stopping:
                candidate.close()
        return sender

    def _deliver_batch(self, counters: list, payloads: list) -> None:
        """Remote tells, in order, to this system's actors or channel refs `counters`. Never
        blocks. A run of tells to one actor goes into its mailbox as ONE item, a list, which
        the actor takes with one pop: one hand-off and at most one wake-up per run."""
        if not counters:
            return
        if counters.count(counters[0]) == len(counters):   # the usual batch: one destination
            runs = ((counters[0], payloads),)
        else:
            runs = ((counter, [payload for _, payload in run]) for counter, run in
                    itertools.groupby(zip(counters, payloads), key=operator.itemgetter(0)))
        mailboxes = self._mailboxes
        for counter, run in runs:
            mailbox = mailboxes.get(counter)
            if mailbox is None or len(run) == 1:
                for payload in run:   # a channel ref takes one message; the rest are reported
                    self._deliver_local(counter, payload)
            else:
                mailbox.push(run)

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
        self._counters.mine().channel_refs += 1
        # Go's non-blocking send. The Chan(1) is empty unless its owner filled or closed it;
        # then the message is the owner's loss, and a tell never blocks on it.
        try:
            csp.select(csp.Send(chan, message), default=True)
        except csp.ChannelClosed:
            pass

    # ---- actors and errors ---------------------------------------------------------------------

    def _run_actor(self, actor: Actor, mailbox: Mailbox) -> None:
        # An item is one marshalled message (bytes), or a run of them (a list) from a remote
        # batch, taken whole and handled in order; close() stops the actor within a run too.
        pop = mailbox.pop
        loads = codec.loads
        while True:
            item, ok = pop()
            if not ok:
                return
            for payload in (item,) if type(item) is bytes else item:
                if mailbox.closed:
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
        `news`: the link's state changed (actor.sender.LinkReport). A handler set with
        on_error gets every loss; the default handler logs the news only, so a peer that is
        down for an hour costs two lines, not one per heartbeat."""
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
