"""TCP plumbing that socket endpoints share: an accept loop that feeds a channel, closing a
listener, shutting a socket down, and a writer that batches queued bytes into few sendalls.

None of it knows a protocol; the endpoints (the kv server, the rpc server and client) add theirs:

    listener = socket.create_server((host, port))
    accept = csp.go(tcp.accept_loop, listener, connections, loop_done, name="x:N/accept")
    writer = csp.go(tcp.write_batches, sock, outgoing, 256 * 1024, name="x:N/conn-C/writer")
    tcp.shutdown(sock)                      # both ways, never raises: wakes a recv() or sendall()
    tcp.close_listener(listener, accept)    # wakes accept(), joins that thread, closes

Why shutdown and not close: closing a socket another thread is blocked on does not wake that
thread, and its descriptor number may be reused at once. So a socket (or a listener) is shut
down first, which wakes its blocked readers, writers or accept(), and closed only by its last
user, once the other threads are done with it.

Threads: none of its own. `accept_loop` and `write_batches` are bodies for the endpoint's own
threads (start them with `csp.go`, named after the endpoint); the rest runs on the caller's
thread.
"""

from __future__ import annotations

import socket
import threading

from csp.chan import Chan
from csp.select import Recv, Send, select_case


def shutdown(sock: socket.socket) -> None:
    """Shut `sock` down in both directions, which wakes any thread blocked in its `recv`,
    `sendall` or (on Linux, for a listener) `accept`. Never raises: a socket that is no longer
    connected is already as shut as it gets. Does not close it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def accept_loop(listener: socket.socket, connections: Chan, loop_done: Chan) -> None:
    """Accept connections on `listener` and send each new socket on `connections`, until the
    listener is shut down (`close_listener`) or `loop_done` is closed (the receiver takes no
    more sockets: the one in hand is closed here). Each socket gets TCP_NODELAY: the endpoints
    batch their own writes, so Nagle's delay would only add latency. Blocks in accept();
    returns when done, never raises."""
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return  # the listener was shut down
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hand_over = Send(connections, sock)
        case, _, _ = select_case(hand_over, Recv(loop_done))
        if case is not hand_over:
            sock.close()
            return


def close_listener(listener: socket.socket, accept_thread: threading.Thread | None) -> None:
    """Stop listening: shut `listener` down (waking the thread in its accept()), join
    `accept_thread` (None: no thread was started), then close the socket, so no thread still
    uses its descriptor when it is freed. Blocks until the accept thread ends; never raises."""
    shutdown(listener)
    if accept_thread is not None:
        accept_thread.join()
    listener.close()


def write_batches(sock: socket.socket, outgoing: Chan, max_batch_bytes: int,
                  on_drained=None) -> bool:
    """Drain `outgoing` onto `sock`: take a message, add whatever else is already queued up to
    about `max_batch_bytes` (the last message may overshoot it), and send the lot with one
    `sendall`. A message is a bytes-like object or a tuple of them, sent back to back (so a
    producer can queue pieces without joining them itself).

    The calling thread must be `outgoing`'s only receiver. Blocks; returns True once `outgoing`
    is closed and everything in it has been sent, False as soon as a send fails (the peer is
    gone or the socket was shut down); what is left queued then stays in the channel. Never
    closes the socket.

    `on_drained(count)`, when given, is called on this thread after a send that left nothing
    queued, with the number of messages sent so far: a producer that counts what it queued
    learns from it that the writer is idle and holds nothing (see kv/server.py)."""
    sent = 0
    while True:
        message, ok = outgoing.recv()
        if not ok:
            return True
        pieces = []
        size = 0
        taken = 1
        # Only this thread receives, so every value len() counts is there to take.
        more = len(outgoing)
        while True:
            if type(message) is tuple:
                pieces += message
                for piece in message:
                    size += len(piece)
            else:
                pieces.append(message)
                size += len(message)
            if size >= max_batch_bytes or more == 0:
                break
            more -= 1
            message, _ = outgoing.recv()
            taken += 1
        try:
            sock.sendall(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        except OSError:
            return False
        sent += taken
        if on_drained is not None and len(outgoing) == 0:
            on_drained(sent)
