"""Command-line processes in tests that read what a command prints (its URL, its PIDs) while it
keeps running: the repository root to run them from, reading stdout up to a line, stopping a
process as Ctrl-C would, and whether a PID is still there. Shared by the web views' tests
(tests/raft, tests/kvraft, tests/lsp and tests/web_browser_support.py); every kit ships it.

Threads: none; the calling test's thread does everything.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE_SECONDS = 60   # process starts and elections on a loaded machine included


def read_until(proc: subprocess.Popen, prefix: str) -> list[str]:
    """The stdout lines up to the first one starting with `prefix`, that one last (failing at
    the deadline). What follows it in the same read is dropped. `proc` was started with
    stdout=PIPE and bufsize=0."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    buffer = b""
    while True:
        lines = buffer.decode(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                return lines[:i + 1]
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"no line {prefix!r} in time; got {buffer!r}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"stdout ended before {prefix!r}; got {buffer!r}")
        buffer += chunk


def stop(proc: subprocess.Popen) -> None:
    """Stop the command as Ctrl-C would (SIGTERM: a cluster command stops its nodes), killing
    it if it does not end in time; closes its stdout."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
