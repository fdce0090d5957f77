"""A Raft peer: the extended paper's Figure 2 (election, log replication) and Figure 13
(snapshots).

Decide under the lock, do the slow work outside it (etcd's "Ready" boundary). Every state
change and every rule (raft/rules.py) runs under the one mutex; the fsync (`persister.sync()`)
and every RPC run without it, so a slow disk or a slow link stalls no handler, heartbeat or
put_command. No reply is given, no vote asked for, and no entry counted committed, that
depends on state not yet durable on this peer: each critical section that saves something
notes a durability point (how many saves so far), and whoever then answers or asks first calls
`_make_durable(point)` outside the lock. The one thing sent before it is durable is the
leader's own new entries (Raft dissertation 10.2.1): the leader writes its log to disk in
parallel with sending it (raft-P/disk) and counts itself in a majority only for entries
already durable (match_index[me] is the durable index). That is safe because a follower makes
them durable before it acknowledges them, and a leader that crashes before its own fsync
restarts with its term and vote (durable since the election), so never leads that term again
and cannot put different entries at those indices in it. A sync covers every save made before
it starts, so concurrent syncs share one fsync (group commit): entries appended while one
fsync runs are covered by the next, and a follower acknowledges a whole batch after one.

Threads (P is `me`):
    raft-P/ticker        election timeouts (followers and candidates): under the lock it turns
                         the peer into a candidate, then, outside it, makes its vote durable and
                         starts the vote requests. Stops at stop().
    raft-P/vote-J        one per peer J per election: asks J for its vote once and counts the
                         answer under the lock (a candidate wins on a majority). Ends when the
                         call returns; changes nothing once the peer is stopped or the term
                         has moved on.
    raft-P/replicate-J   one per follower J while this peer leads (started when it wins,
                         ends when it steps down or stops): the one place where what J is sent
                         is decided, heartbeats and appends alike. Under the lock it builds the
                         next request from next_index[J] (AppendEntries, or InstallSnapshot
                         when that entry went into the snapshot) and moves next_index[J] past
                         what it sent (pipelining); outside it, makes sure the leader's
                         term is durable (it is, since the election, unless it changed) and
                         hands the request to an idle sender, without waiting for the
                         leader's own fsync of the entries. New entries wait while
                         APPENDS_IN_FLIGHT calls carrying entries are out to J, unless a
                         heartbeat or a ReadIndex round is due: the next call then carries
                         all that piled up (fewer, larger calls and follower fsyncs). Then
                         it waits for a wake-up (new entries; a reply that moved
                         next_index[J] back or ended a call carrying entries while more
                         wait: a coalescing Chan(1) sent to without blocking, so any number
                         of put_commands cost one wake-up), the heartbeat interval, the end
                         of its leadership or stop().
    raft-P/send-J.k      up to SENDERS_PER_FOLLOWER per replicator, started as the calls in
                         flight need them (a reply the network holds back for seconds must not
                         hold back the next heartbeat): each takes a request, makes the call
                         and applies the reply under the lock (match_index[J], next_index[J],
                         the commit index, the ReadIndex round J acknowledged, the count of
                         calls carrying entries in flight), waking
                         its replicator when J must hear again at once. They end with their
                         replicator's leadership or stop(); one inside a call then ends
                         when the call returns, changing nothing.
    raft-P/disk          makes the log durable on the leader, beside the sends: woken by
                         put_command through a coalescing Chan(1), it syncs once for every
                         entry appended so far (those appended meanwhile wait for the next
                         round), then, under the lock, raises the durable index and with it
                         match_index[me] and the commit index. Stops at stop().
    raft-P/applier       waits for commit_index to pass last_applied, then sends on apply_ch,
                         WITHOUT the lock, an ApplySnapshot when one is owed (a restart, an
                         InstallSnapshot) and the newly committed commands in order. Stops at
                         stop().
All of Figure 2's state is guarded by the mutex: current_term, voted_for, log, commit_index,
last_applied, role, next_index, match_index, the election deadline, the snapshot. The incoming
handlers `request_vote`, `append_entries` and `install_snapshot` run on the caller's thread:
they decide under the lock and, when they saved something, sync outside it before replying;
they never wait on apply_ch. `read_index` runs on its caller's thread: it waits under the lock
(a condition on it) for a commit of its term and for a majority of senders to report replies to
requests built after its round began.

`stop()` goes through `self._life` (csp.Lifecycle): stopping begins (replicators and the disk
thread select on it), the ticker and the applier are woken under the lock (a thread that read
`is_stopping` as false under the lock is already waiting when the wake-up comes), and the
ticker, the applier and the disk thread are joined. Every critical section
checks `self._life.is_stopping` before it sends or applies anything, so once stop() has
returned nothing more is sent or applied; calls already on the wire (a simulated link may hold
one for seconds) finish on their threads and change nothing.

Timing: heartbeats every `heartbeat_seconds` (0.11 s: at most 10 per second per follower, as
the handout requires); election timeouts drawn uniformly from `election_timeout_seconds`
(0.4-0.8 s: several heartbeats long, so a live leader is not deposed, and short enough for a
new leader well within the 5 s the handout allows, split votes included).
"""

