"""The course's P3 test harness (tests/ in the starter code, handout B7), in Python.

- `PORTS.block()`: 20 consecutive free ports (the course hands out ports in steps of 20; we
  start at a random base so that two pytest processes, or a test and a leftover socket in
  TIME_WAIT, never collide, and probe every port of a block by binding it).
- `Cluster`: starts servers serially, each with the descs of every server started before it
  (the course's `newServer` wrapper: the test fails unless `new_server` created a new actor
  system), one client per query address (a RoundRobinRouter of that one address, so a check
  reads that very actor), and closes everything at the end.
- `Checker`: the course's query wrappers: exact results (a Get's value and ok, a List's whole
  map), counting the queries sent to each server for the Stats checks.
- `leaked_threads`: threads started during a test and still alive after a short wait.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest

import actor
import csp
from cmud.client import Client, RoundRobinRouter

LOCAL_SYNC_SECONDS = 0.5      # handout B9: a Put visible on every local actor within 500 ms
REMOTE_SYNC_SECONDS = 2.0     # ... and on every remote actor within 2000 ms
LATENCY_MS = 200              # the one-way latency of the remote tests
STARTUP_WAIT_SECONDS = 4 * LATENCY_MS / 1000   # RemoteSync Basic/Local/LWW/Frequency
MAX_MESSAGE_RATE = 10.0       # messages per second per (sending actor, destination)
PUT_INTERVAL_SECONDS = 0.010  # the frequency challenge: a Put every 10 ms ...
FREQUENCY_ITERATIONS = 300    # ... 300 times
SIZE_FILLER_PUTS = 1000       # the size tests' filler
SIZE_FACTOR = 2               # round-2 bytes <= 2 x round-1 bytes
NO_BCAST_FACTOR = 2           # 4-actor receiver <= 2 x the bytes of the 1-actor receiver

BLOCK_SIZE = 20
PORT_LOW, PORT_HIGH = 20000, 50000
THREAD_GRACE_SECONDS = 3.0
_LONG_LIVED = {csp.SCHEDULER_THREAD_NAME, "lspnet-delay"}


# ---- ports --------------------------------------------------------------------------------------

class PortAllocator:
    """Hands out blocks of BLOCK_SIZE consecutive ports that were free when probed. A block is
    never handed out twice in one process. Thread-safe (tests are the only users; a lock is
    fine in test code)."""

    def __init__(self, seed: int | None = None) -> None:
        rng = random.Random(seed)
        blocks = (PORT_HIGH - PORT_LOW) // BLOCK_SIZE
        self._next = PORT_LOW + BLOCK_SIZE * rng.randrange(blocks)
        self._lock = threading.Lock()
        self._handed_out: set[int] = set()

    def block(self) -> int:
        """The first port of a block of BLOCK_SIZE free ports."""
        with self._lock:
            for _ in range((PORT_HIGH - PORT_LOW) // BLOCK_SIZE):
                base = self._next
                self._next += BLOCK_SIZE
                if self._next + BLOCK_SIZE > PORT_HIGH:
                    self._next = PORT_LOW
                if base in self._handed_out:
                    continue
                if all(port_free(p) for p in range(base, base + BLOCK_SIZE)):
                    self._handed_out.add(base)
                    return base
        raise RuntimeError(f"no block of {BLOCK_SIZE} free ports in {PORT_LOW}-{PORT_HIGH}")


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now. Probed without SO_REUSEADDR, stricter than
    the servers' own bind (socket.create_server sets it), so a port still in TIME_WAIT from an
    earlier test is skipped too."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


PORTS = PortAllocator()


# ---- threads ------------------------------------------------------------------------------------

def leaked_threads(before: set[threading.Thread],
                   grace_seconds: float = THREAD_GRACE_SECONDS) -> list[threading.Thread]:
    """Threads not in `before` still alive after waiting up to `grace_seconds` in all."""
    deadline = time.monotonic() + grace_seconds
    leaked = []
    for thread in threading.enumerate():
        if thread in before or thread.name in _LONG_LIVED or thread is threading.current_thread():
            continue
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            leaked.append(thread)
    return leaked


# ---- servers, clients and checked queries ----------------------------------------------------

@dataclass
class Node:
    """One started server: the server, its desc, its start port, one client per query actor,
    and how many queries the test sent it (for the Stats checks)."""
    server: object
    desc: str
    start_port: int
    clients: list[Client]
    queries: int = 0

    @property
    def system(self) -> actor.ActorSystem:
        return self.server.system

    def stats(self) -> actor.Stats:
        return self.server.system.stats()


def new_server(start_port: int, count: int, descs: list[str]):
    """cmud.server.new_server, imported late so that the client tests run without a server
    module, with the course's check that a new actor system was created."""
    from cmud.server import new_server as make
    actor.last_actor_system()   # forget any older system
    server, desc = make(start_port, count, list(descs))
    system = actor.last_actor_system()
    if system is None:
        server.close()
        pytest.fail("new_server returned without creating a new actor system", pytrace=False)
    assert system is server.system, "server.system is not the actor system new_server created"
    return server, desc


