"""One kvraft replica: a Raft peer and the key-value service on top of it.

    server = KVServer(peers, me, persister, max_raft_state)   # peers: Raft's call() ends
    server.get(GetArgs) / server.put_append(PutAppendArgs) / server.status(StatusQuery)
    server.close()
    replica = Replica(me, addresses, data_dir, max_raft_state)  # the same over TCP, one port
    replica.watch                       # its raft.node.NodeWatch: events and fault switch

Writes (put, append) go through the log: the loop hands the command to Raft and answers the
clerk when the entry at that index is applied and is that clerk's operation (another one
there means the leadership was lost: the clerk retries elsewhere). Exactly once: the state
machine's dedup table (kvraft.state_machine) skips a retried operation, and a write already
applied is answered at once.

Reads skip the log (Raft dissertation 6.4, ReadIndex): the reads thread asks
`Raft.read_index` (the leader, once an entry of its term is committed, records its commit
index and confirms with a heartbeat round that a majority still follows it), then the loop
answers once it has applied through that index. One round serves every get that arrived
before it began (gets arriving meanwhile wait for the next), so concurrent gets cost one
heartbeat round per round trip, not one each. A leader paused (SIGSTOP) while the others went on cannot confirm
and never answers from stale state. A new leader commits a no-op at once so reads need not
wait for a write (6.4's first step).

Snapshots: after applying, once the persisted Raft state (snapshot not counted) exceeds
`max_raft_state` bytes, the loop hands Raft a snapshot of the map and the dedup table; an
ApplySnapshot from Raft replaces both. `max_raft_state` < 0: never.

Bad requests (a wrong type, a malformed field) get an ERR_BAD_REQUEST reply; the replica
keeps serving.

A Replica serves, on its one port, "Raft" (the peer RPCs, through raft.node.RaftPeerService),
"KV" (the clerks') and "Watch" (raft.node.WatchService: its Raft's detailed status and the
recent RPC events its TcpPeers report, for the live web picture of `python -m kvraft cluster
--web`, and the fault switch that cuts it off from the other replicas, refused unless the
replica was made with allow_faults, which only the cluster command's replicas are).

Threads (S is `me`):
    kvraft-S/loop      owns the state machine, the applied index, the writes waiting for their
                       index and the reads waiting for theirs: selects over apply_ch (from
                       Raft), requests from the handlers, a tick (leadership checks: waiting
                       writes of a lost term are answered ErrWrongLeader, a new leader's
                       no-op) and the close. Never blocks on a handler: each request carries
                       its own Chan(1) for the answer.
    kvraft-S/reads     takes every get waiting, asks Raft.read_index once for all of them, and
                       hands them with the index to the loop (or answers ErrWrongLeader);
                       then takes the gets that arrived meanwhile. Ends when close begins.
    (handlers)         the rpc server's (or simnet's) threads: validate, send the request to
                       the loop (gets: to the reads thread), wait for the answer, ERR_TIMEOUT
                       after WAIT_SECONDS, ERR_CLOSED once close begins
    (the Raft peer's threads)
A Replica adds no thread: its Watch handlers run on the rpc server's threads and read the
NodeWatch (its event ring has its own mutex in raft; the fault switch is one attribute).
close() (csp.Lifecycle) wakes waiting handlers, joins the loop and the reads thread (a
read_index in progress returns once the peer stops), then stops the Raft peer.
No locks here: the loop owns everything, the handlers talk to it through channels.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
from dataclasses import dataclass

import csp
import rpc
from kvraft import state_machine
from kvraft.messages import (ERR_BAD_REQUEST, ERR_CLOSED, ERR_TIMEOUT, ERR_WRONG_LEADER, OK,
                             GetArgs, GetReply, PutAppendArgs, PutAppendReply, Status,
                             StatusQuery)
from raft import ApplySnapshot, Raft
from raft.node import NodeWatch, RaftPeerService, WatchService
from raft.persister import CorruptStateError, FilePersister
from rpc.wire import parse_address

log = logging.getLogger("kvraft")

WAIT_SECONDS = 2.0          # a handler answers ERR_TIMEOUT after this long (the clerk retries)
READ_INDEX_SECONDS = 1.0    # how long a read waits to confirm the leadership
TICK_SECONDS = 0.05         # leadership checks
MAX_BATCH = 512             # writes handed to Raft in one put_commands
DEFAULT_MAX_RAFT_STATE = 1 << 20


@dataclass
class _Write:
    command: list
    clerk_id: int
    seq: int
    answer: csp.Chan


@dataclass
class _Read:
    key: str
    answer: csp.Chan
    index: int = 0   # set by the reads thread: answer once applied through it


@dataclass
class _ConfirmedReads:
    index: int
    reads: list


@dataclass
class _StatusRequest:
    answer: csp.Chan


class KVServer:
    """Starts at once. `peers[j].call(method, args)` reaches Raft peer j (simnet ends or
    TcpPeers); `persister` is the Raft peer's (its raft_state_size() decides snapshots).
    The handler methods are thread-safe and block up to WAIT_SECONDS (plus
    READ_INDEX_SECONDS for a get); close() is idempotent, thread-safe, and returns once the
    loop and the Raft peer have stopped; afterwards handlers answer ERR_CLOSED."""

    def __init__(self, peers: list, me: int, persister, max_raft_state: int = -1,
                 **raft_options) -> None:
        self.me = me
        self._persister = persister
        self._max_raft_state = max_raft_state
        self._life = csp.Lifecycle()
        self._requests = csp.Chan()
        self._gets = csp.Chan()   # to the reads thread
        self._apply_ch = csp.Chan(256)
        self.raft = Raft(peers, me, self._apply_ch, persister=persister, **raft_options)
        self._loop_thread = csp.go(self._loop, name=f"kvraft-{me}/loop")
        self._reads_thread = csp.go(self._confirm_reads, name=f"kvraft-{me}/reads")

    # ---- handlers (rpc threads) -------------------------------------------------------------

    def get(self, args: GetArgs) -> GetReply:
        if not isinstance(args, GetArgs) or type(args.key) is not str:
            return GetReply(f"{ERR_BAD_REQUEST}: a get wants GetArgs with a str key")
        answer = self._ask(_Read(args.key, csp.Chan(1)), self._gets)
        return answer if isinstance(answer, GetReply) else GetReply(answer)

    def put_append(self, args: PutAppendArgs) -> PutAppendReply:
        if not isinstance(args, PutAppendArgs):
            return PutAppendReply(f"{ERR_BAD_REQUEST}: a put or append wants PutAppendArgs")
        problem = state_machine.check_write(args.op, args.key, args.value, args.clerk_id,
                                            args.seq)
        if problem:
            return PutAppendReply(f"{ERR_BAD_REQUEST}: {problem}")
        command = state_machine.write_command(args.op, args.key, args.value, args.clerk_id,
                                              args.seq)
        answer = self._ask(_Write(command, args.clerk_id, args.seq, csp.Chan(1)))
        return answer if isinstance(answer, PutAppendReply) else PutAppendReply(answer)

    def status(self, args: StatusQuery | None = None) -> Status | None:
        """None once closed."""
        answer = self._ask(_StatusRequest(csp.Chan(1)))
        return answer if isinstance(answer, Status) else None

    def _ask(self, request, to: csp.Chan | None = None):
        """Send `request` to the loop (or `to`) and wait for its answer; an error string if
        none came."""
        stopping = csp.Recv(self._life.stopping)
        case, _, _ = csp.select_case(csp.Send(to or self._requests, request), stopping)
        if case is stopping:
            return ERR_CLOSED
        answered = csp.Recv(request.answer)
        case, answer, _ = csp.select_case(answered, stopping,
                                          csp.Recv(csp.after(WAIT_SECONDS)))
        if case is answered:
            return answer
        return ERR_CLOSED if case is stopping else ERR_TIMEOUT

    def _leader_hint(self) -> int | None:
        leader = self.raft.status()["leader"]
        return None if leader == self.me else leader

    # ---- the reads thread ---------------------------------------------------------------------

    def _confirm_reads(self) -> None:
        asked = csp.Recv(self._gets)
        stopping = csp.Recv(self._life.stopping)
        while True:
            case, read, _ = csp.select_case(asked, stopping)
            if case is stopping:
                return
            reads = [read]
            while True:   # every get already waiting joins this round
                case, read, _ = csp.select_case(asked, default=True)
                if case is None:
                    break
                reads.append(read)
            index = self.raft.read_index(READ_INDEX_SECONDS)
            if index is None:
                hint = self._leader_hint()
                for read in reads:
                    read.answer.send(GetReply(ERR_WRONG_LEADER, leader_hint=hint))
                continue
            case, _, _ = csp.select_case(csp.Send(self._requests, _ConfirmedReads(index, reads)),
                                         stopping)
            if case is stopping:
                return

    # ---- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        machine = state_machine.StateMachine()
        applied_index = 0
        snapshot_index = 0
        writes: dict[int, tuple[int, _Write]] = {}   # log index -> (term, waiting write)
        reads: list[tuple[int, int, _Read]] = []     # heap of (index, arrival, read)
        arrivals = 0
        noop_term = 0
        bytes_since_check = 0
        check_every = max(self._max_raft_state // 8, 1)
        ticker = csp.Ticker(TICK_SECONDS)
        applied = csp.Recv(self._apply_ch)
        requested = csp.Recv(self._requests)
        tick = csp.Recv(ticker.c)
        stopping = csp.Recv(self._life.stopping)

        def answer_reads() -> None:
            while reads and reads[0][0] <= applied_index:
                read = heapq.heappop(reads)[2]
                read.answer.send(GetReply(OK, machine.get(read.key)))

        def check_leadership() -> None:
            nonlocal noop_term
            _, term, leading = self.raft.get_state()
            for index in [i for i, (t, _) in writes.items() if t != term or not leading]:
                writes.pop(index)[1].answer.send(
                    PutAppendReply(ERR_WRONG_LEADER, self._leader_hint()))
            if leading and term != noop_term:
                noop_term = term
                self.raft.put_command(state_machine.NOOP_COMMAND)

        def submit_writes(batch: list[_Write]) -> None:
            fresh = []
            for write in batch:
                if machine.is_applied(write.clerk_id, write.seq):
                    write.answer.send(PutAppendReply(OK))
                else:
                    fresh.append(write)
            if not fresh:
                return
            first, term, leading = self.raft.put_commands([w.command for w in fresh])
            if not leading:
                hint = self._leader_hint()
                for write in fresh:
                    write.answer.send(PutAppendReply(ERR_WRONG_LEADER, hint))
                return
            for index, write in enumerate(fresh, first):
                if index in writes:   # a stale waiter: whoever wins the index decides
                    writes.pop(index)[1].answer.send(PutAppendReply(ERR_WRONG_LEADER))
                writes[index] = (term, write)

        try:
            while True:
                case, message, _ = csp.select_case(applied, requested, tick, stopping)
                if case is stopping:
                    return
                if case is tick:
                    check_leadership()
                elif case is requested:
                    # Take every request already waiting too: their writes go to Raft as one
                    # batch (one log append, one wake-up of the replicators).
                    batch = []
                    while message is not None:
                        if isinstance(message, _Write):
                            batch.append(message)
                        elif isinstance(message, _ConfirmedReads):
                            for read in message.reads:
                                arrivals += 1
                                heapq.heappush(reads, (message.index, arrivals, read))
                        else:
                            message.answer.send(self._status(applied_index, snapshot_index,
                                                             len(machine.data)))
                        if len(batch) >= MAX_BATCH:
                            break
                        case, message, _ = csp.select_case(requested, default=True)
                    answer_reads()
                    submit_writes(batch)
                elif isinstance(message, ApplySnapshot):
                    if message.index <= applied_index:
                        continue
                    try:
                        machine = state_machine.decode_snapshot(message.snapshot)
                    except ValueError as exc:   # Raft checked it; nothing sane is left to do
                        log.error("kvraft-%d: snapshot at %d refused: %s", self.me,
                                  message.index, exc)
                        raise
                    applied_index = snapshot_index = message.index
                    for index in [i for i in writes if i <= applied_index]:
                        # Its outcome is in the table: the retry is answered from it.
                        writes.pop(index)[1].answer.send(PutAppendReply(ERR_TIMEOUT))
                    answer_reads()
                else:
                    if message.index <= applied_index:
                        continue   # already in the snapshot it installed
                    applied_index = message.index
                    command = message.command
                    machine.apply(command)
                    waiting = writes.pop(applied_index, None)
                    if waiting is not None:
                        write = waiting[1]
                        ok = machine.is_applied(write.clerk_id, write.seq) and \
                            command == write.command
                        write.answer.send(PutAppendReply(OK) if ok else
                                          PutAppendReply(ERR_WRONG_LEADER))
                    answer_reads()
                    bytes_since_check += len(json.dumps(command)) + 16
                    if self._max_raft_state >= 0 and bytes_since_check >= check_every:
                        bytes_since_check = 0
                        if self._persister.raft_state_size() > self._max_raft_state:
                            self.raft.snapshot(applied_index, machine.encode_snapshot())
                            snapshot_index = applied_index
        finally:
            ticker.stop()

    def _status(self, applied_index: int, snapshot_index: int, keys: int) -> Status:
        state = self.raft.status()
        return Status(self.me, state["role"], state["term"], state["commit_index"],
                      applied_index, snapshot_index, keys, state["leader"])

    def close(self) -> None:
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        self._loop_thread.join()
        self.raft.stop()   # ends a read_index in progress
        self._reads_thread.join()


class _KVService:
    """Only the clerk-facing methods of a KVServer, for an rpc server."""

    def __init__(self, server: KVServer) -> None:
        self._server = server

    def get(self, args):
        return self._server.get(args)

    def put_append(self, args):
        return self._server.put_append(args)

    def status(self, args):
        return self._server.status(args)


class Replica:
    """One replica as a process's core: listens on addresses[me] for the Raft peers
    ("Raft.*"), the clerks ("KV.*") and the live picture ("Watch.*"), keeps its Raft state in
    `data_dir`. `allow_faults`: Watch.fault may cut it off from the other replicas (the
    cluster command's replicas only). Raises CorruptStateError (file and offset) when that
    state is damaged, OSError when the port is taken, ValueError for a bad id. close() is
    idempotent and thread-safe."""

    def __init__(self, me: int, addresses: list[str], data_dir: str,
                 max_raft_state: int = DEFAULT_MAX_RAFT_STATE, *, host: str = "127.0.0.1",
                 allow_faults: bool = False, **raft_options) -> None:
        if not 0 <= me < len(addresses):
            raise ValueError(f"replica id {me} is not an index into {len(addresses)} peers")
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, f"kvraft-{me}.raft")
        self._persister = FilePersister(path)   # refuses a damaged file (file and offset)
        index, _, snapshot = self._persister.load_snapshot()
        try:
            state_machine.decode_snapshot(snapshot)
        except ValueError as exc:   # intact on disk, but not ours: never used either
            self._persister.close()
            raise CorruptStateError(f"{path}: the snapshot through index {index}: {exc}") \
                from None
        self.watch = NodeWatch(me, allow_faults)
        self._peers = self.watch.peers(addresses)   # they report to the ring, obey the switch
        self._life = csp.Lifecycle()
        try:
            self.server = KVServer(self._peers, me, self._persister, max_raft_state,
                                   **raft_options)
        except BaseException:
            self._close_parts()
            raise
        self._rpc = rpc.Server()
        self._rpc.register(RaftPeerService(self.server.raft, self.watch.switch), name="Raft")
        self._rpc.register(_KVService(self.server), name="KV")
        self._rpc.register(WatchService(self.watch, self.server.raft), name="Watch")
        _, port = parse_address(addresses[me])
        try:
            self._rpc.listen(port, host)
        except OSError:
            self.server.close()
            self._close_parts()
            raise

    def close(self) -> None:
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        self._rpc.close()
        self.server.close()
        self._close_parts()

    def _close_parts(self) -> None:
        for peer in self._peers:
            peer.close()
        self._persister.close()