from __future__ import annotations

import logging
import random
import threading
import time

import csp
from raft import rules
from raft.log import Log
from raft.messages import (AppendEntriesArgs, AppendEntriesReply, ApplyCommand, ApplySnapshot,
                           InstallSnapshotArgs, InstallSnapshotReply, LogEntry,
                           RequestVoteArgs, RequestVoteReply)

log = logging.getLogger("raft")

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
MAX_ENTRIES_PER_APPEND = 4096   # bounds one AppendEntries (a follower far behind gets several)
SENDERS_PER_FOLLOWER = 6        # calls in flight to one follower, at most
APPENDS_IN_FLIGHT = 2           # of those, calls carrying entries, unless a heartbeat is due


class Raft:
    def __init__(self, peers: list, me: int, apply_ch: csp.Chan, *, persister=None,
                 heartbeat_seconds: float = 0.11,
                 election_timeout_seconds: tuple[float, float] = (0.4, 0.8),
                 seed: int | None = None) -> None:
        """Returns at once; the peer's threads run in the background. `persister`, if given
        (see raft.persister), keeps current_term, voted_for, the log and the snapshot: they
        are durable before any reply or RPC depends on them, and read back here (a snapshot
        is then the first thing sent on apply_ch)."""
        self._peers = peers
        self._me = me
        self._apply_ch = apply_ch
        self._persister = persister
        self._heartbeat_seconds = heartbeat_seconds
        self._timeout_range = election_timeout_seconds
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._commit_changed = threading.Condition(self._lock)
        self._wake_ticker = threading.Condition(self._lock)
        self._leadership_news = threading.Condition(self._lock)   # for read_index's waiters
        self._life = csp.Lifecycle()
        # Figure 2's state.
        self._current_term = 0
        self._voted_for: int | None = None
        self._log = Log()
        self._commit_index = 0
        self._last_applied = 0
        self._role = FOLLOWER
        self._next_index: list[int] = []
        self._match_index: list[int] = []
        self._votes = 0
        self._leader_id: int | None = None   # the leader of current_term, once known
        self._election_deadline = 0.0
        # Figure 13's.
        self._snapshot = b""              # the service's state through log.snapshot_index
        self._snapshot_owed = False       # the applier must send it before any command
        # ReadIndex (dissertation 6.4): read_index starts round `_read_round`; a request built
        # at round r that a follower answers in our term proves we still led when r began.
        self._read_round = 0
        self._acked_round: list[int] = [0] * len(peers)
        self._appends_in_flight: list[int] = [0] * len(peers)   # per follower, while leading
        # Leading: each follower's replicator, its wake-up channel, and the channel closed
        # when this leadership ends.
        self._wakes: list[csp.Chan | None] = []
        self._deposed: csp.Chan | None = None
        # Durability: saves counted, the count known durable, and how far the log is durable
        # (log_epoch moves whenever saved entries are replaced, so a sync that began before
        # cannot vouch for their replacements).
        self._saves = 0
        self._state_saves = 0   # the count at the last save of the term or the vote
        self._durable_saves = 0
        self._log_epoch = 0
        self._durable_index = 0
        self._saved_last_index = 0   # the last index handed to the persister
        self._restore()
        with self._lock:
            self._reset_election_deadline()
        self._disk_wake = csp.Chan(1)   # coalescing: one wake-up covers any number of puts
        self._threads = [csp.go(self._ticker, name=f"raft-{me}/ticker"),
                         csp.go(self._applier, name=f"raft-{me}/applier"),
                         csp.go(self._disk, name=f"raft-{me}/disk")]

    # ---- the tester's API -------------------------------------------------------------------

    def get_state(self) -> tuple[int, int, bool]:
        """(me, current term, whether this peer believes it is the leader). Thread-safe."""
        with self._lock:
            return self._me, self._current_term, self._role == LEADER

    def put_command(self, command) -> tuple[int, int, bool]:
        """On the leader: append `command` and wake the replicators; returns at once with the
        index it will have if ever committed. Elsewhere: (-1, term, False)."""
        return self._put([command])

    def put_commands(self, commands: list) -> tuple[int, int, bool]:
        """put_command for a batch, in order, at consecutive indices: (index of the first,
        term, is_leader); one log write and one wake-up for the lot."""
        if not commands:
            with self._lock:
                return -1, self._current_term, False
        return self._put(commands)

    def _put(self, commands: list) -> tuple[int, int, bool]:
        with self._lock:
            if self._role != LEADER or self._life.is_stopping:
                return -1, self._current_term, False
            first = self._log.last_index + 1
            self._log.extend(LogEntry(self._current_term, command) for command in commands)
            self._save_log(first)
            term = self._current_term
            self._wake_replicators()   # the entries go out before they are durable here
            csp.select(csp.Send(self._disk_wake, None), default=True)
        return first, term, True

    def read_index(self, timeout_seconds: float) -> int | None:
        """ReadIndex (Raft dissertation 6.4), for reads that skip the log: on the leader,
        once an entry of its current term is committed, record the commit index, confirm the
        leadership with a round of heartbeats a majority answers in this term, and return that
        index: a state machine that has applied through it answers a read linearizably. None
        when this peer is not the leader, loses its leadership meanwhile, stops, or the
        deadline passes first (no entry of its term committed yet counts as not done: the
        service commits one, a no-op, when it finds itself leading). Blocks the caller up to
        `timeout_seconds`; thread-safe."""
        deadline = time.monotonic() + timeout_seconds
        with self._lock:
            if self._role != LEADER:
                return None
            term = self._current_term
            while self._log[self._commit_index].term != term:   # 6.4 step 1
                if not self._wait_for_leadership_news(term, deadline):
                    return None
            index = self._commit_index
            if len(self._peers) == 1:
                return index
            self._read_round += 1
            read_round = self._read_round
            self._wake_replicators()   # a heartbeat round now, not at the next interval
            while True:
                acked = 1 + sum(1 for peer, acked_round in enumerate(self._acked_round)
                                if peer != self._me and acked_round >= read_round)
                if acked * 2 > len(self._peers):
                    return index
                if not self._wait_for_leadership_news(term, deadline):
                    return None

    def _wait_for_leadership_news(self, term: int, deadline: float) -> bool:
        """Under the lock: wait for a commit, an acknowledgement or a change of role; False
        once leadership of `term` is lost, the peer stops, or `deadline` has passed."""
        remaining = deadline - time.monotonic()
        if not self._leads(term) or remaining <= 0:
            return False
        self._leadership_news.wait(remaining)
        return self._leads(term)

    def snapshot(self, index: int, snapshot: bytes) -> None:
        """The service's state through `index` (an index it has been sent) is `snapshot`:
        the log through `index` is discarded, and the snapshot and the trimmed log are
        persisted together (durable when this returns). An index the log no longer holds
        (an older snapshot) is ignored; one past the commit index raises ValueError.
        Thread-safe; does nothing once stopped."""
        if type(snapshot) is not bytes:
            raise TypeError(f"a snapshot is bytes, not {type(snapshot).__name__}")
        with self._lock:
            if self._life.is_stopping or index <= self._log.snapshot_index:
                return
            if index > self._commit_index:
                raise ValueError(f"snapshot through {index}, past the commit index "
                                 f"{self._commit_index}")
            term = self._log[index].term
            self._log.compact(index, term)
            self._snapshot = snapshot
            self._saves += 1
            if self._persister is not None:
                self._persister.save_snapshot(index, term, snapshot)
            point = self._durability_point()
        self._make_durable(point)

    def status(self, detail: bool = False, max_log_terms: int = 200) -> dict:
        """A snapshot for operators: me, role, term, commit_index, last_applied, last_index,
        leader (the id this peer last heard from as leader in its term, or None).

        With `detail` (for a live picture of the peer) also: voted_for; election_millis_left
        (until this follower or candidate times out; None while leading); snapshot_index;
        log_terms, the terms of the last entries, at most `max_log_terms`, the first at index
        log_terms_from; next_index and match_index per peer while leading (else empty)."""
        with self._lock:
            state = {"me": self._me, "role": self._role, "term": self._current_term,
                     "commit_index": self._commit_index, "last_applied": self._last_applied,
                     "last_index": self._log.last_index, "leader": self._leader_id}
            if not detail:
                return state
            leading = self._role == LEADER
            terms_from = max(self._log.last_index - max_log_terms + 1,
                             self._log.snapshot_index + 1)
            state.update(
                voted_for=self._voted_for,
                election_millis_left=None if leading else round(
                    (self._election_deadline - time.monotonic()) * 1000),
                snapshot_index=self._log.snapshot_index,
                log_terms_from=terms_from,
                log_terms=[entry.term for entry in self._log[terms_from:]],
                next_index=list(self._next_index) if leading else [],
                match_index=list(self._match_index) if leading else [])
            return state

    def stop(self) -> None:
        """Stops the peer: afterwards it sends and applies nothing. Idempotent and
        thread-safe; returns once the ticker, the applier and the disk thread have exited
        (a sync in progress finishes first; replicators and vote requests waiting on nothing
        but a call end when it returns); never closes apply_ch."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        with self._lock:   # after begin(): a thread checking is_stopping under the lock either
            self._commit_changed.notify_all()   # saw it or is waiting and is woken here
            self._wake_ticker.notify_all()
            self._leadership_news.notify_all()
        for thread in self._threads:
            thread.join()

    # ---- incoming RPCs ------------------------------------------------------------------------

    def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        with self._lock:
            was_term = self._current_term
            term, voted_for, granted = rules.decide_vote(self._current_term, self._voted_for,
                                                         self._log, args)
            if term > was_term:
                self._become_follower(term)
            if (term, voted_for) != (was_term, self._voted_for):
                self._voted_for = voted_for
                self._save_state()
            if granted:
                self._reset_election_deadline()
            reply = RequestVoteReply(self._current_term, granted)
            if self._durable_saves >= self._saves:
                return reply
            point = self._durability_point()
        self._make_durable(point)   # the vote is durable before it is given
        return reply

    def append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
        while True:
            with self._lock:
                if args.term < self._current_term:
                    return AppendEntriesReply(self._current_term, False)
                if args.term > self._current_term or self._role != FOLLOWER:
                    self._become_follower(args.term)
                self._reset_election_deadline()
                self._leader_id = args.leader_id
                reply, first, offset = rules.plan_append(self._log, args, self._current_term)
                if first is not None:
                    del self._log[first:]
                    self._log.extend(args.entries[offset:])
                    self._save_log(first)
                if self._durable_saves >= self._saves:
                    self._follow_commit(args, reply)
                    return reply
                point = self._durability_point()
                term, epoch = self._current_term, self._log_epoch
            self._make_durable(point)   # what the reply acknowledges is durable first
            with self._lock:
                if term == self._current_term and epoch == self._log_epoch:
                    self._follow_commit(args, reply)
                    return reply
            # Another leader's entries replaced ours meanwhile: decide again on the new log.

    def _follow_commit(self, args: AppendEntriesArgs, reply: AppendEntriesReply) -> None:
        if reply.success:
            last_new = args.prev_log_index + len(args.entries)
            self._set_commit_index(rules.follower_commit_index(
                self._commit_index, args.leader_commit, last_new))

    def install_snapshot(self, args: InstallSnapshotArgs) -> InstallSnapshotReply:
        """Figure 13's receiver, in one piece. A snapshot that does not fit (a term from the
        past, an index the commit index has reached, a last term past the leader's) changes
        nothing; a stale one from the current leader still counts as a heartbeat."""
        with self._lock:
            if args.term < self._current_term:
                return InstallSnapshotReply(self._current_term)
            if args.term > self._current_term or self._role != FOLLOWER:
                self._become_follower(args.term)
            self._reset_election_deadline()
            self._leader_id = args.leader_id
            index, term = args.last_included_index, args.last_included_term
            if (index <= self._commit_index or not 0 <= term <= args.term
                    or type(args.data) is not bytes):
                return InstallSnapshotReply(self._current_term)
            if not self._log.holds(index, term):
                self._durable_index = min(self._durable_index, index)
                self._log_epoch += 1
            self._log.compact(index, term)
            self._saved_last_index = self._log.last_index
            self._snapshot = args.data
            self._snapshot_owed = True
            self._saves += 1
            if self._persister is not None:
                self._persister.save_snapshot(index, term, args.data)
            self._set_commit_index(index)
            reply = InstallSnapshotReply(self._current_term)
            point = self._durability_point()
        self._make_durable(point)
        return reply

    # ---- elections (under the lock unless said) -----------------------------------------------

    def _reset_election_deadline(self) -> None:
        low, high = self._timeout_range
        self._election_deadline = time.monotonic() + self._random.uniform(low, high)

    def _become_follower(self, term: int) -> None:
        if term > self._current_term:
            self._current_term = term
            self._voted_for = None
            self._leader_id = None
            self._save_state()
        if self._role == LEADER:
            self._deposed.close()   # its replicators end
            self._deposed, self._wakes = None, []
            self._leadership_news.notify_all()   # read_index's waiters give up
        if self._role != FOLLOWER:
            log.debug("raft-%d: follower in term %d", self._me, term)
            # A fresh timeout: the old deadline has passed (a leader never reset it), and
            # standing for election at once would depose the leader that just outran us.
            self._reset_election_deadline()
            self._wake_ticker.notify_all()
        self._role = FOLLOWER

    def _start_election(self) -> tuple[RequestVoteArgs, tuple]:
        self._role = CANDIDATE
        self._current_term += 1
        self._leader_id = None
        self._voted_for = self._me
        self._save_state()
        self._votes = 1
        self._reset_election_deadline()
        args = RequestVoteArgs(self._current_term, self._me, self._log.last_index,
                               self._log.last_term)
        log.debug("raft-%d: candidate in term %d", self._me, self._current_term)
        if self._votes * 2 > len(self._peers):
            self._become_leader()
        return args, self._durability_point()

    def _ask_vote(self, peer: int, args: RequestVoteArgs) -> None:
        """Thread raft-P/vote-J (no lock held)."""
        reply = self._peers[peer].call("request_vote", args)
        if reply is None:
            return
        with self._lock:
            if self._life.is_stopping:
                return
            if reply.term > self._current_term:
                self._become_follower(reply.term)
                return
            if (self._role != CANDIDATE or self._current_term != args.term
                    or not reply.vote_granted):
                return
            self._votes += 1
            if self._votes * 2 > len(self._peers):
                self._become_leader()

    def _become_leader(self) -> None:
        log.debug("raft-%d: leader in term %d", self._me, self._current_term)
        self._role = LEADER
        self._leader_id = self._me
        self._next_index = [self._log.last_index + 1] * len(self._peers)
        self._match_index = [0] * len(self._peers)
        self._match_index[self._me] = self._durable_index
        self._acked_round = [0] * len(self._peers)
        self._appends_in_flight = [0] * len(self._peers)
        self._deposed = csp.Chan()
        self._wakes = [None if peer == self._me else csp.Chan(1)
                       for peer in range(len(self._peers))]
        for peer, wake in enumerate(self._wakes):
            if wake is not None:
                csp.go(self._replicate, peer, self._current_term, wake, self._deposed,
                       name=f"raft-{self._me}/replicate-{peer}")

    # ---- replication --------------------------------------------------------------------------

    def _wake_replicators(self) -> None:
        """Under the lock. A wake-up already waiting covers this one too (Chan(1), never
        blocks)."""
        for wake in self._wakes:
            if wake is not None:
                csp.select(csp.Send(wake, None), default=True)

    def _leads(self, term: int) -> bool:
        return (not self._life.is_stopping and self._role == LEADER
                and self._current_term == term)

    def _replicate(self, peer: int, term: int, wake: csp.Chan, deposed: csp.Chan) -> None:
        """Thread raft-P/replicate-J: see the module docstring."""
        woken = csp.Recv(wake)
        stopping = csp.Recv(self._life.stopping)
        ended = csp.Recv(deposed)
        requests = csp.Chan()   # to this follower's senders (unbuffered: an idle one takes it)
        senders = 0
        heartbeat_due = 0.0     # when J must hear from us again, entries or not
        sent_round = -1         # the ReadIndex round of the last request built
        while True:
            with self._lock:
                if not self._leads(term):
                    return
                # New entries wait while APPENDS_IN_FLIGHT calls carrying entries are out:
                # the next call then carries all that piled up meanwhile (fewer, larger calls
                # and follower fsyncs under load). A heartbeat or a read round does not wait.
                hold = (self._appends_in_flight[peer] >= APPENDS_IN_FLIGHT
                        and time.monotonic() < heartbeat_due
                        and self._read_round == sent_round)
                if not hold:
                    method, args = self._request_for(peer, term)
                    carries = method == "install_snapshot" or bool(args.entries)
                    self._appends_in_flight[peer] += carries
                    sent_round = self._read_round
                    behind = self._next_index[peer] <= self._log.last_index
                    term_point = (self._state_saves, 0, 0)
            if not hold:
                # The term goes out durable (it is, since the election, unless it changed);
                # the entries need not be (dissertation 10.2.1): the leader counts itself
                # toward a commit only once they are durable here (raft-P/disk).
                self._make_durable(term_point)
                heartbeat_due = time.monotonic() + self._heartbeat_seconds
                request = (method, args, sent_round, carries)
                case, _, _ = csp.select_case(csp.Send(requests, request), stopping, ended,
                                             default=True)
                if case is None and senders < SENDERS_PER_FOLLOWER:
                    senders += 1
                    csp.go(self._send, peer, term, request, requests, deposed,
                           name=f"raft-{self._me}/send-{peer}.{senders}")
                elif case is None:
                    case, _, _ = csp.select_case(csp.Send(requests, request), stopping, ended)
                if case is stopping or case is ended:
                    return
                if behind and self._appends_in_flight[peer] < APPENDS_IN_FLIGHT:
                    continue   # (a racy read: at worst one wait for a wake-up)
            remaining = heartbeat_due - time.monotonic()
            if remaining > 0:
                case, _, _ = csp.select_case(woken, stopping, ended,
                                             csp.Recv(csp.after(remaining)))
                if case is stopping or case is ended:
                    return

    def _send(self, peer: int, term: int, request, requests: csp.Chan,
              deposed: csp.Chan) -> None:
        """Thread raft-P/send-J.k: carries the replicator's requests to `peer` one call at a
        time and applies each reply under the lock."""
        asked = csp.Recv(requests)
        stopping = csp.Recv(self._life.stopping)
        ended = csp.Recv(deposed)
        while True:
            method, args, read_round, carries = request
            reply = self._peers[peer].call(method, args)
            with self._lock:
                if not self._leads(term):
                    return
                if (reply is not None and reply.term == term
                        and read_round > self._acked_round[peer]):
                    self._acked_round[peer] = read_round   # J still follows us: see read_index
                    self._leadership_news.notify_all()
                self._appends_in_flight[peer] -= carries
                again = self._take_reply(peer, args, reply)
                if again or (carries and reply is not None
                             and self._next_index[peer] <= self._log.last_index):
                    self._wake_replicator(peer)   # what piled up goes now
            case, request, _ = csp.select_case(asked, stopping, ended)
            if case is not asked:
                return

    def _request_for(self, peer: int, term: int):
        """(method, args): what `peer` needs next, from next_index[peer], which then moves
        past it (the replies correct it: a rejection or a lost call moves it back)."""
        next_index = self._next_index[peer]
        if next_index <= self._log.snapshot_index:
            self._next_index[peer] = self._log.snapshot_index + 1
            return "install_snapshot", InstallSnapshotArgs(
                term, self._me, self._log.snapshot_index, self._log.snapshot_term,
                self._snapshot)
        prev = next_index - 1
        entries = self._log[next_index:next_index + MAX_ENTRIES_PER_APPEND]
        self._next_index[peer] = next_index + len(entries)
        return "append_entries", AppendEntriesArgs(term, self._me, prev, self._log[prev].term,
                                                   entries, self._commit_index)

    def _take_reply(self, peer: int, args, reply) -> bool:
        """Apply `peer`'s reply to `args` (None: the call failed); True when the replicator
        should send again at once (next_index moved back after a rejection)."""
        if isinstance(args, InstallSnapshotArgs):
            sent_from, match = args.last_included_index, args.last_included_index
        else:
            sent_from, match = args.prev_log_index + 1, args.prev_log_index + len(args.entries)
        floor = self._match_index[peer] + 1
        if reply is None:   # resend from there at the next heartbeat; no hot loop
            self._next_index[peer] = max(floor, min(self._next_index[peer], sent_from))
            return False
        if reply.term > self._current_term:
            self._become_follower(reply.term)
            return False
        if isinstance(args, AppendEntriesArgs) and not reply.success:
            # Not floored at match_index: a follower that lost its log (kept in memory only)
            # must still be brought back; a stale rejection costs only a resend.
            backed = rules.next_index_after_rejection(self._log, reply, args.prev_log_index + 1)
            was = self._next_index[peer]
            self._next_index[peer] = min(was, backed)
            return self._next_index[peer] < was
        if match > self._match_index[peer]:
            self._match_index[peer] = match
            self._advance_leader_commit()
        self._next_index[peer] = max(self._next_index[peer], match + 1)
        return False

    def _wake_replicator(self, peer: int) -> None:
        wake = self._wakes[peer] if self._wakes else None
        if wake is not None:
            csp.select(csp.Send(wake, None), default=True)

    def _advance_leader_commit(self) -> None:
        self._set_commit_index(rules.leader_commit_index(
            self._log, self._match_index, self._current_term, self._commit_index))

    def _set_commit_index(self, index: int) -> None:
        if index > self._commit_index:
            self._commit_index = min(index, self._log.last_index)
            self._commit_changed.notify_all()
            self._leadership_news.notify_all()

    # ---- the threads --------------------------------------------------------------------------

    def _ticker(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._life.is_stopping:
                        return
                    now = time.monotonic()
                    if self._role != LEADER and now >= self._election_deadline:
                        break
                    timeout = (None if self._role == LEADER
                               else max(self._election_deadline - now, 0.001))
                    self._wake_ticker.wait(timeout)
                args, point = self._start_election()
                peers = [] if self._role == LEADER else [
                    peer for peer in range(len(self._peers)) if peer != self._me]
            self._make_durable(point)   # its vote for itself is durable before it asks
            for peer in peers:
                csp.go(self._ask_vote, peer, args, name=f"raft-{self._me}/vote-{peer}")

    def _applier(self) -> None:
        stopping = csp.Recv(self._life.stopping)
        while True:
            with self._lock:
                while (not self._life.is_stopping and not self._snapshot_owed
                       and self._last_applied >= self._commit_index):
                    self._commit_changed.wait()
                if self._life.is_stopping:
                    return
                if self._snapshot_owed:
                    self._snapshot_owed = False
                    batch = [ApplySnapshot(self._log.snapshot_index, self._log.snapshot_term,
                                           self._snapshot)]
                else:
                    # The service's own snapshot may already cover what it was sent.
                    first = max(self._last_applied, self._log.snapshot_index) + 1
                    self._last_applied = first - 1
                    batch = [ApplyCommand(index, self._log[index].command)
                             for index in range(first, self._commit_index + 1)]
            for message in batch:
                case, _, _ = csp.select_case(csp.Send(self._apply_ch, message), stopping)
                if case is stopping:
                    return
                with self._lock:
                    self._last_applied = max(self._last_applied, message.index)
                    if self._snapshot_owed:
                        break   # a snapshot came in: it goes first, then commands after it

    # ---- persistence --------------------------------------------------------------------------

    def _save_state(self) -> None:
        """Under the lock."""
        self._saves += 1
        self._state_saves = self._saves
        if self._persister is not None:
            self._persister.save_state(self._current_term, self._voted_for)

    def _save_log(self, first_index: int) -> None:
        """Under the lock: log[first_index:] replaced what was saved from first_index on."""
        if first_index <= self._saved_last_index:
            # Saved entries replaced: a sync already running (it may have begun before this
            # save) cannot vouch for them, whatever it was asked to cover.
            self._durable_index = min(self._durable_index, first_index - 1)
            self._log_epoch += 1
        self._saved_last_index = self._log.last_index
        self._saves += 1
        if self._persister is not None:
            self._persister.save_log(first_index, self._log[first_index:])

    def _durability_point(self) -> tuple[int, int, int]:
        """Under the lock: what a later _make_durable must cover."""
        return self._saves, self._log_epoch, self._log.last_index

    def _make_durable(self, point: tuple[int, int, int]) -> None:
        """WITHOUT the lock: everything saved up to `point` is durable when this returns;
        as leader, the peer then counts its own log toward commits. One sync covers every
        save made before it starts (a group commit), so the point recorded afterwards is the
        peer's state when the sync began, not merely `point`."""
        saves, epoch, last_index = point
        with self._lock:
            if self._durable_saves >= saves and (epoch != self._log_epoch
                                                 or self._durable_index >= last_index):
                return
            # Saves happen under the lock: each one counted here is already with the
            # persister, so the sync below covers it.
            saves, epoch, last_index = self._durability_point()
        if self._persister is not None:
            self._persister.sync()
        with self._lock:
            self._durable_saves = max(self._durable_saves, saves)
            if epoch == self._log_epoch and last_index > self._durable_index:
                self._durable_index = last_index
                if self._role == LEADER and not self._life.is_stopping:
                    self._match_index[self._me] = self._durable_index
                    self._advance_leader_commit()

    def _disk(self) -> None:
        """Thread raft-P/disk: makes the leader's new entries durable, one sync for all that
        were appended while the previous one ran."""
        woken = csp.Recv(self._disk_wake)
        stopping = csp.Recv(self._life.stopping)
        while True:
            case, _, _ = csp.select_case(woken, stopping)
            if case is stopping:
                return
            with self._lock:
                if self._life.is_stopping:
                    return
                point = self._durability_point()
            self._make_durable(point)

    def _restore(self) -> None:
        if self._persister is None:
            return
        self._current_term, self._voted_for, entries = self._persister.load()
        index, term, self._snapshot = self._persister.load_snapshot()
        self._log = Log(entries, index, term)
        self._commit_index = index
        self._snapshot_owed = index > 0
        self._durable_index = self._saved_last_index = self._log.last_index
