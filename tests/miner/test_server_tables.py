"""The miner server keeps nothing for a connection that has ended: after clients finish or are
lost and miners join and are lost, the server's role bookkeeping (`ServerRules`) and the
Scheduler are empty. Also what each end is called in the log ("client 3 done", "client 3
lost", "miner 2 lost"). Pure rules first, then once live over LSP."""

from __future__ import annotations

import logging
import random

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import csp
import lsp
from miner import bitcoin
from miner.scheduler import Answer, Dispatch, Scheduler
from miner.server import CloseConn, MinerServer, ServerRules
from tests.waiting import wait_until


def small_rules():
    return ServerRules(Scheduler(target_chunk_seconds=1.0, initial_chunk=4, min_chunk=1,
                                 max_chunk=40))


def join():
    return bitcoin.encode(bitcoin.new_join())


def request(data, lower, upper):
    return bitcoin.encode(bitcoin.new_request(data, lower, upper))


def result_for(dispatch):
    return bitcoin.encode(bitcoin.new_result(*bitcoin.scan(dispatch.data, dispatch.lower,
                                                           dispatch.upper)))


def assert_empty(rules):
    assert rules.connections == 0, "a role kept for an ended connection"
    assert rules.clients_waiting == 0, "a request count kept for an ended client"
    assert rules.scheduler.miners == 0 and rules.scheduler.requests == 0
    assert rules.scheduler.busy_miners == 0


def test_ended_connections_are_named_by_what_happened(caplog):
    caplog.set_level(logging.INFO, logger="miner")
    rules = small_rules()
    rules.message(1, join(), 0.0)
    (dispatch,) = rules.message(2, request("d", 0, 3), 0.0)
    rules.message(3, request("e", 0, 3), 0.0)         # miner 1 is busy: waits
    actions = rules.message(1, result_for(dispatch), 1.0)
    assert Answer in {type(a) for a in actions}
    rules.lost(2, 2.0)      # answered, then its connection ended: done
    rules.lost(3, 2.0)      # never answered: lost
    rules.lost(1, 2.0)
    rules.lost(4, 2.0)      # never said anything
    messages = [r.getMessage() for r in caplog.records]
    assert "client 2 done (disconnected after its answer)" in messages
    assert "client 3 lost" in messages
    assert "miner 1 lost" in messages
    assert "connection 4 lost" in messages
    assert not any(m.startswith("client 2 lost") for m in messages)
    assert_empty(rules)


def test_a_client_closed_for_a_bad_request_is_forgotten_with_its_other_requests():
    rules = small_rules()
    rules.message(7, request("fine", 0, 100), 0.0)
    assert rules.message(7, request("bad", 5, 4), 0.0) == [CloseConn(7)]
    assert_empty(rules)
    assert rules.message(9, join(), 1.0) == []       # the dropped request is not handed out


def test_a_message_without_a_role_is_not_remembered():
    rules = small_rules()
    rules.message(5, bitcoin.encode(bitcoin.new_result(1, 2)), 0.0)
    rules.message(6, b"not json", 0.0)
    assert rules.connections == 0


def test_many_clients_and_miners_come_and_go_and_leave_nothing():
    rng = random.Random(16)
    rules = small_rules()
    next_id = 1
    held: dict[int, list[Dispatch]] = {}   # miner -> its chunks, oldest first
    miners: set[int] = set()
    clients: dict[int, int] = {}          # client -> requests not answered
    now = 0.0

    def perform(actions):
        for action in actions:
            if type(action) is Dispatch:
                held.setdefault(action.miner, []).append(action)
            elif type(action) is Answer:
                clients[action.client] -= 1

    for _ in range(3000):
        now += 0.01
        choice = rng.random()
        if choice < 0.15 or not miners:
            miners.add(next_id)
            perform(rules.message(next_id, join(), now))
            next_id += 1
        elif choice < 0.35:
            clients[next_id] = rng.randrange(1, 3)
            for k in range(clients[next_id]):
                lower = rng.randrange(50)
                perform(rules.message(next_id, request(f"r{next_id}.{k}", lower,
                                                       lower + rng.randrange(30)), now))
            next_id += 1
        elif choice < 0.45:
            miner = rng.choice(sorted(miners))
            miners.discard(miner)
            held.pop(miner, None)
            perform(rules.lost(miner, now))
        elif choice < 0.6 and clients:
            client = rng.choice(sorted(clients))     # finished or not: its connection ends
            del clients[client]
            perform(rules.lost(client, now))
        elif held:
            miner = rng.choice(sorted(held))
            oldest = held[miner].pop(0)
            if not held[miner]:
                del held[miner]
            perform(rules.message(miner, result_for(oldest), now))
    for client in list(clients):
        perform(rules.lost(client, now))
    for miner in list(miners):
        perform(rules.lost(miner, now))
    assert_empty(rules)


