"""The storage server (the course's `kvserver`): one actor system, N query actors each served
on its own RPC port as "QueryReceiver", and one sync actor that talks to the other servers.

    server, desc = new_server(6000, 4, [desc_of_an_older_server, ...])
    server.query_addrs    ["127.0.0.1:6001", ..., "127.0.0.1:6004"]
    server.close()

The sync strategy is described at the top of cmud.query_actor.

Threads:
    the actor system's (an actor thread per query actor and for the sync actor, its timers,
    its remote senders); the rpc servers' (one per query port). A QueryReceiver handler runs
    on an rpc worker thread: it tells its query actor the query with a fresh channel ref and
    waits on that channel (never answering from any state of its own), or on the server's
    `stopping` channel (csp.Lifecycle), which close() closes first, waking it with
    ServerClosed.
"""

from __future__ import annotations

import json

import csp
import rpc
from actor import ActorRef, ActorSystem
from cmud.common import SERVICE, GetArgs, ListArgs, PutArgs
from cmud.messages import Query, QueryInit, StatusArgs, SyncInit
from cmud.query_actor import QueryActor
from cmud.sync_actor import SyncActor

ANSWER_TIMEOUT_SECONDS = 10.0
MAX_PORT = 65535


class ServerClosed(rpc.RPCError):
    """A query reached a server that is closing."""


class _QueryActorFace:
    """What an rpc service of one query actor shares: each query goes to the actor with a
    fresh channel ref, and the handler waits for the answer (never answering from any state
    of its own)."""

    def __init__(self, system: ActorSystem, actor: ActorRef, stopping: csp.Chan) -> None:
        self._system = system
        self._actor = actor
        self._stopping = stopping

    def _ask(self, args, expected: type):
        """Blocks until the actor answers. TypeError for arguments of the wrong type,
        ServerClosed once the server's `stopping` is closed, rpc.CallTimeout after
        ANSWER_TIMEOUT_SECONDS."""
        if type(args) is not expected:
            raise TypeError(f"expected {expected.__name__}, got {type(args).__name__}")
        for name in ("key", "value", "prefix"):
            if hasattr(args, name) and type(getattr(args, name)) is not str:
                raise TypeError(f"{name} must be a str")
        ref, answer = self._system.new_channel_ref()
        self._system.tell(self._actor, Query(args, ref))
        answered = csp.Recv(answer)
        closing = csp.Recv(self._stopping)
        case, reply, _ = csp.select_case(answered, closing,
                                         csp.Recv(csp.after(ANSWER_TIMEOUT_SECONDS)))
        if case is closing:
            raise ServerClosed("the server is closing")
        if case is not answered:
            raise rpc.CallTimeout(f"query actor {self._actor.uid()} did not answer")
        return reply


class QueryReceiver(_QueryActorFace):
    """The RPC face of one query actor ("QueryReceiver"): Get, Put and List."""

    def get(self, args: GetArgs):
        return self._ask(args, GetArgs)

    def put(self, args: PutArgs):
        return self._ask(args, PutArgs)

    def list(self, args: ListArgs):
        return self._ask(args, ListArgs)


class StatusReceiver(_QueryActorFace):
    """`QueryStatus.get` answers the query actor's StatusReply (python -m cmud status)."""

    def get(self, args: StatusArgs):
        return self._ask(args, StatusArgs)


class Server:
    """A running storage server. Use new_server() to make one."""

    def __init__(self, system: ActorSystem, sync: ActorRef) -> None:
        self.system = system
        self.sync_ref = sync
        self.query_addrs: list[str] = []
        self._rpc_servers: list[rpc.Server] = []
        self._life = csp.Lifecycle()

    @property
    def desc(self) -> str:
        return json.dumps({"sync": [self.sync_ref.address, self.sync_ref.counter]})

    def close(self) -> None:
        """Frees every port and joins every thread; a query waiting for its actor raises
        ServerClosed. Idempotent: a later or concurrent call returns once the first has
        finished."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        for server in self._rpc_servers:
            server.close()
        self.system.close()


def parse_desc(desc: str) -> ActorRef:
    """The sync actor named by a server's desc; ValueError with the reason if malformed."""
    try:
        data = json.loads(desc)
        address, counter = data["sync"]
        if type(address) is not str or type(counter) is not int:
            raise TypeError
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a server desc: {desc!r:.100}") from exc
    return ActorRef(address, counter)


def port_range_problem(start_port: int, query_actor_count: int) -> str:
    """Why a server cannot use ports start_port .. start_port + query_actor_count (its actor
    system, then one port per query actor), or "" when it can."""
    if type(start_port) is not int or not 1 <= start_port <= MAX_PORT:
        return f"the start port must be within 1..{MAX_PORT}, got {start_port!r}"
    last_port = start_port + query_actor_count
    if last_port > MAX_PORT:
        return (f"ports {start_port}..{last_port} (the actor system, then one per query "
                f"actor) go past {MAX_PORT}; with {query_actor_count} query actor(s) the start "
                f"port can be at most {MAX_PORT - query_actor_count}")
    return ""


def new_server(start_port: int, query_actor_count: int,
               remote_descs: list[str]) -> tuple[Server, str]:
    """Start a server: the actor system on `start_port`, query actor i served on
    `start_port + 1 + i`. Returns once every port listens and every actor runs; the state of
    the servers in `remote_descs` reaches every local actor soon after (cmud.query_actor).
    Raises OSError when a port is taken (nothing stays open), ValueError for a bad desc or a
    port range (start_port .. start_port + query_actor_count) not within 1..65535."""
    if type(query_actor_count) is not int or query_actor_count < 1:
        raise ValueError(f"query_actor_count must be >= 1, got {query_actor_count!r}")
    problem = port_range_problem(start_port, query_actor_count)
    if problem:
        raise ValueError(problem)
    remotes = [parse_desc(desc) for desc in remote_descs]
    system = ActorSystem(start_port)
    host = system.address.rpartition(":")[0]
    actors = [system.start_actor(QueryActor) for _ in range(query_actor_count)]
    sync = system.start_actor(SyncActor)
    server = Server(system, sync)
    try:
        for ref in actors:
            system.tell(ref, QueryInit([peer for peer in actors if peer != ref], sync))
        system.tell(sync, SyncInit(actors, remotes))
        for i, ref in enumerate(actors):
            rpc_server = rpc.Server()
            stopping = server._life.stopping
            rpc_server.register(QueryReceiver(system, ref, stopping), name=SERVICE)
            rpc_server.register(StatusReceiver(system, ref, stopping), name="QueryStatus")
            server._rpc_servers.append(rpc_server)
            rpc_server.listen(start_port + 1 + i, host)
            server.query_addrs.append(f"{host}:{rpc_server.port}")
    except BaseException:
        server.close()
        raise
    return server, server.desc
