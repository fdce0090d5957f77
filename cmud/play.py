"""`python -m cmud play HOST:PORT [HOST:PORT ...]`: the CMUD game on a terminal.

    status = run(["127.0.0.1:6001", "127.0.0.1:7001"], time_scale=0, seed=7)

The game (cmud.game) talks to the storage servers through a `cmud.client.Client` whose router
is a FailoverRouter: every query goes to the current address, and only a failed query moves it
to the next one (wrapping around), so a player stays on one nearby server while it answers.
The failed query itself is not retried: the game prints one line and reads the next command,
which goes to the next address.

Threads: none of its own (the rpc connections of the client run theirs, and `run` closes the
client before it returns). `run` blocks until the player quits or input ends.
"""

from __future__ import annotations

import math
import random
import sys
import time

import rpc
from cmud.client import Client
from cmud.game import MAX_LINE, Game

QUERY_TIMEOUT_SECONDS = 5.0
READ_CHUNK = MAX_LINE + 2       # a longer line is read in pieces and only its start kept


class FailoverRouter:
    """The current address until `failed()` moves on to the next. Not thread-safe (one game
    thread asks it)."""

    def __init__(self, addrs: list[str]) -> None:
        if not addrs:
            raise ValueError("a router needs at least one address")
        self.addrs = list(addrs)
        self._current = 0

    def next_addr(self) -> str:
        return self.addrs[self._current]

    def failed(self) -> str:
        """Moves to the next address (the first after the last) and returns it."""
        self._current = (self._current + 1) % len(self.addrs)
        return self.addrs[self._current]


class FailoverStore:
    """The game's store: get/put/list of `client`. A query that raises rpc.RPCError moves
    `router` to its next address and re-raises an error of the same class whose message names
    both addresses."""

    def __init__(self, client, router: FailoverRouter) -> None:
        self.client = client
        self.router = router

    def get(self, key: str) -> tuple[str, bool]:
        return self._query(self.client.get, key)

    def put(self, key: str, value: str) -> None:
        return self._query(self.client.put, key, value)

    def list(self, prefix: str) -> dict[str, str]:
        return self._query(self.client.list, prefix)

    def _query(self, method, *args):
        addr = self.router.next_addr()
        try:
            return method(*args)
        except rpc.RPCError as error:
            following = self.router.failed()
            where = (f"{addr}: {error}; next query goes to {following}" if following != addr
                     else f"{addr}: {error}")
            raise type(error)(where) from error


def check_addr(addr: str) -> str:
    """`addr` if it reads HOST:PORT with a port in 1..65535, else ValueError."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a HOST:PORT address: {addr!r}")
    return addr


def make_pause(time_scale: float):
    """A sleep function that waits `seconds * time_scale` (nothing at all for scale 0)."""
    if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale)
            and time_scale >= 0):
        raise ValueError(f"time scale must be a finite number >= 0, got {time_scale!r}")

    def pause(seconds: float) -> None:
        if time_scale > 0 and seconds > 0:
            time.sleep(seconds * time_scale)
    return pause


def make_reader(stdin, stdout):
    """read(prompt) -> line or None at end of input. On a terminal (the process's own stdin
    and stdout) it is `input` with readline's editing and history; otherwise the prompt is
    written to `stdout` and a line read from `stdin`, of which at most READ_CHUNK characters
    are kept (so the game sees an over-long line as too long, and memory stays bounded)."""
    if stdin is sys.stdin and stdout is sys.stdout and stdin.isatty() and stdout.isatty():
        try:
            import readline  # noqa: F401  (importing it gives input() editing and history)
        except ImportError:
            pass

        def read_terminal(prompt: str) -> str | None:
            try:
                return input(prompt)
            except EOFError:
                return None
            except UnicodeDecodeError:
                return "\ufffd"
        return read_terminal

    def read_stream(prompt: str) -> str | None:
        stdout.write(prompt)
        stdout.flush()
        try:
            line = stdin.readline(READ_CHUNK)
            if line == "":
                return None
            rest = line
            while not rest.endswith("\n") and len(rest) == READ_CHUNK:
                rest = stdin.readline(READ_CHUNK)
        except UnicodeDecodeError:
            return "\ufffd"
        return line.rstrip("\r\n")
    return read_stream


def run(addrs: list[str], time_scale: float = 1.0, seed: int | None = None,
        stdin=sys.stdin, stdout=sys.stdout, stderr=None) -> int:
    """Plays one session against the servers at `addrs` (first address first, the next one
    only after a failed query). Returns the exit status: 0 on quit or end of input, 2 for bad
    arguments (with a line on `stderr`), 130 on Ctrl-C."""
    stderr = stderr if stderr is not None else sys.stderr
    try:
        router = FailoverRouter([check_addr(addr) for addr in addrs])
        pause = make_pause(time_scale)
    except ValueError as bad:
        stderr.write(f"cmud play: {bad}\n")
        return 2
    client = Client(router, timeout=QUERY_TIMEOUT_SECONDS)
    game = Game(FailoverStore(client, router), stdout, random.Random(seed), pause)
    try:
        return game.run(make_reader(stdin, stdout))
    except KeyboardInterrupt:
        stdout.write("\nInterrupted. Bye!\n")
        stdout.flush()
        return 130
    finally:
        client.close()
