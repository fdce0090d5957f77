"""`python -m miner miner` as a user sees it: a real `python -m miner server 0` and a real
miner, each a process; the miner says when it has joined, and when the server is killed it says
the server is lost and exits (status 0: losing the server is how a miner's work ends)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Losses are detected after ELIM epochs of EMS ms (1 s).
FLAGS = ["--elim", "5", "--ems", "200"]
LINE_TIMEOUT = 30.0       # one line from a process (includes its start-up)
EXIT_TIMEOUT = 30.0       # a process to exit once it should


class Proc:
    """A `python -m miner ...` process whose stdout lines a reader thread queues."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen([sys.executable, "-m", "miner", *args], cwd=ROOT, env=env,
                                      text=True, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()   # stdout lines, then None at end of stream
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._pump, name=f"test-{args[0]}-stdout",
                                        daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, what: str) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no {what} within {LINE_TIMEOUT} s; stdout so far {self.seen!r}")
        if line is None:
            pytest.fail(f"stdout ended before {what}; stdout {self.seen!r}; "
                        f"stderr {self.popen.stderr.read()!r}")
        self.seen.append(line)
        return line

    def wait(self) -> int:
        try:
            return self.popen.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"did not exit within {EXIT_TIMEOUT} s; stdout {self.seen!r}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self._reader.join(EXIT_TIMEOUT)
        self.popen.stdout.close()
        self.popen.stderr.close()


def test_miner_says_it_joined_and_that_the_server_is_lost():
    server = Proc("server", "0", *FLAGS)
    miner = None
    try:
        match = re.fullmatch(r"Server listening on port (\d+)", server.next_line("listening line"))
        assert match, server.seen
        hostport = f"127.0.0.1:{match.group(1)}"
        miner = Proc("miner", hostport, *FLAGS)
        joined = miner.next_line("join line")
        assert re.fullmatch(rf"joined {re.escape(hostport)} as miner \(conn \d+\)", joined), joined
        assert miner.popen.poll() is None, "miner exited while its server was up"
        server.popen.kill()
        server.wait()
        assert miner.next_line("server-lost line") == "server lost: exiting"
        code = miner.wait()
        assert code == 0, f"miner exited {code} after losing its server"
        assert miner.lines.get(timeout=LINE_TIMEOUT) is None, "more output after the lost line"
        stderr = miner.popen.stderr.read()
        assert stderr.startswith(f"connecting to {hostport} (gives up after 5 epochs of 200 ms)")
        assert "Traceback" not in stderr, stderr
    finally:
        if miner is not None:
            miner.stop()
        server.stop()
