"""scripts/grade and the benchmarks as scripts and graders use them: --json prints one JSON
document, a missing course test earns nothing and fails the grade, piped output carries no
progress line (no carriage return); the grade tables have a heading row and say in a word and
one line how each group went (passed, failed, error, missing), not pytest's raw summary."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def grade():
    spec = importlib.util.spec_from_file_location("grade_script",
                                                  os.path.join(ROOT, "scripts", "grade.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["grade_script"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["grade_script"]


def test_course_names_find_their_tests_wherever_they_are_defined(grade):
    assert grade.resolve("tests/actor::~MailboxPushBlock") == \
        "tests/actor/test_mailbox.py::test_mailbox_push_block"
    assert grade.resolve("tests/actor::~NoSuchCourseTest") is None
    assert grade.resolve("tests/kv/test_server.py::test_no_such_test") is None
    assert grade.resolve("tests/no_such_file.py") is None
    assert grade.resolve("tests/kv/test_server.py::test_basic1") == \
        "tests/kv/test_server.py::test_basic1"


def test_p3_follows_the_course_split(grade):
    _, groups = grade.PROJECTS["p3"]
    checkpoint = [g for g in groups if g.section == grade.P3_CHECKPOINT]
    final = [g for g in groups if g.section == grade.P3_FINAL]
    assert len(final) == 58 and sum(g.points for g in final) == 58
    # The handout's checkpoint table lists 22 tests (it says 21 points): a point each.
    assert len(checkpoint) == 22 and len({g.label for g in checkpoint}) == 22


def test_json_document_missing_tests_earn_nothing_and_fail(grade, monkeypatch, capsys):
    monkeypatch.setitem(grade.PROJECTS, "demo", ("a demo project", [
        grade.Group("passes", ("tests/test_sync_rule.py::test_packages_use_channels_not_locks",),
                    2),
        grade.Group("TestNotWrittenYet", ("tests/cmud::~NotWrittenYet",), 3, "final"),
    ]))
    assert grade.main(["demo", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    demo = document["demo"]
    assert (demo["points"], demo["max"], demo["passed"]) == (2, 5, False)
    passed, missing = demo["rows"]
    assert passed["status"] == "pass" and passed["points"] == 2 and passed["reason"] == ""
    assert missing["status"] == "missing" and missing["points"] == 0 and missing["max"] == 3
    assert missing["reason"] == "not written yet: tests/cmud::TestNotWrittenYet"
    assert document["total"] == {"points": 2, "max": 5, "passed": False}


def test_table_shows_missing_and_bad_arguments_exit_2(grade, monkeypatch, capsys):
    monkeypatch.setitem(grade.PROJECTS, "demo", ("a demo project", [
        grade.Group("TestNotWrittenYet", ("tests/cmud::~NotWrittenYet",), 3)]))
    assert grade.main(["demo"]) == 1
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    heading = lines.index("a demo project") + 1
    assert lines[heading].split() == ["test", "result", "points", "seconds", "reason"]
    assert lines[heading + 1].split() == ["TestNotWrittenYet", "missing", "0/3", "-", "not",
                                          "written", "yet:", "tests/cmud::TestNotWrittenYet"]
    assert grade.main(["p9"]) == 2


FAILING_TESTS = """
import pytest

def test_passes():
    pass

def test_wrong_sum():
    assert 1 + 1 == 3, "one and one make two"

@pytest.fixture
def broken():
    raise RuntimeError("the fixture broke")

def test_needs_broken(broken):
    pass
"""


def test_table_says_failed_with_the_first_failure_and_its_message(grade, monkeypatch, capsys,
                                                                  tmp_path):
    failing = tmp_path / "test_failing.py"
    failing.write_text(FAILING_TESTS)
    broken = tmp_path / "test_broken_import.py"
    broken.write_text("import no_such_module_here\n")
    monkeypatch.setitem(grade.PROJECTS, "demo", ("a demo project", [
        grade.Group("a failing file", (str(failing),), 2),
        grade.Group("an unimportable file", (str(broken),), 1)]))
    assert grade.main(["demo"]) == 1
    lines = capsys.readouterr().out.splitlines()
    heading = lines.index("a demo project") + 1
    columns = lines[heading]
    failed, error, total = lines[heading + 1:heading + 4]
    assert failed.startswith("  a failing file ") and error.startswith("  an unimportable file ")
    result_at, reason_at = columns.index("result"), columns.index("reason")
    assert failed[result_at:].split()[:2] == ["failed", "0/2"]
    assert failed[reason_at:] == ("test_wrong_sum: AssertionError: one and one make two "
                                  "(and 1 more)")
    assert error[result_at:].split()[:2] == ["error", "0/1"]
    assert error[reason_at:] == ("test_broken_import.py: ModuleNotFoundError: No module named "
                                 "'no_such_module_here'")
    assert total.split() == ["total", "0/3"]
    assert "passed in" not in "\n".join(lines) and "failed in" not in "\n".join(lines)


def test_outcome_of_pytest_runs(grade):
    passed = grade.outcome_of(0, "...\n3 passed in 1.00s\n", "", 1.5)
    assert (passed.status, passed.reason, passed.summary) == ("pass", "", "3 passed in 1.00s")
    errored = grade.outcome_of(1, "E\nERROR t.py::test_x - RuntimeError: no fixture\n"
                                  "1 error in 0.10s\n", "", 0.2)
    assert (errored.status, errored.reason) == ("error", "test_x: RuntimeError: no fixture")
    crashed = grade.outcome_of(3, "", "INTERNALERROR> boom\n", 0.2)
    assert (crashed.status, crashed.reason) == ("error", "INTERNALERROR> boom")
    silent = grade.outcome_of(4, "", "", 0.1)
    assert (silent.status, silent.reason) == ("error", "pytest exited with status 4")
    # A summary line too long for the terminal loses its message: the report has it.
    cut = grade.outcome_of(1, "____ ERROR at setup of test_a ____\nE   RuntimeError: a\n"
                              "____ test_b ____\nE   AssertionError: b\n"
                              "FAILED t.py::test_b\nERROR t.py::test_a\n", "", 0.1)
    assert (cut.status, cut.reason) == ("fail", "test_b: AssertionError: b (and 1 more)")
    long = grade.outcome_of(1, f"FAILED t.py::test_y - {'x' * 300}\n", "", 0.1)
    assert long.status == "fail" and len(long.reason) == grade.REASON_CHARS
    assert long.reason.endswith("...")


def test_csp_bench_json_is_one_document_and_piped_lines_have_no_carriage_return():
    bench = [sys.executable, os.path.join(ROOT, "scripts", "bench", "csp.py"),
             "--messages", "4000", "--rounds", "1"]
    piped = subprocess.run(bench, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "\r" not in piped.stdout and len(piped.stdout.splitlines()) == 3, piped.stdout
    as_json = subprocess.run(bench + ["--json"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    document = json.loads(as_json.stdout)
    assert document["bench"] == "csp"
    assert set(document["figures"]) == {"buffered_stream", "unbuffered_pingpong", "select4"}
    assert all({"ours", "queue_queue", "ratio", "ok"} <= set(f)
               for f in document["figures"].values())
    assert as_json.returncode == (0 if document["ok"] else 1)
