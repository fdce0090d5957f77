"""The shared driver of the course-mirror tests in test_lsp2.py, test_lsp4.py and test_lsp6.py.

An `LSPSystem` is one server and its clients, built through the public API only
(docs/architecture.md, "Public contracts"). Every call that may block (connect, read, write, close) runs as a job on its own
thread started with `csp.go`; jobs report what happened as events on one unbounded channel,
and only the test thread records them, in `pump`, always against a `Deadline`. So a hung or
misbehaving endpoint becomes a failure that says what was awaited, under which of the course's
budgets, and what had arrived so far, instead of a hang.

Leaving the `with` block turns every lspnet knob off (so pending messages can still be
acknowledged), closes the clients (concurrently: each may wait for its last acks), then the
server, and joins every thread the system started. A reader still blocked in `read()` ends
there: `read()` on a closed endpoint raises `LSPError` (docs/architecture.md: the lsp contract,
and "close() wakes every waiter"). Teardown problems fail a test that had otherwise passed; when the
test already failed, its own failure is the one reported.

Also here: `NetworkSwitch` (lsp4's network on/off), and two lspnet middleboxes, `AckGate`
(lsp2's selective-ack scenario) and `Blackout` (lsp2's scattered messages).

Threads:
    lsp-test/<job>   one per job (connect-i, server-reader, client-<id>-writer, server-close,
                     ...): runs one blocking call or loop, reports `Read`, `JobDone` or
                     `JobFailed` on `events` (unbounded, so reporting never blocks) and ends.
    lsp-test/close-* teardown only: one per endpoint being closed; joined with a deadline.
"""

from __future__ import annotations

import collections
import os
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import csp
import lsp
from lsp import lspnet
from lsp.message import MsgType

HOST = "127.0.0.1"
# pytest-timeout backstop beyond the course's `go test -timeout`: room for our teardown, which
# the Go tests do not have (their process simply exits). Each test's own deadline is the course's.
TIMEOUT_MARGIN_SECONDS = 15


# ---- seeds, payloads, deadlines ---------------------------------------------------------------

