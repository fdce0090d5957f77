"""A Raft peer (the extended paper's Figure 2): leader election and log replication.

Threads (P is `me`):
    raft-P/ticker    sleeps until the next deadline: the election timeout (followers and
                     candidates) or the next heartbeat (leaders); starts elections and sends
                     heartbeats.
    raft-P/applier   waits for commitIndex to pass lastApplied, then sends the newly committed
                     entries on apply_ch in order, WITHOUT holding the lock (the tester's reader
                     may be blocked on put_command, which needs it).
    raft-P/rpc       one short-lived thread per outgoing RPC (a vote request, an append), so a
                     slow or dead link delays nothing else; it takes the lock only to build the
                     arguments and to apply the reply, and changes nothing once the peer is
                     stopped or its term has moved on.
All state is guarded by one mutex (the handout allows it in raft/): current_term, voted_for,
log, commit_index, last_applied, role, next_index, match_index, the election deadline. The
incoming handlers `request_vote` and `append_entries` run on the caller's thread, take the lock
briefly and never wait on apply_ch.

`stop()` goes through `self._life` (csp.Lifecycle): it begins stopping, wakes the ticker and
the applier under the lock (so a thread that read `is_stopping` as false under the lock is
already waiting when the wake-up comes), and joins them. Every critical section checks
`self._life.is_stopping` before it sends or applies anything, so once stop() has returned
nothing more is sent or applied. RPCs already on the wire finish on their own threads (a
simulated link may hold one for seconds) and, the peer being stopped, change nothing.

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
from raft.messages import (AppendEntriesArgs, AppendEntriesReply, ApplyCommand, LogEntry,
                           RequestVoteArgs, RequestVoteReply)

log = logging.getLogger("raft")

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"


class Raft:
    def __init__(self, peers: list, me: int, apply_ch: csp.Chan, *, persister=None,
                 heartbeat_seconds: float = 0.11,
                 election_timeout_seconds: tuple[float, float] = (0.4, 0.8),
                 seed: int | None = None) -> None:
        """Returns at once; the peer's threads run in the background. `persister`, if given
        (see raft.persister), keeps current_term, voted_for and the log: they are saved and
        synced before any reply or RPC depends on them, and read back here."""
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
        self._life = csp.Lifecycle()
        # Figure 2's state.
        self._current_term = 0
        self._voted_for: int | None = None
        self._log: list[LogEntry] = [LogEntry(0, None)]
        self._commit_index = 0
        self._last_applied = 0
        self._role = FOLLOWER
        self._next_index: list[int] = []
        self._match_index: list[int] = []
        self._votes = 0
        self._leader_id: int | None = None   # the leader of current_term, once known
        self._sending: list[bool] = []   # leader: a sender of new entries is on its way
        self._resend: list[bool] = []    # leader: new entries came while it was
        self._election_deadline = 0.0
        self._next_heartbeat = 0.0
        self._synced_index = 0   # the log is durable up to here
        self._unsynced = False   # something was saved since the last sync
        self._restore()
        with self._lock:
            self._reset_election_deadline()
        self._threads = [csp.go(self._ticker, name=f"raft-{me}/ticker"),
                         csp.go(self._applier, name=f"raft-{me}/applier")]

    # ---- the tester's API -------------------------------------------------------------------

    def get_state(self) -> tuple[int, int, bool]:
        """(me, current term, whether this peer believes it is the leader). Thread-safe."""
        with self._lock:
            return self._me, self._current_term, self._role == LEADER

    def put_command(self, command) -> tuple[int, int, bool]:
        """On the leader: append `command` and start replicating it; returns at once with the
        index it will have if ever committed. Elsewhere: (-1, term, False)."""
        with self._lock:
            if self._role != LEADER or self._life.is_stopping:
                return -1, self._current_term, False
            self._log.append(LogEntry(self._current_term, command))
            index = len(self._log) - 1
            self._save_log(index)   # synced (and counted for the majority) before it is sent
            term = self._current_term
            self._replicate_new_entries()
            return index, term, True

    def put_commands(self, commands: list) -> tuple[int, int, bool]:
        """put_command for a batch, in order, at consecutive indices: (index of the first,
        term, is_leader); one log write and one replication for the lot."""
        with self._lock:
            if self._role != LEADER or self._life.is_stopping or not commands:
                return -1, self._current_term, False
            first = len(self._log)
            self._log.extend(LogEntry(self._current_term, command) for command in commands)
            self._save_log(first)
            self._replicate_new_entries()
            return first, self._current_term, True

    def status(self) -> dict:
        """A snapshot for operators: me, role, term, commit_index, last_applied, last_index,
        leader (the id this peer last heard from as leader in its term, or None)."""
        with self._lock:
            return {"me": self._me, "role": self._role, "term": self._current_term,
                    "commit_index": self._commit_index, "last_applied": self._last_applied,
                    "last_index": len(self._log) - 1, "leader": self._leader_id}

    def stop(self) -> None:
        """Stops the peer: afterwards it sends and applies nothing. Idempotent and
        thread-safe; returns once the ticker and the applier have exited; never closes
        apply_ch."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        with self._lock:   # after begin(): a thread checking is_stopping under the lock either
            self._commit_changed.notify_all()   # saw it or is waiting and is woken here
            self._wake_ticker.notify_all()
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
            self._sync()
            return RequestVoteReply(self._current_term, granted)

    def append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
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
            self._sync()
            if reply.success:
                last_new = args.prev_log_index + len(args.entries)
                commit = rules.follower_commit_index(self._commit_index, args.leader_commit,
                                                     last_new)
                self._set_commit_index(commit)
            return reply

    # ---- elections and replication (under the lock unless said) -------------------------------

    def _reset_election_deadline(self) -> None:
        low, high = self._timeout_range
        self._election_deadline = time.monotonic() + self._random.uniform(low, high)

    def _become_follower(self, term: int) -> None:
        if term > self._current_term:
            self._current_term = term
            self._voted_for = None
            self._leader_id = None
            self._save_state()
        if self._role != FOLLOWER:
            log.debug("raft-%d: follower in term %d", self._me, term)
            # A fresh timeout: the old deadline has passed (a leader never reset it), and
            # standing for election at once would depose the leader that just outran us.
            self._reset_election_deadline()
            self._wake_ticker.notify_all()
        self._role = FOLLOWER

    def _start_election(self) -> None:
        self._role = CANDIDATE
        self._current_term += 1
        self._leader_id = None
        self._voted_for = self._me
        self._save_state()
        self._sync()
        self._votes = 1
        self._reset_election_deadline()
        last_index, last_term = rules.last_index_and_term(self._log)
        args = RequestVoteArgs(self._current_term, self._me, last_index, last_term)
        log.debug("raft-%d: candidate in term %d", self._me, self._current_term)
        if self._votes * 2 > len(self._peers):
            self._become_leader()
            return
        for peer in range(len(self._peers)):
            if peer != self._me:
                csp.go(self._ask_vote, peer, args, name=f"raft-{self._me}/rpc")

    def _ask_vote(self, peer: int, args: RequestVoteArgs) -> None:
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
        self._next_index = [len(self._log)] * len(self._peers)
        self._match_index = [0] * len(self._peers)
        self._match_index[self._me] = self._synced_index
        self._sending = [False] * len(self._peers)
        self._resend = [False] * len(self._peers)
        self._replicate_to_all()

    def _replicate_to_all(self) -> None:
        """Heartbeat: send every follower an AppendEntries now (with whatever entries it
        lacks), whether or not another one is on its way."""
        self._next_heartbeat = time.monotonic() + self._heartbeat_seconds
        self._wake_ticker.notify_all()
        if len(self._peers) == 1:
            self._sync()   # alone, its own durable log is the majority
        for peer in range(len(self._peers)):
            if peer != self._me:
                csp.go(self._replicate, peer, self._current_term, False,
                       name=f"raft-{self._me}/rpc")

    def _replicate_new_entries(self) -> None:
        """New entries: each follower gets them at once, but through at most one sender at a
        time; entries arriving while it waits for a reply go in its next AppendEntries
        (batching under load, no waiting for a tick when idle)."""
        if len(self._peers) == 1:
            self._sync()
        for peer in range(len(self._peers)):
            if peer == self._me:
                continue
            if self._sending[peer]:
                self._resend[peer] = True
            else:
                self._sending[peer] = True
                csp.go(self._replicate, peer, self._current_term, True,
                       name=f"raft-{self._me}/rpc")

    def _sender_done(self, peer: int, term: int, owns_sender: bool) -> bool:
        """At every point where _replicate would stop: True if it should instead send again
        (it is the follower's sender and new entries came meanwhile); otherwise it gives up
        the sender role in the same critical section, so no new entry is left unsent."""
        if not owns_sender:
            return False
        if (self._resend[peer] and not self._life.is_stopping and self._role == LEADER
                and self._current_term == term):
            self._resend[peer] = False
            return True
        self._sending[peer] = False
        return False

    def _replicate(self, peer: int, term: int, owns_sender: bool) -> None:
        """AppendEntries to `peer` for `term`, again at once while rejections back the
        follower's next index up (fast backup) or, as its sender, while new entries wait."""
        while True:
            with self._lock:
                if self._life.is_stopping or self._role != LEADER or self._current_term != term:
                    self._sender_done(peer, term, owns_sender)
                    return
                self._sync()   # the leader's own entries are durable before it sends them
                prev = self._next_index[peer] - 1
                args = AppendEntriesArgs(term, self._me, prev, self._log[prev].term,
                                         self._log[prev + 1:], self._commit_index)
            reply = self._peers[peer].call("append_entries", args)
            with self._lock:
                if reply is None or self._life.is_stopping:
                    if owns_sender:   # lost: the next heartbeat retries; no hot loop here
                        self._sending[peer] = self._resend[peer] = False
                    return
                if reply.term > self._current_term:
                    self._become_follower(reply.term)
                if self._role != LEADER or self._current_term != term:
                    self._sender_done(peer, term, owns_sender)
                    return
                if reply.success:
                    match = prev + len(args.entries)
                    if match > self._match_index[peer]:
                        self._match_index[peer] = match
                    self._next_index[peer] = max(self._next_index[peer], match + 1)
                    self._set_commit_index(rules.leader_commit_index(
                        self._log, self._match_index, term, self._commit_index))
                    if self._sender_done(peer, term, owns_sender):
                        continue
                    return
                if self._next_index[peer] != prev + 1:
                    # Another reply moved it meanwhile; that sender carries on.
                    if self._sender_done(peer, term, owns_sender):
                        continue
                    return
                self._next_index[peer] = rules.next_index_after_rejection(
                    self._log, reply, self._next_index[peer])

    def _set_commit_index(self, index: int) -> None:
        if index > self._commit_index:
            self._commit_index = min(index, len(self._log) - 1)
            self._commit_changed.notify_all()

    # ---- the threads --------------------------------------------------------------------------

    def _ticker(self) -> None:
        with self._lock:
            while not self._life.is_stopping:
                now = time.monotonic()
                if self._role == LEADER:
                    if now >= self._next_heartbeat:
                        self._replicate_to_all()
                    deadline = self._next_heartbeat
                else:
                    if now >= self._election_deadline:
                        self._start_election()
                        continue
                    deadline = self._election_deadline
                self._wake_ticker.wait(max(deadline - time.monotonic(), 0.001))

    def _applier(self) -> None:
        stopping = csp.Recv(self._life.stopping)
        while True:
            with self._lock:
                while not self._life.is_stopping and self._last_applied >= self._commit_index:
                    self._commit_changed.wait()
                if self._life.is_stopping:
                    return
                first = self._last_applied + 1
                batch = [ApplyCommand(index, self._log[index].command)
                         for index in range(first, self._commit_index + 1)]
            for command in batch:
                case, _, _ = csp.select_case(csp.Send(self._apply_ch, command), stopping)
                if case is stopping:
                    return
                with self._lock:
                    self._last_applied = command.index

    # ---- persistence (under the lock) ---------------------------------------------------------

    def _save_state(self) -> None:
        self._unsynced = True
        if self._persister is not None:
            self._persister.save_state(self._current_term, self._voted_for)

    def _save_log(self, first_index: int) -> None:
        """log[first_index:] replaced what was persisted from first_index on."""
        self._synced_index = min(self._synced_index, first_index - 1)
        self._unsynced = True
        if self._persister is not None:
            self._persister.save_log(first_index, self._log[first_index:])

    def _sync(self) -> None:
        """Everything saved so far is durable; as leader, counts its own log toward commits."""
        if not self._unsynced:
            return
        if self._persister is not None:
            self._persister.sync()
        self._unsynced = False
        last = self._synced_index = len(self._log) - 1
        if self._role == LEADER:
            self._match_index[self._me] = last
            self._set_commit_index(rules.leader_commit_index(
                self._log, self._match_index, self._current_term, self._commit_index))

    def _restore(self) -> None:
        if self._persister is None:
            return
        self._current_term, self._voted_for, entries = self._persister.load()
        self._log = [LogEntry(0, None)] + list(entries)
        self._synced_index = len(self._log) - 1
