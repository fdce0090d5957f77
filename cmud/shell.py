"""The storage shell (the course's crunner): one query per line against a query actor.

    get KEY            the value, or "(not found)"
    put KEY VALUE      VALUE is the rest of the line, spaces kept; both words are required
                       (there is no quoting, so a value cannot be empty)
    list [PREFIX]      every key with PREFIX and its value, sorted
    help, quit         (end of input quits too)

A malformed line prints its command's usage; a line that is not UTF-8 prints
"error: input is not UTF-8"; a failed query prints one line. In each case the shell goes on.

Threads: the caller's only.
"""

from __future__ import annotations

import sys

import rpc

HELP = ("commands: get KEY | put KEY VALUE (VALUE: the rest of the line, not empty) "
        "| list [PREFIX] | help | quit")
USAGE = {"get": "usage: get KEY",
         "put": "usage: put KEY VALUE (VALUE is the rest of the line and cannot be empty)",
         "list": "usage: list [PREFIX]"}
NOT_UTF8 = "error: input is not UTF-8 (line ignored)"
MAX_LINE_CHARS = 1 << 16


def run_line(client, line: str, out) -> bool:
    """Execute one shell line against `client`, writing to `out`; False means quit."""
    line = line.rstrip("\r\n")
    if len(line) > MAX_LINE_CHARS:
        print(f"line too long (over {MAX_LINE_CHARS} characters)", file=out)
        return True
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:   # bytes a surrogateescape decoder let through as surrogates
        print(NOT_UTF8, file=out)
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
        elif command == "put" and len(words) == 3:
            client.put(words[1], words[2])
            print("ok", file=out)
        elif command == "list" and len(words) <= 2:
            entries = client.list(words[1] if len(words) == 2 else "")
            for key in sorted(entries):
                print(f"{key} = {entries[key]}", file=out)
            print(f"({len(entries)} {'entry' if len(entries) == 1 else 'entries'})", file=out)
        elif command in USAGE:
            print(USAGE[command], file=out)
        else:
            print(f"unknown command: {line.strip()[:60]!r}; {HELP}", file=out)
    except rpc.RPCError as exc:
        print(f"error: {command} failed: {exc}", file=out)
    return True


def run(client, stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Read lines until quit or end of input; returns the exit status (0). A non-interactive
    `stdin` with a byte layer (`.buffer`) is read as bytes, so that each line not in UTF-8 is
    refused on its own."""
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    raw = None if interactive else getattr(stdin, "buffer", None)
    while True:
        try:
            if interactive:
                line = input("> ")
            elif raw is not None:
                data = raw.readline()
                if not data:
                    return 0
                line = data.decode("utf-8")
            else:
                line = stdin.readline()
                if line == "":
                    return 0
        except EOFError:
            return 0
        except UnicodeDecodeError:
            print(NOT_UTF8, file=stdout)
            stdout.flush()
            continue
        if not run_line(client, line, stdout):
            return 0
        stdout.flush()
