"""The course's P3 checkpoint tests (handout B8) that are not mailbox tests: the storage client
against fake QueryReceivers (ClientGet, List, Put, Balance, Sequential, Concurrent) and the eight
OneActor tests against one real server with one query actor. The mailbox tests of the
checkpoint are in tests/actor/test_mailbox.py.

OneActor tests check every answer exactly, that `new_server` created a new actor system, and the
course's QueryReceiver rule through Stats: at least one external tell and one used channel ref
per query (so each query, Puts too, went to the query actor and came back by message). The final
test list re-runs these eight.
"""

from __future__ import annotations

import threading
import time

import pytest

import csp
import rpc
from cmud.client import Client, RoundRobinRouter
from cmud.common import GetArgs, GetReply, ListArgs, ListReply, PutArgs, PutReply
from tests.cmud.harness import run_threads

CLIENT_DEADLINE_SECONDS = 5.0        # the course's limit for the client tests
SLOW_ANSWER_SECONDS = 2.0            # TestClientConcurrent: the fake answers after 2 s ...
CONCURRENT_DEADLINE_SECONDS = 4.0    # ... and three concurrent Gets must finish within 4 s
ONE_ACTOR_DEADLINE_SECONDS = 5.0     # the course's limit for the OneActor tests


# ---- fake query receivers -----------------------------------------------------------------------

class FakeQueryReceiver:
    """Served as "QueryReceiver": records every call as (method, args) and answers with the
    canned replies, after `delay` seconds."""

    def __init__(self, get_reply=None, list_reply=None, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, object]] = []
        self._get_reply = get_reply or GetReply("", False)
        self._list_reply = list_reply or ListReply({})
        self._delay = delay

    def get(self, args: GetArgs) -> GetReply:
        self.calls.append(("get", args))
        time.sleep(self._delay)   # the scenario's slow server, not a synchronisation
        return self._get_reply

    def put(self, args: PutArgs) -> PutReply:
        self.calls.append(("put", args))
        time.sleep(self._delay)
        return PutReply()

    def list(self, args: ListArgs) -> ListReply:
        self.calls.append(("list", args))
        time.sleep(self._delay)
        return self._list_reply


@pytest.fixture
def fake_server():
    """fake_server(receiver) -> "127.0.0.1:port" of an rpc server serving it as
    "QueryReceiver"; every server and client made in the test is closed afterwards."""
    servers = []

    def make(receiver: FakeQueryReceiver) -> str:
        server = rpc.Server()
        server.register(receiver, name="QueryReceiver")
        port = server.listen(0)
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def make_client():
    clients = []

    def make(router) -> Client:
        client = Client(router)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def within(seconds: float, fn, what: str):
    """fn() on a thread; its result, or a failure if it takes longer than `seconds`."""
    result = []
    run_threads([lambda: result.append(fn())], seconds, what)
    return result[0]


class RecordingRouter:
    """Cycles through `addrs` and records every address it hands out (the test's own router,
    so the Balance test checks the client's use of any router, not RoundRobinRouter)."""

    def __init__(self, addrs: list[str]) -> None:
        self.addrs = list(addrs)
        self.handed_out: list[str] = []

    def next_addr(self) -> str:
        addr = self.addrs[len(self.handed_out) % len(self.addrs)]
        self.handed_out.append(addr)
        return addr


# ---- the client tests ---------------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_client_get(fake_server, make_client):
    fake = FakeQueryReceiver(get_reply=GetReply("bar", True))
    client = make_client(RoundRobinRouter([fake_server(fake)]))
    got = within(CLIENT_DEADLINE_SECONDS, lambda: client.get("foo"), "Get")
    assert got == ("bar", True)
    assert fake.calls == [("get", GetArgs("foo"))]


@pytest.mark.timeout(30)
def test_client_list(fake_server, make_client):
    entries = {"foo/a": "1", "foo/b": "2"}
    fake = FakeQueryReceiver(list_reply=ListReply(dict(entries)))
    client = make_client(RoundRobinRouter([fake_server(fake)]))
    got = within(CLIENT_DEADLINE_SECONDS, lambda: client.list("foo"), "List")
    assert got == entries
    assert fake.calls == [("list", ListArgs("foo"))]


