"""scripts/gradescope pN OUT.zip: the package holds setup.sh and run_autograder (executable)
beside the repository (no caches, .git or .venv), and run_autograder, run in a temporary
directory laid out like Gradescope's /autograder, grades /autograder/submission and writes
/autograder/results/results.json with Gradescope's fields, even when the grader itself fails."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from tests.test_grading import gradescope_problems
from tests.test_starter import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The p0 package, built, and unpacked the way Gradescope does: /autograder/source."""
    base = tmp_path_factory.mktemp("gradescope")
    gradescope = load("gradescope")
    assert gradescope.main(["p0", str(base / "p0.zip")]) == 0
    source = base / "autograder" / "source"
    with zipfile.ZipFile(base / "p0.zip") as archive:
        archive.extractall(source)
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    for name, mode in modes.items():  # extractall drops the modes: put them back
        os.chmod(source / name, stat.S_IMODE(mode))
    return base, modes


def test_the_package_has_the_two_scripts_and_the_repository(package):
    _, modes = package
    names = set(modes)
    assert {"setup.sh", "run_autograder", "scripts/grade.py", "kv/server.py",
            "tests/kv/test_squarer_catches_bugs.py", "requirements.txt"} <= names
    for script in ("setup.sh", "run_autograder", "scripts/grade"):
        assert modes[script] & stat.S_IXUSR, f"{script} is not executable"
    assert not [n for n in names if n.startswith((".git/", ".venv/")) or "__pycache__" in n
                or n.endswith(".pyc")]


def test_the_scripts_are_valid_bash_and_name_the_project(package):
    base, _ = package
    source = base / "autograder" / "source"
    for script in ("setup.sh", "run_autograder"):
        check = subprocess.run(["bash", "-n", str(source / script)], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stderr
    run = (source / "run_autograder").read_text()
    assert "scripts/grade.py p0 --submission" in run and "/autograder" in run
    assert "requirements.txt" in (source / "setup.sh").read_text()


def run_autograder(base, submission_files: dict[str, str], **env: str) -> dict:
    """Lay out base/autograder like Gradescope (run_autograder copied to its top, the
    submission in submission/, results/ empty), run it, and read results.json."""
    autograder = base / "autograder"
    shutil.copy(autograder / "source" / "run_autograder", autograder / "run_autograder")
    shutil.rmtree(autograder / "submission", ignore_errors=True)
    shutil.rmtree(autograder / "results", ignore_errors=True)
    for name, text in submission_files.items():
        (autograder / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (autograder / "submission" / name).write_text(text)
    environment = dict(os.environ, AUTOGRADER_ROOT=str(autograder),
                       AUTOGRADER_PYTHON=sys.executable)
    environment.update(env)
    environment.pop("PYTHONPATH", None)  # as on Gradescope: only the package's own code
    proc = subprocess.run([str(autograder / "run_autograder")], cwd=autograder,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((autograder / "results" / "results.json").read_text())


def test_run_autograder_grades_the_submission_into_results_json(package):
    base, _ = package
    ours = open(os.path.join(ROOT, "kv", "server.py"), encoding="utf-8").read()
    results = run_autograder(base, {"server.py": ours, "notes.txt": "hi\n"},
                             AUTOGRADER_GRADE_ARGS="--only Basic1 --only Basic2")
    assert gradescope_problems(results) == []
    assert results["score"] == 2
    assert [(t["name"], t["status"], t["score"]) for t in results["tests"]] == [
        ("TestBasic1", "passed", 1), ("TestBasic2", "passed", 1)]
    assert "kv/server.py" in results["output"] and "notes.txt" in results["output"]


def test_run_autograder_writes_a_zero_result_when_the_grader_fails(package):
    base, _ = package
    results = run_autograder(base, {"server.py": "x = 1\n"}, AUTOGRADER_PYTHON="false")
    assert gradescope_problems(results) == []
    assert results["score"] == 0 and "grader itself failed" in results["output"]