class Cluster:
    """Servers started serially and the clients that talk to them; `close()` closes all."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._extra_clients: list[Client] = []
        self._closed = False

    def start(self, count: int) -> Node:
        """Start a server with `count` query actors, given the descs of every earlier server.
        A port taken between the probe and the bind (another process) costs one retry."""
        descs = [node.desc for node in self.nodes]
        for attempt in range(3):
            start_port = PORTS.block()
            try:
                server, desc = new_server(start_port, count, descs)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == 2:
                    raise
        addrs = list(server.query_addrs)
        assert len(addrs) == count, f"{len(addrs)} query addresses for {count} query actors"
        assert addrs == [f"127.0.0.1:{start_port + 1 + i}" for i in range(count)], \
            f"query addresses {addrs} do not follow start port {start_port}"
        node = Node(server, desc, start_port, [Client(RoundRobinRouter([a])) for a in addrs])
        self.nodes.append(node)
        return node

    def start_many(self, servers: int, count: int) -> list[Node]:
        return [self.start(count) for _ in range(servers)]

    def client(self, addrs: list[str]) -> Client:
        """An extra client (closed with the cluster)."""
        client = Client(RoundRobinRouter(addrs))
        self._extra_clients.append(client)
        return client

    def actors(self) -> list[tuple[Node, Client]]:
        """Every query actor of every server, as (its server, its client)."""
        return [(node, client) for node in self.nodes for client in node.clients]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in self._extra_clients:
            client.close()
        for node in self.nodes:
            for client in node.clients:
                client.close()
        for node in self.nodes:
            node.server.close()


class Checker:
    """The course's query wrappers: every answer is compared exactly, every query counted on
    the node it went to. Thread-safe (counting under a lock: test code)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def count(self, node: Node | None) -> None:
        if node is not None:
            with self._lock:
                node.queries += 1

    def get(self, client: Client, key: str, value: str, ok: bool,
            node: Node | None = None, where: str = "") -> None:
        got = client.get(key)
        self.count(node)
        assert got == (value, ok), \
            f"Get({key!r}){where}: got {got!r}, expected {(value, ok)!r}"

    def put(self, client: Client, key: str, value: str, node: Node | None = None) -> None:
        client.put(key, value)
        self.count(node)

    def list(self, client: Client, prefix: str, want: dict[str, str],
             node: Node | None = None, where: str = "") -> None:
        got = client.list(prefix)
        self.count(node)
        assert got is not None, f"List({prefix!r}){where} returned None"
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
            pytest.fail(f"List({prefix!r}){where}: {len(got)} entries, expected {len(want)}; "
                        f"missing {missing[:10]}, extra {extra[:10]}, wrong values "
                        f"{[(k, got[k], want[k]) for k in wrong[:10]]}", pytrace=False)

    def all_get(self, cluster: Cluster, key: str, value: str, ok: bool = True) -> None:
        """Get on every actor of every server."""
        for s, node in enumerate(cluster.nodes):
            for a, client in enumerate(node.clients):
                self.get(client, key, value, ok, node, f" on server {s} actor {a}")

    def all_list(self, cluster: Cluster, prefix: str, want: dict[str, str],
                 nodes: list[Node] | None = None) -> None:
        """List on every actor of every server (or of `nodes`)."""
        for s, node in enumerate(cluster.nodes):
            if nodes is not None and node not in nodes:
                continue
            for a, client in enumerate(node.clients):
                self.list(client, prefix, want, node, f" on server {s} actor {a}")


def check_rates(cluster: Cluster) -> None:
    """Every server: at most MAX_MESSAGE_RATE messages/s per (sending actor, destination)."""
    for s, node in enumerate(cluster.nodes):
        rate = node.stats().max_message_rate
        assert rate <= MAX_MESSAGE_RATE, \
            f"server {s}: max message rate {rate:.2f}/s exceeds {MAX_MESSAGE_RATE}/s"


def run_threads(bodies, deadline_seconds: float, what: str) -> None:
    """Run each callable on its own thread; fail if any raised or if they did not all finish
    within `deadline_seconds` (the course's throughput limit)."""
    errors: list[BaseException] = []

    def wrap(body):
        def run():
            try:
                body()
            except BaseException as exc:   # reported in the test's thread below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(b), name=f"test-{what}-{i}")
               for i, b in enumerate(bodies)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline_seconds - (time.monotonic() - start), 0.0))
    late = [t.name for t in threads if t.is_alive()]
    if errors:
        raise errors[0]
    assert not late, f"{what}: {len(late)} of {len(threads)} did not finish within " \
                     f"{deadline_seconds:.0f} s"
    for thread in threads:   # finished: joined for the thread-leak check
        thread.join()


