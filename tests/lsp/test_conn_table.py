"""The LSP server's connection table on its own (no sockets, threads or clocks): duplicate
Connects, reconnects from the same address after loss, close_conn and a restart, the maps kept
consistent under any event sequence, and 10,000 connections that leave nothing behind."""

from __future__ import annotations

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lsp import ConnectionLost, Params
from lsp.conn_table import ConnTable, Lost
from lsp.connection import Connection
from lsp.message import MsgType, data_message, new_ack, new_cack, new_connect

PARAMS = Params(epoch_limit=3, window_size=2, max_unacked_messages=2, max_back_off_interval=1)
A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 4000)


def acks_of(outgoing):
    return [(m.conn_id, m.seq_num, addr) for m, addr in outgoing if m.type == MsgType.ACK]


def connect(table, addr, isn=0):
    """Feeds a Connect; returns the id it was acked with (None: not acked)."""
    replies = [(m, a) for m, a in table.receive(new_connect(isn), addr)]
    assert len(replies) <= 1
    if not replies:
        return None
    (message, to), = replies
    assert (message.type, message.seq_num, to) == (MsgType.ACK, isn, addr)
    return message.conn_id


def epochs(table, count):
    out = []
    for _ in range(count):
        out += table.epoch()
    return out


def drain_reads(table):
    taken = []
    while table.next_read is not None:
        taken.append(table.next_read)
        table.read_taken()
    return taken


def test_a_duplicate_connect_from_a_live_connection_is_acked_with_the_same_id():
    table = ConnTable(PARAMS)
    first = connect(table, A, isn=7)
    assert connect(table, A, isn=7) == first
    assert connect(table, B, isn=7) != first
    assert len(table) == 2


def test_after_loss_the_same_address_gets_a_new_connection():
    table = ConnTable(PARAMS)
    first = connect(table, A, isn=7)
    table.receive(data_message(first, 8, b"last words"), A)
    epochs(table, PARAMS.epoch_limit)
    assert len(table) == 0 and table.ids_by_address() == {}
    assert drain_reads(table) == [(first, b"last words"), Lost(first)]
    second = connect(table, A, isn=7)   # the same client, restarted on the same port
    assert second is not None and second > first
    assert table.conn_ids() == [second]
    # Its numbering starts again from its initial sequence number.
    table.receive(data_message(second, 8, b"again"), A)
    assert drain_reads(table) == [(second, b"again")]
    with pytest.raises(ConnectionLost):
        table.write(first, b"to the old one")


def test_after_close_conn_the_same_address_gets_a_new_connection():
    table = ConnTable(PARAMS)
    first = connect(table, A)
    table.close_conn(first)              # nothing unacked: gone at once
    assert len(table) == 0 and table.ids_by_address() == {}
    second = connect(table, A)
    assert second is not None and second != first
    assert drain_reads(table) == []     # a closed connection is never reported lost


def test_a_closed_connection_stays_until_its_data_is_acked_then_leaves():
    table = ConnTable(PARAMS)
    conn = connect(table, A, isn=0)
    (sent, _), = table.write(conn, b"bye")
    table.receive(data_message(conn, 1, b"unread"), A)
    table.close_conn(conn)
    assert drain_reads(table) == []     # data of a closed connection is never returned
    assert table.conn_ids() == [conn] and table.is_closing(conn)
    with pytest.raises(ConnectionLost):
        table.write(conn, b"more")
    with pytest.raises(ConnectionLost):
        table.close_conn(conn)
    # A Connect from its address while it is still sending opens a new connection.
    newer = connect(table, A, isn=0)
    assert newer != conn and table.ids_by_address() == {A: newer}
    table.receive(new_ack(conn, sent.seq_num), A)
    assert table.conn_ids() == [newer] and table.ids_by_address() == {A: newer}


def test_a_closed_connection_lost_before_its_acks_leaves_silently():
    table = ConnTable(PARAMS)
    conn = connect(table, A)
    table.write(conn, b"never acked")
    table.close_conn(conn)
    epochs(table, PARAMS.epoch_limit)
    assert len(table) == 0 and drain_reads(table) == []


