"""The real `python -m miner server|miner|client` commands as processes on loopback: answers equal
brute force (also with concurrent clients, a miner killed mid-request, and 20% LSP loss); a
killed client's request stops being dispatched; a small request is not stuck behind a huge one.

Every process is killed in the `cluster` fixture's teardown; each process's stdout and stderr
are collected line by line by a reader thread so the test can wait for a line with a deadline.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Losses are detected after 5 epochs of 200 ms = 1 s.
FLAGS = ("--elim", "5", "--ems", "200")
START_TIMEOUT = 20.0      # a command starting up (Python imports on a loaded machine)
RESULT_TIMEOUT = 30.0     # a client's answer


# ---- reference answers --------------------------------------------------------------------


def brute_force(data: str, lower: int, upper: int) -> tuple[int, int]:
    """min((hash, nonce)) over lower..upper: the first 8 bytes, big-endian, of SHA-256 over
    "data nonce"; the smaller nonce wins a tie. Computed here, independently of miner.bitcoin:
    the prefix state is copied per nonce and the 8-byte prefixes are compared as bytes (same
    order as the big-endian integers)."""
    prefix = hashlib.sha256(f"{data} ".encode()).copy
    best, best_nonce = b"\xff" * 9, lower
    for nonce in range(lower, upper + 1):
        state = prefix()
        state.update(str(nonce).encode())
        head = state.digest()[:8]
        if head < best:
            best, best_nonce = head, nonce
    return int.from_bytes(best, "big"), best_nonce


def result_line(data: str, max_nonce: int) -> str:
    return "Result %d %d" % brute_force(data, 0, max_nonce)


def test_brute_force_reference():
    assert brute_force("msg", 0, 2) == (4754799531757243342, 1)
    for data in ("msg", "", "a b"):
        slow = min((int.from_bytes(hashlib.sha256(f"{data} {n}".encode()).digest()[:8], "big"), n)
                   for n in range(3000))
        assert brute_force(data, 0, 2999) == slow


# ---- processes ----------------------------------------------------------------------------


class LineLog:
    """Lines of one stream, appended by a reader thread; waitable with a deadline."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.closed = False
        self._cond = threading.Condition()

    def pump(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def snapshot(self) -> list[str]:
        with self._cond:
            return list(self.lines)

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[int, re.Match]:
        """(index, match) of the first line at or after `start` that `pattern` searches; fails
        with the log's tail after `timeout` seconds or once the stream has ended."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    if match:
                        return index, match
                    index += 1
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    why = "stream ended" if self.closed else f"{timeout} s passed"
                    tail = "\n".join(self.lines[-40:])
                    pytest.fail(f"{self.name}: no line matching {pattern!r} ({why}); "
                                f"last lines:\n{tail}")
                self._cond.wait(remaining)

    def find_all(self, pattern: str, start: int = 0) -> list[tuple[int, re.Match]]:
        regex = re.compile(pattern)
        lines = self.snapshot()
        return [(i, m) for i in range(start, len(lines)) if (m := regex.search(lines[i]))]


class Proc:
    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen([sys.executable, "-m", "miner", *args], cwd=ROOT, env=env,
                                      text=True, bufsize=1, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = LineLog(f"{name} stdout")
        self.err = LineLog(f"{name} stderr")
        self._readers = [
            threading.Thread(target=log.pump, args=(stream,), name=f"{name}-{label}", daemon=True)
            for log, stream, label in ((self.out, self.popen.stdout, "stdout"),
                                       (self.err, self.popen.stderr, "stderr"))]
        for reader in self._readers:
            reader.start()

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """kill -9, then reap it and its reader threads."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self._join_readers()

    def wait(self, timeout: float) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not exit within {timeout} s; stdout "
                        f"{self.out.snapshot()!r}; stderr tail {self.err.snapshot()[-20:]!r}")
        self._join_readers()
        return code

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(10)
        for stream in (self.popen.stdout, self.popen.stderr):
            stream.close()


