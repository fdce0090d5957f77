"""The course's synchronisation rule, enforced on the source: application packages
(kv, lsp except lspnet.py, miner, actor, cmud) synchronise only through csp channels and
select, never with threading's Lock, RLock, Condition, Semaphore, BoundedSemaphore or Event
(nor multiprocessing's, nor _thread.allocate_lock). See docs/architecture.md."""

from __future__ import annotations

import ast

import pytest

from tests.source_scan import attribute_root, package_sources

CHANNEL_ONLY_PACKAGES = ["kv", "lsp", "miner", "kvraft", "actor", "cmud"]
RUNTIME_EXCEPTIONS = {"lsp/lspnet.py"}  # the course's staff fault layer
FORBIDDEN = {"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event",
             "allocate_lock", "allocate"}
SYNC_MODULES = {"threading", "multiprocessing", "_thread", "multiprocessing.synchronize"}


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every use of a forbidden primitive in `source`, as 'file:line: what'."""
    tree = ast.parse(source, filename)
    module_aliases: set[str] = set()   # names bound to a sync module: threading, th, ...
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in SYNC_MODULES or alias.name.split(".")[0] in SYNC_MODULES:
                    module_aliases.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module in SYNC_MODULES:
            for alias in node.names:
                if alias.name in FORBIDDEN or alias.name == "*":
                    found.append(f"{filename}:{node.lineno}: from {node.module} import "
                                 f"{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            root = attribute_root(node)
            if isinstance(root, ast.Name) and root.id in module_aliases:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_packages_use_channels_not_locks():
    found = []
    for path, source in package_sources(CHANNEL_ONLY_PACKAGES, exclude=RUNTIME_EXCEPTIONS):
        found += violations(source, path)
    assert not found, "locks in channel-only packages:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    "import threading\nlock = threading.Lock()",
    "import threading as th\ncond = th.Condition()",
    "from threading import Event\n",
    "from threading import RLock as R\n",
    "from threading import *\n",
    "import multiprocessing\nsem = multiprocessing.Semaphore(2)",
    "import _thread\nlock = _thread.allocate_lock()",
    "import threading\nclass C:\n    def f(self):\n        return threading.BoundedSemaphore(3)",
])
def test_checker_flags_each_primitive(source):
    assert violations(source), f"not flagged: {source!r}"


@pytest.mark.parametrize("source", [
    "import csp\nch = csp.Chan()\ncsp.select(csp.Recv(ch), default=True)",
    "import threading\nt = threading.Thread(target=print)\nname = threading.current_thread().name",
    "class Event:\n    pass\ne = Event()",          # a game's own Event class is fine
    "import game\ngame.Event()",
])
def test_checker_accepts_channel_code(source):
    assert violations(source) == []
