"""The course's actor rules, checked on the source as its manual grading would: inside an
Actor subclass (in actor/ and cmud/) no threads, no csp channels, no sockets, no files, no
sleeping, no mutable globals (`global`/`nonlocal`); coordination only by messages."""

from __future__ import annotations

import ast

import pytest

from tests.source_scan import package_sources

PACKAGES = ["actor", "cmud"]
FORBIDDEN_NAMES = {"threading", "Thread", "csp", "Chan", "select", "socket", "open",
                   "subprocess", "multiprocessing", "asyncio"}
FORBIDDEN_CALLS = {("time", "sleep"), ("csp", "go"), ("csp", "Chan"), ("csp", "select")}


def actor_classes(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(base) for base in node.bases}
            if bases & {"Actor", "actor.Actor"}:
                yield node


def rule_violations(source: str, filename: str = "<source>") -> list[str]:
    found = []
    for cls in actor_classes(ast.parse(source, filename)):
        for node in ast.walk(cls):
            where = f"{filename}:{getattr(node, 'lineno', cls.lineno)} in {cls.name}"
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                found.append(f"{where}: {type(node).__name__.lower()} {', '.join(node.names)}")
            elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
                found.append(f"{where}: uses {node.id}")
            elif isinstance(node, ast.Attribute):
                root = node.value
                if isinstance(root, ast.Name) and (root.id, node.attr) in FORBIDDEN_CALLS:
                    found.append(f"{where}: uses {root.id}.{node.attr}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(f"{where}: imports inside an actor")
    return found


def test_actor_subclasses_follow_the_rules():
    found = []
    for path, source in package_sources(PACKAGES):
        found += rule_violations(source, path)
    assert not found, "actor rules broken:\n" + "\n".join(found)


@pytest.mark.parametrize("body", [
    "threading.Thread(target=print).start()",
    "time.sleep(1)",
    "self.c = csp.Chan()",
    "open('f').read()",
    "global COUNTER\n        COUNTER += 1",
    "socket.create_connection(('h', 1))",
    "import os",
])
def test_the_scan_catches_each_forbidden_thing(body):
    source = f"class Bad(Actor):\n    def on_message(self, message):\n        {body}\n"
    assert rule_violations(source), body


def test_the_scan_passes_a_well_behaved_actor():
    source = ("class Good(actor.Actor):\n    def on_message(self, message):\n"
              "        self.ctx.tell_after(self.ctx.self, 'tick', 0.1)\n")
    assert rule_violations(source) == []
