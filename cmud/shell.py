"""The storage shell (the course's crunner): one query per line against a query actor.

    get KEY            the value, or "(not found)"
    put KEY VALUE      VALUE is the rest of the line (spaces kept)
    list [PREFIX]      every key with PREFIX and its value, sorted
    help, quit         (end of input quits too)

Threads: the caller's only. A failed query prints one line and the shell goes on.
"""

from __future__ import annotations

import sys

import rpc

HELP = "commands: get KEY | put KEY VALUE | list [PREFIX] | help | quit"
MAX_LINE_CHARS = 1 << 16


def run_line(client, line: str, out) -> bool:
    """Execute one shell line against `client`, writing to `out`; False means quit."""
    line = line.rstrip("\r\n")
    if len(line) > MAX_LINE_CHARS:
        print(f"line too long (over {MAX_LINE_CHARS} characters)", file=out)
        return True
    words = line.split(None, 2)
    if not words:
        return True
    command = words[0].lower()
    try:
        if command in ("quit", "exit"):
            return False
        if command == "help":
            print(HELP, file=out)
        elif command == "get" and len(words) == 2:
            value, ok = client.get(words[1])
            print(value if ok else "(not found)", file=out)
        elif command == "put" and len(words) >= 2:
            key = words[1]
            value = line.split(None, 2)[2] if len(words) == 3 else ""
            client.put(key, value)
            print("ok", file=out)
        elif command == "list" and len(words) <= 2:
            entries = client.list(words[1] if len(words) == 2 else "")
            for key in sorted(entries):
                print(f"{key} = {entries[key]}", file=out)
            print(f"({len(entries)} {'entry' if len(entries) == 1 else 'entries'})", file=out)
        else:
            print(f"unknown or malformed command: {line.strip()[:60]!r}; {HELP}", file=out)
    except rpc.RPCError as exc:
        print(f"error: {command} failed: {exc}", file=out)
    return True


def run(client, stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Read lines until quit or end of input; returns the exit status (0)."""
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    while True:
        try:
            line = input("> ") if interactive else stdin.readline()
        except EOFError:
            return 0
        if not interactive and line == "":
            return 0
        if not run_line(client, line, stdout):
            return 0
        stdout.flush()
