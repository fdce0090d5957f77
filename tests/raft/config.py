"""The course's Raft tester (raft_test.go's config) as a library, on rpc.simnet.

Constants and timings are the course's: check_one_leader makes 10 rounds 500 ms apart; one()
tries for 10 s, waiting up to 2 s per attempt for agreement, polling every 20 ms; wait() polls
up to 30 times, sleeping 10 ms doubling up to 1 s. Failures raise AssertionError with the
course's messages. The apply checker fails on any disagreement between peers at an index, on a
gap ("apply out of order") and on a non-int command.

With `snapshot=True` the readers act as MIT's snapshotting service (lab 3D's applierSnap):
after applying index i with (i + 1) % SNAPSHOT_INTERVAL == 0 a reader hands its peer a snapshot
of every command applied through i (`raft.snapshot(i, ...)`); an `ApplySnapshot` replaces the
reader's record of applied commands with the snapshot's; a peer (re)started on a persisted
snapshot begins from it. `log_size()` is the largest persisted Raft state, the snapshot not
counted, as MIT's `LogSize()`.

With `lossy_crashes=True` each peer persists to a CrashPersister: a crash (crash1) loses what
the peer saved but had not synced, as a machine loses writes it had not fsync'd.

Threads: one `raft-tester/applier-i` per running peer, reading its apply_ch; the checker's
record of applied commands is guarded by one lock (tests may use locks).
"""

from __future__ import annotations

import json
import random
import string
import threading
import time

import csp
from raft import ApplySnapshot, Raft
from raft.persister import MemoryPersister
from rpc import simnet

RAFT_ELECTION_TIMEOUT_SECONDS = 1.0
SNAPSHOT_INTERVAL = 10


def _random_name() -> str:
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(20))


class CrashPersister:
    """A MemoryPersister behind a disk that loses what was not synced: each save is seen at
    once (load, raft_state_size) but is durable only once a later sync() returns, and copy()
    -- what a crashed peer restarts on -- keeps only what is durable, as a real machine loses
    a write it had not fsync'd. A peer that replies or counts on a save before syncing it
    is caught when it crashes."""

    def __init__(self, durable: MemoryPersister | None = None) -> None:
        self._mutex = threading.Lock()
        self._durable = durable if durable is not None else MemoryPersister()
        self._seen = self._durable.copy()
        self._pending: list[tuple[str, tuple]] = []   # saves made since the last sync

    def _save(self, method: str, *args) -> None:
        with self._mutex:
            getattr(self._seen, method)(*args)   # raises on a bad save, as MemoryPersister
            self._pending.append((method, args))

    def save_state(self, term: int, voted_for) -> None:
        self._save("save_state", term, voted_for)

    def save_log(self, first_index: int, entries: list) -> None:
        self._save("save_log", first_index, entries)

    def save_snapshot(self, index: int, term: int, snapshot: bytes) -> None:
        self._save("save_snapshot", index, term, snapshot)

    def sync(self) -> None:
        with self._mutex:
            pending, self._pending = self._pending, []
            for method, args in pending:
                getattr(self._durable, method)(*args)

    def load(self):
        return self._seen.load()

    def load_snapshot(self):
        return self._seen.load_snapshot()

    def raft_state_size(self) -> int:
        return self._seen.raft_state_size()

    def copy(self) -> "CrashPersister":
        """What survives a crash now: the durable part only."""
        with self._mutex:
            return CrashPersister(self._durable.copy())

    def close(self) -> None:
        pass


