"""scripts/grade pN --submission DIR as a teaching assistant uses it, on P0 (the cheapest
project): our own files as a submission earn full marks, a starter kit earns nothing quickly
with a clear output per test, a copy with one known defect loses exactly the group that
catches it, and hostile submissions (a hang at import, an endless loop, endless output, a
huge allocation, leftover threads and processes) cost only their own group while the grader
finishes, kills what they started and removes its copy. results.json has Gradescope's fields.

Each grading run is a real scripts/grade.py process, as a TA or Gradescope starts it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.test_starter import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADE = os.path.join(ROOT, "scripts", "grade.py")
P0_STUDENT = ("kv/server.py", "tests/kv/test_squarer.py")
P0_MAX = 15


def grade_submission(submission, tmp_path, *args: str, timeout: float = 400) -> tuple:
    """Run the grader on `submission`; (its JSON document, the process). Its temporary files
    go under tmp_path/tmp, so the test can see that it removed them."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(scratch))
    proc = subprocess.run([sys.executable, GRADE, "p0", "--submission", str(submission),
                           "--json", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    left = [p for p in os.listdir(scratch) if p.startswith("grade-submission-")]
    assert not left, f"the grader left its copy behind: {left}"
    return json.loads(proc.stdout), proc


def our_files(directory, **replaced: str) -> None:
    """Our P0 student files, as a student would hand them in, with some replaced."""
    for path in P0_STUDENT:
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = replaced.get(path.replace("/", "_").removesuffix(".py"))
        if text is None:
            shutil.copy(os.path.join(ROOT, path), target)
        else:
            target.write_text(text)


def without_test(source: str, name: str) -> str:
    """`source` without the module-level function `name` (found by ast, so it is exact)."""
    node = next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = source.splitlines(keepends=True)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return "".join(lines[:first - 1] + lines[node.end_lineno:])


def by_label(document: dict) -> dict:
    return {row["label"]: row for row in document["p0"]["rows"]}


# Gradescope's documented fields (results.json): top level and each test.
TOP_FIELDS = {"score", "execution_time", "output", "output_format", "test_output_format",
              "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
              "leaderboard"}
TEST_FIELDS = {"score", "max_score", "status", "name", "name_format", "number", "output",
               "output_format", "tags", "visibility", "extra_data"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def gradescope_problems(results: dict) -> list[str]:
    """What in a results.json does not follow Gradescope's documented fields ([] if
    nothing)."""
    problems = [f"unknown top-level field {k}" for k in results if k not in TOP_FIELDS]
    if not isinstance(results.get("score"), (int, float)):
        problems.append("score is not a number")
    if not isinstance(results.get("execution_time"), (int, float)):
        problems.append("execution_time is not a number")
    for key in ("visibility", "stdout_visibility"):
        if results.get(key, "visible") not in VISIBILITIES:
            problems.append(f"{key} {results[key]!r}")
    if results.get("output_format", "text") not in FORMATS:
        problems.append("output_format")
    for test in results.get("tests", []):
        problems += [f"test field {k}" for k in test if k not in TEST_FIELDS]
        if not isinstance(test.get("name"), str) or not isinstance(test.get("number"), str):
            problems.append(f"test name/number {test.get('name')!r}")
        if not (isinstance(test.get("score"), (int, float))
                and isinstance(test.get("max_score"), (int, float))
                and 0 <= test["score"] <= test["max_score"]):
            problems.append(f"test score {test.get('name')!r}")
        if test.get("status") not in ("passed", "failed"):
            problems.append(f"test status {test.get('status')!r}")
        if test.get("visibility", "visible") not in VISIBILITIES:
            problems.append("test visibility")
        if not isinstance(test.get("output", ""), str) or not isinstance(test.get("tags", []),
                                                                         list):
            problems.append("test output/tags")
    if sum(t["score"] for t in results.get("tests", [])) != results.get("score"):
        problems.append("score is not the sum of the tests' scores")
    return problems


def test_the_results_checker_can_fail():
    assert gradescope_problems({"score": 1, "execution_time": 2, "tests": [
        {"name": "a", "number": "1", "score": 1, "max_score": 1, "status": "passed"}]}) == []
    assert gradescope_problems({"score": 2, "execution_time": 2, "colour": "red", "tests": [
        {"name": "a", "number": 1, "score": 3, "max_score": 1, "status": "ok"}]}) == [
        "unknown top-level field colour", "test name/number 'a'", "test score 'a'",
        "test status 'ok'", "score is not the sum of the tests' scores"]


def test_a_copy_missing_one_squarer_test_loses_exactly_the_squarer_group(tmp_path):
    """The whole of P0, graded: our server earns all 10 of its groups; a Squarer test file
    without the only test that catches ZeroOnClosedInput loses the Squarer group (5 points)
    and nothing else. Our own Squarer test file earns that group in the hostile test below
    (the leftovers), so our own files earn full marks: each group is its own process.)"""
    source = open(os.path.join(ROOT, "tests/kv/test_squarer.py"), encoding="utf-8").read()
    defective = without_test(source, "test_closed_input_closes_output_and_emits_nothing")
    assert defective != source and "def test_basic_correctness" in defective
    our_files(tmp_path / "submission", tests_kv_test_squarer=defective)
    document, _ = grade_submission(tmp_path / "submission", tmp_path, "--jobs", "2")
    rows = by_label(document)
    lost = {label for label, row in rows.items() if row["status"] != "pass"}
    squarer = "Squarer tests: pass the correct one, catch every buggy one"
    assert lost == {squarer}, {label: rows[label]["reason"] for label in lost}
    assert (document["p0"]["points"], document["p0"]["max"]) == (P0_MAX - 5, P0_MAX)
    assert "ZeroOnClosedInput" in rows[squarer]["detail"]
    assert document["p0"]["submission"]["used"] == {p: p for p in P0_STUDENT}


def test_a_starter_kit_scores_zero_quickly_with_a_clear_output_per_test(tmp_path):
    """The whole p0 kit handed in: its two student files are stubs, everything else in it
    is a staff file (ignored, and listed)."""
    starter = load("starter")
    starter.write_kit("p0", str(tmp_path / "kit"))
    (tmp_path / "kit" / "tests" / "conftest.py").write_text("# a student's own conftest\n")
    start = time.monotonic()
    document, _ = grade_submission(tmp_path / "kit", tmp_path, "--jobs", "3",
                                   "--gradescope", str(tmp_path / "results.json"))
    seconds = time.monotonic() - start
    p0 = document["p0"]
    assert (p0["points"], p0["max"]) == (0, P0_MAX)
    assert seconds < 120, f"grading a starter kit took {seconds:.0f} s"
    assert "tests/conftest.py" in p0["submission"]["ignored"]
    assert "kv/store.py" in p0["submission"]["ignored"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert gradescope_problems(results) == []
    assert results["score"] == 0 and len(results["tests"]) == len(p0["rows"])
    for test in results["tests"]:
        assert test["status"] == "failed" and test["max_score"] > 0
        assert "NotImplementedError" in test["output"] or \
            "suite fails the correct squarer" in test["output"], test
        assert len(test["output"]) <= 4000
    assert "ignored (only the student files are graded)" in results["output"]
    assert "tests/conftest.py" in results["output"]


HOSTILE_HEAD = '''"""A hostile submission of kv/server.py (tests/test_grading.py)."""
import os
import subprocess
import sys
import threading
import time

from kv.store import KVStore


class KeyValueServer:
    def __init__(self, store: KVStore) -> None:
        self.port = 0

    def count_active(self) -> int:
        raise NotImplementedError

    def count_dropped(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def start(self, port: int, host: str = "127.0.0.1") -> None:
'''
HOSTILE_START = {
    "hang_at_import": "        pass\n\ntime.sleep(3600)\n",
    "endless_loop": "        while True:\n            pass\n",
    "endless_output": "        while True:\n            os.write(1, b'x' * (1 << 20))\n",
    "huge_allocation": "        self.hoard = bytearray(6 * 1024 ** 3)\n",
    "leftovers": """        sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
        with open(os.environ["HOSTILE_PIDS"], "w") as pids:
            for alone in (False, True):
                pids.write(f"{subprocess.Popen(sleeper, start_new_session=alone).pid}\\n")
        threading.Thread(target=time.sleep, args=(3600,), name="forever", daemon=True).start()
        raise NotImplementedError
""",
}
GROUP_SECONDS = 20


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the grader's cleanup reads /proc")
def test_hostile_submissions_cost_only_their_group_and_leave_nothing_running(tmp_path,
                                                                             monkeypatch):
    """Five submissions graded at once, each a hostile kv/server.py: TestBasic1 (which
    imports it) is stopped or fails. Where the Squarer group runs after it (the leftovers:
    two processes, one in a session of its own, and a thread), that group still passes: what
    a group left behind is gone before the next starts. (A thread that is not a daemon keeps
    pytest from exiting: that is a hang, stopped like the others.)"""
    monkeypatch.setenv("HOSTILE_PIDS", str(tmp_path / "pids"))  # the grader passes it on

    def grade(name: str) -> tuple:
        base = tmp_path / name
        our_files(base / "submission", kv_server=HOSTILE_HEAD + HOSTILE_START[name])
        also = ["--only", "Squarer"] if name == "leftovers" else []
        seconds = 180 if name == "leftovers" else GROUP_SECONDS  # the Squarer group's time
        return grade_submission(base / "submission", base, "--only", "Basic1", *also,
                                "--group-seconds", str(seconds), "--memory-mb", "2048",
                                "--output-mb", "8", timeout=300)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(HOSTILE_START)) as pool:
        graded = dict(zip(HOSTILE_START, pool.map(grade, HOSTILE_START)))
    seconds = time.monotonic() - start
    for name, (document, proc) in graded.items():
        basic = by_label(document)["TestBasic1"]
        assert basic["points"] == 0 and basic["status"] in ("fail", "error"), (name, basic)
        assert len(proc.stdout) < 100_000, f"{name}: the grader printed {len(proc.stdout)}"
    squarer = by_label(graded["leftovers"][0])[
        "Squarer tests: pass the correct one, catch every buggy one"]
    assert squarer["status"] == "pass", squarer["reason"]
    reasons = {name: by_label(d)["TestBasic1"]["reason"] for name, (d, _) in graded.items()}
    for stopped in ("hang_at_import", "endless_loop"):
        assert reasons[stopped].startswith(
            f"time limit: still running after {GROUP_SECONDS} s"), reasons
    assert reasons["endless_output"].startswith("output limit: wrote more than 8 MB"), reasons
    assert "MemoryError" in reasons["huge_allocation"], reasons
    assert "NotImplementedError" in reasons["leftovers"], reasons
    assert seconds < 200, f"grading the hostile submissions took {seconds:.0f} s"
    pids = [int(line) for line in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the kernel's process table against a deadline
    assert not [pid for pid in pids if _alive(pid)], "a process the submission started survived"


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args, message in (
            (["p0", "--submission", str(tmp_path / "nowhere")], "is not a directory"),
            (["csp", "--submission", str(tmp_path)], "--submission needs one project"),
            (["p0", "--gradescope", str(tmp_path / "r.json")], "--gradescope needs"),
            (["p0", "--submission", str(tmp_path), "--jobs", "0"], "must be positive")):
        proc = subprocess.run([sys.executable, GRADE, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("scripts/grade: error: ") and \
            message in lines[0], (args, proc.stderr)
