"""`python -m cmud play` as a person meets it: scripted sessions through a pseudo-terminal.

Two storage servers run as separate processes (`python -m cmud server --count 2
--latency-ms 200`, the second started with the first's desc), so every Put crosses between
them over connections with 200 ms of artificial latency. Each game is its own process whose
stdin, stdout and stderr are the slave side of a pty: `play` sees a terminal and reads through
readline (with its echo, its redisplay and its bracketed-paste escapes), as it would for a
player. The test types a line only after it has seen the prompt that asks for it, and every
wait is a `select` on the pty with a deadline; none is a bare sleep.

- test_player_comes_back_on_another_server: a player made on server A mines, buys and moves;
  once server B's replica holds the player's keys, the same player started against B is
  welcomed back with the same level, balance, place and hardware.
- test_battle_converges_across_servers: two players on different servers fight the shared
  Undergraduate problem; each sees the other's progress, and the problem's health ends equal
  on both servers, at a value one of them wrote.

The `procs` fixture kills every process the test started, whether it passed or not.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from contextlib import closing
from pathlib import Path

import pytest

from cmud.client import Client, RoundRobinRouter
from tests.cmud.harness import LATENCY_MS, PORTS

ROOT = Path(__file__).resolve().parents[2]
QUERY_ACTORS = 2
START_SECONDS = 15.0          # a server process prints its desc within this
STEP_SECONDS = 10.0           # a game answers one line within this
SYNC_SECONDS = 8.0            # B's replica catches up with A within this (course: 2 s)
EXIT_SECONDS = 10.0

MINING_PROMPT = "(mining) > "
SOLVING_PROMPT = "(solving) > "
NAME_PROMPT = "Enter your new character name (or the one you played before): "
# What a terminal adds around the text: CSI sequences (bracketed paste `\x1b[?2004h`, cursor
# moves, erase-line), OSC titles, `\x1b=`/`\x1b>` keypad modes, and carriage returns.
TERMINAL_NOISE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                            r"|\x1b[=>]|\r|\x07")
PROMPT_RE = re.compile(re.escape(MINING_PROMPT) + "|" + re.escape(SOLVING_PROMPT))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TERM"] = "xterm"         # a real terminal type: readline emits its escapes
    env.pop("LOGLEVEL", None)
    env["PYTHONFAULTHANDLER"] = "1"
    return env


class Procs:
    """Every process a test starts, killed at the end (SIGTERM, then SIGKILL)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen] = []
        self.fds: list[int] = []

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(),
                                start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(EXIT_SECONDS)
            if proc.stdout is not None:
                proc.stdout.close()
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


# ---- servers ------------------------------------------------------------------------------------

class ServerProc:
    """One `python -m cmud server` process; its stderr goes to a file shown on failure."""

    def __init__(self, procs: Procs, name: str, descs: list[str]) -> None:
        self.name = name
        self.port = PORTS.block()
        self.stderr_path = procs.tmp_path / f"server-{name}.err"
        with open(self.stderr_path, "wb") as err:
            self.proc = procs.popen(
                ["-m", "cmud", "server", "--port", str(self.port), "--count", str(QUERY_ACTORS),
                 "--latency-ms", str(LATENCY_MS), *descs],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        self.query_addrs: list[str] = []
        self.desc = self._read_desc()

    def _read_desc(self) -> str:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_SECONDS
        seen = b""
        while True:
            if b"\n" in seen:
                line, seen = seen.split(b"\n", 1)
                text = line.decode()
                if text.startswith("query actor on "):
                    self.query_addrs.append(text[len("query actor on "):])
                if text.startswith("desc: "):
                    assert len(self.query_addrs) == QUERY_ACTORS, text
                    return text[len("desc: "):]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"server {self.name} printed no desc within {START_SECONDS} s "
                            f"(stdout so far {seen!r}): {self.stderr()}", pytrace=False)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    pytest.fail(f"server {self.name} exited with {self.proc.wait()} before its "
                                f"desc: {self.stderr()}", pytrace=False)
                seen += chunk

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-2000:] or "(empty stderr)"

    def client(self) -> Client:
        """A client of this server's first query actor (closed by the caller)."""
        return Client(RoundRobinRouter(self.query_addrs[:1]), timeout=5.0)


