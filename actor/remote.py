"""Remote tells, the student's part (the course's `remoteTell` and `registerRemoteTells`): the
call that carries one batch of tells to another system, and the service that receives them.

Sending. `remote_tell(client, batch)` makes the "RemoteTell.tell_batch" call for one
`RemoteTellBatch` without waiting for its reply (pipelined: rpc's `go()`), so calls on one
connection reach the receiver in the order they were made. The staff's sender
(actor.sender.RemoteSender) decides what goes in a batch, when, and on which connection, and
reads each call's outcome.

Receiving. A system serves a `RemoteTellService` as "RemoteTell", registered `ordered`, so the
calls of one connection run one at a time, in order; it unpacks each batch into the local
mailboxes. A malformed call is reported and dropped whole, never raised.

Threads: none of its own. `remote_tell` runs on the sender's `actor:A/to:B` thread;
RemoteTellService runs on the rpc server's `rpc-server:N/conn-C/RemoteTell` thread of each
connection and keeps no state of its own.
"""

from __future__ import annotations

import rpc
from actor.stats import CountersByThread
from actor.wire import RemoteTellBatch

_INT = frozenset((int,))   # exact types: a bool is no counter, a str subclass no text
_STR = frozenset((str,))


def remote_tell(client: rpc.Client, batch: RemoteTellBatch) -> rpc.Call:
    """Send `batch` over `client` without waiting for the reply; the pending call (its `.done`
    yields it once the receiver answered or the connection was lost). Raises rpc.EncodeError
    at once for a batch over the frame limit."""
    return client.go("RemoteTell.tell_batch", batch)


class RemoteTellService:
    """The "RemoteTell" rpc service of one system, served `ordered`: one connection's tells are
    delivered one call at a time, in order. `deliver(counters, payloads)` hands a batch's
    marshalled messages, in order, to the local actors or channel refs numbered `counters`
    without blocking (the system keeps each run of tells to one actor together: one hand-off
    per run, not per message). Bad input goes to `report(exc)` and is dropped (the whole call),
    never raised. Received bytes are counted in `counters`."""

    def __init__(self, deliver, report, counters: CountersByThread) -> None:
        self._deliver = deliver
        self._report = report
        self._counters = counters

    def tell_batch(self, batch: RemoteTellBatch) -> bool:
        if type(batch) is not RemoteTellBatch or type(batch.counters) is not list \
                or type(batch.texts) is not list or len(batch.counters) != len(batch.texts):
            self._report(ValueError(f"malformed remote tell batch: {batch!r:.100}"))
            return False
        counters, texts = batch.counters, batch.texts
        # The whole batch is checked and encoded by C loops (map), not a Python loop per
        # message: this thread handles every tell from one peer.
        if not (_INT.issuperset(map(type, counters)) and _STR.issuperset(map(type, texts))):
            counter, text = next((c, t) for c, t in zip(counters, texts)
                                 if type(c) is not int or type(t) is not str)
            self._report(ValueError(f"malformed remote tell batch: a tell to {counter!r:.40} "
                                    f"of {text!r:.60}"))
            return False
        try:
            payloads = list(map(str.encode, texts))
        except UnicodeEncodeError as exc:   # a lone surrogate
            self._report(ValueError(f"malformed remote tell batch: {exc}"))
            return False
        self._counters.mine().remote_bytes += sum(map(len, payloads))
        self._deliver(counters, payloads)
        return True