class Config:
    def __init__(self, n: int, unreliable: bool, seed: int | None = None,
                 snapshot: bool = False, lossy_crashes: bool = False) -> None:
        self.n = n
        self.snapshot = snapshot
        self.lossy_crashes = lossy_crashes   # crashes lose what was saved but not synced
        self.last_applied = [0] * n   # snapshot mode: the last index each reader applied
        self.snapshots_applied = 0    # ApplySnapshot messages read, over all peers
        self.net = simnet.Network(seed)
        self.net.long_delays(True)
        self.net.reliable(not unreliable)
        self.rafts: list[Raft | None] = [None] * n
        self.connected = [False] * n
        self.end_names: list[list[str]] = [[""] * n for _ in range(n)]
        self.logs: list[dict[int, int]] = [{} for _ in range(n)]
        self.saved: list[MemoryPersister | CrashPersister | None] = [None] * n
        self.apply_error: str | None = None
        self._lock = threading.Lock()
        self._readers: list[tuple[csp.Chan, threading.Thread] | None] = [None] * n
        self.start_time = time.monotonic()
        for i in range(n):
            self.start1(i)
        for i in range(n):
            self.connect(i)

    # ---- peers --------------------------------------------------------------------------------

    def start1(self, i: int) -> None:
        """(Re)start peer i on what it persisted (a blank one the first time)."""
        self.crash1(i)
        self.end_names[i] = [_random_name() for _ in range(self.n)]
        ends = []
        for j in range(self.n):
            end = self.net.make_end(self.end_names[i][j])
            self.net.connect(self.end_names[i][j], str(j))
            ends.append(end)
        with self._lock:
            self.logs[i] = {}
            self.last_applied[i] = 0
        # A fresh persister holding the last persisted state, so that the old instance, were it
        # still running somewhere, could not overwrite the new one's (as MIT's tester does).
        if self.saved[i] is not None:
            self.saved[i] = self.saved[i].copy()
        else:
            self.saved[i] = CrashPersister() if self.lossy_crashes else MemoryPersister()
        if self.snapshot:
            index, _, data = self.saved[i].load_snapshot()
            if index:
                self._record_error(self._ingest_snapshot(i, data, -1))
        apply_ch = csp.Chan()
        done = csp.Chan()
        handoff = csp.Chan(1)   # the reader's Raft, once made
        reader = csp.go(self._read_applies, i, apply_ch, done, handoff,
                        name=f"raft-tester/applier-{i}")
        self._readers[i] = (done, reader)
        raft = Raft(ends, i, apply_ch, persister=self.saved[i])
        handoff.send(raft)
        self.rafts[i] = raft
        server = simnet.Server()
        server.add_service(raft, "Raft")
        self.net.add_server(str(i), server)

    def crash1(self, i: int) -> None:
        """Stop peer i, keeping (a copy of) what it persisted."""
        self.disconnect(i)
        self.net.delete_server(str(i))
        raft = self.rafts[i]
        if raft is not None:
            raft.stop()
            self.rafts[i] = None
            self.saved[i] = self.saved[i].copy()
        reader = self._readers[i]
        if reader is not None:
            reader[0].close()
            reader[1].join()
            self._readers[i] = None

    def _read_applies(self, i: int, apply_ch: csp.Chan, done: csp.Chan,
                      handoff: csp.Chan) -> None:
        stopped = csp.Recv(done)
        case, raft, _ = csp.select_case(csp.Recv(handoff), stopped)
        if case is stopped:
            return
        applied = csp.Recv(apply_ch)
        while True:
            case, message, _ = csp.select_case(applied, stopped)
            if case is stopped:
                return
            if isinstance(message, ApplySnapshot):
                with self._lock:
                    self.snapshots_applied += 1
                error = (self._ingest_snapshot(i, message.snapshot, message.index)
                         if self.snapshot else f"server {i} sent a snapshot unasked")
            elif self.snapshot:
                error = self._apply_and_snapshot(i, raft, message)
            else:
                error = self._check_apply(i, message)
            self._record_error(error)

    def _record_error(self, error: str | None) -> None:
        if error is not None:
            with self._lock:
                self.apply_error = self.apply_error or error

    def _apply_and_snapshot(self, i: int, raft: Raft, message) -> str | None:
        """MIT's applierSnap for one ApplyCommand."""
        with self._lock:
            expected = self.last_applied[i] + 1
        if message.index != expected:
            return (f"server {i} apply out of order, expected index {expected}, got "
                    f"{message.index}")
        error = self._check_apply(i, message)
        with self._lock:
            self.last_applied[i] = message.index
            if (message.index + 1) % SNAPSHOT_INTERVAL == 0:
                commands = [self.logs[i].get(j) for j in range(1, message.index + 1)]
                data = json.dumps({"index": message.index, "log": commands}).encode()
            else:
                data = None
        if error is None and data is not None:
            raft.snapshot(message.index, data)
        return error

    def _ingest_snapshot(self, i: int, data: bytes, index: int) -> str | None:
        """The reader's record becomes the snapshot's; `index` is the ApplySnapshot's (-1 for
        a snapshot read from the persister at start)."""
        try:
            decoded = json.loads(data)
            last_included, commands = decoded["index"], decoded["log"]
        except (ValueError, KeyError, TypeError):
            return f"server {i}: snapshot decode error"
        if index != -1 and index != last_included:
            return f"server {i} snapshot doesn't match m.SnapshotIndex"
        with self._lock:
            self.logs[i] = {j: command for j, command in enumerate(commands, 1)}
            self.last_applied[i] = last_included
        return None

    def log_size(self) -> int:
        """The largest persisted Raft state (snapshot not counted), in bytes."""
        return max(saved.raft_state_size() for saved in self.saved if saved is not None)

    def _check_apply(self, i: int, message) -> str | None:
        if type(message.command) is not int:
            return f"committed command {message.command!r} is not an int"
        with self._lock:
            for j, other in enumerate(self.logs):
                if message.index in other and other[message.index] != message.command:
                    return (f"commit index={message.index} server={i} {message.command} != "
                            f"server={j} {other[message.index]}")
            previous_ok = message.index == 1 or (message.index - 1) in self.logs[i]
            self.logs[i][message.index] = message.command
        if not previous_ok:
            return f"server {i} apply out of order {message.index}"
        return None

    # ---- links --------------------------------------------------------------------------------

    def connect(self, i: int) -> None:
        self.connected[i] = True
        for j in range(self.n):
            if self.connected[j]:
                self.net.enable(self.end_names[i][j], True)
                self.net.enable(self.end_names[j][i], True)

    def disconnect(self, i: int) -> None:
        self.connected[i] = False
        for j in range(self.n):
            if self.end_names[i][j]:
                self.net.enable(self.end_names[i][j], False)
            if self.end_names[j][i]:
                self.net.enable(self.end_names[j][i], False)

    def disconnect_partition(self, members: set[int]) -> None:
        """Cut links between `members` and everyone else (links inside keep working)."""
        for i in members:
            self.connected[i] = False
            for j in range(self.n):
                if j not in members:
                    self.net.enable(self.end_names[i][j], False)
                    self.net.enable(self.end_names[j][i], False)

    def connect_partition(self, members: set[int]) -> None:
        for i in members:
            self.connected[i] = True
            for j in range(self.n):
                if j not in members:
                    self.net.enable(self.end_names[i][j], True)
                    self.net.enable(self.end_names[j][i], True)

    def set_unreliable(self, unreliable: bool) -> None:
        self.net.reliable(not unreliable)

    def set_long_reordering(self, yes: bool) -> None:
        self.net.long_reordering(yes)

    def rpc_count(self, i: int) -> int:
        return self.net.get_count(str(i))

    def rpc_total(self) -> int:
        return self.net.get_total_count()

    def bytes_total(self) -> int:
        return self.net.get_total_bytes()

    def cleanup(self) -> None:
        for i in range(self.n):
            if self.rafts[i] is not None:
                self.rafts[i].stop()
        self.net.cleanup()
        for i in range(self.n):
            reader = self._readers[i]
            if reader is not None:
                reader[0].close()
                reader[1].join()
                self._readers[i] = None
        self.check_apply_error()

    # ---- checks -------------------------------------------------------------------------------

    def check_apply_error(self) -> None:
        with self._lock:
            error = self.apply_error
        if error:
            raise AssertionError(error)

    def _leader_check(self, members, what: str) -> int:
        for _ in range(10):
            time.sleep(0.5)
            leaders: dict[int, list[int]] = {}
            for i in members:
                if self.rafts[i] is not None:
                    _, term, is_leader = self.rafts[i].get_state()
                    if is_leader:
                        leaders.setdefault(term, []).append(i)
            for term, ids in leaders.items():
                if len(ids) > 1:
                    raise AssertionError(f"term {term} has {len(ids)} (>1) leaders")
            if leaders:
                return leaders[max(leaders)][0]
        raise AssertionError(f"expected one leader{what}, got none")

    def check_one_leader(self) -> int:
        return self._leader_check([i for i in range(self.n) if self.connected[i]], "")

    def check_leader_in_partition(self, members: set[int]) -> int:
        return self._leader_check(sorted(members), " in partition")

    def check_terms(self) -> int:
        term = -1
        for i in range(self.n):
            if self.connected[i] and self.rafts[i] is not None:
                _, peer_term, _ = self.rafts[i].get_state()
                if term == -1:
                    term = peer_term
                elif term != peer_term:
                    raise AssertionError("servers disagree on term")
        return term

    def check_no_leader(self) -> None:
        self.check_no_leader_in_partition({i for i in range(self.n) if self.connected[i]})

    def check_no_leader_in_partition(self, members: set[int]) -> None:
        for i in members:
            if self.rafts[i] is not None and self.rafts[i].get_state()[2]:
                raise AssertionError(f"expected no leader, but {i} claims to be leader")

    def n_committed(self, index: int) -> tuple[int, int | None]:
        self.check_apply_error()
        count, command = 0, None
        with self._lock:
            for i in range(self.n):
                if index in self.logs[i]:
                    value = self.logs[i][index]
                    if count > 0 and value != command:
                        raise AssertionError(f"committed values do not match: index {index}, "
                                             f"{command}, {value}")
                    count, command = count + 1, value
        return count, command

    def wait(self, index: int, n: int, start_term: int) -> int | None:
        pause = 0.01
        for _ in range(30):
            count, _ = self.n_committed(index)
            if count >= n:
                break
            time.sleep(pause)
            if pause < 1.0:
                pause *= 2
            if start_term > -1:
                for raft in self.rafts:
                    if raft is not None and raft.get_state()[1] > start_term:
                        return -1   # someone has moved on; can no longer guarantee we'll win
        count, command = self.n_committed(index)
        if count < n:
            raise AssertionError(f"only {count} decided for index {index}; wanted {n}")
        return command

    def one(self, command: int, expected_servers: int, retry: bool = True) -> int:
        deadline = time.monotonic() + 10
        starts = 0
        while time.monotonic() < deadline:
            index = -1
            for _ in range(self.n):
                starts = (starts + 1) % self.n
                raft = self.rafts[starts] if self.connected[starts] else None
                if raft is not None:
                    got_index, _, ok = raft.put_command(command)
                    if ok:
                        index = got_index
                        break
            if index != -1:
                agreed_by = time.monotonic() + 2
                while time.monotonic() < agreed_by:
                    count, committed = self.n_committed(index)
                    if count > 0 and count >= expected_servers and committed == command:
                        return index
                    time.sleep(0.02)
                if not retry:
                    raise AssertionError(f"one({command}) failed to reach agreement")
            else:
                time.sleep(0.05)
        raise AssertionError(f"one({command}) failed to reach agreement")