@pytest.fixture
def servers(procs):
    """Server A, then server B started with A's desc; both with 200 ms remote latency."""
    a = ServerProc(procs, "A", [])
    b = ServerProc(procs, "B", [a.desc])
    return a, b


# ---- games on a pty -----------------------------------------------------------------------------

class Game:
    """One `python -m cmud play` on a pseudo-terminal. `expect` reads with a deadline until a
    pattern matches the terminal output (escapes and carriage returns removed) after what was
    already consumed, and consumes up to the end of the match."""

    def __init__(self, procs: Procs, name: str, addrs: list[str], seed: int) -> None:
        self.name = name
        master, slave = pty.openpty()
        # Wide enough that readline never wraps a prompt and the line typed after it.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        procs.fds.append(master)
        try:
            self.proc = procs.popen(["-m", "cmud", "play", *addrs, "--time-scale", "0",
                                     "--seed", str(seed)],
                                    stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        self.master = master
        self.raw = b""
        self.pos = 0          # in self.text(): everything before it has been consumed
        self.eof = False

    def text(self) -> str:
        return TERMINAL_NOISE.sub("", self.raw.decode("utf-8", "replace"))

    def _read(self, until: float) -> None:
        left = until - time.monotonic()
        if left <= 0 or self.eof:
            return
        ready, _, _ = select.select([self.master], [], [], left)
        if not ready:
            return
        try:
            chunk = os.read(self.master, 65536)
        except OSError:           # EIO: the slave side is closed, the game has exited
            chunk = b""
        if chunk:
            self.raw += chunk
        else:
            self.eof = True

    def expect(self, pattern: str | re.Pattern, seconds: float = STEP_SECONDS) -> re.Match:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + seconds
        while True:
            text = self.text()
            match = regex.search(text, self.pos)
            if match:
                self.pos = match.end()
                return match
            if self.eof or time.monotonic() >= deadline:
                why = "the game exited" if self.eof else f"nothing within {seconds} s"
                pytest.fail(f"{self.name}: waiting for {regex.pattern!r}, {why}; terminal "
                            f"after the last match:\n{text[self.pos:][-3000:]}", pytrace=False)
            self._read(deadline)

    def prompt(self) -> str:
        """Waits for the next mining or solving prompt; returns the output before it."""
        start = self.pos
        match = self.expect(PROMPT_RE)
        self.last_prompt = match.group(0)
        return self.text()[start:match.start()]

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")    # Enter, as a keyboard sends it

    def command(self, line: str) -> str:
        """Types `line` at the prompt just seen; returns what the game printed before its
        next prompt (the echoed line removed)."""
        self.send(line)
        self.expect(re.escape(line) + r"\n")            # the terminal's echo of the line
        return self.prompt()

    def login(self, name: str) -> str:
        self.expect(re.escape(NAME_PROMPT))
        self.send(name)
        return self.prompt()

    def quit(self) -> None:
        self.send("quit")
        self.expect(r"Bye! Your progress is safe in the store\.")
        deadline = time.monotonic() + EXIT_SECONDS
        while not self.eof and time.monotonic() < deadline:
            self._read(deadline)
        try:
            status = self.proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name}: still running {EXIT_SECONDS} s after quit", pytrace=False)
        assert status == 0, f"{self.name}: exit status {status}"
        assert "Traceback" not in self.text(), self.text()


def player_keys(client: Client, name: str) -> dict[str, str]:
    """Every key of the schema that belongs to `name`, with its value."""
    keys = {}
    for key in (name, f"loc/{name}", f"balance/{name}"):
        value, ok = client.get(key)
        if ok:
            keys[key] = value
    keys.update(client.list(f"comp/{name}/"))
    return keys


def wait_until(what: str, seconds: float, probe):
    """Calls probe() (returning (done, detail)) until done or the deadline; fails with the
    last detail. Between probes it waits on a select over nothing, a short bounded poll."""
    deadline = time.monotonic() + seconds
    while True:
        done, detail = probe()
        if done:
            return detail
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} not within {seconds} s: {detail}", pytrace=False)
        select.select([], [], [], 0.05)


