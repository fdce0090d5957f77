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
                     on `stopping` of the squarer's csp.Lifecycle; stops when close() begins.
"""

from __future__ import annotations

import csp


class Squarer:
    def __init__(self) -> None:
        self._life = csp.Lifecycle()
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
        self._life.close_once(self._shut_down)

    def _shut_down(self) -> None:
        if self._worker is not None:  # it saw `stopping`
            self._worker.join()

    def _work(self, input: csp.Chan, output: csp.Chan) -> None:
        stopping = csp.Recv(self._life.stopping)
        next_value = csp.Recv(input)
        while True:
            case, value, ok = csp.select_case(next_value, stopping)
            if case is stopping:
                return
            if not ok:
                output.close()
                return  # input closed: nothing more to do; close() finds the worker gone
            case, _, _ = csp.select_case(csp.Send(output, value * value), stopping)
            if case is stopping:
                return
