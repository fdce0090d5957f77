"""scripts/starter and the who-writes-what table (scripts/kits.py): a stub keeps a student
file's API and nothing else; each kit copies staff files as they are, leaves the course's
secret tests out, imports, and its tests collect (and fail with NotImplementedError, quickly)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name: str):
    """A module of scripts/ under its own name, as the scripts import each other (they put
    scripts/ on sys.path themselves)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def starter():
    return load("starter")


@pytest.fixture(scope="module")
def kits():
    return load("kits")


SAMPLE = '''"""A module's docstring."""
from __future__ import annotations

import csp
from dataclasses import dataclass

LIMIT = 3
registry = {}
registry["x"] = 1
print("side effect")


@dataclass(frozen=True)
class Point:
    """A point."""
    x: int
    y: int = 0
    ORIGIN_NAME = "o"

    def norm(self) -> float:
        """Its length."""
        return (self.x ** 2 + self.y ** 2) ** 0.5

    class Inner:
        def helper(self):
            return 1


def gen(n: int, *, step: int = 1):
    yield from range(0, n, step)


async def later(x):
    """Await it."""
    return x


if __name__ == "__main__":
    gen(3)
'''


def test_a_stub_keeps_the_api_and_every_body_raises(starter):
    stub = starter.stub_source(SAMPLE)
    tree = ast.parse(stub)
    assert ast.get_docstring(tree) == "A module's docstring."
    assert stub.startswith("# Starter kit")
    kept = [ast.unparse(node) for node in tree.body[1:]
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign))]
    assert kept == ["from __future__ import annotations", "import csp",
                    "from dataclasses import dataclass", "LIMIT = 3", "registry = {}",
                    "registry['x'] = 1"]
    assert "print(" not in stub  # other statements are dropped
    point = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert [ast.unparse(d) for d in point.decorator_list] == ["dataclass(frozen=True)"]
    assert ast.get_docstring(point) == "A point."
    assert "x: int" in stub and "y: int = 0" in stub and "ORIGIN_NAME = 'o'" in stub
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef,
                                                             ast.AsyncFunctionDef))]
    assert {f.name for f in functions} == {"norm", "helper", "gen", "later"}
    for function in functions:
        body = function.body[1:] if ast.get_docstring(function) else function.body
        assert [ast.unparse(s) for s in body] == ["raise NotImplementedError"], function.name
    gen = next(f for f in functions if f.name == "gen")
    assert ast.unparse(gen.args) == "n: int, *, step: int=1"
    assert ast.get_docstring(next(f for f in functions if f.name == "later")) == "Await it."
    assert "if __name__ == '__main__':" in stub
    namespace: dict = {}
    exec(compile(stub, "stub", "exec"), namespace)  # noqa: S102 - our own generated stub
    with pytest.raises(NotImplementedError):
        namespace["Point"](1).norm()


def test_the_table_names_files_that_exist_and_splits_every_package(kits):
    for project, kit in kits.KITS.items():
        assert kit.project == project
        for path in kit.student + tuple(kit.mixed):
            assert os.path.isfile(os.path.join(ROOT, path)), f"{project}: {path}"
            assert path.endswith(".py")
        assert set(kit.mixed) <= set(kit.student)
        for package in kit.packages:
            assert os.path.isdir(os.path.join(ROOT, package)), f"{project}: {package}"
        assert "csp" in kit.packages and not any(s.startswith("csp/") for s in kit.student)
        for folder in kit.tests + kit.hidden:
            assert os.path.exists(os.path.join(ROOT, folder)), f"{project}: {folder}"


def test_matching_a_submission_takes_only_student_files(kits):
    kit = kits.KITS["p1"]
    matched = kits.match_submission(kit, [
        "lsp/client.py",                 # at its path
        "handin/lsp/server.py",          # under a top folder
        "lsp/server.py",                 # ... and at its path: the shorter path wins
        "window.py",                     # by name: only one student file is window.py
        "server.py",                     # ambiguous by name (lsp/ and miner/): ignored
        "tests/conftest.py", "lsp/message.py", "notes.txt",
    ])
    assert matched.used == {"lsp/client.py": "lsp/client.py", "lsp/server.py": "lsp/server.py",
                            "lsp/window.py": "window.py"}
    assert matched.ignored == sorted(["handin/lsp/server.py", "server.py", "tests/conftest.py",
                                      "lsp/message.py", "notes.txt"])
    assert "miner/server.py" in matched.absent and "lsp/client.py" not in matched.absent
    assert set(matched.absent) | set(matched.used) == set(kit.student)


