"""Talking to a cluster of Raft nodes from outside: submit to whoever leads (following the
hints of the nodes that do not), and collect every node's status.

Threads: none; each function blocks on its rpc calls (bounded by their timeouts).
"""

from __future__ import annotations

import socket
import time
from typing import Callable

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
    client = rpc.dial(address, timeout=min(1.0, timeout))
    try:
        return client.call(method, args, timeout=timeout)
    finally:
        client.close()


def submit(addresses: list[str], commands: list, deadline_seconds: float = 15.0,
           first_guess: int = 0,
           on_wait: Callable[[str], None] | None = None) -> tuple[int, int]:
    """Commit `commands` (in order, consecutive indices); returns (first index, the node that
    led). Tries the hinted leader first, then every node in turn, until `deadline_seconds`
    have passed (no call outlives the deadline); then raises NoLeader with each node's last
    answer.

    `on_wait(answer)`, if given, is called once on the caller's thread the first time an
    answer leaves no leader to follow (the node did not answer, or knows no leader): from then
    on submit is waiting for a leader to be elected or to come back."""
    deadline = time.monotonic() + deadline_seconds
    target = first_guess % len(addresses)
    last_answers: dict[int, str] = {}
    waiting = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            reply: Submitted | None = _call(addresses[target], "Node.submit", Submit(commands),
                                            min(CALL_TIMEOUT_SECONDS, remaining))
        except rpc.RPCError as exc:
            last_answers[target] = str(exc)
            reply = None
        if reply is not None and reply.ok:
            return reply.first_index, target
        if reply is not None:
            last_answers[target] = reply.error
        if reply is not None and reply.leader is not None and reply.leader != target:
            target = reply.leader
            continue
        if not waiting and on_wait is not None:
            on_wait(f"node {target}: {last_answers[target]}")
        waiting = True
        target = (target + 1) % len(addresses)
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    answers = "; ".join(f"node {i}: {answer}" for i, answer in sorted(last_answers.items()))
    raise NoLeader(f"no leader committed the commands within {deadline_seconds:g} s; "
                   f"last answers: {answers or 'none'}")


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