class RulesMachine(RuleBasedStateMachine):
    """Any interleaving of miners joining, answering and being lost, and clients requesting
    and ending (answered or not): ids are kept exactly while their connection lasts."""

    def __init__(self):
        super().__init__()
        self.rules = small_rules()
        self.next_id = 1
        self.now = 0.0
        self.miners: set[int] = set()
        self.clients: set[int] = set()
        self.held: dict[int, list[Dispatch]] = {}   # miner -> its chunks, oldest first

    def perform(self, actions):
        for action in actions:
            if type(action) is Dispatch:
                assert action.miner in self.miners
                self.held.setdefault(action.miner, []).append(action)
            elif type(action) is Answer:
                assert action.client in self.clients

    def tick(self):
        self.now += 0.1
        return self.now

    @rule()
    def miner_joins(self):
        self.miners.add(self.next_id)
        self.perform(self.rules.message(self.next_id, join(), self.tick()))
        self.next_id += 1

    @rule(lower=st.integers(0, 20), width=st.integers(0, 20), count=st.integers(1, 2))
    def client_requests(self, lower, width, count):
        client = self.next_id
        self.next_id += 1
        self.clients.add(client)
        for k in range(count):
            self.perform(self.rules.message(client, request(f"c{client}.{k}", lower,
                                                            lower + width), self.tick()))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def miner_answers(self, data):
        miner = data.draw(st.sampled_from(sorted(self.held)))
        oldest = self.held[miner].pop(0)
        if not self.held[miner]:
            del self.held[miner]
        self.perform(self.rules.message(miner, result_for(oldest), self.tick()))

    @precondition(lambda self: self.miners)
    @rule(data=st.data())
    def miner_lost(self, data):
        miner = data.draw(st.sampled_from(sorted(self.miners)))
        self.miners.discard(miner)
        self.held.pop(miner, None)
        self.perform(self.rules.lost(miner, self.tick()))

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def client_ends(self, data):
        client = data.draw(st.sampled_from(sorted(self.clients)))
        self.clients.discard(client)
        self.perform(self.rules.lost(client, self.tick()))

    @invariant()
    def kept_exactly_while_connected(self):
        assert self.rules.connections == len(self.miners) + len(self.clients)
        assert self.rules.scheduler.miners == len(self.miners)
        assert self.rules.clients_waiting <= len(self.clients)

    def teardown(self):
        for conn_id in sorted(self.miners | self.clients):
            self.rules.lost(conn_id, self.tick())
        assert_empty(self.rules)


RulesMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40,
                                          deadline=None)
test_rules_state_machine = RulesMachine.TestCase


def test_live_clients_finish_and_miners_leave_and_the_server_keeps_nothing(caplog):
    caplog.set_level(logging.INFO, logger="miner")
    params = lsp.Params(epoch_limit=5, epoch_millis=50, window_size=4, max_unacked_messages=4)
    server = MinerServer(0, params)
    hostport = f"127.0.0.1:{server.port}"

    def mine(conn):
        """A minimal miner: answers each Request until its connection fails."""
        try:
            conn.write(join())
            while True:
                message = bitcoin.decode(conn.read())
                conn.write(bitcoin.encode(bitcoin.new_result(
                    *bitcoin.scan(message.data, message.lower, message.upper))))
        except lsp.LSPError:
            return

    miners = [lsp.new_client(hostport, 10 * i, params) for i in range(3)]
    mining = [csp.go(mine, conn, name=f"test/miner-{conn.conn_id()}") for conn in miners]
    answers = csp.Chan(None)

    def one_client(data, max_nonce):
        conn = lsp.new_client(hostport, 7, params)
        try:
            conn.write(request(data, 0, max_nonce))
            answers.send((conn.conn_id(), data, max_nonce, bitcoin.decode(conn.read())))
        finally:
            conn.close()   # the course's client ends its connection once answered

    jobs = [(f"job{i}", 2000 + 500 * i) for i in range(8)]
    clients = [csp.go(one_client, data, n, name=f"test/client-{data}") for data, n in jobs]
    client_ids = []
    try:
        for _ in jobs:
            index, got, _ = csp.select(csp.Recv(answers), csp.Recv(csp.after(60)))
            assert index == 0, "a client got no answer within 60 s"
            conn_id, data, max_nonce, answer = got
            assert (answer.hash, answer.nonce) == bitcoin.scan(data, 0, max_nonce)
            client_ids.append(conn_id)
        for thread in clients:
            thread.join(10)
        for conn in miners:
            conn.close()   # the miner's read() fails, its thread returns; the server sees loss
        for thread in mining:
            thread.join(10)
        rules = server._rules   # owned by the server's loop: only polled here, while it idles
        wait_until(lambda: rules.connections == 0, "every client and miner forgotten")
        assert_empty(rules)
        lines = [r.getMessage() for r in caplog.records]
        for conn_id in client_ids:
            assert f"client {conn_id} done (disconnected after its answer)" in lines
            assert f"client {conn_id} lost" not in lines
        for conn in miners:
            assert f"miner {conn.conn_id()} lost" in lines
    finally:
        for conn in miners:
            conn.close()
        server.close()
        for thread in clients + mining:
            thread.join(10)
