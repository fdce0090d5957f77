"""Write a project's starter kit: scripts/starter p0|p1|p2|p3 DIR

The kit is derived from this repository every time, never kept by hand, so it cannot drift:
- staff files (scripts/kits.py says which) are copied as they are;
- each student file keeps its module docstring, imports, constants, classes (with their
  decorators, bases, fields and docstrings) and every function's signature and docstring,
  and every body becomes `raise NotImplementedError` (the `ast` module does this);
- README.md holds the project's sections of our README and the who-writes-what list;
- the public tests come along (the course's secret ones, `hidden` in the table, do not).

The kit imports, and its tests collect and fail (NotImplementedError) rather than hang.

DIR must not exist or be empty. Exit status 0 when written, 2 for a bad argument (one line on
stderr). Writes only under DIR.

Threads: only the main thread.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)  # run as a script: kits.py sits beside it

import kits  # noqa: E402 - needs the path above

STUB_HEADER = ("# Starter kit: this is yours to write. Names, signatures and docstrings are "
               "the contract;\n# each body raises NotImplementedError until you write it.\n")


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _raise_not_implemented() -> ast.stmt:
    return ast.Raise(exc=ast.Name(id="NotImplementedError", ctx=ast.Load()), cause=None)


def _stub_function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.stmt:
    """The same def (decorators, arguments, annotations) with only its docstring and a
    raise. A stubbed generator is no longer one: calling it raises at once, which is what a
    test of an unwritten function should see."""
    body: list[ast.stmt] = [node.body[0]] if node.body and _is_docstring(node.body[0]) else []
    node.body = body + [_raise_not_implemented()]
    return node


def _stub_class(node: ast.ClassDef) -> ast.ClassDef:
    """The class with its docstring, fields and class constants; methods and nested classes
    stubbed; anything else (statements run at class creation) dropped."""
    body: list[ast.stmt] = []
    for index, child in enumerate(node.body):
        if index == 0 and _is_docstring(child):
            body.append(child)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body.append(_stub_function(child))
        elif isinstance(child, ast.ClassDef):
            body.append(_stub_class(child))
        elif isinstance(child, (ast.Assign, ast.AnnAssign)):
            body.append(child)
    node.body = body or [ast.Pass()]
    return node


def _is_main_guard(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__")


def stub_source(source: str) -> str:
    """A student module reduced to its API (see the module docstring). Pure.

    Kept at module level: the docstring, imports, assignments (constants, loggers, type
    aliases), a `__main__` guard; classes and functions are stubbed; other statements are
    dropped. Raises SyntaxError for source that does not parse."""
    tree = ast.parse(source)
    body: list[ast.stmt] = []
    for index, node in enumerate(tree.body):
        if index == 0 and _is_docstring(node):
            body.append(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)):
            body.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body.append(_stub_function(node))
        elif isinstance(node, ast.ClassDef):
            body.append(_stub_class(node))
        elif _is_main_guard(node):
            body.append(node)
    tree.body = body
    return STUB_HEADER + ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def readme_sections(readme: str, headings: tuple[str, ...]) -> list[str]:
    """The `## heading` sections of a README (heading line included, up to the next `## `),
    in the order asked; headings not found are left out. Pure."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in readme.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        if current is not None:
            sections[current].append(line)
    return ["\n".join(sections[h]).rstrip() + "\n" for h in headings if h in sections]


def kit_readme(kit: kits.Kit, readme: str) -> str:
    """The kit's README: what to write, how to run the tests, then our README's sections."""
    student = "\n".join(f"- `{path}`" for path in kit.student)
    sections = "\n".join(readme_sections(readme, kit.readme_sections))
    test_dirs = " ".join(kit.tests)
    return f"""# Starter kit: {kit.title}

## What you write

These files are yours; every function in them raises `NotImplementedError` until you write it.
Their names, signatures and docstrings are the contract the tests and the staff code rely on:

{student}

Everything else is staff code: read it, use it, but do not change it. The grader takes only
the files above from your submission and ignores anything else you hand in (a changed test, a
new conftest, a staff file), so a change elsewhere cannot help and will not be graded.

## Running the tests

```
scripts/test {test_dirs}       # sets up .venv, then runs pytest on the public tests
scripts/test {kit.tests[0]} -x -k NAME   # one test, stopping at the first failure
```

The grader runs more than these public tests (the course keeps some secret), each graded group
in its own process with a time limit and a memory limit.

{sections}"""


def write_kit(project: str, directory: str, root: str = ROOT) -> list[str]:
    """Write `project`'s kit under `directory` (created; must be absent or empty) from the
    repository at `root`; returns the files written, relative. Raises ValueError for an
    unknown project or a directory in the way."""
    if project not in kits.KITS:
        raise ValueError(f"unknown project {project!r} (choose from {', '.join(kits.KITS)})")
    kit = kits.KITS[project]
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise ValueError(f"{directory} exists and is not an empty directory")
    written = []
    for path in kits.kit_files(kit, kits.repository_files(root)):
        source, target = os.path.join(root, path), os.path.join(directory, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if path in kit.student:
            with open(source, encoding="utf-8") as file:
                stub = stub_source(file.read())
            with open(target, "w", encoding="utf-8") as file:
                file.write(stub)
        else:
            shutil.copy2(source, target)
        written.append(path)
    missing = [path for path in kit.student if path not in written]
    if missing:
        raise ValueError("student files not in the repository: " + ", ".join(missing))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as file:
        readme = kit_readme(kit, file.read())
    with open(os.path.join(directory, "README.md"), "w", encoding="utf-8") as file:
        file.write(readme)
    return sorted(written + ["README.md"])


def caller_path(path: str) -> str:
    """`path` as the caller meant it: the shell wrapper moves to the repository root and
    says in CALLER_PWD where the caller was."""
    return os.path.join(os.environ.get("CALLER_PWD", os.getcwd()), os.path.expanduser(path))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/starter",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("project", choices=list(kits.KITS))
    parser.add_argument("directory", metavar="DIR", help="where to write the kit (new or empty)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        written = write_kit(args.project, caller_path(args.directory))
    except (ValueError, OSError, SyntaxError) as exc:
        print(f"scripts/starter: error: {exc}", file=sys.stderr)
        return 2
    kit = kits.KITS[args.project]
    print(f"wrote {len(written)} files to {args.directory}: {len(kit.student)} to write "
          f"({', '.join(kit.student)}), the rest staff")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
