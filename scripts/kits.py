"""Who writes what, per project: the one table that scripts/starter, scripts/grade
--submission and scripts/gradescope read.

The line runs between files, as the course's does. A project's student files are the ones a
student writes (the course's `server_impl.go`, `squarer_test.go`, `client_impl.go`, ...): the
starter kit holds them as stubs derived from ours, and the grader takes only them from a
submission. Everything else in the kit is staff code, shipped as it is and never taken from a
submission: csp, rpc and its simnet, lspnet, the message formats, the node processes and
command lines, the testers and the tests.

`hidden` files are staff tests a kit leaves out because the course keeps them secret (P0's
buggy squarers, which a student's Squarer tests must catch); the grader still runs them.

`mixed` names student files that still hold some staff code, because today that code shares a
module with the student's (see each entry: what should move out so that the line runs
between files). Until it moves, the file counts as the student's: its kit stub has the staff
part stubbed too, and a submission's copy replaces it whole.

Pure data plus small pure functions; no I/O except `repository_files`.

Threads: none of its own; callable from any thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kit:
    """One project's split. Paths are relative to the repository root, with "/" separators.

    project: scripts/grade.py's project key. packages: the packages the kit ships (staff,
    with the student files among them stubbed). tests: the test folders it ships (minus
    `hidden`). readme_sections: README.md headings copied into the kit's README."""
    project: str
    title: str
    packages: tuple[str, ...]
    tests: tuple[str, ...]
    student: tuple[str, ...]
    readme_sections: tuple[str, ...]
    hidden: tuple[str, ...] = ()
    mixed: dict[str, str] = field(default_factory=dict)


# Files every kit ships as they are, whatever the project.
COMMON_STAFF = ("pytest.ini", "requirements.txt", "tests/__init__.py", "tests/conftest.py",
                "tests/source_scan.py", "tests/processes.py", "tests/waiting.py",
                "tests/web_browser_support.py",
                "scripts/_setup.sh", "scripts/test")

KITS: dict[str, Kit] = {
    "p0": Kit(
        project="p0",
        title="P0: a key-value messaging server (part A) and tests for a Squarer (part B)",
        packages=("csp", "kv"),
        tests=("tests/kv",),
        # The course hands in p0partA/server_impl.go and p0partB/squarer_test.go. The message
        # format (kv/protocol.py: request lines and their parser), the store (kvstore) and
        # the Squarer itself are staff.
        student=("kv/server.py", "tests/kv/test_squarer.py"),
        readme_sections=("P0: the key-value protocol", "csp in one screen",
                         "The synchronisation rule"),
        hidden=("tests/kv/squarers", "tests/kv/test_squarer_catches_bugs.py"),
    ),
    "p1": Kit(
        project="p1",
        title="P1: the Live Sequence Protocol (part A) and a distributed bitcoin miner (part B)",
        packages=("csp", "lsp", "miner"),
        tests=("tests/lsp", "tests/miner"),
        # LSP: the client and server and what only they use (connection state, the windows,
        # the endpoint loop); message.py, params.py, errors.py and lspnet.py are staff, like
        # the course's message.go, params.go and lspnet. Miner: server (with its scheduler),
        # miner and client; bitcoin.py (hash and messages) is staff.
        student=("lsp/client.py", "lsp/server.py", "lsp/connection.py", "lsp/conn_table.py",
                 "lsp/endpoint.py", "lsp/window.py", "miner/server.py", "miner/scheduler.py",
                 "miner/worker.py", "miner/client.py"),
        readme_sections=("P1: the Live Sequence Protocol", "P1: the distributed bitcoin miner",
                         "csp in one screen", "The synchronisation rule"),
    ),
    "p2": Kit(
        project="p2",
        title="P2: Raft",
        packages=("csp", "rpc", "raft"),
        tests=("tests/raft",),
        # The peer and its own rules and log; the RPC messages (a fixed public API), the
        # persister, the node process and its client are staff.
        student=("raft/raft.py", "raft/rules.py", "raft/log.py"),
        readme_sections=("P2: rpc and Raft", "csp in one screen", "The synchronisation rule"),
    ),
    "p3": Kit(
        project="p3",
        title="P3: an actor system's mailbox and remote tells, a geo-replicated store, CMUD",
        packages=("csp", "rpc", "actor", "cmud"),
        tests=("tests/actor", "tests/cmud"),
        # The course's TODOs: the mailbox and remote tell in `actor`, the storage server
        # (kvserver: query and sync actors) and the storage client (kvclient). The rest of
        # the actor system, the RPC types (common.py, messages.py) and the game are staff.
        student=("actor/mailbox.py", "actor/remote.py", "cmud/server.py",
                 "cmud/query_actor.py", "cmud/sync_actor.py", "cmud/lww.py",
                 "cmud/coverage.py", "cmud/client.py"),
        readme_sections=("P3: the actor system", "P3: the geo-replicated store and the game",
                         "csp in one screen", "The synchronisation rule"),
    ),
}

# Never copied into a kit or a grading copy: tools' caches and the environment.
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".hypothesis",
             ".mypy_cache", ".ruff_cache", "node_modules"}


def repository_files(root: str) -> list[str]:
    """Every file under `root` that belongs to the repository (relative, "/" separators,
    sorted): caches, the virtual environment and .git are left out. Reads the disk only."""
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            found.append(os.path.relpath(os.path.join(directory, name), root)
                         .replace(os.sep, "/"))
    return sorted(found)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def is_hidden(kit: Kit, path: str) -> bool:
    return _under(path, kit.hidden)


def kit_files(kit: Kit, files: list[str]) -> list[str]:
    """Which of the repository's `files` a kit ships: the common staff files, its packages
    and its test folders, minus hidden tests (student files included: they become stubs)."""
    return [f for f in files
            if (f in COMMON_STAFF or _under(f, kit.packages) or _under(f, kit.tests))
            and not is_hidden(kit, f)]


@dataclass(frozen=True)
class Matched:
    """How a submission's files map onto a kit: `used` student path -> submitted file
    (relative to the submission), `ignored` submitted files that are not a student file (or a
    second copy of one), `absent` student files the submission lacks (they keep the kit's
    stub, so their tests fail)."""
    used: dict[str, str]
    ignored: list[str]
    absent: list[str]


def match_submission(kit: Kit, submitted: list[str]) -> Matched:
    """Map submitted files (relative paths, "/" separators) onto the kit's student files.

    A file matches a student path when its path is that path or ends with "/" plus it (a
    submission zipped with its top folder); a file at the submission's top level matches by
    its name alone when exactly one student file has that name (Gradescope's drag-and-drop of
    single files). The shortest matching path wins; everything else is ignored. Pure."""
    by_name: dict[str, list[str]] = {}
    for path in kit.student:
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    candidates: dict[str, list[str]] = {}
    unmatched = []
    for file in submitted:
        target = next((s for s in kit.student if file == s or file.endswith("/" + s)), None)
        if target is None and "/" not in file and len(by_name.get(file, [])) == 1:
            target = by_name[file][0]
        if target is None:
            unmatched.append(file)
        else:
            candidates.setdefault(target, []).append(file)
    used = {}
    for target, files in candidates.items():
        best, *rest = sorted(files, key=lambda f: (f.count("/"), f))
        used[target] = best
        unmatched.extend(rest)
    return Matched(used=dict(sorted(used.items())), ignored=sorted(unmatched),
                   absent=[s for s in kit.student if s not in used])
