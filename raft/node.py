"""A Raft node as a real process's core: a Raft peer with a file persister, talking to the
other nodes over `rpc` (TCP), plus a small client service to submit commands and ask status.

    node = Node(node_id, addresses, data_dir)    # addresses[i] = "host:port" of node i
    node.close()

Services on the node's rpc server (at addresses[node_id]):
    Raft.request_vote / Raft.append_entries / Raft.install_snapshot    the peers' RPCs
    Node.submit(Submit)       -> Submitted      commands, applied in order; waits until they
                                                are committed (or leadership is lost)
    Node.status(StatusQuery)  -> Status          role, term, commit, last index, leader hint
    Node.applied(AppliedQuery)-> Applied         the committed commands from an index on
    Watch.view(ViewQuery)     -> View            the detailed status and the recent RPC events
                                                (raft.events), for the live web picture
    Watch.fault(Fault)        -> FaultSet        cut this node off from the other nodes, or
                                                heal it; refused unless the node was made
                                                with allow_faults (only `python -m raft
                                                cluster` starts its nodes so)
The Watch service, the event ring and the fault switch come in one piece, NodeWatch, which any
process built on a Raft peer and TcpPeers (kvraft's replicas too) can use the same way:
    watch = NodeWatch(me, allow_faults)
    peers = watch.peers(addresses)                    # TcpPeers that report and obey
    server.register(RaftPeerService(raft, watch.switch), name="Raft")
    server.register(WatchService(watch, raft), name="Watch")
Cut off, a node's transport drops every peer RPC both ways: its own calls answer None at once
(Raft sees a lost message) and the peers' calls to it get an error reply; its Node and Watch
services keep answering, so the picture still sees it.
A command is committed when the entry at its index, once applied, carries its unique id (a
leader that loses its leadership may see another entry applied there instead: `ok` False).

Threads (N is node_id):
    raft-node-N/applier   reads apply_ch, appends to the applied list, wakes submitters; ends
                          when the node's close begins (`self._life.stopping`)
    (the Raft peer's threads; the rpc server's and clients' threads)
The applied list and the waiters are guarded by one condition (a mutex is allowed in raft/);
the event ring by its own mutex (raft.events); the fault switch is one attribute, assigned whole.
close() (`self._life.close_once`) wakes waiting submitters (they answer "node closed"), closes
the rpc server (joining its handlers), stops the Raft peer, closes the peers' connections and
the persister, and joins the applier. A TcpPeer closes through a Lifecycle too: once its close
has begun it dials nothing more.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field

import csp
import rpc
from raft.events import EventRing, describe_call, describe_reply
from raft.persister import FilePersister, MemoryPersister
from raft.raft import Raft
from rpc.wire import parse_address

DIAL_TIMEOUT_SECONDS = 0.5
CALL_TIMEOUT_SECONDS = 2.0
REDIAL_PAUSE_SECONDS = 0.1
SUBMIT_TIMEOUT_SECONDS = 5.0


@rpc.register
@dataclass
class Submit:
    commands: list


@rpc.register
@dataclass
class Submitted:
    ok: bool
    first_index: int = -1     # the index of the first command, when ok
    leader: int | None = None  # a better node to ask, when not ok
    error: str = ""


@rpc.register
@dataclass
class StatusQuery:
    """No fields: which node answers is the question."""


@rpc.register
@dataclass
class Status:
    id: int
    role: str
    term: int
    commit_index: int
    last_applied: int
    last_index: int
    leader: int | None


@rpc.register
@dataclass
class AppliedQuery:
    from_index: int = 1


@rpc.register
@dataclass
class Applied:
    commands: list = field(default_factory=list)   # values, from from_index on


@rpc.register
@dataclass
class ViewQuery:
    after_seq: int = 0     # the events after this one (of the ring `boot`, if given)
    boot: str = ""


@rpc.register
@dataclass
class View:
    id: int
    status: dict           # Raft.status(detail=True)
    boot: str              # the event ring's identity: a new one after a restart
    last_seq: int
    events: list           # raft.events dicts numbered after the query's after_seq
    cut_off: bool
    faults_allowed: bool


@rpc.register
@dataclass
class Fault:
    cut_off: bool          # True: cut off from the other nodes; False: heal


@rpc.register
@dataclass
class FaultSet:
    cut_off: bool


class CutOff(Exception):
    """The node is cut off: a peer's RPC to it is refused (its caller sees a lost message)."""


class FaultSwitch:
    """Whether a node is cut off from its peers. Written by one rpc handler, read by every
    sender and handler: one attribute, assigned whole (no lock needed); starts healed."""

    def __init__(self) -> None:
        self.cut_off = False