@pytest.mark.timeout(30)
def test_client_put(fake_server, make_client):
    fake = FakeQueryReceiver()
    client = make_client(RoundRobinRouter([fake_server(fake)]))
    within(CLIENT_DEADLINE_SECONDS, lambda: client.put("15440", "DistributedSystem"), "Put")
    assert fake.calls == [("put", PutArgs("15440", "DistributedSystem"))]


@pytest.mark.timeout(30)
def test_client_balance(fake_server, make_client):
    """Three fake servers; the router rotates; each Get goes to the address it names."""
    fakes = [FakeQueryReceiver(get_reply=GetReply(f"bar{i}", True)) for i in range(3)]
    router = RecordingRouter([fake_server(f) for f in fakes])
    client = make_client(router)
    for n in range(6):
        got = within(CLIENT_DEADLINE_SECONDS, lambda: client.get(f"foo{n}"), f"Get {n}")
        target = n % 3
        assert got == (f"bar{target}", True), f"Get {n} was not answered by server {target}"
        for i, fake in enumerate(fakes):
            expected = [("get", GetArgs(f"foo{m}")) for m in range(n + 1) if m % 3 == i]
            assert fake.calls == expected, f"after Get {n}: server {i} saw {fake.calls}"
    assert len(router.handed_out) == 6, "the router must be asked once per query"


@pytest.mark.timeout(30)
def test_client_sequential(fake_server, make_client):
    fake = FakeQueryReceiver(get_reply=GetReply("bar", True))
    client = make_client(RoundRobinRouter([fake_server(fake)]))

    def three_gets():
        return [client.get(f"foo{i}") for i in range(3)]

    got = within(CLIENT_DEADLINE_SECONDS, three_gets, "three sequential Gets")
    assert got == [("bar", True)] * 3
    assert fake.calls == [("get", GetArgs(f"foo{i}")) for i in range(3)], \
        "expected exactly three Get RPCs, in order"


@pytest.mark.timeout(30)
def test_client_concurrent(fake_server, make_client):
    """The fake answers each query after 2 s; three concurrent Gets through one client must
    all finish within 4 s, so the client does not serialise them."""
    fake = FakeQueryReceiver(get_reply=GetReply("bar", True), delay=SLOW_ANSWER_SECONDS)
    client = make_client(RoundRobinRouter([fake_server(fake)]))
    results = []

    def one_get(i):
        return lambda: results.append(client.get(f"foo{i}"))

    start = time.monotonic()
    run_threads([one_get(i) for i in range(3)], CONCURRENT_DEADLINE_SECONDS,
                "three concurrent Gets")
    elapsed = time.monotonic() - start
    assert results == [("bar", True)] * 3
    assert elapsed < CONCURRENT_DEADLINE_SECONDS, f"took {elapsed:.2f} s"
    assert sorted(args.key for _, args in fake.calls) == ["foo0", "foo1", "foo2"]


# ---- OneActor: one server, one query actor ----------------------------------------------------

class OneActor:
    """One server with one query actor, and the course's checked query wrappers."""

    def __init__(self, cluster, checker) -> None:
        self.cluster = cluster
        self.checker = checker
        self.node = cluster.start(1)
        self.addr = self.node.server.query_addrs[0]
        self.client = self.node.clients[0]

    def new_client(self) -> Client:
        return self.cluster.client([self.addr])

    def get(self, key, value, ok, client=None):
        self.checker.get(client or self.client, key, value, ok, self.node)

    def put(self, key, value, client=None):
        self.checker.put(client or self.client, key, value, self.node)

    def list(self, prefix, want, client=None):
        self.checker.list(client or self.client, prefix, want, self.node)

    def check_stats(self) -> None:
        stats = self.node.stats()
        queries = self.node.queries
        assert stats.messages_sent_external >= queries, \
            f"{stats.messages_sent_external} external tells for {queries} queries: every " \
            "query must be told to the query actor"
        assert stats.channel_refs_used >= queries, \
            f"{stats.channel_refs_used} channel refs used for {queries} queries: every " \
            "query must be answered through a channel ref"


@pytest.fixture
def one_actor(cluster, checker):
    return OneActor(cluster, checker)


