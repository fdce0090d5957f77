"""The session's process guard (tests/conftest.py): a process a test starts and never stops
is killed at the end of the session, named, and the session fails; a session that stops what
it starts passes. Each case runs a small pytest session in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.processes import ROOT, pid_alive

LEAKING_TEST = '''
import subprocess, sys

def test_starts_and_forgets_a_process(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (tmp_path.parent.parent / "leaked.pid").write_text(str(proc.pid))
'''

TIDY_TEST = '''
import subprocess, sys

def test_starts_and_stops_a_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    proc.terminate()
    proc.wait()
'''


def run_session(tmp_path, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_case.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_case.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_a_process_left_running_fails_the_session_and_is_killed(tmp_path):
    result = run_session(tmp_path, LEAKING_TEST)
    pid = int((tmp_path / "leaked.pid").read_text())
    assert result.returncode == 1, result.stdout
    assert "1 passed" in result.stdout
    assert f"the tests left 1 process(es) running (killed now):\n  pid {pid}: " \
           in result.stdout, result.stdout
    assert "time.sleep(600)" in result.stdout
    assert not pid_alive(pid) or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"


def test_a_session_that_stops_what_it_starts_passes(tmp_path):
    result = run_session(tmp_path, TIDY_TEST)
    assert result.returncode == 0, result.stdout
    assert "left" not in result.stdout
