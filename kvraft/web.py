"""What the submit box of a kvraft cluster's live page does (`python -m kvraft cluster --web`):
a put, append or get through a kvraft Clerk. The page itself is raft.web's WebView, which
draws the replicas' Raft peers (each serves raft.node's Watch service); this module gives it
its `submit` function and hint.

    parse_kv_command('put k "a value"')          -> ("put", "k", "a value")
    parse_kv_command("get k")                    -> ("get", "k", None)
    view = WebView(addresses, processes, submit=lambda text: submit_kv_command(addresses,
                   text), submit_hint=SUBMIT_HINT)

The text is split as a shell would (shlex: quotes keep spaces, `""` is the empty string):
`put KEY VALUE`, `append KEY VALUE` or `get KEY`. Anything else is a raft.web.BadRequest
(400, one line saying what is wanted); an operation no replica completed within
SUBMIT_DEADLINE_SECONDS is a raft.web.ControlRefused (409), and a put or append may then
still take effect later (the clerk's retry keeps its number, so at most once).

Threads: submit_kv_command runs on its caller's thread (a request thread of the page) with a
fresh Clerk, and starts one thread, kvraft-web/deadline, that closes the clerk at the deadline
(ending the operation with ClerkClosed) or ends as soon as the operation returns; it is joined
before submit_kv_command returns. No state is shared between calls.
"""

from __future__ import annotations

import shlex

import csp
import rpc
from kvraft.clerk import BadRequest as ClerkBadRequest, Clerk, ClerkClosed
from kvraft.messages import StatusQuery
from raft.web import BadRequest, ControlRefused

SUBMIT_DEADLINE_SECONDS = 5.0
STATUS_TIMEOUT_SECONDS = 0.5
SUBMIT_HINT = 'put KEY VALUE | append KEY VALUE | get KEY  (quote spaces: put k "a b")'
OPERATIONS = {"put": 2, "append": 2, "get": 1}   # how many words follow each


def parse_kv_command(text: str) -> tuple[str, str, str | None]:
    """(operation, key, value) of a submit box's text; value is None for a get. BadRequest
    (400) for anything but `put KEY VALUE`, `append KEY VALUE` or `get KEY`."""
    try:
        words = shlex.split(text)
    except ValueError as exc:   # an unclosed quote
        raise BadRequest(400, f"cannot split {text!r} into words: {exc}") from None
    if not words or words[0] not in OPERATIONS:
        first = words[0] if words else ""
        raise BadRequest(400, f"no operation {first!r}: want put KEY VALUE, append KEY VALUE "
                              "or get KEY")
    operation, arguments = words[0], words[1:]
    wanted = OPERATIONS[operation]
    if len(arguments) != wanted:
        shape = "KEY" if wanted == 1 else "KEY VALUE"
        raise BadRequest(400, f"{operation} wants {shape} ({wanted} word"
                              f"{'s' if wanted > 1 else ''}, quoted if it has spaces), "
                              f"not {len(arguments)}")
    return operation, arguments[0], arguments[1] if wanted == 2 else None


def submit_kv_command(addresses: list[str], text: str,
                      deadline_seconds: float = SUBMIT_DEADLINE_SECONDS) -> dict:
    """Run the submit box's `text` (parse_kv_command) through a new Clerk on `addresses`:
    {"operation", "key", "value", "message"} plus, after a put or append, "commit_index" (the
    highest commit index a replica reports once it is done: the write's entry is at or below
    it) and "leader" (a replica saying it leads then, or None); after a get, "value" is what
    it read. BadRequest (400) for text it does not take, ControlRefused (409) when no replica
    completed it in time."""
    operation, key, value = parse_kv_command(text)
    clerk = Clerk(addresses)
    timer = csp.Timer(deadline_seconds)
    done = csp.Chan()
    watcher = csp.go(_close_at, clerk, csp.Recv(timer.c), csp.Recv(done),
                     name="kvraft-web/deadline")
    try:
        if operation == "get":
            value = clerk.get(key)
        else:
            getattr(clerk, operation)(key, value)
    except ClerkClosed:
        may = " (it may still take effect)" if operation != "get" else ""
        raise ControlRefused(f"no replica completed the {operation} within "
                             f"{deadline_seconds:g} s{may}: is a majority up?") from None
    except ClerkBadRequest as exc:
        raise BadRequest(400, f"the replicas refused it: {exc}") from None
    finally:
        timer.stop()
        done.close()
        watcher.join()
        clerk.close()
    if operation == "get":
        return {"operation": operation, "key": key, "value": value,
                "message": f"get {key!r} read {value!r}"}
    commit_index, leader = _cluster_commit(addresses)
    verb = "set to" if operation == "put" else "appended"
    return {"operation": operation, "key": key, "value": value,
            "commit_index": commit_index, "leader": leader,
            "message": f"{key!r} {verb} {value!r}: committed (commit index now "
                       f"{commit_index}" + ("" if leader is None else f", leader node {leader}")
                       + ")"}


def _close_at(clerk: Clerk, fired: csp.Recv, done: csp.Recv) -> None:
    case, _, _ = csp.select_case(fired, done)
    if case is fired:
        clerk.close()


def _cluster_commit(addresses: list[str]) -> tuple[int, int | None]:
    """The highest commit index the replicas answering KV.status report, and the replica that
    says it leads in the highest term (None if none does)."""
    best_commit, leader, leader_term = 0, None, -1
    for address in addresses:
        state = _status(address)
        if state is None:
            continue
        best_commit = max(best_commit, state.commit_index)
        if state.role == "leader" and state.term > leader_term:
            leader, leader_term = state.id, state.term
    return best_commit, leader


def _status(address: str):
    """KV.status of one replica, or None when it does not answer quickly (killed, paused)."""
    try:
        client = rpc.dial(address, timeout=STATUS_TIMEOUT_SECONDS)
    except (rpc.RPCError, OSError):
        return None
    try:
        return client.call("KV.status", StatusQuery(), timeout=STATUS_TIMEOUT_SECONDS)
    except rpc.RPCError:
        return None
    finally:
        client.close()