def run_one_actor(one: OneActor, body, what: str) -> None:
    """The course's 5 s limit on the scenario, then the Stats check."""
    run_threads([body], ONE_ACTOR_DEADLINE_SECONDS, what)
    one.check_stats()


@pytest.mark.timeout(60)
def test_one_actor_get(one_actor):
    run_one_actor(one_actor, lambda: one_actor.get("foo", "", False), "Get on an empty store")


@pytest.mark.timeout(60)
def test_one_actor_put1(one_actor):
    def body():
        one_actor.put("foo", "bar")
        one_actor.get("foo", "bar", True)

    run_one_actor(one_actor, body, "Put then Get")


@pytest.mark.timeout(60)
def test_one_actor_put2(one_actor):
    def body():
        for i in range(10):
            one_actor.put("foo", f"bar{i}")
            one_actor.get("foo", f"bar{i}", True)

    run_one_actor(one_actor, body, "ten overwrites")


@pytest.mark.timeout(60)
def test_one_actor_list1(one_actor):
    """List "" on an empty store, then after Puts; a prefix nothing matches lists nothing."""
    def body():
        one_actor.list("", {})
        one_actor.put("foo", "bar")
        one_actor.put("baz", "qux")
        one_actor.list("", {"foo": "bar", "baz": "qux"})
        one_actor.list("zzz", {})

    run_one_actor(one_actor, body, "List")


@pytest.mark.timeout(60)
def test_one_actor_list2(one_actor):
    """Keys under "cat/" and "frog/"; each prefix lists exactly its own, "dog/" nothing."""
    cats = {f"cat/{name}": f"meow{i}" for i, name in enumerate(["tom", "felix", "garfield"])}
    frogs = {f"frog/{name}": f"ribbit{i}" for i, name in enumerate(["kermit", "freddo"])}

    def body():
        for key, value in {**cats, **frogs}.items():
            one_actor.put(key, value)
        one_actor.list("cat/", cats)
        one_actor.list("frog/", frogs)
        one_actor.list("dog/", {})
        one_actor.list("", {**cats, **frogs})

    run_one_actor(one_actor, body, "List by prefix")


@pytest.mark.timeout(60)
def test_one_actor_trace(one_actor):
    """A mixed sequence of Gets, Puts (one an overwrite) and Lists."""
    def body():
        one_actor.get("a", "", False)
        one_actor.put("a", "1")
        one_actor.get("a", "1", True)
        one_actor.put("b", "2")
        one_actor.list("", {"a": "1", "b": "2"})
        one_actor.put("a", "3")
        one_actor.get("a", "3", True)
        one_actor.get("b", "2", True)
        one_actor.put("ab", "4")
        one_actor.list("a", {"a": "3", "ab": "4"})
        one_actor.get("c", "", False)
        one_actor.list("", {"a": "3", "b": "2", "ab": "4"})

    run_one_actor(one_actor, body, "a trace")


@pytest.mark.timeout(60)
def test_one_actor_multi_client1(one_actor):
    """A Put through one client is read through another."""
    other = one_actor.new_client()

    def body():
        one_actor.put("foo", "bar")
        one_actor.get("foo", "bar", True, client=other)
        one_actor.list("", {"foo": "bar"}, client=other)

    run_one_actor(one_actor, body, "two clients")


@pytest.mark.timeout(60)
def test_one_actor_multi_client2(one_actor):
    """Four clients Put distinct keys concurrently, then each Gets every key."""
    clients = [one_actor.new_client() for _ in range(4)]
    done = csp.WaitGroup()
    done.add(len(clients))
    barrier = threading.Barrier(len(clients))

    def client_body(i):
        def run():
            try:
                barrier.wait(ONE_ACTOR_DEADLINE_SECONDS)
                for j in range(5):
                    one_actor.put(f"client{i}/key{j}", f"value{i}.{j}", client=clients[i])
            finally:
                done.done()
            assert done.wait(ONE_ACTOR_DEADLINE_SECONDS), "another client did not finish"
            for k in range(len(clients)):
                for j in range(5):
                    one_actor.get(f"client{k}/key{j}", f"value{k}.{j}", True,
                                  client=clients[i])
        return run

    run_threads([client_body(i) for i in range(len(clients))], ONE_ACTOR_DEADLINE_SECONDS,
                "four concurrent clients")
    one_actor.check_stats()
