"""Every actor test starts and ends with no artificial latency, and closes its systems."""

import pytest

import actor


@pytest.fixture(autouse=True)
def no_latency():
    actor.set_artificial_latency_ms(0)
    yield
    actor.set_artificial_latency_ms(0)


@pytest.fixture
def make_system():
    """make_system() -> an ActorSystem whose errors are collected in `.errors`; every system
    is closed after the test."""
    systems = []

    def make():
        system = actor.ActorSystem()
        system.errors = []
        system.on_error(system.errors.append)
        systems.append(system)
        return system

    yield make
    for system in systems:
        system.close()