def test_a_new_sequence_number_from_a_live_address_means_its_client_restarted():
    table = ConnTable(PARAMS)
    old = connect(table, A, isn=3)
    table.receive(data_message(old, 4, b"before"), A)
    new = connect(table, A, isn=50)
    assert new != old and table.conn_ids() == [new] and table.ids_by_address() == {A: new}
    assert drain_reads(table) == [(old, b"before"), Lost(old)]
    # Nothing more is sent to the old connection: only the new one heartbeats.
    assert {m.conn_id for m, _ in table.epoch()} == {new}


def test_messages_from_another_address_or_for_an_unknown_id_are_ignored():
    table = ConnTable(PARAMS)
    conn = connect(table, A)
    assert table.receive(data_message(conn, 1, b"spoofed"), B) == []
    assert table.receive(data_message(conn + 1, 1, b"nobody"), A) == []
    assert drain_reads(table) == []


def test_a_closing_server_opens_no_connection_but_acks_duplicates_and_settles():
    table = ConnTable(PARAMS)
    conn = connect(table, A, isn=1)
    (sent, _), = table.write(conn, b"x")
    table.stop_accepting()
    assert connect(table, B) is None
    assert connect(table, A, isn=1) == conn
    with pytest.raises(ConnectionLost):
        table.write(conn, b"after close")
    assert not table.settled
    table.receive(new_cack(conn, sent.seq_num), A)
    assert table.settled


def test_ten_thousand_connections_opened_and_lost_leave_nothing_and_epochs_stay_cheap(
        monkeypatch):
    visits = []
    real_epoch = Connection.epoch

    def counting_epoch(self):
        visits[-1] += 1
        return real_epoch(self)

    monkeypatch.setattr(Connection, "epoch", counting_epoch)
    table = ConnTable(PARAMS)
    addresses = [("10.0.0.9", port) for port in range(5000, 5100)]   # reused every wave
    seen_ids: set[int] = set()
    per_wave = []
    for wave in range(100):
        ids = [connect(table, addr, isn=wave % 3) for addr in addresses]
        assert len(set(ids)) == 100 and not seen_ids & set(ids), "an id was reused"
        seen_ids |= set(ids)
        for conn_id, addr in zip(ids[::2], addresses[::2]):
            table.receive(data_message(conn_id, wave % 3 + 1, b"x"), addr)
        wave_visits = 0
        for _ in range(PARAMS.epoch_limit):
            visits.append(0)
            table.epoch()
            wave_visits = max(wave_visits, visits[-1])
        per_wave.append(wave_visits)
        assert len(table) == 0 and table.ids_by_address() == {}
        reads = drain_reads(table)
        assert [r for r in reads if type(r) is Lost] == [Lost(i) for i in ids]
        assert len(reads) == 150
    assert len(seen_ids) == 10_000
    assert max(per_wave) == 100, "an epoch visited connections that were already lost"
    visits.append(0)
    table.epoch()
    assert visits[-1] == 0


