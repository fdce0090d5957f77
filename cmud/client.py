"""The storage client (the course's `kvclient`): Get, Put and List against query actors.

    client = Client(RoundRobinRouter(["127.0.0.1:6001", "127.0.0.1:6002"]))
    client.put("k", "v"); client.get("k") == ("v", True); client.list("") == {"k": "v"}

The router is asked for an address before every query (the course's DNS-like load
balancing). Thread-safe: concurrent queries run concurrently (one rpc connection per address,
and rpc calls on one connection are not serialised). Network failures raise rpc.RPCError
(ConnectionLost, CallTimeout, RemoteError); a connection that failed is dropped and dialled
afresh on its next use. An address that turns out to be a server's actor system (its first
port) raises NotAQueryActor, whose message names the ports to use. After close(), queries
raise rpc.ConnectionLost.

Threads: none of its own (the rpc clients it holds run theirs). The table of connections is a
dict changed only with single atomic operations (setdefault, pop, popitem), so racing callers
at worst dial twice and close the loser; no locks (the channel rule of docs/architecture.md,
"Locks and channels"). close() goes through a csp.Lifecycle, like every endpoint's.
"""

from __future__ import annotations

import itertools
import random

import csp
import rpc
from actor.wire import RemoteTellBatch
from cmud.common import (SERVICE, GetArgs, GetReply, ListArgs, ListReply, PutArgs, PutReply,
                         check_text)

DEFAULT_TIMEOUT_SECONDS = 10.0


class NotAQueryActor(rpc.RemoteError):
    """The address is a storage server's actor system, not one of its query actors."""


def actor_system_hint(conn: rpc.Client, addr: str, timeout: float) -> str:
    """Called after `addr` (reached through `conn`) refused a query: if it is an actor
    system (it serves the remote-tell service: an empty batch, which delivers nothing, is
    accepted), the sentence that says where the query actors listen; else "". One round trip,
    blocking; never raises."""
    try:
        accepted = conn.call("RemoteTell.tell_batch", RemoteTellBatch([], []), timeout=timeout)
    except rpc.RPCError:
        return ""
    if accepted is not True:
        return ""
    port = int(addr.rpartition(":")[2])
    return (f"{addr} is a cmud server's actor system; its query actors listen on the next "
            f"ports ({port + 1}, ...)")


class RoundRobinRouter:
    """Cycles through `addrs`, one per query. Thread-safe (itertools.cycle under the GIL)."""

    def __init__(self, addrs: list[str]) -> None:
        if not addrs:
            raise ValueError("a router needs at least one address")
        self.addrs = list(addrs)
        self._cycle = itertools.cycle(self.addrs)

    def next_addr(self) -> str:
        return next(self._cycle)


class RandomRouter:
    """A uniformly random address per query; `seed` makes the sequence repeatable."""

    def __init__(self, addrs: list[str], seed: int | None = None) -> None:
        if not addrs:
            raise ValueError("a router needs at least one address")
        self.addrs = list(addrs)
        self._rng = random.Random(seed)

    def next_addr(self) -> str:
        return self._rng.choice(self.addrs)


class Client:
    def __init__(self, router, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._router = router
        self._timeout = timeout
        self._conns: dict[str, rpc.Client] = {}
        self._life = csp.Lifecycle()

    def get(self, key: str) -> tuple[str, bool]:
        """(value, True), or ("", False) when the key is absent. Blocks for one round trip."""
        reply = self._call("get", GetArgs(check_text("key", key)), GetReply)
        return reply.value, reply.ok

    def put(self, key: str, value: str) -> None:
        self._call("put", PutArgs(check_text("key", key), check_text("value", value)), PutReply)

    def list(self, prefix: str) -> dict[str, str]:
        """Every key starting with `prefix` ("" for all) and its value: a new dict."""
        reply = self._call("list", ListArgs(check_text("prefix", prefix)), ListReply)
        return dict(reply.entries)

    def close(self) -> None:
        """Closes every connection; later queries raise rpc.ConnectionLost. Idempotent: a
        later or concurrent call returns once the first has finished."""
        self._life.close_once(self._close_connections)

    def _close_connections(self) -> None:
        while self._conns:
            try:
                _, conn = self._conns.popitem()
            except KeyError:   # a racing query dropped the last one
                break
            conn.close()

    def _call(self, method: str, args, reply_type):
        if self._life.is_stopping:
            raise rpc.ConnectionLost("client closed")
        addr = self._router.next_addr()
        conn = self._connection(addr)
        try:
            reply = conn.call(f"{SERVICE}.{method}", args, timeout=self._timeout)
        except rpc.ConnectionLost:
            if self._conns.get(addr) is conn:
                self._conns.pop(addr, None)
            conn.close()
            raise
        except rpc.RemoteError as exc:   # "can't find service": maybe a server's first port
            hint = actor_system_hint(conn, addr, self._timeout)
            if hint:
                raise NotAQueryActor(hint) from exc
            raise
        if type(reply) is not reply_type:
            raise rpc.RemoteError(f"{addr} answered {method} with {type(reply).__name__}, "
                                  f"expected {reply_type.__name__}")
        return reply

    def _connection(self, addr: str) -> rpc.Client:
        conn = self._conns.get(addr)
        if conn is not None:
            return conn
        fresh = rpc.dial(addr, timeout=self._timeout)
        conn = self._conns.setdefault(addr, fresh)
        if conn is not fresh:
            fresh.close()
        if self._life.is_stopping:   # closed while dialling: nothing may stay open
            self._close_connections()
            raise rpc.ConnectionLost("client closed")
        return conn