def inventory(text: str) -> tuple[int, str]:
    balance = int(re.search(r"Balance: (\d+) bitcoins?\n", text).group(1))
    hardware = re.search(r"Hardware: (.*)\n", text).group(1)
    return balance, hardware


# ---- the tests ----------------------------------------------------------------------------------

def test_player_comes_back_on_another_server(procs, servers):
    a, b = servers
    game = Game(procs, "alice@A", a.query_addrs, seed=11)
    out = game.login("alice")
    assert "Welcome, alice! You are an Undergraduate at Gates floor 5" in out, out

    out = game.command("mine 10")
    mined = int(re.search(r"Done: (\d+) bitcoins? in 10 rounds\.", out).group(1))
    assert mined > 0, out
    out = game.command("buy cpu")
    assert re.search(rf"You buy {mined} x cpu for {mined} bitcoins?; 0 left\.", out), out
    out = game.command("mine 10")
    assert re.search(r"Done: [1-9]\d* bitcoins? in 10 rounds\.", out), out
    out = game.command("move bridge")
    assert "You walk to the Randy Pausch Bridge." in out, out
    balance, hardware = inventory(game.command("inv"))
    assert balance > 0 and hardware == f"cpu x{1 + mined}", (balance, hardware)
    game.quit()

    with closing(a.client()) as on_a, closing(b.client()) as on_b:
        written = player_keys(on_a, "alice")
        assert written == {"alice": "Undergraduate", "loc/alice": "bridge",
                           "balance/alice": str(balance),
                           "comp/alice/cpu": str(1 + mined)}, written
        wait_until("server B holding alice's keys", SYNC_SECONDS,
                   lambda: (lambda got: (got == written, got))(player_keys(on_b, "alice")))

    again = Game(procs, "alice@B", b.query_addrs, seed=12)
    out = again.login("alice")
    assert (f"Welcome back, alice (Undergraduate)! You are at the Randy Pausch Bridge, "
            f"with {balance} bitcoins.") in out, out
    assert (balance, hardware) == inventory(again.command("inv"))
    stats = again.command("stats")
    assert "Name: alice\n" in stats and "Education: Undergraduate\n" in stats, stats
    again.quit()


def test_battle_converges_across_servers(procs, servers):
    a, b = servers
    bob = Game(procs, "bob@A", a.query_addrs, seed=21)
    carol = Game(procs, "carol@B", b.query_addrs, seed=22)
    assert "Welcome, bob!" in bob.login("bob")
    assert "Welcome, carol!" in carol.login("carol")
    written: list[int] = []           # every health value either player reported writing

    def attack(game: Game) -> None:
        """One `solve` in battle mode (entering the problem again if a lost cpu sent the
        player back to mining)."""
        if game.last_prompt == MINING_PROMPT:
            out = game.command("solve")
            assert "Work left on the Undergraduate problem" in out, out
        out = game.command("solve")
        assert "Traceback" not in out, out
        written.extend(int(n) for n in re.findall(r"units of work; (\d+) left\.", out))

    with closing(a.client()) as on_a, closing(b.client()) as on_b:
        # bob works alone on A until he has done some work ...
        out = bob.command("solve")
        assert re.search(r"Work left on the Undergraduate problem: 100 ", out), out
        for _ in range(20):
            attack(bob)
            if written:
                break
        assert written, "bob never got any work done in 20 moves"
        bobs = written[-1]
        # ... which carol, on B, sees when she takes the problem on.
        wait_until("bob's progress reaching server B", SYNC_SECONDS,
                   lambda: (lambda got: (got == (str(bobs), True), got))(
                       on_b.get("Undergraduate")))
        out = carol.command("solve")
        assert f"Work left on the Undergraduate problem: {bobs} " in out, out

        # Both fight at once, each on their own server.
        for _ in range(6):
            attack(carol)
            attack(bob)
        assert len(written) >= 3, written

        def same_on_both():
            got = (on_a.get("Undergraduate"), on_b.get("Undergraduate"))
            return got[0] == got[1] and got[0][1], got
        (value, ok), _ = wait_until("the problem's health agreeing on A and B", SYNC_SECONDS,
                                    same_on_both)
    assert int(value) in written, (value, written)
    assert int(value) < 100
    bob.quit()
    carol.quit()

