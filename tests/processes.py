"""Command-line processes and their web pages, in tests that read what a command prints (its
URL, its PIDs) while it keeps running: the repository root to run them from, reading stdout up
to a line, stopping a process as Ctrl-C would, whether a PID is still there, and one HTTP
request to a page; and finding the processes whose environment carries a mark (how the test
session and scripts/grade.py find what a run left behind, even after setsid or a double fork).
Shared by the command-line and web view tests (tests/raft, tests/kvraft, tests/lsp and
tests/web_browser_support.py), tests/conftest.py and scripts/grade.py; every kit ships it.

Threads: none; the calling test's thread does everything.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import urllib.error
import urllib.request

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


def http(url: str, method: str = "GET", payload=None) -> tuple[int, dict | str]:
    """(status, body) of one request; a JSON body is decoded, any other is text. `payload`
    (any JSON value) is sent as JSON. A 4xx or 5xx is returned, not raised."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_SECONDS) as response:
            status, body, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, body, headers = exc.code, exc.read(), exc.headers
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(body)
    return status, body.decode()


def marked_processes(variable: str, value: str) -> dict[int, str]:
    """Running processes other than this one whose environment holds `variable`=`value`:
    pid -> command line. Linux's /proc (empty elsewhere). Zombies are not found (their
    environment reads empty), nor processes we may not read (not ours)."""
    wanted = f"{variable}={value}".encode()
    found = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if wanted not in environ.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                found[int(entry)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:   # gone meanwhile, or not ours to read
            continue
    return found