class Cluster:
    """One server, its miners and clients. `close()` kills them all."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.server: Proc | None = None
        self.hostport = ""
        self._count = 0

    def _spawn(self, name: str, *args: str) -> Proc:
        proc = Proc(name, *args)
        self.procs.append(proc)
        return proc

    @property
    def log(self) -> LineLog:
        """The server's stderr (-v: one line per event)."""
        return self.server.err

    def start_server(self, flags=FLAGS) -> None:
        self.server = self._spawn("server", "server", "0", "-v", *flags)
        _, match = self.server.out.wait_for(r"^Server listening on port (\d+)$", START_TIMEOUT)
        self.hostport = f"127.0.0.1:{match.group(1)}"

    def start_miners(self, count: int, flags=FLAGS) -> list[Proc]:
        """Start `count` miners at once; returns when the server has logged each one's Join."""
        start = len(self.log.snapshot())
        miners = [self._spawn(f"miner{len(self.procs)}", "miner", self.hostport, "-v", *flags)
                  for _ in range(count)]
        index = start - 1
        for _ in range(count):
            index, _ = self.log.wait_for(r" miner \d+ joined$", START_TIMEOUT, index + 1)
        return miners

    def start_miner_with_id(self, flags=FLAGS) -> tuple[Proc, int]:
        """One miner, and its connection id (from the server's `miner <id> joined`)."""
        start = len(self.log.snapshot())
        miner = self._spawn(f"miner{len(self.procs)}", "miner", self.hostport, "-v", *flags)
        _, match = self.log.wait_for(r" miner (\d+) joined$", START_TIMEOUT, start)
        return miner, int(match.group(1))

    def start_client(self, data: str, max_nonce: int, flags=FLAGS) -> Proc:
        self._count += 1
        return self._spawn(f"client{self._count}({data})", "client", self.hostport, data,
                           str(max_nonce), *flags)

    def client_id(self, data: str, max_nonce: int, timeout: float = START_TIMEOUT) -> tuple[int, int]:
        """(log index, connection id) of the server's `client <id> requests` for this request."""
        index, match = self.log.wait_for(
            rf" client (\d+) requests \[Request {re.escape(data)} 0 {max_nonce}\]$", timeout)
        return index, int(match.group(1))

    def result_of(self, client: Proc, timeout: float = RESULT_TIMEOUT) -> str:
        """The client's one output line, once it has exited with status 0."""
        code = client.wait(timeout)
        lines = client.out.snapshot()
        assert code == 0, f"{client.name} exited {code}; stdout {lines!r}"
        assert len(lines) == 1, f"{client.name} printed {lines!r}, not one line"
        return lines[0]

    def run_client(self, data: str, max_nonce: int, flags=FLAGS,
                   timeout: float = RESULT_TIMEOUT) -> str:
        return self.result_of(self.start_client(data, max_nonce, flags), timeout)

    def dispatches(self, data: str, start: int = 0) -> list[tuple[int, re.Match]]:
        return self.log.find_all(
            rf" dispatch {re.escape(data)} (\d+)\.\.(\d+) to miner (\d+)$", start)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()


@pytest.fixture
def cluster():
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


# ---- tests --------------------------------------------------------------------------------


def test_results_equal_brute_force(cluster):
    cluster.start_server()
    cluster.start_miners(2)
    assert cluster.run_client("msg", 2) == "Result 4754799531757243342 1"    # the handout
    for data, max_nonce in [("msg", 0), ("zero", 0), ("hello world", 1), ("abc", 999),
                            ("", 5000), ("bitcoin", 200_000)]:
        assert cluster.run_client(data, max_nonce) == result_line(data, max_nonce), \
            f"wrong answer for {data!r} 0..{max_nonce}"