@dataclass
class Model:
    """What every replica must hold: the last value Put of each key, in the order the test
    made its Puts (the tests keep Puts of one key at least 10 ms apart, so LWW agrees)."""
    entries: dict[str, str] = field(default_factory=dict)

    def put(self, key: str, value: str) -> None:
        self.entries[key] = value

    def with_prefix(self, prefix: str) -> dict[str, str]:
        return {k: v for k, v in self.entries.items() if k.startswith(prefix)}


# ---- the course's scenarios, shared by the local and the remote tests --------------------------
#
# A "writer" is one query actor, given as (its node, its client). Local tests pass actors of one
# server; remote tests pass actors of several servers.

Writer = tuple  # (Node, Client)


def writers_of(cluster: Cluster, everyone: bool) -> list[Writer]:
    """The first actor of the first server only, or every actor of every server."""
    actors = cluster.actors()
    return actors if everyone else actors[:1]


def sync_messages(node: Node) -> int:
    """Messages the server's actors sent other than the answers to queries: every query is
    answered with one tell to a channel ref (checked by the OneActor tests), so
    messages_sent_actor - channel_refs_used counts the actor-to-actor messages (sync and
    timer ticks)."""
    stats = node.stats()
    return stats.messages_sent_actor - stats.channel_refs_used


def basic(cluster: Cluster, checker: Checker, writers: list[Writer],
          deadline: float) -> Model:
    """Each writer Puts its own key; after `deadline` every actor has every key (Gets, then a
    List("") that must be exact)."""
    model = Model()
    for i, (node, client) in enumerate(writers):
        checker.put(client, f"basic/key{i}", f"value{i}", node)
        model.put(f"basic/key{i}", f"value{i}")
    time.sleep(deadline)
    for key, value in model.entries.items():
        checker.all_get(cluster, key, value)
    checker.all_list(cluster, "", model.entries)
    return model


def frequency(cluster: Cluster, checker: Checker, writers: list[Writer],
              deadline: float) -> None:
    """The frequency challenge: a Put every 10 ms, 300 times, round-robin over the writers;
    after `deadline` every actor's List("") is exact, and no (actor, destination) pair of any
    server carried more than 10 messages/s."""
    model = Model()
    for i in range(FREQUENCY_ITERATIONS):
        node, client = writers[i % len(writers)]
        checker.put(client, f"freq/key{i}", f"value{i}", node)
        model.put(f"freq/key{i}", f"value{i}")
        time.sleep(PUT_INTERVAL_SECONDS)
    time.sleep(deadline)
    checker.all_list(cluster, "", model.entries)
    check_rates(cluster)


SIZE_TRACE = [(f"size/key{j}", f"value{j}") for j in range(20)]


def size(cluster: Cluster, checker: Checker, writers: list[Writer], filler: Writer,
         filler_check: Writer, deadline: float, measure) -> tuple[int, int]:
    """The size test: round 1 Puts SIZE_TRACE round-robin over the writers; then 1000 filler
    Puts on `filler`, checked on `filler_check` after the deadline; round 2 Puts the same trace
    again. `measure()` is the byte counter (summed over every server); each round counts from
    before its first Put until its check after the deadline, so both rounds span the same
    queries and the same time. Round 2 may cost at most twice round 1: the filler must not be
    resent. Returns (round-1 bytes, round-2 bytes)."""
    model = Model()

    def round_bytes() -> int:
        before = measure()
        for i, (key, value) in enumerate(SIZE_TRACE):
            node, client = writers[i % len(writers)]
            checker.put(client, key, value, node)
            model.put(key, value)
        time.sleep(deadline)
        checker.all_list(cluster, "size/", model.with_prefix("size/"))
        return measure() - before

    round1 = round_bytes()
    node, client = filler
    for i in range(SIZE_FILLER_PUTS):
        checker.put(client, f"filler/key{i}", f"filler-value{i}", node)
        model.put(f"filler/key{i}", f"filler-value{i}")
    time.sleep(deadline)
    check_node, check_client = filler_check
    checker.list(check_client, "filler/", model.with_prefix("filler/"), check_node,
                 " on the filler's check actor")
    round2 = round_bytes()
    assert round2 <= SIZE_FACTOR * round1, \
        f"round 2 cost {round2} bytes, more than {SIZE_FACTOR} x round 1 ({round1} bytes): " \
        f"the {SIZE_FILLER_PUTS} filler entries seem to be resent"
    check_rates(cluster)
    return round1, round2


