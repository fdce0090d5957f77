"""The course's final RemoteSync tests (handout B8): several servers started serially, 200 ms of
one-way latency on every remote-tell connection (set before the servers are created); a Put is
visible on every actor of every server within 2000 ms (the test sleeps the deadline, then checks
every actor through its own client); at most 10 messages/s per (actor, destination) pair; no
resend of what the receiver has (Size); a Put crosses to a remote server once, not once per
remote actor (NoBcast); LWW across servers; a stress run converges.

Basic, Local, LWW and Frequency wait 800 ms (4 x latency) after the servers start, as the
course does; Size, NoBcast and Stress do not.

Where the handout gives only an outline, the variants are (written again in each docstring):
- Basic 1-4 (servers x 1 actor) and Local 1-4 (servers x 4 actors): 1 = 2 servers, one Put on
  server 0 (actor 0); 2 = 2 servers, a distinct key on every actor; 3 = 4 servers, one Put on
  server 0; 4 = 4 servers, a distinct key on every actor.
- Frequency 1-4 (servers x 4 actors): 1 = 2 servers, Puts on server 0 actor 0; 2 = 2 servers,
  Puts round-robin over all 8 actors; 3 = 4 servers, on server 0 actor 0; 4 = 4 servers,
  round-robin over all 16.
- Size 1-4 mirror LocalSyncSize 1-4 with servers of one actor in place of actors: 1 = 2
  servers, trace on server 0; 2 = 2 servers, trace round-robin over the servers; 3 = 4 servers,
  trace on server 0; 4 = 4 servers, round-robin. The filler goes to server 0 and is checked on
  server 1; bytes are remote_bytes_received summed over every server.
- NoBcast 1-2: the sender server (1 actor in 1, 4 actors in 2) is started first, then a
  receiver with 1 actor, then a receiver with 4 actors; 100 Puts of ~60-byte values
  round-robin over the sender's actors.
- LWW 1-4: 4 servers x 1 actor; the LocalSyncLWW traces with servers 0, 1, 2 as A, B, C.
- Stress 1-2: 2 or 4 servers x 4 actors x 4 clients per actor, 40 ms pauses (deadline / 50).
"""

from __future__ import annotations

import random
import time

import pytest

from tests.cmud.harness import (NO_BCAST_FACTOR, REMOTE_SYNC_SECONDS, STARTUP_WAIT_SECONDS,
                                Model, basic, frequency, lww, size, stress, writers_of)

REMOTE_STRESS_PAUSE_SECONDS = REMOTE_SYNC_SECONDS / 50   # 40 ms
REMOTE_STRESS_DEADLINE_SECONDS = 30.0
NO_BCAST_PUTS = 100


def start(cluster, servers: int, actors: int, wait: bool) -> None:
    cluster.start_many(servers, actors)
    if wait:
        time.sleep(STARTUP_WAIT_SECONDS)


# ---- Basic ---------------------------------------------------------------------------------

def remote_basic(cluster, checker, servers: int, actors: int, everyone: bool) -> None:
    start(cluster, servers, actors, wait=True)
    basic(cluster, checker, writers_of(cluster, everyone), REMOTE_SYNC_SECONDS)
    received = cluster.nodes[1].stats().remote_bytes_received
    assert received > 0, "server 1 received no remote bytes: the sync is not by remote tell"


@pytest.mark.timeout(60)
def test_remote_sync_basic1(remote_latency, cluster, checker):
    """2 servers x 1 actor; one Put on server 0; after 2000 ms both servers have it."""
    remote_basic(cluster, checker, 2, 1, everyone=False)


@pytest.mark.timeout(60)
def test_remote_sync_basic2(remote_latency, cluster, checker):
    """2 servers x 1 actor; a distinct key Put on each server."""
    remote_basic(cluster, checker, 2, 1, everyone=True)


@pytest.mark.timeout(60)
def test_remote_sync_basic3(remote_latency, cluster, checker):
    """4 servers x 1 actor; one Put on server 0; after 2000 ms all four have it."""
    remote_basic(cluster, checker, 4, 1, everyone=False)


@pytest.mark.timeout(60)
def test_remote_sync_basic4(remote_latency, cluster, checker):
    """4 servers x 1 actor; a distinct key Put on each server."""
    remote_basic(cluster, checker, 4, 1, everyone=True)


