"""One LSP connection's state and rules, as a plain object the endpoint's loop owns: feed it
received messages, writes and epoch ticks; it returns the messages to transmit and the payloads
now deliverable. No sockets, threads or clocks (see `lsp.window` for the window rules).

Acks: every accepted Data is acknowledged. A loop that received several datagrams at once
feeds them with `defer_ack=True` and then calls `closing_acks()`: the Data that arrived in
order (each one the next expected, so no gap below it) are then acknowledged together, by one
`(CAck, id, n)` for the whole contiguous prefix up to n when there were two or more of them, or
by the plain Ack of the one. Data that arrives with a gap below it, and duplicates, get their
plain Ack at once, as the course requires (a CAck only ever covers a contiguous prefix). One
datagram per batch instead of one per message, which both ends pay for in system calls and
decoding.
"""

from __future__ import annotations

from lsp.message import Message, MsgType, accept_data, data_message, new_ack, new_cack
from lsp.params import Params
from lsp.window import ReceiveBuffer, SendWindow


class Connection:
    """Both directions of one connection, numbered from `initial_seq_num + 1`.

    Liveness: `lost` becomes true once `epoch_limit` epochs pass with nothing received.
    Heartbeat: an epoch in which no Data went out to the peer ends with `(Ack, conn_id, 0)`.
    """

    def __init__(self, conn_id: int, initial_seq_num: int, params: Params) -> None:
        self.conn_id = conn_id
        self.params = params
        first = initial_seq_num + 1
        self.send = SendWindow(first, params.window_size, params.max_unacked_messages,
                               params.max_back_off_interval)
        self.receive_buffer = ReceiveBuffer(first, 4 * params.window_size + 64)
        self.silent_epochs = 0
        self.sent_data_this_epoch = False
        self.lost = False
        self._in_order_acks = 0     # in-order Data received since the last closing_acks()
        self._last_in_order = 0     # the newest of them

    def write(self, payload: bytes) -> list[Message]:
        return self._data(self.send.write(payload))

    def receive(self, message: Message, defer_ack: bool = False
                ) -> tuple[list[Message], list[bytes]]:
        """A message from the peer: (messages to transmit, payloads now deliverable). With
        `defer_ack`, the Ack of a Data that arrived in order is left to `closing_acks()`."""
        self.silent_epochs = 0
        kind = message.type
        if kind == MsgType.DATA:
            payload = accept_data(message)
            if payload is None:
                return [], []  # short or corrupt: as if it had been lost
            seq = message.seq_num
            in_order = seq == self.receive_buffer.expected
            ack, ready = self.receive_buffer.on_data(seq, payload)
            if not ack:
                return [], ready
            if in_order and defer_ack:
                self._in_order_acks += 1
                self._last_in_order = seq
                return [], ready
            return [new_ack(self.conn_id, seq)], ready
        if kind == MsgType.ACK:
            if message.seq_num == 0:
                return [], []  # heartbeat
            return self._data(self.send.ack(message.seq_num)), []
        if kind == MsgType.CACK:
            return self._data(self.send.cack(message.seq_num)), []
        return [], []

    def closing_acks(self) -> list[Message]:
        """The acknowledgement owed for the in-order Data received with `defer_ack` since the
        last call: nothing, the plain Ack of the one, or one CAck for the contiguous prefix
        (every Data up to the last in-order one has been received)."""
        count = self._in_order_acks
        if count == 0:
            return []
        self._in_order_acks = 0
        if count == 1:
            return [new_ack(self.conn_id, self._last_in_order)]
        return [new_cack(self.conn_id, self.receive_buffer.expected - 1)]

    def epoch(self) -> list[Message]:
        """One epoch passed: retransmissions and heartbeat to send (sets `lost` when due)."""
        self.silent_epochs += 1
        if self.silent_epochs >= self.params.epoch_limit:
            self.lost = True
            return []
        heartbeat = [] if self.sent_data_this_epoch else [new_ack(self.conn_id, 0)]
        self.sent_data_this_epoch = False
        return self._data(self.send.epoch()) + heartbeat

    def picture(self) -> dict:
        """This connection now, for people to look at (JSON-ready): epochs since the peer was
        last heard (lost at epoch_limit), the send window (lsp.window.SendWindow.picture) and
        the receive side."""
        return {"conn_id": self.conn_id, "silent_epochs": self.silent_epochs,
                "epoch_limit": self.params.epoch_limit, "lost": self.lost,
                "send": self.send.picture(), "receive": self.receive_buffer.picture()}

    def _data(self, numbered: list[tuple[int, bytes]]) -> list[Message]:
        if not numbered:
            return []
        self.sent_data_this_epoch = True
        return [data_message(self.conn_id, seq, payload) for seq, payload in numbered]