def lww(cluster: Cluster, checker: Checker, writers: list[Writer], variant: int,
        deadline: float) -> None:
    """The LWW traces over writers A, B, C (the first three of `writers`), key "lww":
    1: A Puts "a", 10 ms later B Puts "b" (concurrent: neither has seen the other's);
       after the deadline every actor reads "b".
    2: trace 1, then B (the winner's actor) overwrites with "c"; every actor reads "c".
    3: trace 1, then C (a third actor, which has seen "b") overwrites with "c"; every actor
       reads "c".
    4: A Puts "a", 10 ms later B Puts "b", 20 ms after that A Puts "a" again (the losing
       value, re-Put on the actor that holds it with its old stamp): the re-Put gets a new
       stamp and wins; every actor reads "a"."""
    a, b, c = writers[0], writers[1], writers[2]

    def put(writer, value):
        node, client = writer
        checker.put(client, "lww", value, node)

    put(a, "a")
    time.sleep(0.010)
    put(b, "b")
    if variant == 4:
        time.sleep(0.020)
        put(a, "a")
        time.sleep(deadline)
        checker.all_get(cluster, "lww", "a")
        return
    time.sleep(deadline)
    checker.all_get(cluster, "lww", "b")
    if variant == 1:
        return
    put(b if variant == 2 else c, "c")
    time.sleep(deadline)
    checker.all_get(cluster, "lww", "c")


STRESS_OPS = 100
STRESS_KEYS = 50
STRESS_VALUES = 10
STRESS_PREFIXES = 5
STRESS_CLIENTS_PER_ACTOR = 4


def stress(cluster: Cluster, checker: Checker, seed: int, pause: float, deadline: float,
           ops_deadline: float) -> None:
    """The stress test: 4 clients per query actor (each talking to that actor only), each
    doing 100 random operations (Get / Put / List, equally likely, over key0..key49, values
    value0..value9, prefixes key0..key4) with `pause` between them, all within
    `ops_deadline` (throughput). No query may fail, and every answer must be possible: a Get
    or List may only show a value some client has Put for that key. After `deadline` every
    actor's List("") is the same map, its keys are exactly the keys ever Put."""
    print(f"stress seed {seed}")   # shown by pytest when the test fails
    intended: dict[str, set[str]] = {}   # key -> values some client started to Put
    lock = threading.Lock()

    def check_possible(key: str, value: str, where: str) -> None:
        with lock:
            possible = value in intended.get(key, ())
        assert possible, f"{where}: {key}={value!r} was never Put (seed {seed})"

    def body(number: int, node: Node, addr: str):
        client = cluster.client([addr])
        rng = random.Random(seed * 1000 + number)

        def run():
            for _ in range(STRESS_OPS):
                op = rng.randrange(3)
                if op == 0:
                    key = f"key{rng.randrange(STRESS_KEYS)}"
                    value, ok = client.get(key)
                    checker.count(node)
                    if ok:
                        check_possible(key, value, f"Get on {addr}")
                    else:
                        assert value == "", f"Get({key!r}) not found but value {value!r}"
                elif op == 1:
                    key = f"key{rng.randrange(STRESS_KEYS)}"
                    value = f"value{rng.randrange(STRESS_VALUES)}"
                    with lock:
                        intended.setdefault(key, set()).add(value)
                    checker.put(client, key, value, node)
                else:
                    prefix = f"key{rng.randrange(STRESS_PREFIXES)}"
                    entries = client.list(prefix)
                    checker.count(node)
                    for key, value in entries.items():
                        assert key.startswith(prefix), f"List({prefix!r}) gave {key!r}"
                        check_possible(key, value, f"List on {addr}")
                time.sleep(pause)
        return run

    bodies = []
    for node in cluster.nodes:
        for addr in node.server.query_addrs:
            for _ in range(STRESS_CLIENTS_PER_ACTOR):
                bodies.append(body(len(bodies), node, addr))
    run_threads(bodies, ops_deadline, "stress clients")
    time.sleep(deadline)
    lists = []
    for s, node in enumerate(cluster.nodes):
        for a, client in enumerate(node.clients):
            entries = client.list("")
            checker.count(node)
            lists.append((f"server {s} actor {a}", entries))
    first_name, first = lists[0]
    for name, entries in lists[1:]:
        if entries != first:
            differ = sorted(k for k in set(first) | set(entries)
                            if first.get(k) != entries.get(k))
            pytest.fail(f"after the stress, {name} differs from {first_name} on keys "
                        f"{differ[:10]} (seed {seed}): "
                        f"{[(k, first.get(k), entries.get(k)) for k in differ[:5]]}",
                        pytrace=False)
    assert set(first) == set(intended), \
        f"keys held {sorted(set(first) ^ set(intended))[:10]} differ from the keys Put " \
        f"(seed {seed})"
    for key, value in first.items():
        check_possible(key, value, "the final List")