def test_miner_killed_mid_request(cluster):
    data, max_nonce = "killed miner", 4_000_000
    cluster.start_server()
    cluster.start_miner_with_id()
    cluster.start_miner_with_id()
    victim, victim_id = cluster.start_miner_with_id()
    client = cluster.start_client(data, max_nonce)
    _, client_id = cluster.client_id(data, max_nonce)
    # Let the victim get a few chunks (so its chunk size has adapted to its speed: ~50 ms of
    # work), then kill it right after a dispatch, while that chunk is being mined.
    index = -1
    for _ in range(3):
        index, _ = cluster.log.wait_for(
            rf" dispatch {re.escape(data)} \d+\.\.\d+ to miner {victim_id}$", RESULT_TIMEOUT,
            index + 1)
    victim.kill()
    lost, _ = cluster.log.wait_for(rf" miner {victim_id} lost$", 15.0, index)
    line = cluster.result_of(client)
    answered, _ = cluster.log.wait_for(rf" answer client {client_id}: ", 5.0)
    assert lost < answered, "the request ended before the killed miner was even noticed; " \
                            "make it bigger so the kill lands mid-request"
    assert all(int(m.group(3)) != victim_id for _, m in cluster.dispatches(data, lost + 1)), \
        "work dispatched to a miner after it was lost"
    cluster.close()   # free the CPU for the reference answer
    assert line == result_line(data, max_nonce)


def test_killed_clients_request_is_no_longer_dispatched(cluster):
    big, big_max = "abandoned", 50_000_000
    cluster.start_server()
    miners = cluster.start_miners(2)
    client = cluster.start_client(big, big_max)
    _, big_id = cluster.client_id(big, big_max)
    first, _ = cluster.log.wait_for(rf" dispatch {re.escape(big)} ", START_TIMEOUT)
    cluster.log.wait_for(rf" dispatch {re.escape(big)} ", 10.0, first + 1)   # it is running
    client.kill()
    lost, _ = cluster.log.wait_for(rf" client {big_id} lost$", 15.0)
    # The miners finish their chunks of the abandoned request; then only new work is handed out.
    assert cluster.run_client("after", 20_000) == result_line("after", 20_000)
    late = cluster.dispatches(big, lost + 1)
    assert not late, "the lost client's request was still dispatched: " + \
        "; ".join(m.group(0) for _, m in late)
    assert not cluster.log.find_all(rf" answer client {big_id}: "), "answered a lost client"
    assert cluster.server.running() and all(miner.running() for miner in miners)


def test_concurrent_clients(cluster):
    cluster.start_server()
    cluster.start_miners(2)
    requests = [("one", 30_000), ("two", 60_000), ("three", 100_000), ("four", 150_000)]
    clients = [cluster.start_client(data, max_nonce) for data, max_nonce in requests]
    lines = [cluster.result_of(client) for client in clients]
    for (data, max_nonce), line in zip(requests, lines):
        assert line == result_line(data, max_nonce), f"wrong answer for {data!r} 0..{max_nonce}"


def test_small_request_is_not_stuck_behind_a_huge_one(cluster):
    huge, huge_max = "huge", 50_000_000
    small, small_max = "small", 100_000
    cluster.start_server()
    cluster.start_miners(2)
    huge_client = cluster.start_client(huge, huge_max)
    _, huge_id = cluster.client_id(huge, huge_max)
    first, _ = cluster.log.wait_for(rf" dispatch {huge} ", START_TIMEOUT)
    cluster.log.wait_for(rf" dispatch {huge} ", 10.0, first + 1)   # the huge one is running
    started = time.monotonic()
    line = cluster.run_client(small, small_max, timeout=20.0)
    elapsed = time.monotonic() - started
    assert huge_client.running() and not huge_client.out.snapshot(), \
        "the huge request finished (or its client failed) before the small one"
    assert not cluster.log.find_all(rf" answer client {huge_id}: ")
    huge_client.kill()
    assert line == result_line(small, small_max), f"small request answered after {elapsed:.1f} s"


def test_twenty_percent_loss(cluster):
    # 10% read drop plus 10% write drop on every process: ~19% of datagrams lost each way. A
    # peer is declared lost after 10 silent epochs of 100 ms (1 s), which this loss rate
    # practically never produces by chance.
    lossy = ("--rdrop", "10", "--wdrop", "10", "--elim", "10", "--ems", "100")
    cluster.start_server(lossy)
    cluster.start_miners(2, lossy)
    assert cluster.run_client("msg", 2, lossy) == "Result 4754799531757243342 1"
    for data, max_nonce in [("lossy", 50_000), ("lossy two", 150_000)]:
        assert cluster.run_client(data, max_nonce, lossy) == result_line(data, max_nonce), \
            f"wrong answer for {data!r} 0..{max_nonce}"
