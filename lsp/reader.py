"""What every LSP endpoint shares besides its loop: the socket-reading thread, the request a
public method makes of the loop, and the idempotent close (`LoopEndpoint`).

The socket-reading half of an LSP endpoint: one thread per socket that blocks on lspnet,
decodes datagrams, drops malformed ones (never fatal) and hands `(Message, addr)` to the
endpoint's loop, a batch of whatever has arrived at a time."""

from __future__ import annotations

import logging

import csp
from lsp.errors import LSPError, MessageError
from lsp.lspnet import UDPConn
from lsp.message import decode

log = logging.getLogger("lsp")


def read_datagrams(sock: UDPConn, inbox: csp.Chan, done: csp.Chan, name: str) -> None:
    """Hands the loop lists of (Message, addr), a batch per wake-up, in arrival order. Runs
    until the socket is closed or `done` is closed."""
    while True:
        try:
            datagrams = sock.read_batch()
        except OSError:
            return
        batch = []
        for datagram, addr in datagrams:
            try:
                batch.append((decode(datagram), addr))
            except MessageError as exc:
                log.debug("%s: dropped a malformed datagram from %s: %s", name, addr, exc)
        if not batch:
            continue
        index, _, _ = csp.select(csp.Send(inbox, batch), csp.Recv(done))
        if index == 1:
            return


def ask_loop(requests: csp.Chan, done: csp.Chan, kind: str, argument, closed_what: str) -> None:
    """A public method's request to its endpoint's loop, carrying its own reply channel: waits
    for the loop's answer and raises the error it returns; raises LSPError("<closed_what>
    closed") if the loop has stopped."""
    reply = csp.Chan(1)
    index, _, _ = csp.select(csp.Send(requests, (kind, argument, reply)), csp.Recv(done))
    if index == 1:
        raise LSPError(f"{closed_what} closed")
    error, _ = reply.recv()
    if error is not None:
        raise error


class LoopEndpoint:
    """What the client and the server share around their loop: the idempotent close.

    A subclass sets `_requests`, `_done` (closed by the loop when it stops), `_close_token` (a
    Chan(1) holding one token), `_joined` (closed once every thread is joined), `_sock` and
    `_threads`, and its loop answers a ("close", None, reply) request when it may stop.
    """

    def _shut_down(self) -> None:
        """Ask the loop to finish, then join everything; later callers wait for the first."""
        index, _, _ = csp.select(csp.Recv(self._close_token), default=True)
        if index != 0:
            self._joined.recv()
            return
        try:
            ask_loop(self._requests, self._done, "close", None, "endpoint")
        except LSPError:
            pass  # the loop has already stopped (a lost connection, a failed connect)
        self._join()

    def _join(self) -> None:
        self._done.recv()
        self._sock.close()
        for thread in self._threads:
            thread.join()
        if not self._joined.closed:
            self._joined.close()
