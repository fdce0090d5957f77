"""The pure rules of one LSP connection: the sliding send window with per-message exponential
backoff, and the receive buffer that delivers in order. No sockets, threads or clocks: the
endpoint's loop feeds events in and transmits what comes out.

Send side (`SendWindow`), for sequence numbers from `first_seq` on:
- a written payload gets the next sequence number and waits in `pending`;
- a pending message with number s goes out when s < oldest_unacked + window_size and fewer
  than max_unacked_messages are in flight; the window is anchored on the OLDEST unacked
  message (acks are selective; the window slides only when its left end is acked);
- every event that can free room (a write, an Ack, a CAck) returns what may go out now, so
  sends never wait for the next epoch;
- at each epoch, every in-flight message that has waited more than its current backoff since
  its last transmission is sent again, and its backoff becomes 1, then doubles, capped at
  max_back_off_interval (0 keeps it at 0: resend every epoch). Resends at epochs 1, 3, 6, 11,
  20, ... after the first transmission.
Counts for the live picture (`picture()`, lsp.web): messages sent (each first transmission),
acknowledged, retransmissions; they cost one addition per event.
Receive side (`ReceiveBuffer`): accepts any message number below a horizon, acks each one
(duplicates again), buffers out-of-order ones and releases payloads strictly in order.
"""

from __future__ import annotations

import itertools
from collections import deque


class _InFlight:
    __slots__ = ("payload", "backoff", "waited")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.backoff = 0   # epochs to wait between transmissions, now
        self.waited = 0    # epochs since the last transmission


SHOWN_MESSAGES = 64   # picture(): at most this many in-flight and pending messages are listed


class SendWindow:
    def __init__(self, first_seq: int, window_size: int, max_unacked: int,
                 max_backoff: int) -> None:
        self._next_seq = first_seq
        self._window = window_size
        self._max_unacked = max_unacked
        self._max_backoff = max_backoff
        self._pending: deque = deque()           # (seq, payload) not sent yet
        self._in_flight: dict[int, _InFlight] = {}  # sent, unacked; insertion = seq order
        self.sent = 0              # messages transmitted at least once
        self.acked = 0             # of them, acknowledged
        self.retransmissions = 0

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent or acknowledged."""
        return not self._pending and not self._in_flight

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self, payload: bytes) -> list[tuple[int, bytes]]:
        """Queue `payload`; returns the (seq, payload) messages to transmit now."""
        self._pending.append((self._next_seq, payload))
        self._next_seq += 1
        return self._release()

    def ack(self, seq: int) -> list[tuple[int, bytes]]:
        """An Ack for `seq`; returns what may be transmitted now."""
        if self._in_flight.pop(seq, None) is None:
            return []
        self.acked += 1
        return self._release()

    def cack(self, seq: int) -> list[tuple[int, bytes]]:
        """A CAck: everything up to and including `seq` is acknowledged."""
        acked = [s for s in self._in_flight if s <= seq]
        if not acked:
            return []
        for s in acked:
            del self._in_flight[s]
        self.acked += len(acked)
        return self._release()

    def epoch(self) -> list[tuple[int, bytes]]:
        """One epoch passed; returns the messages to retransmit now."""
        resend = []
        for seq, flight in self._in_flight.items():
            flight.waited += 1
            if flight.waited > flight.backoff:
                resend.append((seq, flight.payload))
                self.retransmissions += 1
                flight.waited = 0
                flight.backoff = min(1 if flight.backoff == 0 else 2 * flight.backoff,
                                     self._max_backoff)
        return resend

    def _release(self) -> list[tuple[int, bytes]]:
        out = []
        pending = self._pending
        while pending and len(self._in_flight) < self._max_unacked:
            seq, payload = pending[0]
            oldest = next(iter(self._in_flight), seq)
            if seq >= oldest + self._window:
                break
            pending.popleft()
            self._in_flight[seq] = _InFlight(payload)
            out.append((seq, payload))
        self.sent += len(out)
        return out

    def picture(self) -> dict:
        """The window now, for people to look at (JSON-ready): its bounds (`window_start` is
        the oldest unacked number, or the next to send; a message may go out below
        `window_end`), the counts, and the first SHOWN_MESSAGES in-flight messages (seq, size,
        current backoff and epochs waited since the last transmission) and pending ones."""
        in_flight = self._in_flight
        start = next(iter(in_flight), self._pending[0][0] if self._pending else self._next_seq)
        return {
            "window_size": self._window, "max_unacked": self._max_unacked,
            "max_backoff": self._max_backoff,
            "window_start": start, "window_end": start + self._window,
            "next_seq": self._next_seq, "sent": self.sent, "acked": self.acked,
            "unacked": len(in_flight), "pending": len(self._pending),
            "retransmissions": self.retransmissions,
            "in_flight": [{"seq": seq, "bytes": len(flight.payload), "backoff": flight.backoff,
                           "waited": flight.waited}
                          for seq, flight in itertools.islice(in_flight.items(), SHOWN_MESSAGES)],
            "pending_seqs": [seq for seq, _ in itertools.islice(self._pending, SHOWN_MESSAGES)],
        }


class ReceiveBuffer:
    """In-order delivery from `first_seq` on. `horizon` bounds how far ahead of the next
    expected number a message is buffered (further ones are ignored, unacked: the sender will
    retransmit them, so nothing is lost and a peer cannot make us buffer without limit)."""

    def __init__(self, first_seq: int, horizon: int) -> None:
        self.expected = first_seq
        self._horizon = horizon
        self._early: dict[int, bytes] = {}

    def on_data(self, seq: int, payload: bytes) -> tuple[bool, list[bytes]]:
        """Returns (ack it?, payloads now deliverable in order)."""
        if seq < self.expected:
            return True, []                  # a duplicate: ack again, deliver nothing
        if seq >= self.expected + self._horizon:
            return False, []
        if seq != self.expected:
            self._early.setdefault(seq, payload)
            return True, []
        ready = [payload]
        self.expected += 1
        early = self._early
        while self.expected in early:
            ready.append(early.pop(self.expected))
            self.expected += 1
        return True, ready

    def picture(self) -> dict:
        """The next expected number and the first SHOWN_MESSAGES buffered out-of-order ones."""
        return {"expected": self.expected,
                "buffered_seqs": sorted(self._early)[:SHOWN_MESSAGES]}