class TcpPeer:
    """`call(method, args) -> reply | None` to one node over rpc, as Raft wants its peers:
    dials lazily, redials after a failure (not more often than every REDIAL_PAUSE_SECONDS),
    and maps every failure and timeout to None. Thread-safe; after close() every call answers
    None at once.

    With `events` (and `peer_id`, the id of the node called), every call is recorded there
    ("call", then "reply" or "lost"); with `switch`, a call while it is cut off answers None at
    once without touching the network."""

    def __init__(self, address: str, *, events: EventRing | None = None,
                 peer_id: int | None = None, switch: FaultSwitch | None = None) -> None:
        self._address = address
        self._events = events
        self._peer_id = peer_id
        self._switch = switch
        self._lock = threading.Lock()
        self._client: rpc.Client | None = None
        self._next_dial = 0.0
        self._life = csp.Lifecycle()

    def call(self, method: str, args):
        if self._events is None:
            return self._call(method, args)
        call = describe_call(method, args)
        self._events.add(kind="call", to=self._peer_id, **call)
        reply = self._call(method, args)
        if reply is None:
            cut = self._switch is not None and self._switch.cut_off
            self._events.add(kind="lost", to=self._peer_id, rpc=call["rpc"],
                             why="cut off" if cut else "no answer")
        else:
            self._events.add(kind="reply", to=self._peer_id, **describe_reply(method, reply))
        return reply

    def _call(self, method: str, args):
        if self._switch is not None and self._switch.cut_off:
            return None
        client = self._connected()
        if client is None:
            return None
        try:
            return client.call(f"Raft.{method}", args, timeout=CALL_TIMEOUT_SECONDS)
        except (rpc.CallTimeout, rpc.RemoteError):   # the connection itself is fine
            return None
        except rpc.RPCError:
            self._drop(client)
            return None

    def _connected(self) -> rpc.Client | None:
        with self._lock:
            # _shut_down takes the lock after close began: no client dialed here outlives it.
            if self._client is not None or self._life.is_stopping:
                return self._client
            if time.monotonic() < self._next_dial:
                return None
            try:
                self._client = rpc.dial(self._address, timeout=DIAL_TIMEOUT_SECONDS)
            except rpc.RPCError:
                self._next_dial = time.monotonic() + REDIAL_PAUSE_SECONDS
            return self._client

    def _drop(self, client: rpc.Client) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
                self._next_dial = time.monotonic() + REDIAL_PAUSE_SECONDS
        client.close()

    def close(self) -> None:
        """Close the connection; idempotent, thread-safe."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


class RaftPeerService:
    """Only the peer RPCs of a Raft object, for its rpc server (as "Raft"); refused while
    `switch` (if given) is cut off."""

    def __init__(self, raft: Raft, switch: FaultSwitch | None = None) -> None:
        self._raft = raft
        self._switch = switch

    def _check_link(self) -> None:
        if self._switch is not None and self._switch.cut_off:
            raise CutOff("this node is cut off from its peers")

    def request_vote(self, args):
        self._check_link()
        return self._raft.request_vote(args)

    def append_entries(self, args):
        self._check_link()
        return self._raft.append_entries(args)

    def install_snapshot(self, args):
        self._check_link()
        return self._raft.install_snapshot(args)


class NodeWatch:
    """What a node shows its live picture: its event ring (every TcpPeer call it makes) and
    its fault switch. Thread-safe; holds no threads and nothing to close."""

    def __init__(self, node_id: int, allow_faults: bool = False,
                 event_capacity: int = 512) -> None:
        self.node_id = node_id
        self.allow_faults = allow_faults
        self.events = EventRing(event_capacity)
        self.switch = FaultSwitch()

    def peers(self, addresses: list[str]) -> list[TcpPeer]:
        """One TcpPeer per address, reporting to the ring and obeying the switch."""
        return [TcpPeer(address, events=self.events, peer_id=peer, switch=self.switch)
                for peer, address in enumerate(addresses)]

    def view(self, raft: Raft, after_seq: int = 0, boot: str = "") -> View:
        """`raft`'s detailed status and the events after `after_seq` (all kept ones when `boot`
        names another ring than this one). Never blocks on the network."""
        if boot and boot != self.events.boot:
            after_seq = 0
        last_seq, events = self.events.since(after_seq)
        return View(self.node_id, raft.status(detail=True), self.events.boot, last_seq,
                    events, self.switch.cut_off, self.allow_faults)

    def set_cut_off(self, cut_off: bool) -> bool:
        """Cut the node off from its peers (True) or heal it (False); returns the new state.
        PermissionError unless made with allow_faults."""
        if not self.allow_faults:
            raise PermissionError(f"node {self.node_id} takes no faults: it was not started "
                                  "by a cluster command")
        self.switch.cut_off = cut_off
        return cut_off


class WatchService:
    """NodeWatch over rpc (registered as "Watch"): view(ViewQuery), fault(Fault)."""

    def __init__(self, watch: NodeWatch, raft: Raft) -> None:
        self._watch = watch
        self._raft = raft

    def view(self, args: ViewQuery) -> View:
        return self._watch.view(self._raft, args.after_seq, args.boot)

    def fault(self, args: Fault) -> FaultSet:
        return FaultSet(self._watch.set_cut_off(bool(args.cut_off)))


class _NodeService:
    def __init__(self, node: "Node") -> None:
        self._node = node

    def submit(self, args: Submit) -> Submitted:
        return self._node.submit(args.commands)

    def status(self, args: StatusQuery) -> Status:
        state = self._node.raft.status()
        return Status(self._node.node_id, **{name: state[name] for name in STATUS_FIELDS})

    def applied(self, args: AppliedQuery) -> Applied:
        return Applied(self._node.applied_commands(args.from_index))


STATUS_FIELDS = ("role", "term", "commit_index", "last_applied", "last_index", "leader")


class Node:
    """Starts at once: listens on addresses[node_id] (OSError if the port is taken), restores
    from `data_dir` (CorruptStateError if the state file is damaged; None: keep the state in
    memory only, which a crash loses). `allow_faults`: Watch.fault may cut it off (the cluster
    command's nodes only). close() is idempotent and thread-safe."""

    def __init__(self, node_id: int, addresses: list[str], data_dir: str | None, *,
                 host: str = "127.0.0.1", allow_faults: bool = False,
                 event_capacity: int = 512, **raft_options) -> None:
        if not 0 <= node_id < len(addresses):
            raise ValueError(f"node id {node_id} is not an index into {len(addresses)} peers")
        self.node_id = node_id
        if data_dir is None:   # no durability: for measuring what it costs
            self._persister = MemoryPersister()
        else:
            os.makedirs(data_dir, exist_ok=True)
            self._persister = FilePersister(os.path.join(data_dir, f"node-{node_id}.raft"))
        self.watch = NodeWatch(node_id, allow_faults, event_capacity)
        self._peers = self.watch.peers(addresses)
        self._apply_ch = csp.Chan(1024)
        self._changed = threading.Condition()
        self._applied: list = []        # (id, value) of every applied command, index - 1
        self._ids = itertools.count()
        self._id_prefix = os.urandom(6).hex()
        self._life = csp.Lifecycle()
        self.raft = Raft(self._peers, node_id, self._apply_ch, persister=self._persister,
                         **raft_options)
        self._server = rpc.Server()
        self._server.register(RaftPeerService(self.raft, self.watch.switch), name="Raft")
        self._server.register(_NodeService(self), name="Node")
        self._server.register(WatchService(self.watch, self.raft), name="Watch")
        _, port = parse_address(addresses[node_id])
        try:
            self._server.listen(port, host)
        except OSError:
            self._stop_parts()
            raise
        self._applier = csp.go(self._apply, name=f"raft-node-{node_id}/applier")

    def submit(self, values: list) -> Submitted:
        """Replicate `values` as consecutive commands; returns once they are committed (ok),
        or not leader (with a hint), or leadership was lost, or SUBMIT_TIMEOUT_SECONDS, or the
        node closes."""
        if not values:
            return Submitted(False, error="no commands")
        stamped = [[f"{self._id_prefix}-{next(self._ids)}", value] for value in values]
        first, _, is_leader = self.raft.put_commands(stamped)
        if not is_leader:
            return Submitted(False, leader=self.raft.status()["leader"], error="not the leader")
        last = first + len(values) - 1
        deadline = time.monotonic() + SUBMIT_TIMEOUT_SECONDS
        with self._changed:
            while len(self._applied) < last:
                if self._life.is_stopping:
                    return Submitted(False, error="node closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._changed.wait(remaining):
                    return Submitted(False, error="not committed in time")
            got = [entry[0] for entry in self._applied[first - 1:last]]
        if got != [entry[0] for entry in stamped]:
            return Submitted(False, leader=self.raft.status()["leader"],
                             error="leadership lost; other commands took those indices")
        return Submitted(True, first_index=first)

    def view(self, after_seq: int = 0, boot: str = "") -> View:
        """NodeWatch.view of this node's peer."""
        return self.watch.view(self.raft, after_seq, boot)

    def applied_commands(self, from_index: int = 1) -> list:
        with self._changed:
            return [entry[1] for entry in self._applied[max(from_index, 1) - 1:]]

    def _apply(self) -> None:
        applied = csp.Recv(self._apply_ch)
        stopping = csp.Recv(self._life.stopping)
        while True:
            case, message, _ = csp.select_case(applied, stopping)
            if case is stopping:
                return
            command = message.command
            if not (isinstance(command, list) and len(command) == 2):
                command = ["", command]
            with self._changed:
                self._applied.append(command)
                self._changed.notify_all()

    def close(self) -> None:
        """Stop serving and stop the peer; returns once the node's threads are gone.
        Idempotent, thread-safe."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        with self._changed:
            self._changed.notify_all()   # waiting submitters see the close and answer
        self._server.close()
        self._stop_parts()
        self._applier.join()

    def _stop_parts(self) -> None:
        self.raft.stop()
        for peer in self._peers:
            peer.close()
        self._persister.close()
