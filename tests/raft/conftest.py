"""`make_config(n, unreliable)`: a tester config that is cleaned up after the test."""

import pytest

from tests.raft.config import Config


@pytest.fixture
def make_config():
    configs = []

    def make(n: int, unreliable: bool = False, seed=None, snapshot: bool = False,
             lossy_crashes: bool = False) -> Config:
        config = Config(n, unreliable, seed, snapshot, lossy_crashes)
        configs.append(config)
        return config

    yield make
    for config in configs:
        config.cleanup()
