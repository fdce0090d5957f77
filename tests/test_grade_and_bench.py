"""scripts/grade and the benchmarks as scripts and graders use them: --json prints one JSON
document, a missing course test earns nothing and fails the grade, piped output carries no
progress line (no carriage return)."""

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
    assert passed["status"] == "pass" and passed["points"] == 2
    assert missing["status"] == "missing" and missing["points"] == 0 and missing["max"] == 3
    assert document["total"] == {"points": 2, "max": 5, "passed": False}


def test_table_shows_missing_and_bad_arguments_exit_2(grade, monkeypatch, capsys):
    monkeypatch.setitem(grade.PROJECTS, "demo", ("a demo project", [
        grade.Group("TestNotWrittenYet", ("tests/cmud::~NotWrittenYet",), 3)]))
    assert grade.main(["demo"]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "0/3" in out and "\r" not in out
    assert grade.main(["p9"]) == 2


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
