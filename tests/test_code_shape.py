"""The endpoint shape of docs/architecture.md, checked on the source: no loop branches on a
bare select index (it uses `csp.select_case` and compares cases by name), and no endpoint
writes its own close token (`csp.Lifecycle` is the one close)."""

from __future__ import annotations

import ast

import pytest

from tests.source_scan import package_sources

PACKAGES = ["csp", "rpc", "kv", "lsp", "miner", "raft", "kvraft", "actor", "cmud", "scripts"]
# csp/select.py defines select; the README's one-screen tour shows its (index, value, ok).
EXEMPT = {"csp/select.py"}


def _is_select_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    # csp.select(...), or select(...) imported from csp; not the standard library's
    # select.select(...).
    return (isinstance(func, ast.Attribute) and func.attr == "select"
            and isinstance(func.value, ast.Name) and func.value.id == "csp") or \
        (isinstance(func, ast.Name) and func.id == "select")


def index_bindings(source: str, filename: str = "<source>") -> list[str]:
    """Every `name, ... = select(...)` that keeps the chosen case's index in a name."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Assign) and _is_select_call(node.value):
            target = node.targets[0]
            first = target.elts[0] if isinstance(target, ast.Tuple) else target
            if not (isinstance(first, ast.Name) and first.id == "_"):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_code_keeps_a_select_index():
    found = []
    for path, source in package_sources(PACKAGES, exclude=EXEMPT):
        if path.endswith(".py"):
            found += index_bindings(source, path)
    assert found == [], "use csp.select_case and compare cases:\n" + "\n".join(found)


def test_no_endpoint_writes_its_own_close_token():
    found = [path for path, source in package_sources(PACKAGES)
             if "_close_token" in source or "_close_request" in source]
    assert found == [], f"close through csp.Lifecycle instead: {found}"


@pytest.mark.parametrize("source, flagged", [
    ("index, value, ok = csp.select(csp.Recv(a), csp.Recv(b))", True),
    ("i, _, _ = select(Recv(a), default=True)", True),
    ("result = csp.select(csp.Recv(a))", True),
    ("_, value, ok = csp.select(csp.Recv(a))", False),
    ("case, value, ok = csp.select_case(tick, request)", False),
    ("csp.select(csp.Send(a, 1), csp.Recv(done))", False),
    ("readable, _, _ = select.select([sock], [], [])", False),
])
def test_the_scan_tells_index_from_case(source, flagged):
    assert bool(index_bindings(source)) is flagged
