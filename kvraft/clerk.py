"""The clerk: a client of the kvraft service that retries until each operation has taken effect
exactly once.

    clerk = Clerk(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"])
    clerk.put("k", "v"); clerk.append("k", "w"); clerk.get("k")   # -> "vw"
    clerk.close()

Exactly once: the clerk has a random 62-bit id and numbers its puts and appends 1, 2, 3 ...;
a retry keeps its number, so a replica that already applied it answers at once without
applying it again. A get needs no number (it changes nothing).

Which replica: the first in `addrs` at first, then the last one that answered as leader.
A reply ErrWrongLeader with a hint moves to the hinted replica; anything else (no answer within
CALL_SECONDS, a timeout, a closing replica) moves to the next one. After as many failed tries
as there are replicas the clerk backs off, BACKOFF_SECONDS doubling up to MAX_BACKOFF_SECONDS
(reset by a success): no busy loop while no leader exists.

Threads: none of its own; each operation runs on its caller's thread (one thread at a time per
clerk; many clerks may run at once). TCP calls use rpc clients (their threads, closed by
close()). `close()` may be called from any thread: an operation blocked in a call or a back-off
raises ClerkClosed at once (on simnet ends, see `Clerk.over`, once the end's call returns).
"""

from __future__ import annotations

import random

import csp
import rpc
from kvraft.messages import (ERR_BAD_REQUEST, ERR_WRONG_LEADER, OK, GetArgs, PutAppendArgs)
from kvraft.state_machine import APPEND, PUT

CALL_SECONDS = 4.0            # longer than a replica's longest wait before it answers
DIAL_SECONDS = 0.5
BACKOFF_SECONDS = 0.02
MAX_BACKOFF_SECONDS = 0.5


class ClerkClosed(Exception):
    """The clerk was closed while (or before) this operation ran; it may or may not have
    taken effect."""


class BadRequest(ValueError):
    """A replica refused the request as malformed (retrying cannot help)."""


class _TcpReplica:
    """One replica over rpc: dials lazily, drops the connection after a failure."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.client: rpc.Client | None = None

    def call(self, method: str, args, stopping: csp.Chan, life: csp.Lifecycle):
        """The reply, or None (no answer in time, connection trouble). Raises ClerkClosed
        once `life` is stopping."""
        if self.client is None:
            try:
                self.client = rpc.dial(self.address, timeout=DIAL_SECONDS)
            except (rpc.RPCError, OSError, ValueError):
                return None
            if life.is_stopping:   # close() may have looked before the client was stored
                self.client.close()
                raise ClerkClosed("clerk closed")
        try:
            pending = self.client.go(f"KV.{method}", args)
        except rpc.RPCError:
            self._drop()
            return None
        done = csp.Recv(pending.done)
        closing = csp.Recv(stopping)
        case, _, _ = csp.select_case(done, closing, csp.Recv(csp.after(CALL_SECONDS)))
        if case is closing:
            raise ClerkClosed("clerk closed")
        if case is not done:
            return None
        if pending.error is not None:
            if isinstance(pending.error, rpc.ConnectionLost):
                self._drop()
            return None
        return pending.reply

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        client = self.client
        if client is not None:
            client.close()


class _EndReplica:
    """One replica through a simnet end (tests): `end.call` blocks until simnet answers."""

    def __init__(self, end) -> None:
        self._end = end

    def call(self, method: str, args, stopping: csp.Chan, life: csp.Lifecycle):
        return self._end.call(f"KV.{method}", args)

    def close(self) -> None:
        pass


class Clerk:
    """See the module docstring. get/put/append block until done (or raise ClerkClosed);
    keys and values are any str, "" included; BadRequest if a replica refuses the request."""

    def __init__(self, addrs: list[str]) -> None:
        if not addrs:
            raise ValueError("a clerk needs at least one replica address")
        self._start([_TcpReplica(address) for address in addrs])

    @classmethod
    def over(cls, ends: list) -> "Clerk":
        """A clerk talking through simnet ends (ends[i] reaches replica i), for tests."""
        clerk = cls.__new__(cls)
        clerk._start([_EndReplica(end) for end in ends])
        return clerk

    def _start(self, replicas: list) -> None:
        self._replicas = replicas
        self.clerk_id = random.getrandbits(62)
        self._seq = 0
        self._leader = 0
        self._life = csp.Lifecycle()

    def get(self, key: str) -> str:
        _check_str(key=key)
        return self._run("get", GetArgs(key)).value

    def put(self, key: str, value: str) -> None:
        self._write(PUT, key, value)

    def append(self, key: str, value: str) -> None:
        self._write(APPEND, key, value)

    def _write(self, op: str, key: str, value: str) -> None:
        _check_str(key=key, value=value)
        self._seq += 1
        self._run("put_append", PutAppendArgs(op, key, value, self.clerk_id, self._seq))

    def _run(self, method: str, args):
        stopping = self._life.stopping
        backoff = BACKOFF_SECONDS
        failures = 0
        while True:
            if self._life.is_stopping:
                raise ClerkClosed("clerk closed")
            target = self._leader
            reply = self._replicas[target].call(method, args, stopping, self._life)
            err = getattr(reply, "err", None)
            if err == OK:
                return reply
            if isinstance(err, str) and err.startswith(ERR_BAD_REQUEST):
                raise BadRequest(err)
            hint = getattr(reply, "leader_hint", None) if err == ERR_WRONG_LEADER else None
            if type(hint) is int and 0 <= hint < len(self._replicas) and hint != target:
                self._leader = hint
            else:
                self._leader = (target + 1) % len(self._replicas)
            failures += 1
            if failures % len(self._replicas) == 0:
                closing = csp.Recv(stopping)
                case, _, _ = csp.select_case(closing, csp.Recv(csp.after(backoff)))
                if case is closing:
                    raise ClerkClosed("clerk closed")
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def close(self) -> None:
        """Idempotent; any thread. A blocked operation raises ClerkClosed; later ones too."""
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        for replica in self._replicas:
            replica.close()


def _check_str(**values) -> None:
    for name, value in values.items():
        if type(value) is not str:
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