# ---- Local ---------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_remote_sync_local1(remote_latency, cluster, checker):
    """2 servers x 4 actors; one Put on server 0 actor 0; after 2000 ms all 8 actors have it."""
    remote_basic(cluster, checker, 2, 4, everyone=False)


@pytest.mark.timeout(60)
def test_remote_sync_local2(remote_latency, cluster, checker):
    """2 servers x 4 actors; a distinct key Put on each of the 8 actors."""
    remote_basic(cluster, checker, 2, 4, everyone=True)


@pytest.mark.timeout(60)
def test_remote_sync_local3(remote_latency, cluster, checker):
    """4 servers x 4 actors; one Put on server 0 actor 0; all 16 actors have it."""
    remote_basic(cluster, checker, 4, 4, everyone=False)


@pytest.mark.timeout(60)
def test_remote_sync_local4(remote_latency, cluster, checker):
    """4 servers x 4 actors; a distinct key Put on each of the 16 actors."""
    remote_basic(cluster, checker, 4, 4, everyone=True)


# ---- Frequency -----------------------------------------------------------------------------

def remote_frequency(cluster, checker, servers: int, everyone: bool) -> None:
    start(cluster, servers, 4, wait=True)
    frequency(cluster, checker, writers_of(cluster, everyone), REMOTE_SYNC_SECONDS)


@pytest.mark.timeout(120)
def test_remote_sync_frequency1(remote_latency, cluster, checker):
    """2 servers x 4 actors; a Put every 10 ms x 300 on server 0 actor 0; after 2000 ms
    List("") exact on all 8 actors, rate <= 10/s on every server."""
    remote_frequency(cluster, checker, 2, everyone=False)


@pytest.mark.timeout(120)
def test_remote_sync_frequency2(remote_latency, cluster, checker):
    """2 servers x 4 actors; a Put every 10 ms x 300, round-robin over all 8 actors."""
    remote_frequency(cluster, checker, 2, everyone=True)


@pytest.mark.timeout(120)
def test_remote_sync_frequency3(remote_latency, cluster, checker):
    """4 servers x 4 actors; a Put every 10 ms x 300 on server 0 actor 0."""
    remote_frequency(cluster, checker, 4, everyone=False)


@pytest.mark.timeout(120)
def test_remote_sync_frequency4(remote_latency, cluster, checker):
    """4 servers x 4 actors; a Put every 10 ms x 300, round-robin over all 16 actors."""
    remote_frequency(cluster, checker, 4, everyone=True)


# ---- Size ----------------------------------------------------------------------------------

def remote_size(cluster, checker, servers: int, everyone: bool) -> None:
    start(cluster, servers, 1, wait=False)
    actors = cluster.actors()

    def received() -> int:
        return sum(node.stats().remote_bytes_received for node in cluster.nodes)

    size(cluster, checker, writers_of(cluster, everyone), filler=actors[0],
         filler_check=actors[1], deadline=REMOTE_SYNC_SECONDS, measure=received)


@pytest.mark.timeout(120)
def test_remote_sync_size1(remote_latency, cluster, checker):
    """2 servers x 1 actor; round 1: a 20-Put trace on server 0; 1000 filler Puts on server 0,
    checked on server 1; round 2: the same trace. Remote bytes received (all servers) in
    round 2 <= 2 x round 1; rate <= 10/s."""
    remote_size(cluster, checker, 2, everyone=False)


@pytest.mark.timeout(120)
def test_remote_sync_size2(remote_latency, cluster, checker):
    """2 servers x 1 actor; as size1 with the trace round-robin over both servers."""
    remote_size(cluster, checker, 2, everyone=True)


@pytest.mark.timeout(120)
def test_remote_sync_size3(remote_latency, cluster, checker):
    """4 servers x 1 actor; as size1 (trace on server 0)."""
    remote_size(cluster, checker, 4, everyone=False)


@pytest.mark.timeout(120)
def test_remote_sync_size4(remote_latency, cluster, checker):
    """4 servers x 1 actor; as size1 with the trace round-robin over all four servers."""
    remote_size(cluster, checker, 4, everyone=True)


# ---- NoBcast -------------------------------------------------------------------------------