class TableMachine(RuleBasedStateMachine):
    """Any interleaving of Connects from three addresses with a few sequence numbers, peer Data
    (from the right address or not), Acks and CAcks of what the table sent, heartbeats, epochs,
    writes, close_conn, reads taken and the server closing, checked against a model of what the
    peers did."""

    ADDRESSES = [("10.0.1.1", 1), ("10.0.1.2", 1), ("10.0.1.2", 2)]

    def __init__(self):
        super().__init__()
        self.table = ConnTable(PARAMS)
        self.accepting = True
        self.issued: dict[int, tuple] = {}       # id -> (addr, isn), every id ever acked new
        self.max_id = 0
        self.silent: dict[int, int] = {}         # member id -> epochs without a message
        self.peer_next_seq: dict[int, int] = {}  # id -> the peer's next Data seq num
        self.unacked: dict[int, set[int]] = {}   # id -> Data seq nums the table sent
        self.closed: set[int] = set()            # close_conn'd
        self.lost_reads: set[int] = set()        # Lost markers read() has taken
        self.delivered: dict[int, list[int]] = {}

    # ---- helpers ----------------------------------------------------------------------------

    def transmitted(self, outgoing):
        for message, addr in outgoing:
            assert message.conn_id in self.issued
            assert addr == self.issued[message.conn_id][0], "sent to the wrong address"
            if message.type == MsgType.DATA:
                self.unacked.setdefault(message.conn_id, set()).add(message.seq_num)

    def members(self):
        return set(self.table.conn_ids())

    def heard_from(self, conn_id):
        if conn_id in self.silent:
            self.silent[conn_id] = 0

    # ---- rules ------------------------------------------------------------------------------

    @rule(addr=st.sampled_from(ADDRESSES), isn=st.sampled_from([0, 1, 40]))
    def connect(self, addr, isn):
        before = self.table.ids_by_address().get(addr)
        live_same = (before is not None and not self.table.is_closing(before)
                     and self.issued[before][1] == isn)
        outgoing = self.table.receive(new_connect(isn), addr)
        if live_same:
            assert acks_of(outgoing) == [(before, isn, addr)]
            return
        if before is not None and not self.table.is_closing(before):
            assert before not in self.members(), "a restarted client's old connection stayed"
            self.silent.pop(before, None)
        if not self.accepting:
            assert outgoing == []
            return
        ((new_id, seq, to),) = acks_of(outgoing)
        assert (seq, to) == (isn, addr)
        assert new_id > self.max_id, "an id was reused"
        self.max_id = new_id
        self.issued[new_id] = (addr, isn)
        self.silent[new_id] = 0
        self.peer_next_seq[new_id] = isn + 1

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), right_address=st.booleans(), skip=st.integers(0, 2))
    def peer_data(self, data, right_address, skip):
        conn_id = data.draw(st.sampled_from(sorted(self.issued)))
        addr = self.issued[conn_id][0] if right_address else ("10.9.9.9", 9)
        seq = self.peer_next_seq[conn_id] + skip   # skip > 0: out of order
        if skip == 0 and right_address:
            self.peer_next_seq[conn_id] += 1
        if right_address:
            self.heard_from(conn_id)
        self.transmitted(self.table.receive(
            data_message(conn_id, seq, f"{conn_id}:{seq}".encode()), addr))

    @precondition(lambda self: any(self.unacked.values()))
    @rule(data=st.data(), cumulative=st.booleans())
    def peer_ack(self, data, cumulative):
        conn_id = data.draw(st.sampled_from(sorted(c for c, s in self.unacked.items() if s)))
        seq = data.draw(st.sampled_from(sorted(self.unacked[conn_id])))
        if cumulative:
            self.unacked[conn_id] = {s for s in self.unacked[conn_id] if s > seq}
            message = new_cack(conn_id, seq)
        else:
            self.unacked[conn_id].discard(seq)
            message = new_ack(conn_id, seq)
        self.heard_from(conn_id)
        self.transmitted(self.table.receive(message, self.issued[conn_id][0]))

    @precondition(lambda self: self.issued)
    @rule(data=st.data())
    def peer_heartbeat(self, data):
        conn_id = data.draw(st.sampled_from(sorted(self.issued)))
        self.heard_from(conn_id)
        self.transmitted(self.table.receive(new_ack(conn_id, 0), self.issued[conn_id][0]))

    @rule()
    def epoch(self):
        self.transmitted(self.table.epoch())
        for conn_id in list(self.silent):
            self.silent[conn_id] += 1
            if self.silent[conn_id] >= PARAMS.epoch_limit:
                del self.silent[conn_id]
                assert conn_id not in self.members(), f"conn {conn_id} lost but kept"

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), payload=st.binary(max_size=3))
    def write(self, data, payload):
        conn_id = data.draw(st.sampled_from(sorted(self.issued)))
        allowed = (conn_id in self.members() and conn_id not in self.closed
                   and self.accepting)
        try:
            self.transmitted(self.table.write(conn_id, payload))
        except ConnectionLost as lost:
            assert not allowed and lost.conn_id == conn_id
        else:
            assert allowed

    @precondition(lambda self: self.issued)
    @rule(data=st.data())
    def close_conn(self, data):
        conn_id = data.draw(st.sampled_from(sorted(self.issued)))
        allowed = conn_id in self.members() and conn_id not in self.closed
        try:
            self.table.close_conn(conn_id)
        except ConnectionLost:
            assert not allowed
        else:
            assert allowed
            self.closed.add(conn_id)

    @precondition(lambda self: self.table.next_read is not None)
    @rule()
    def read(self):
        item = self.table.next_read
        self.table.read_taken()
        if type(item) is Lost:
            assert item.conn_id not in self.lost_reads, "a connection reported lost twice"
            assert item.conn_id not in self.closed, "a close_conn'd connection reported lost"
            assert item.conn_id not in self.members()
            self.lost_reads.add(item.conn_id)
            return
        conn_id, payload = item
        assert conn_id not in self.lost_reads, "data read after the connection's loss"
        assert conn_id not in self.closed, "data of a close_conn'd connection returned"
        got = self.delivered.setdefault(conn_id, [])
        expected_seq = self.issued[conn_id][1] + 1 + len(got)
        assert payload == f"{conn_id}:{expected_seq}".encode(), "out of order or misrouted"
        got.append(expected_seq)

    @rule()
    def server_closing(self):
        self.table.stop_accepting()
        self.accepting = False

    # ---- invariants -------------------------------------------------------------------------

    @invariant()
    def maps_agree(self):
        members = self.members()
        by_addr = self.table.ids_by_address()
        assert set(by_addr.values()) <= members, "the address map holds a forgotten id"
        for addr, conn_id in by_addr.items():
            assert self.table.address_of(conn_id) == addr
        for conn_id in members:
            addr = self.table.address_of(conn_id)
            assert addr == self.issued[conn_id][0]
            if not self.table.is_closing(conn_id):
                # An open connection is what a Connect from its address finds (so there is
                # at most one per address). A closing one may have been superseded.
                assert by_addr.get(addr) == conn_id, "an open connection missing from the map"

    @invariant()
    def lost_and_finished_connections_are_gone(self):
        for conn_id in self.members():
            entry = self.table._entries[conn_id]
            assert not entry.conn.lost
            if conn_id in self.closed:
                assert entry.closing and not entry.conn.send.idle, "a finished close stayed"

    def teardown(self):
        # Every peer falls silent: everything leaves the table, and each connection not closed
        # with close_conn is reported lost exactly once.
        for _ in range(PARAMS.epoch_limit):
            self.epoch()
        assert len(self.table) == 0 and self.table.ids_by_address() == {}
        while self.table.next_read is not None:
            self.read()
        assert self.lost_reads == set(self.issued) - self.closed


TableMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50,
                                          deadline=None)
test_table_state_machine = TableMachine.TestCase


def test_a_batch_acks_each_connections_in_order_run_with_one_cack():
    table = ConnTable(Params(window_size=8, max_unacked_messages=8))
    a, b = connect(table, A), connect(table, B)
    batch = [(data_message(a, 1, b"a1"), A), (data_message(b, 1, b"b1"), B),
             (data_message(a, 2, b"a2"), A), (data_message(a, 3, b"a3"), A)]
    out = table.receive_batch(batch)
    assert sorted((m.type, m.conn_id, m.seq_num, addr) for m, addr in out) == sorted(
        [(MsgType.CACK, a, 3, A), (MsgType.ACK, b, 1, B)])
    reads = []
    while table.next_read is not None:
        reads.append(table.next_read)
        table.read_taken()
    assert reads == [(a, b"a1"), (b, b"b1"), (a, b"a2"), (a, b"a3")]
