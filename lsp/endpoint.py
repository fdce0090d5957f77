"""`Endpoint`: what the LSP client and server share around their loops: the socket, the
reader thread, read()'s channel and the close.

    socket --reader thread--> _inbox --> loop --_reads (capacity 1)--> read()
                                          ^
    write(), close_conn() ----------------+   (the subclass's channels)

The subclass (lsp.client, lsp.server) writes the loop and the public methods:

- `close()` is `self._life.close_once(self._shut_down)`. Close begins by closing
  `self._life.stopping`, which the loop selects on; from then on the loop returns as soon as
  nothing written is unacknowledged (or the peer is lost), still taking acks, writes and
  reads meanwhile. On its way out the loop closes the socket; the reader, woken by that,
  closes `_inbox` (the sender closes the channel, as in Go) while the loop drains it; and
  `_shut_down` joins both threads. So close() is idempotent, never raises, and returns only
  once both threads have ended.
- A public method blocked on the loop selects on `self._life.stopped` too, so that it gets the
  endpoint's "closed" LSPError instead of waiting for a loop that has gone.

Threads (N is `lsp-client:P` or `lsp-server:P`, P the local UDP port):
    N/reader   `read_datagrams`: blocks on the socket, decodes datagrams (drops malformed
               ones, never fatal) and hands the loop `(Message, addr)` batches, one per
               wake-up. Owns only the batch in hand; ends when the socket is closed, closing
               `_inbox`.
    N/loop     the subclass's `_loop`, run by `_run_loop`: owns the protocol state and writes
               the socket; ends after close has begun (for a client, also when its Connect is
               never answered), then closes the socket and drains `_inbox`.
Callers' threads only hand values to the loop over channels and wait on reply channels.
"""

from __future__ import annotations

import logging

import csp
from lsp.errors import LSPError, MessageError
from lsp.lspnet import UDPConn
from lsp.message import decode
from lsp.params import Params

log = logging.getLogger("lsp")


def read_datagrams(sock: UDPConn, inbox: csp.Chan, name: str) -> None:
    """The reader thread: sends `inbox` lists of (Message, addr), a batch per wake-up, in
    arrival order, until the socket is closed; then closes `inbox`. Whoever closes the socket
    must keep receiving from `inbox` until it is closed (the batch in hand is sent first)."""
    try:
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
            if batch:
                inbox.send(batch)
    finally:
        inbox.close()


class Endpoint:
    """The base of `lsp.Client` and `lsp.Server` (see the module docstring).

    The subclass calls `super().__init__`, sets its own fields, then `_start()`; it defines
    `_loop()`, which selects on `Recv(self._life.stopping)` and returns once it may stop. The
    loop runs inside `_run_loop`, which closes the socket and drains `_inbox` after it."""

    def __init__(self, sock: UDPConn, params: Params, kind: str) -> None:
        self._sock = sock
        self._params = params
        self._kind = kind                               # "client" or "server"
        self._name = f"lsp-{kind}:{sock.local_port}"    # names the threads and log lines
        self._life = csp.Lifecycle()
        self._inbox = csp.Chan()      # reader -> loop: batches of (Message, addr)
        # loop -> read(): the next payload or loss report. Capacity 1: the loop can hand over
        # the next one while read()'s caller is still busy with the last, and the caller then
        # takes it without waiting for the loop (most hand-offs need no wake-up).
        self._reads = csp.Chan(1)
        self._threads: list = []

    def _start(self) -> None:
        self._threads = [
            csp.go(self._run_loop, name=f"{self._name}/loop"),
            csp.go(read_datagrams, self._sock, self._inbox, self._name,
                   name=f"{self._name}/reader"),
        ]

    def _shut_down(self) -> None:
        """The subclass's close() is `self._life.close_once(self._shut_down)`: closing
        `stopping` tells the loop; the loop ends once it may, and takes the reader with it."""
        for thread in self._threads:
            thread.join()

    def _next_read(self):
        """What the loop hands read() next; raises LSPError("<endpoint> closed") once the
        endpoint has stopped (a value the loop left in `_reads` is never returned then)."""
        if self._life.stopped.closed:
            raise LSPError(f"{self._kind} closed")
        taken = csp.Recv(self._reads)
        case, value, _ = csp.select_case(taken, csp.Recv(self._life.stopped))
        if case is not taken:
            raise LSPError(f"{self._kind} closed")
        return value

    def _run_loop(self) -> None:
        try:
            self._loop()
        finally:
            self._sock.close()
            for _ in self._inbox:   # until the reader, woken by the close, closes it
                pass

    def _loop(self) -> None:
        raise NotImplementedError