def remote_no_bcast(cluster, checker, sender_actors: int) -> None:
    sender = cluster.start(sender_actors)
    small = cluster.start(1)
    large = cluster.start(4)
    before_small = small.stats().remote_bytes_received
    before_large = large.stats().remote_bytes_received
    model = Model()
    for i in range(NO_BCAST_PUTS):
        client = sender.clients[i % len(sender.clients)]
        key, value = f"nobcast/key{i}", f"value{i}-" + "x" * 50
        checker.put(client, key, value, sender)
        model.put(key, value)
    time.sleep(REMOTE_SYNC_SECONDS)
    small_bytes = small.stats().remote_bytes_received - before_small
    large_bytes = large.stats().remote_bytes_received - before_large
    checker.all_list(cluster, "", model.entries)
    assert small_bytes > 0, "the 1-actor receiver received no remote bytes"
    assert large_bytes <= NO_BCAST_FACTOR * small_bytes, \
        f"the 4-actor receiver received {large_bytes} bytes, more than {NO_BCAST_FACTOR} x " \
        f"the 1-actor receiver's {small_bytes}: Puts seem to be sent to each remote actor"


@pytest.mark.timeout(60)
def test_remote_sync_no_bcast1(remote_latency, cluster, checker):
    """Sender 1 actor, receivers 1 and 4 actors; 100 Puts on the sender; the 4-actor receiver
    receives at most 2 x the bytes of the 1-actor receiver."""
    remote_no_bcast(cluster, checker, 1)


@pytest.mark.timeout(60)
def test_remote_sync_no_bcast2(remote_latency, cluster, checker):
    """Sender 4 actors (Puts round-robin over them), receivers 1 and 4 actors; as no_bcast1."""
    remote_no_bcast(cluster, checker, 4)


# ---- LWW -----------------------------------------------------------------------------------

def remote_lww(cluster, checker, variant: int) -> None:
    start(cluster, 4, 1, wait=True)
    lww(cluster, checker, cluster.actors(), variant, REMOTE_SYNC_SECONDS)


@pytest.mark.timeout(60)
def test_remote_sync_lww1(remote_latency, cluster, checker):
    """4 servers x 1 actor. Server 0 Puts lww=a; 10 ms later server 1 Puts lww=b (concurrent);
    after 2000 ms all four read b."""
    remote_lww(cluster, checker, 1)


@pytest.mark.timeout(60)
def test_remote_sync_lww2(remote_latency, cluster, checker):
    """lww1, then a causal overwrite on the winner: server 1 Puts lww=c; all read c."""
    remote_lww(cluster, checker, 2)


@pytest.mark.timeout(60)
def test_remote_sync_lww3(remote_latency, cluster, checker):
    """lww1, then a causal overwrite on a third server: server 2 Puts lww=c; all read c."""
    remote_lww(cluster, checker, 3)


@pytest.mark.timeout(60)
def test_remote_sync_lww4(remote_latency, cluster, checker):
    """Server 0 Puts lww=a; 10 ms later server 1 Puts lww=b; 20 ms later server 0 Puts lww=a
    again (the losing value re-Put gets a new stamp and wins); after 2000 ms all read a."""
    remote_lww(cluster, checker, 4)


# ---- Stress --------------------------------------------------------------------------------

def remote_stress(cluster, checker, servers: int) -> None:
    start(cluster, servers, 4, wait=False)
    stress(cluster, checker, random.randrange(2**32), pause=REMOTE_STRESS_PAUSE_SECONDS,
           deadline=REMOTE_SYNC_SECONDS, ops_deadline=REMOTE_STRESS_DEADLINE_SECONDS)


@pytest.mark.timeout(120)
def test_remote_sync_stress1(remote_latency, cluster, checker):
    """2 servers x 4 actors x 4 clients per actor (32 clients), 100 random ops each, 40 ms
    pauses, within 30 s; after 2000 ms every List("") equal, keys == keys ever Put."""
    remote_stress(cluster, checker, 2)


@pytest.mark.timeout(180)
def test_remote_sync_stress2(remote_latency, cluster, checker):
    """4 servers x 4 actors x 4 clients per actor (64 clients); as stress1."""
    remote_stress(cluster, checker, 4)
