"""Fixtures of the storage tests: `cluster` (servers and clients, closed after the test, with a
check that no thread they started outlives it), `checker` (the course's exact query wrappers)
and `remote_latency` (the course's 200 ms one-way latency, reset afterwards)."""

from __future__ import annotations

import threading

import pytest

import actor
from tests.cmud.harness import LATENCY_MS, Checker, Cluster, leaked_threads


@pytest.fixture(autouse=True)
def no_latency():
    """Every storage test starts and ends without artificial latency."""
    actor.set_artificial_latency_ms(0)
    yield
    actor.set_artificial_latency_ms(0)


@pytest.fixture
def remote_latency(no_latency):
    """The remote tests' latency, set before any server is created (it applies to remote-tell
    connections dialled afterwards)."""
    actor.set_artificial_latency_ms(LATENCY_MS)
    yield LATENCY_MS


@pytest.fixture
def cluster():
    before = set(threading.enumerate())
    c = Cluster()
    try:
        yield c
    finally:
        c.close()
    leaked = leaked_threads(before)
    if leaked:
        pytest.fail("threads still running after the servers and clients were closed: "
                    + ", ".join(sorted(t.name for t in leaked)), pytrace=False)


@pytest.fixture
def checker():
    return Checker()