def seeded_random(label: str) -> random.Random:
    """A `random.Random` whose seed is printed (pytest shows it when the test fails).
    `LSP_TEST_SEED=<n>` replays a run."""
    env = os.environ.get("LSP_TEST_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(2**32)
    print(f"{label}: random seed {seed} (replay with LSP_TEST_SEED={seed})")
    return random.Random(seed)


def random_int_payloads(rng: random.Random, count: int) -> list[bytes]:
    """`count` decimal strings of random non-negative 63-bit ints (Go's rand.Int()), as bytes:
    what the course's window and buffering tests send (a decimal int is also its JSON form)."""
    return [str(rng.randrange(1 << 63)).encode() for _ in range(count)]


class Deadline:
    """A point in time and the course rule it comes from, for failure messages."""

    def __init__(self, seconds: float, rule: str) -> None:
        self.seconds = seconds
        self.rule = rule
        self.end = time.monotonic() + seconds

    @classmethod
    def epochs(cls, count: int, params: lsp.Params, what: str = "test budget") -> "Deadline":
        return cls(count * params.epoch_seconds,
                   f"{what} of {count} epochs x {params.epoch_millis} ms")

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def elapsed(self) -> float:
        return self.seconds - (self.end - time.monotonic())

    def __str__(self) -> str:
        return f"{self.rule} = {self.seconds:.2f} s"


def shown(payloads: Iterable[bytes], limit: int = 6) -> str:
    """A short, readable form of a list of payloads."""
    items = [_readable(p) for p in payloads]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + more + "]"


def _readable(payload) -> str:
    if isinstance(payload, bytes) and payload.isascii() and payload.decode().isprintable():
        return payload.decode()
    return repr(payload)


# ---- events ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Read:
    side: str         # "server" (server.read() returned) or "client" (a client's read())
    conn_id: int
    payload: bytes


@dataclass(frozen=True)
class JobDone:
    job: str
    result: object = None


@dataclass(frozen=True)
class JobFailed:
    job: str
    error: BaseException


@dataclass(frozen=True)
class Note:
    """Anything else worth recording (what a middlebox saw, ...): kept in `system.notes`."""
    what: str
    conn_id: int = 0
    seq_num: int = 0


# ---- the system -----------------------------------------------------------------------------

class LSPSystem:
    """One server on a free port and `num_clients` clients connected to it (initial sequence
    number `isn`), used as a context manager. Clients are known by their connection ids, in
    connection order: `conn_ids`, `clients[conn_id]`.

    Recorded by `pump` (test thread only): `server_reads[conn_id]` and `client_reads[conn_id]`
    (payloads in read order), `finished` (jobs that returned), `notes`.
    """

    def __init__(self, params: lsp.Params, num_clients: int, *, isn: int = 0,
                 connect_deadline: Deadline | None = None, name: str = "lsp") -> None:
        self.params = params
        self.num_clients = num_clients
        self.isn = isn
        self.name = name
        self.connect_deadline = connect_deadline or Deadline(
            (params.epoch_limit + 1) * params.epoch_seconds,
            f"connect budget of {params.epoch_limit + 1} epochs x {params.epoch_millis} ms")
        self.events = csp.Chan(None)
        self.server = None
        self.clients: dict[int, object] = {}
        self.conn_ids: list[int] = []
        self.server_reads: dict[int, list[bytes]] = collections.defaultdict(list)
        self.client_reads: dict[int, list[bytes]] = collections.defaultdict(list)
        self.finished: dict[str, object] = {}
        self.notes: list[Note] = []
        self._threads: list = []
        self._jobs: set[str] = set()
        self._closed = False

    # -- setup and teardown -----------------------------------------------------------------

    def __enter__(self) -> "LSPSystem":
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        problems = self.close()
        if problems:
            message = f"{self.name} teardown: " + "; ".join(problems)
            if exc_type is None:
                raise AssertionError(message)
            print(message)  # the test's own failure is the one reported; this goes with it
        return False

    def _connect(self) -> None:
        self.server = lsp.new_server(0, self.params)
        hostport = f"{HOST}:{self.server.port}"
        jobs = [f"connect-{i}" for i in range(self.num_clients)]
        for job in jobs:
            self.go(job, lsp.new_client, hostport, self.isn, self.params)
        self.wait_jobs(jobs, self.connect_deadline,
                       f"{self.num_clients} client(s) to connect to {hostport}")
        for job in jobs:  # connection order = order of the jobs
            client = self.finished[job]
            conn_id = client.conn_id()
            assert conn_id not in self.clients, (
                f"two clients got the same connection id {conn_id}")
            self.clients[conn_id] = client
            self.conn_ids.append(conn_id)

    def close(self) -> list[str]:
        """Close everything (idempotent); returns the problems seen, never raises."""
        if self._closed:
            return []
        self._closed = True
        problems: list[str] = []
        lspnet.reset()
        epoch = self.params.epoch_seconds
        # A correct close returns once its last messages are acknowledged; with a backoff that
        # can take up to one backoff interval plus an epoch.
        budget = (self.params.max_back_off_interval + 2) * epoch + 2.0
        deadline = Deadline(budget, f"teardown budget of {budget:.1f} s")
        clients = list(self.clients.values())
        clients += [r for j, r in self.finished.items()  # connected, setup failed meanwhile
                    if j.startswith("connect-") and not any(r is c for c in clients)]
        clients += self._unregistered_clients()
        closers = [(f"client #{i}", csp.go(self._quiet_close, c, problems,
                                          name=f"lsp-test/close-client-{i}"))
                   for i, c in enumerate(clients)]
        problems += self._join(closers, deadline, "close() did not return")
        if self.server is not None:
            closer = csp.go(self._quiet_close, self.server, problems,
                            name="lsp-test/close-server")
            problems += self._join([("server", closer)], deadline, "close() did not return")
        # Jobs end once their endpoint is closed (a blocked read raises LSPError).
        still = [(t.name, t) for t in self._threads]
        problems += self._join(still, Deadline(max(deadline.remaining(), 2.0), "join budget"),
                               "still running after every endpoint was closed")
        for client in self._unregistered_clients():  # connected while we were closing
            self._quiet_close(client, problems)
        return problems

    @staticmethod
    def _quiet_close(endpoint, problems: list[str]) -> None:
        try:
            endpoint.close()
        except Exception as exc:  # docs/architecture.md: close() never raises
            problems.append(f"{type(endpoint).__name__}.close() raised {exc!r}")

    @staticmethod
    def _join(named_threads, deadline: Deadline, complaint: str) -> list[str]:
        late = []
        for name, thread in named_threads:
            thread.join(deadline.remaining())
            if thread.is_alive():
                late.append(name)
        return [f"{', '.join(late)}: {complaint} within the {deadline}"] if late else []

    def _unregistered_clients(self) -> list:
        """Clients whose connect job finished but were never handed to the test."""
        found = []
        while True:
            index, event, ok = csp.select(csp.Recv(self.events), default=True)
            if index < 0 or not ok:
                return found
            if (isinstance(event, JobDone) and event.job.startswith("connect-")
                    and event.job not in self.finished and hasattr(event.result, "conn_id")):
                found.append(event.result)

    # -- jobs -------------------------------------------------------------------------------

    def go(self, job: str, fn: Callable, *args) -> None:
        """Run `fn(*args)` on a thread; its return reports `JobDone(job, result)`, an exception
        `JobFailed(job, exc)` (caught: the thread never dies with an unhandled error)."""
        assert job not in self._jobs, f"job name {job!r} used twice"
        self._jobs.add(job)

        def run() -> None:
            try:
                result = fn(*args)
            except Exception as exc:
                self.events.send(JobFailed(job, exc))
            else:
                self.events.send(JobDone(job, result))

        self._threads.append(csp.go(run, name=f"lsp-test/{job}"))

    def start_server_reader(self, count: int, job: str = "server-reader") -> str:
        """A job calling server.read() `count` times, reporting each result as a `Read`."""
        def run() -> int:
            for _ in range(count):
                conn_id, payload = self.server.read()
                self.events.send(Read("server", conn_id, payload))
            return count
        self.go(job, run)
        return job

    def start_client_reader(self, conn_id: int, count: int, job: str | None = None) -> str:
        """A job calling read() `count` times on the client `conn_id`."""
        client = self.clients[conn_id]
        job = job or f"client-{conn_id}-reader"

        def run() -> int:
            for _ in range(count):
                payload = client.read()
                self.events.send(Read("client", conn_id, payload))
            return count
        self.go(job, run)
        return job

    def start_client_writer(self, conn_id: int, payloads: list[bytes],
                            job: str | None = None) -> str:
        """A job writing `payloads` in order on client `conn_id` (write never blocks)."""
        client = self.clients[conn_id]
        job = job or f"client-{conn_id}-writer"

        def run() -> int:
            for payload in payloads:
                client.write(payload)
            return len(payloads)
        self.go(job, run)
        return job

    def start_server_writer(self, conn_id: int, payloads: list[bytes],
                            job: str | None = None) -> str:
        """A job writing `payloads` in order to connection `conn_id` with server.write()."""
        job = job or f"server-writer-{conn_id}"

        def run() -> int:
            for payload in payloads:
                self.server.write(conn_id, payload)
            return len(payloads)
        self.go(job, run)
        return job

    def start_close(self, conn_id: int | None = None, job: str | None = None) -> str:
        """A job calling close() on client `conn_id`, or on the server if None."""
        endpoint = self.server if conn_id is None else self.clients[conn_id]
        job = job or ("server-close" if conn_id is None else f"client-{conn_id}-close")
        self.go(job, endpoint.close)
        return job

    def note(self, what: str, conn_id: int = 0, seq_num: int = 0) -> None:
        """Record an observation from any thread (a middlebox's): never blocks."""
        self.events.send(Note(what, conn_id, seq_num))

    # -- waiting ----------------------------------------------------------------------------

    def pump(self, deadline: Deadline, until: Callable[[], bool],
             waiting_for: str | Callable[[], str],
             check: Callable[[], None] | None = None) -> None:
        """Record events until `until()` holds. `check()` runs after every event and may raise
        (to fail as soon as something wrong arrives). A job failing fails the test. Past the
        deadline, fails with what was awaited and what had been recorded."""
        timeout = csp.after(deadline.remaining())
        while not until():
            index, event, _ = csp.select(csp.Recv(self.events), csp.Recv(timeout))
            if index == 1:
                if until():
                    return
                what = waiting_for() if callable(waiting_for) else waiting_for
                raise AssertionError(
                    f"timed out after {deadline.elapsed():.2f} s ({deadline}) waiting for "
                    f"{what}. So far: {self.progress()}")
            self._record(event)
            if check is not None:
                check()

    def pump_for(self, seconds: float, check: Callable[[], None] | None = None) -> None:
        """Record events for exactly `seconds` (a window the scenario itself prescribes)."""
        timeout = csp.after(seconds)
        while True:
            index, event, _ = csp.select(csp.Recv(self.events), csp.Recv(timeout))
            if index == 1:
                return
            self._record(event)
            if check is not None:
                check()

    def wait_jobs(self, jobs: Iterable[str], deadline: Deadline, what: str) -> None:
        jobs = list(jobs)
        self.pump(deadline, lambda: all(j in self.finished for j in jobs),
                  lambda: f"{what} (unfinished: {[j for j in jobs if j not in self.finished]})")

    def _record(self, event) -> None:
        if isinstance(event, Read):
            reads = self.server_reads if event.side == "server" else self.client_reads
            reads[event.conn_id].append(event.payload)
        elif isinstance(event, JobDone):
            self.finished[event.job] = event.result
        elif isinstance(event, JobFailed):
            raise AssertionError(
                f"{event.job} raised {type(event.error).__name__}: {event.error} "
                f"(an operation the scenario expects to succeed). So far: {self.progress()}")
        elif isinstance(event, Note):
            self.notes.append(event)
        else:
            raise AssertionError(f"unknown event {event!r}")

    def progress(self) -> str:
        def counts(reads):
            return "{" + ", ".join(f"conn {c}: {len(reads[c])}" for c in sorted(reads)) + "}"
        running = sorted(self._jobs - set(self.finished))
        return (f"server read {counts(self.server_reads)}, clients read "
                f"{counts(self.client_reads)}, jobs still running {running}")

    # -- checks -----------------------------------------------------------------------------

    def reads_of(self, side: str) -> dict[int, list[bytes]]:
        return self.server_reads if side == "server" else self.client_reads

    def all_read(self, side: str, expected: dict[int, list[bytes]]) -> bool:
        reads = self.reads_of(side)
        return all(len(reads.get(c, ())) >= len(want) for c, want in expected.items())

    def check_prefix(self, side: str, expected: dict[int, list[bytes]], what: str) -> None:
        """Fail as soon as some connection's reads stop being a prefix of what was sent or
        come from a connection that sent nothing."""
        reads = self.reads_of(side)
        for conn_id, got in reads.items():
            want = expected.get(conn_id)
            if want is None:
                raise AssertionError(f"{what}: {side} read {shown(got)} on connection "
                                     f"{conn_id}, which is not one of {sorted(expected)}")
            if got != want[:len(got)]:
                raise AssertionError(_mismatch(side, conn_id, got, want, what))

    def check_exact(self, side: str, expected: dict[int, list[bytes]], what: str) -> None:
        """Every connection's reads are exactly `expected[conn_id]`, in order."""
        self.check_prefix(side, expected, what)
        reads = self.reads_of(side)
        for conn_id, want in expected.items():
            got = reads.get(conn_id, [])
            if got != want:
                raise AssertionError(_mismatch(side, conn_id, got, want, what))


def _mismatch(side: str, conn_id: int, got: list[bytes], want: list[bytes], what: str) -> str:
    first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    if first is not None:
        where = (f"read #{first + 1} is {shown([got[first]])}, expected {shown([want[first]])} "
                 f"(message #{want.index(got[first]) + 1} of the sequence)"
                 if got[first] in want else
                 f"read #{first + 1} is {shown([got[first]])}, which was never sent on it")
    elif len(got) > len(want):
        where = f"read {len(got)} messages, {len(got) - len(want)} more than allowed"
    else:
        where = f"read only {len(got)} of {len(want)} messages"
    return (f"{what}: {side} side of connection {conn_id}: {where}; "
            f"read {shown(got)}, expected {shown(want)}")


# ---- the network switch of the buffering tests ----------------------------------------------

class NetworkSwitch:
    """The course's network goroutine of lsp4: the network is "off" (global write drop 100%) or
    "on" (0%), and an "on" period lasts at least two epochs before it can be switched off."""

    ON_EPOCHS = 2

    def __init__(self, params: lsp.Params) -> None:
        self.params = params
        self.on_until = 0.0
        self.is_on = True

    def off(self, deadline: Deadline) -> None:
        wait = self.on_until - time.monotonic()
        if wait > 0:
            if wait > deadline.remaining():
                raise AssertionError(
                    f"the {deadline} ends before the current {self.ON_EPOCHS}-epoch 'on' "
                    f"period does ({deadline.elapsed():.2f} s spent so far)")
            csp.after(wait).recv()  # the course's network sleeps through its "on" period
        lspnet.set_write_drop_percent(100)
        self.is_on = False

    def on(self) -> None:
        lspnet.set_write_drop_percent(0)
        self.is_on = True
        self.on_until = time.monotonic() + self.ON_EPOCHS * self.params.epoch_seconds


# ---- a middlebox for the selective-ack scenario ---------------------------------------------

class AckGate:
    """An lspnet middlebox (installed with `lspnet.start_middlebox(gate)`) that can
    - lose every client Data message whose seq_num is <= `hold_data_through` (0: none),
    - lose every server Ack/CAck except heartbeats (seq_num 0) while `block_acks` is true,
    and notes on `system`: each server Ack/CAck it lets through ("ack"/"cack"), and each
    client Data written while acks are blocked ("data-while-blocked"). The test thread flips the
    two attributes; the endpoints' threads only read them."""

    def __init__(self, system: LSPSystem) -> None:
        self.system = system
        self.hold_data_through = 0
        self.block_acks = False

    def __call__(self, message, from_server: bool):
        if not from_server and message.type == MsgType.DATA:
            if self.block_acks:
                self.system.note("data-while-blocked", message.conn_id, message.seq_num)
            if message.seq_num <= self.hold_data_through:
                return None
        elif from_server and message.type in (MsgType.ACK, MsgType.CACK) and message.seq_num:
            if self.block_acks:
                return None
            kind = "ack" if message.type == MsgType.ACK else "cack"
            self.system.note(kind, message.conn_id, message.seq_num)
        return message


# ---- a middlebox that silences one side -----------------------------------------------------

class Blackout:
    """An lspnet middlebox that, while `active`, loses every message the server side (or the
    client side) writes, as a 100% write drop of that side does, and notes each Data message it
    loses as "lost-data". The note is what the knob cannot give: write() returns before the
    endpoint's loop transmits, so only the note tells that a message written during the
    blackout really went out (and was lost) before the blackout ends."""

    def __init__(self, system: LSPSystem, server_side: bool) -> None:
        self.system = system
        self.server_side = server_side
        self.active = False

    def __call__(self, message, from_server: bool):
        if self.active and from_server == self.server_side:
            if message.type == MsgType.DATA:
                self.system.note("lost-data", message.conn_id, message.seq_num)
            return None
        return message

    def lost(self, conn_id: int) -> set[int]:
        """The sequence numbers of the Data messages of `conn_id` lost so far (recorded ones)."""
        return {n.seq_num for n in self.system.notes
                if n.what == "lost-data" and n.conn_id == conn_id}
