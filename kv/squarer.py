"""`Squarer` (P0 part B): squares the integers of an input channel onto an output channel.

Contract (the course's correct implementation, plus what Go leaves implicit):
- `initialize(input) -> output`, called once: `output` is unbuffered; for each value read
  from `input` the square is delivered on `output` before the next value is read (one in, one
  out, in order).
- When `input` is closed (and drained), `output` is closed; nothing else is ever emitted.
- `close()` returns only once the worker is gone: afterwards nothing more is read from `input`
  or sent on `output` (a square not yet taken is discarded). It never blocks on a reader of
  `output`, works before `initialize`, and may be called any number of times.

Threads:
    squarer/worker   owns the value in hand; selects on input (or on sending the square) and
                     on the close request; closes `_gone` when it exits.
"""

from __future__ import annotations

import csp


class Squarer:
    def __init__(self) -> None:
        self._close_request = csp.Chan()
        self._gone = csp.Chan()      # closed by the worker when it exits
        self._worker = None

    def initialize(self, input: csp.Chan) -> csp.Chan:
        """Start squaring `input`; returns the unbuffered output channel. Call once."""
        if self._worker is not None:
            raise RuntimeError("Squarer.initialize called twice")
        output = csp.Chan()
        self._worker = csp.go(self._work, input, output, name="squarer/worker")
        return output

    def close(self) -> None:
        """Stop the worker and wait until it is gone. Idempotent."""
        if self._worker is None:
            return
        csp.select(csp.Send(self._close_request, None), csp.Recv(self._gone))
        self._worker.join()

    def _work(self, input: csp.Chan, output: csp.Chan) -> None:
        try:
            close_requested = csp.Recv(self._close_request)
            next_value = csp.Recv(input)
            while True:
                case, value, ok = csp.select_case(next_value, close_requested)
                if case is close_requested:
                    return
                if not ok:
                    output.close()
                    self._close_request.recv()  # stay until close(), which then returns
                    return
                case, _, _ = csp.select_case(csp.Send(output, value * value), close_requested)
                if case is close_requested:
                    return
        finally:
            self._gone.close()
