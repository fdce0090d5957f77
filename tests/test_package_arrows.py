"""The package arrows of docs/architecture.md, checked on the source: a package imports only the
packages below it. csp imports no project package; rpc knows no protocol; the projects stand
apart except where one is built on another (miner on lsp, cmud on actor); kvraft uses
raft, never the reverse."""

from __future__ import annotations

import ast

import pytest

from tests.source_scan import ROOT, package_sources

PROJECT_PACKAGES = {"csp", "rpc", "kv", "lsp", "miner", "raft", "kvraft", "actor", "cmud"}
MAY_IMPORT = {
    "csp": set(),
    "rpc": {"csp"},
    "kv": {"csp"},
    "lsp": {"csp"},
    "miner": {"csp", "lsp"},
    "raft": {"csp", "rpc"},
    "kvraft": {"csp", "rpc", "raft"},
    "actor": {"csp", "rpc"},
    "cmud": {"csp", "rpc", "actor"},
}


def imported_packages(source: str) -> dict[str, int]:
    """Project packages named by the import statements of `source`, each with a line number."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                found.setdefault(top, node.lineno)
    return found


def arrow_violations(package: str) -> list[str]:
    allowed = MAY_IMPORT[package] | {package}
    return [f"{path}:{line}: {package} imports {other}"
            for path, source in package_sources([package])
            for other, line in imported_packages(source).items() if other not in allowed]


@pytest.mark.parametrize("package", sorted(p for p in MAY_IMPORT if (ROOT / p).is_dir()))
def test_package_imports_only_what_lies_below_it(package):
    assert arrow_violations(package) == []


def test_the_scan_sees_both_import_forms():
    source = "import rpc.codec\nfrom lsp import message\nfrom . import sibling\nimport json\n"
    assert imported_packages(source) == {"rpc": 1, "lsp": 2}
