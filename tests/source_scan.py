"""Reading the project's own source for the tests that check rules on it (the sync rule, the
actor rules, the package arrows): which files, parsed once, and small ast helpers."""

from __future__ import annotations

import ast
import functools
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def package_sources(packages, exclude=()) -> list[tuple[str, str]]:
    """(path relative to the repository, source) of every .py file under `packages`, sorted,
    except the relative paths in `exclude`. Fails loudly when nothing is found, so a scan can
    never pass by reading nothing."""
    found = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in exclude:
                found.append((relative, _read(path)))
    assert found, f"no source files under {packages}: the scan would prove nothing"
    return found


@functools.cache
def _read(path: pathlib.Path) -> str:
    return path.read_text()


def attribute_root(node: ast.Attribute) -> ast.expr:
    """The leftmost expression of a dotted name: `threading` for `threading.Lock`."""
    root = node.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return root
