"""Ours, beyond the course: replicas converge on the LWW result of every Put ever accepted,
also after remote batches were lost (cmud.coverage's anti-entropy).

The model: each query actor's accepted Puts are recorded as it stamps them (a wrapper around
QueryActor.put, in this test process); for each key the winner is the greatest (stamp,
origin). After the clients stop, every replica must equal that map."""

from __future__ import annotations

import random
import threading
import time

import pytest

import actor
from cmud import lww
from cmud.client import Client, RoundRobinRouter
from cmud.query_actor import QueryActor
from cmud.server import new_server
from tests.cmud.harness import PORTS

CONVERGE_SECONDS = 5.0


@pytest.fixture
def recorded_puts(monkeypatch):
    """Every (key, Entry) any query actor accepts, as it accepts it."""
    puts: list[tuple[str, lww.Entry]] = []
    original = QueryActor.put

    def recording_put(self, key, value):
        original(self, key, value)
        puts.append((key, self.store[key]))

    monkeypatch.setattr(QueryActor, "put", recording_put)
    return puts


@pytest.fixture
def servers():
    started = []

    def start(count: int, latency_ms: int = 0):
        actor.set_artificial_latency_ms(latency_ms)
        server, _ = new_server(PORTS.block(), count, [s.desc for s in started])
        started.append(server)
        return server

    yield start
    actor.set_artificial_latency_ms(0)
    for server in started:
        server.close()


def lww_model(puts) -> dict[str, str]:
    winners: dict[str, lww.Entry] = {}
    for key, entry in puts:
        lww.merge(winners, key, entry)
    return {key: entry.value for key, entry in winners.items()}


def wait_converged(addrs: list[str], want: dict[str, str], seconds: float) -> None:
    clients = [Client(RoundRobinRouter([addr])) for addr in addrs]
    try:
        deadline = time.monotonic() + seconds
        while True:
            views = [c.list("") for c in clients]
            if all(view == want for view in views):
                return
            if time.monotonic() > deadline:
                wrong = [(addr, {k: (v, want.get(k)) for k, v in view.items()
                                 if want.get(k) != v} or f"missing {set(want) - set(view)}")
                         for addr, view in zip(addrs, views) if view != want]
                pytest.fail(f"replicas differ from the LWW model after {seconds} s: "
                            f"{wrong[:3]}")
            time.sleep(0.05)
    finally:
        for c in clients:
            c.close()


@pytest.mark.timeout(90)
def test_random_clients_on_three_servers_converge_to_the_lww_model(servers, recorded_puts):
    nodes = [servers(2, latency_ms=50) for _ in range(3)]
    addrs = [a for node in nodes for a in node.query_addrs]
    seed = random.randrange(1 << 30)
    errors = []

    def client_body(n: int) -> None:
        rng = random.Random(seed + n)
        client = Client(RoundRobinRouter([rng.choice(addrs) for _ in range(3)]))
        try:
            for _ in range(60):
                op = rng.random()
                key = f"key{rng.randrange(20)}"
                if op < 0.6:
                    client.put(key, f"value{rng.randrange(10)}-{n}")
                elif op < 0.8:
                    client.get(key)
                else:
                    client.list(f"key{rng.randrange(3)}")
                time.sleep(rng.random() * 0.01)
        except Exception as exc:   # reported below with the seed
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=client_body, args=(n,), name=f"test-client-{n}")
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"seed {seed}: {errors[:3]}"
    assert recorded_puts, "no Put was recorded"
    wait_converged(addrs, lww_model(recorded_puts), CONVERGE_SECONDS)


def bytes_received(servers_) -> int:
    return sum(s.system.stats().remote_bytes_received for s in servers_)


@pytest.mark.timeout(90)
def test_partition_then_heal_converges_within_2s_without_a_full_resend(servers, recorded_puts):
    """Remote tells between two servers are dropped for 5 s while both take Puts; after the
    heal every replica equals the LWW model within 2 s, and the repair traffic is far below
    the state that was already shared before the partition."""
    a, b = servers(2, latency_ms=50), servers(2, latency_ms=50)
    ca, cb = Client(RoundRobinRouter(a.query_addrs)), Client(RoundRobinRouter(b.query_addrs))
    try:
        for i in range(300):   # shared state before the partition: what a full resend costs
            ca.put(f"old{i}", "x" * 40)
        wait_converged(a.query_addrs + b.query_addrs, lww_model(recorded_puts), 10)
        shared_bytes = bytes_received([b])
        actor.block_remote_tells(a.system.address, b.system.address)
        partition_ends = time.monotonic() + 5.0
        i = 0
        while time.monotonic() < partition_ends:
            ca.put(f"a{i % 30}", f"from-a-{i}")
            cb.put(f"b{i % 30}", f"from-b-{i}")
            if i % 5 == 0:
                ca.put("shared", f"a{i}")
                cb.put("shared", f"b{i}")
            i += 1
            time.sleep(0.02)
        assert ca.list("b") == {} and cb.list("a") == {}, "the partition let Puts through"
        before_heal = bytes_received([a, b])
        actor.unblock_remote_tells()
        healed_at = time.monotonic()
        wait_converged(a.query_addrs + b.query_addrs, lww_model(recorded_puts), 2.0)
        took = time.monotonic() - healed_at
        repair = bytes_received([a, b]) - before_heal
        assert repair < shared_bytes, (f"repair moved {repair} bytes, the shared state was "
                                       f"{shared_bytes}: that is a full resend")
        print(f"converged {took:.2f} s after the heal; repair {repair} bytes, "
              f"pre-partition state {shared_bytes} bytes")
    finally:
        actor.unblock_remote_tells()
        ca.close()
        cb.close()


@pytest.mark.timeout(60)
def test_a_lost_last_batch_is_recovered(servers, recorded_puts):
    """The only batch carrying a Put is dropped and nothing follows it: the next heartbeat's
    versions show the gap and the receiver asks for it."""
    a, b = servers(1), servers(2)
    ca = Client(RoundRobinRouter(a.query_addrs))
    try:
        ca.put("warm", "up")
        wait_converged(a.query_addrs + b.query_addrs, lww_model(recorded_puts), 5)
        actor.block_remote_tells(a.system.address, b.system.address)
        ca.put("lost", "then found")
        time.sleep(0.5)   # the batch carrying it leaves (and is dropped) within a tick
        actor.unblock_remote_tells()
        wait_converged(a.query_addrs + b.query_addrs, lww_model(recorded_puts), 2.0)
    finally:
        actor.unblock_remote_tells()
        ca.close()


def test_lost_snapshot_request_is_retried(servers, recorded_puts):
    """A new server's first messages to an older one are lost: it asks for the state again."""
    old = servers(1)
    c = Client(RoundRobinRouter(old.query_addrs))
    try:
        for i in range(20):
            c.put(f"k{i}", f"v{i}")
        # Block every link of the old server before the new one exists: the new server's
        # address is not known yet, so block by the old address alone.
        actor.block_remote_tells(old.system.address, "*")
        new = servers(2)
        time.sleep(0.5)
        actor.unblock_remote_tells()
        wait_converged(old.query_addrs + new.query_addrs, lww_model(recorded_puts), 3.0)
    finally:
        actor.unblock_remote_tells()
        c.close()
