"""Talking to a cluster of Raft nodes from outside: submit to whoever leads (following the
hints of the nodes that do not), and collect every node's status.

Threads: none; each function blocks on its rpc calls (bounded by their timeouts).
"""

from __future__ import annotations

import socket
import time

import rpc
from raft.node import Applied, AppliedQuery, Status, StatusQuery, Submit, Submitted

CALL_TIMEOUT_SECONDS = 6.0


class NoLeader(Exception):
    """No node accepted the commands before the deadline; the message says what was seen."""


def parse_peers(text: str) -> list[str]:
    """`host:port,host:port,...` -> a list; ValueError with a clear message otherwise."""
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    if not addresses:
        raise ValueError("--peers wants host:port,host:port,...")
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad peer address {address!r}: want host:port")
    return addresses


def local_addresses(count: int) -> list[str]:
    """`count` distinct "127.0.0.1:port" addresses with ports free right now (for starting a
    local cluster; another process could take one before the node binds it)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _call(address: str, method: str, args, timeout: float):
    client = rpc.dial(address, timeout=1.0)
    try:
        return client.call(method, args, timeout=timeout)
    finally:
        client.close()


def submit(addresses: list[str], commands: list, deadline_seconds: float = 15.0,
           first_guess: int = 0) -> tuple[int, int]:
    """Commit `commands` (in order, consecutive indices); returns (first index, the node that
    led). Tries the hinted leader first, then every node in turn, until the deadline."""
    deadline = time.monotonic() + deadline_seconds
    target = first_guess % len(addresses)
    seen = []
    while time.monotonic() < deadline:
        try:
            reply: Submitted = _call(addresses[target], "Node.submit", Submit(commands),
                                     CALL_TIMEOUT_SECONDS)
        except rpc.RPCError as exc:
            seen.append(f"node {target}: {exc}")
            reply = None
        if reply is not None and reply.ok:
            return reply.first_index, target
        if reply is not None:
            seen.append(f"node {target}: {reply.error}")
        if reply is not None and reply.leader is not None and reply.leader != target:
            target = reply.leader
        else:
            target = (target + 1) % len(addresses)
            time.sleep(0.05)
    raise NoLeader("no leader committed the commands in time; last answers: "
                   + "; ".join(seen[-len(addresses):]))


def status(addresses: list[str]) -> list[Status | str]:
    """Each node's Status, or a string saying why it did not answer."""
    out = []
    for address in addresses:
        try:
            out.append(_call(address, "Node.status", StatusQuery(), 2.0))
        except rpc.RPCError as exc:
            out.append(f"unreachable ({exc})")
    return out


def applied(address: str, from_index: int = 1) -> list:
    reply: Applied = _call(address, "Node.applied", AppliedQuery(from_index), 5.0)
    return reply.commands
