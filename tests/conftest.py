"""Shared fixtures: every test fails if a thread raised an unhandled exception during it, or if
it left threads running (the `csp-timers` scheduler, alive for the whole process, excepted).
And the session fails if it leaves processes running: every process the tests start inherits
a mark in its environment (SESSION_MARK_VARIABLE); at the end of the session, those still
running after PROCESS_GRACE_SECONDS are killed and named (a test that fails half-way must
still stop what it started: a cluster's nodes left behind take CPU and ports from later
tests)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import csp
from tests.processes import marked_processes

# How long a test's threads may take to finish after the test body returns: close() joins what
# it started, so this only absorbs threads already on their way out.
LEAK_GRACE_SECONDS = 3.0
_LONG_LIVED = {csp.SCHEDULER_THREAD_NAME, "lspnet-delay"}  # process-wide runtime threads


class ThreadGuard:
    """What the guard saw during one test. A test that provokes a thread exception on purpose
    takes it out of `exceptions` (the guard fails the test on whatever is left)."""

    def __init__(self) -> None:
        self.exceptions: list[tuple[str, BaseException]] = []

    def hook(self, args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "<unknown thread>"
        self.exceptions.append((name, args.exc_value))
        _default_hook(args)  # still print it, with the thread's name


_default_hook = threading.__excepthook__


def leaked_threads(before: set[threading.Thread], grace_seconds: float) -> list[threading.Thread]:
    """Threads started since `before` that are still alive after up to `grace_seconds`."""
    deadline = time.monotonic() + grace_seconds
    leaked = []
    for thread in threading.enumerate():
        if thread in before or thread.name in _LONG_LIVED:
            continue
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            leaked.append(thread)
    return leaked


@pytest.fixture(autouse=True)
def thread_guard():
    guard = ThreadGuard()
    before = set(threading.enumerate())
    previous_hook = threading.excepthook
    threading.excepthook = guard.hook
    try:
        yield guard
        leaked = leaked_threads(before, LEAK_GRACE_SECONDS)
    finally:
        threading.excepthook = previous_hook
    problems = []
    if guard.exceptions:
        problems.append("unhandled exceptions in threads: " + "; ".join(
            f"{name}: {type(exc).__name__}: {exc}" for name, exc in guard.exceptions))
    if leaked:
        problems.append("threads still running after the test: " + ", ".join(
            sorted(t.name for t in leaked)))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---- processes left behind by the session -------------------------------------------------------

SESSION_MARK_VARIABLE = "PROJECT_TEST_SESSION"
PROCESS_GRACE_SECONDS = 10.0


def pytest_configure(config) -> None:
    # Each session has its own mark (a grading test's inner pytest session too), so a session
    # only ever finds its own processes.
    os.environ[SESSION_MARK_VARIABLE] = f"{os.getpid()}.{time.time_ns()}"


def pytest_sessionfinish(session, exitstatus) -> None:
    mark = os.environ.get(SESSION_MARK_VARIABLE)
    if not mark:
        return
    deadline = time.monotonic() + PROCESS_GRACE_SECONDS
    left = marked_processes(SESSION_MARK_VARIABLE, mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)   # processes on their way out: nothing to wait on but /proc
        left = marked_processes(SESSION_MARK_VARIABLE, mark)
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"the tests left {len(left)} process(es) running (killed now):"] + [
        f"  pid {pid}: {command.strip()[:200]}" for pid, command in sorted(left.items())]
    if reporter is not None:
        for line in lines:
            reporter.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
