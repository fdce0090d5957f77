"""MIT 6.5840 lab 4's tester config (kvraft/config.go) as a library, on rpc.simnet, in the shape
of tests/raft/config.py.

    cfg = Config(n, unreliable, max_raft_state)
    clerk = cfg.make_client()            # a recorded clerk (every call goes in cfg.recorder)
    cfg.partition([0, 1], [2]); cfg.connect_all(); cfg.shutdown_server(i); cfg.start_server(i)
    cfg.check_history()                  # assert_linearizable on everything recorded
    cfg.cleanup()

Replica i is simnet server str(i) with two services: its Raft peer ("Raft", the first, which
the peers' bare method names reach) and the key-value service ("KV"). Each replica has ends to
every other replica and each clerk has ends to every replica; an end works while both of its
sides are in the same partition (clerks: while connected to that replica). A crashed replica
keeps a copy of what it persisted (MIT's persister copy), so a restart resumes from it. Long
delays are off (a clerk retrying a disconnected replica hears nothing within 0-99 ms, as in
MIT's kvraft tester).

Threads: none of its own besides the replicas', clerks run on the test's threads. State (which
ends exist, partitions) is changed by the test's main thread only.
"""

from __future__ import annotations

import random
import string
import time

from kvraft.clerk import Clerk
from kvraft.history import HistoryRecorder
from kvraft.linearizability import assert_linearizable
from kvraft.server import KVServer, _KVService
from raft.persister import MemoryPersister
from rpc import simnet

ELECTION_TIMEOUT_SECONDS = 1.0
LINEARIZABILITY_CHECK_SECONDS = 10.0


def _random_name() -> str:
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(20))


class Config:
    def __init__(self, n: int, unreliable: bool, max_raft_state: int = -1,
                 seed: int | None = None) -> None:
        self.n = n
        self.max_raft_state = max_raft_state
        self.net = simnet.Network(seed)
        self.net.reliable(not unreliable)
        self.servers: list[KVServer | None] = [None] * n
        self.saved: list[MemoryPersister | None] = [None] * n
        self.end_names: list[list[str]] = [[""] * n for _ in range(n)]
        self.recorder = HistoryRecorder()
        self._clerks: dict[object, list[str]] = {}   # recorded clerk -> its end names
        self._client_ids = iter(range(1 << 30))
        # Which group each replica is in (MIT's partition); clerks' ends follow `_reach`.
        self._group = [0] * n
        self._reach: dict[object, set[int]] = {}
        self.start_time = time.monotonic()
        self.ops = 0
        for i in range(n):
            self.start_server(i)
        self.connect_all()

    # ---- replicas ---------------------------------------------------------------------------

    def start_server(self, i: int) -> None:
        """(Re)start replica i on what it persisted (blank the first time)."""
        self.end_names[i] = [_random_name() for _ in range(self.n)]
        ends = []
        for j in range(self.n):
            end = self.net.make_end(self.end_names[i][j])
            self.net.connect(self.end_names[i][j], str(j))
            ends.append(end)
        self.saved[i] = self.saved[i].copy() if self.saved[i] is not None else MemoryPersister()
        server = KVServer(ends, i, self.saved[i], self.max_raft_state)
        self.servers[i] = server
        sim = simnet.Server()
        sim.add_service(server.raft, "Raft")
        sim.add_service(_KVService(server), "KV")
        self.net.add_server(str(i), sim)
        self._apply_links()

    def shutdown_server(self, i: int) -> None:
        """Crash replica i: cut it off, stop it, keep a copy of what it persisted."""
        for j in range(self.n):
            for name in (self.end_names[i][j], self.end_names[j][i]):
                if name:
                    self.net.enable(name, False)
        self.net.delete_server(str(i))
        server = self.servers[i]
        if server is not None:
            server.close()
            self.servers[i] = None
            self.saved[i] = self.saved[i].copy()

    # ---- links --------------------------------------------------------------------------------

    def partition(self, *groups) -> None:
        """Replicas talk only inside their group (every replica in exactly one group);
        clerks keep reaching the replicas they were connected to."""
        for number, group in enumerate(groups):
            for i in group:
                self._group[i] = number
        self._apply_links()

    def connect_all(self) -> None:
        self._group = [0] * self.n
        for clerk in self._reach:
            self._reach[clerk] = set(range(self.n))
        self._apply_links()

    def connect_client(self, clerk, to) -> None:
        self._reach[clerk] = set(to)
        self._apply_links()

    def _apply_links(self) -> None:
        for i in range(self.n):
            for j in range(self.n):
                if self.end_names[i][j]:
                    up = (self.servers[i] is not None and self.servers[j] is not None
                          and self._group[i] == self._group[j])
                    self.net.enable(self.end_names[i][j], up)
        for clerk, names in self._clerks.items():
            for j, name in enumerate(names):
                self.net.enable(name, j in self._reach[clerk] and self.servers[j] is not None)

    def make_partition(self, rng: random.Random) -> tuple[list[int], list[int]]:
        """MIT's make_partition: a random leader-free split, a majority and the rest."""
        leader = self.leader()
        others = [i for i in range(self.n) if i != leader]
        rng.shuffle(others)
        majority = others[:self.n // 2 + 1]
        return majority, [i for i in range(self.n) if i not in majority]

    # ---- clerks -------------------------------------------------------------------------------

    def make_client(self, to=None):
        """A new recorded clerk with ends to every replica, connected to `to` (default all)."""
        names = [_random_name() for _ in range(self.n)]
        ends = []
        for j, name in enumerate(names):
            ends.append(self.net.make_end(name))
            self.net.connect(name, str(j))
        clerk = self.recorder.wrap(Clerk.over(ends), next(self._client_ids))
        self._clerks[clerk] = names
        self._reach[clerk] = set(range(self.n) if to is None else to)
        self._apply_links()
        return clerk

    def delete_client(self, clerk) -> None:
        clerk.close()
        for name in self._clerks.pop(clerk):
            self.net.enable(name, False)
        self._reach.pop(clerk)

    # ---- checks -------------------------------------------------------------------------------

    def leader(self) -> int | None:
        for i, server in enumerate(self.servers):
            if server is not None and server.raft.get_state()[2]:
                return i
        return None

    def log_size(self) -> int:
        """The largest persisted Raft state (snapshot not counted), as MIT's LogSize."""
        return max(saved.raft_state_size() for saved in self.saved if saved is not None)

    def snapshot_size(self) -> int:
        return max(len(saved.load_snapshot()[2]) for saved in self.saved if saved is not None)

    def check_history(self) -> None:
        assert_linearizable(self.recorder.operations(),
                            timeout_seconds=LINEARIZABILITY_CHECK_SECONDS)

    def rpc_total(self) -> int:
        return self.net.get_total_count()

    def cleanup(self) -> None:
        for clerk in list(self._clerks):
            clerk.close()
        self.net.cleanup()
        for i in range(self.n):
            if self.servers[i] is not None:
                self.servers[i].close()
                self.servers[i] = None
