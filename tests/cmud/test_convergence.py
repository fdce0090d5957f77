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