def test_readme_sections_are_cut_at_the_next_heading(starter):
    readme = "# T\n\nintro\n\n## A\n\na text\n\n## B\n\nb text\n"
    assert starter.readme_sections(readme, ("B", "missing", "A")) == \
        ["## B\n\nb text\n", "## A\n\na text\n"]


@pytest.fixture(scope="module")
def written_kits(starter, kits, tmp_path_factory):
    base = tmp_path_factory.mktemp("kits")
    return {project: (str(base / project), starter.write_kit(project, str(base / project)))
            for project in kits.KITS}


def test_each_kit_has_staff_files_as_they_are_stubs_and_no_secret_tests(written_kits, kits,
                                                                        starter):
    readme_text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for project, (directory, written) in written_kits.items():
        kit = kits.KITS[project]
        assert set(kit.student) <= set(written)
        assert not [f for f in written if kits.is_hidden(kit, f)], project
        for path in written:
            if path == "README.md":
                continue
            with open(os.path.join(directory, path), "rb") as file:
                ours = open(os.path.join(ROOT, path), "rb").read()
                theirs = file.read()
            if path in kit.student:
                assert theirs.decode() == starter.stub_source(ours.decode()), path
                assert "raise NotImplementedError" in theirs.decode(), path
            else:
                assert theirs == ours, f"{project}: staff file {path} changed"
        readme = open(os.path.join(directory, "README.md"), encoding="utf-8").read()
        for path in kit.student:
            assert f"`{path}`" in readme
        for heading in kit.readme_sections:
            assert (f"## {heading}" in readme) == (f"## {heading}" in readme_text), heading
        for text in [readme] + [open(os.path.join(directory, p), encoding="utf-8").read()
                                for p in kit.student]:
            assert ROOT not in text and directory not in text  # no path of this machine


def test_writing_over_a_directory_in_use_or_an_unknown_project_is_one_clear_error(
        starter, tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    assert starter.main(["p0", str(tmp_path / "used")]) == 2
    assert capsys.readouterr().err.strip() == \
        f"scripts/starter: error: {tmp_path / 'used'} exists and is not an empty directory"
    assert starter.main(["p7", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()


IMPORT_ALL = """
import importlib, pathlib, sys
for package in sys.argv[1:]:
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        if path.name != "__main__.py":
            importlib.import_module(".".join(path.with_suffix("").parts).removesuffix(".__init__"))
print("imported")
"""


def _import_and_collect(directory: str, packages: tuple[str, ...]) -> tuple:
    env = dict(os.environ, PYTHONPATH=directory, PYTHONDONTWRITEBYTECODE="1")
    imported = subprocess.run([sys.executable, "-c", IMPORT_ALL, *packages], cwd=directory,
                              env=env, capture_output=True, text=True, timeout=120)
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                "-p", "no:cacheprovider", "tests"], cwd=directory, env=env,
                               capture_output=True, text=True, timeout=180)
    return imported, collected


def test_every_kit_imports_and_its_tests_collect(written_kits, kits):
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(written_kits, pool.map(
            lambda p: _import_and_collect(written_kits[p][0], kits.KITS[p].packages),
            written_kits)))
    for project, (imported, collected) in runs.items():
        assert imported.returncode == 0 and "imported" in imported.stdout, \
            f"{project} kit does not import:\n{imported.stderr[-2000:]}"
        assert collected.returncode == 0, \
            f"{project} kit's tests do not collect:\n{collected.stdout[-2000:]}"


def test_the_p0_kits_tests_fail_with_not_implemented_and_do_not_hang(written_kits):
    directory, _ = written_kits["p0"]
    env = dict(os.environ, PYTHONPATH=directory, PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/kv/test_server.py", "tests/kv/test_squarer.py"],
                         cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-2000:]
    last = run.stdout.strip().splitlines()[-1]
    assert " passed" not in last and "NotImplementedError" in run.stdout, last
    assert "Timeout" not in run.stdout
