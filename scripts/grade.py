"""Grade like the course: run each graded group of tests on its own and print a points table.

    scripts/grade all          every project, one table each, then the grand total
    scripts/grade csp|p0|p1|p2|p3
    scripts/grade ... --json   the same runs, printed as one JSON document instead:
        {"p0": {"title", "rows": [{"label", "section", "targets", "points", "max", "status",
                                    "seconds", "reason", "summary"}], "points", "max",
                "passed"},
         ..., "total": {"points", "max", "passed"}}
    status is "pass", "fail" (a test failed), "error" (a test could not run: a fixture,
    import or collection error, or pytest itself stopped) or "missing" (not written yet);
    reason says why in one line ("" when it passed); summary is pytest's own last line.

Each table has a heading row: test, result (passed, failed, error or missing), points,
seconds, and the reason for anything but a pass.

A group earns its points only when every test in it passes, as the course's per-test grading
does. A group whose test is not written yet is shown as missing and earns nothing. Each group
runs in a fresh pytest process, so one hang or crash costs only that group. On a terminal a
progress line says which group is running; piped, only the table lines are printed.

Grading a student's submission (p0-p3; scripts/kits.py says which files are the student's):

    scripts/grade pN --submission DIR [--gradescope results.json] [--json]

copies the repository to a temporary directory, turns every student file into its starter
stub (scripts/starter.py) and lays over it only the student files found in DIR (at their
paths, under one top folder, or by name alone when the name is unambiguous); anything else in
DIR is ignored and listed. Then each group runs as above, in its own process group with a time
limit (--group-seconds), a memory limit (--memory-mb, RLIMIT_DATA) and an output limit
(--output-mb, RLIMIT_FSIZE): a group that hangs, loops, prints without end or leaves threads
or processes behind is stopped, costs only its own points, and everything it started is
killed (its process group, and any process carrying the run's GRADE_RUN_MARKER). --gradescope
writes Gradescope's results.json: one test per group, its output the failing assertion and
its message. --only LABEL (repeatable) grades only the groups whose label contains LABEL;
--jobs N runs N groups at a time.

Exit status: 0 when every group passed, 1 when any group failed or is missing (full marks or
not), 2 for a bad argument.

Threads: the main thread prints; with --jobs N, N worker threads each wait on one group's
process (a group's process and its output files belong to the worker running it).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # run as a script: the repository's packages are importable
sys.path.insert(0, HERE)  # and kits.py, starter.py beside it

import kits  # noqa: E402 - needs the path above
import starter  # noqa: E402
from csp.cli import StatusLine  # noqa: E402
from tests.processes import marked_processes  # noqa: E402


@dataclass(frozen=True)
class Group:
    """A graded group. Targets are pytest node ids or files; a target "DIR::~CourseName" is the
    test of that course name wherever a test file under DIR defines it (TestRemoteSyncNoBcast1
    matches def test_remote_sync_no_bcast1), so course tests are picked up as they are written.
    label "collect": one group per test the target files define, `points` each."""
    label: str
    targets: tuple[str, ...]
    points: int
    section: str = ""


def course(section: str, directory: str, names: list[str], points: int = 1) -> list[Group]:
    """One group per course test name, found under `directory` (see Group)."""
    return [Group(f"Test{name}", (f"{directory}::~{name}",), points, section) for name in names]


def numbered(stem: str, count: int) -> list[str]:
    return [f"{stem}{n}" for n in range(1, count + 1)]


ONE_ACTOR = ["OneActorGet", "OneActorPut1", "OneActorPut2", "OneActorList1", "OneActorList2",
             "OneActorTrace", "OneActorMultiClient1", "OneActorMultiClient2"]
P3_CHECKPOINT = "checkpoint (single server, one query actor)"
P3_FINAL = "final (OneActor re-run, remote tell, local and remote sync, start-up)"

# project -> (title, groups). Later issues add their rows here.
PROJECTS: dict[str, tuple[str, list[Group]]] = {
    "csp": ("csp: channels, select, timers (the runtime)", [
        Group("channels: rendezvous, buffering, close", ("tests/csp/test_chan.py",), 10),
        Group("select: readiness, fairness, close, no polling", ("tests/csp/test_select.py",), 10),
        Group("timers, go, WaitGroup", ("tests/csp/test_timers_go.py",), 5),
        Group("synchronisation rule (no locks outside the runtime)", ("tests/test_sync_rule.py",),
              5),
    ]),
    "p0": ("P0: key-value messaging server and Squarer tests", [
        *(Group(f"TestBasic{n}", (f"tests/kv/test_server.py::test_basic{n}",), 1)
          for n in range(1, 7)),
        *(Group(f"TestCount{n}", (f"tests/kv/test_server.py::test_count{n}",), 1) for n in (1, 2)),
        *(Group(f"TestSlowClient{n}", (f"tests/kv/test_server.py::test_slow_client{n}",), 1)
          for n in (1, 2)),
        Group("Squarer tests: pass the correct one, catch every buggy one",
              ("tests/kv/test_squarer_catches_bugs.py",), 5),
    ]),
    "p1": ("P1: Live Sequence Protocol (lsp1-lsp6, a point per course test) and the miner", [
        Group("collect", tuple(f"tests/lsp/test_lsp{n}.py" for n in range(1, 7)), 1),
        Group("miner: hash check values and messages", ("tests/miner/test_bitcoin.py",), 2),
        Group("miner: ctest and mtest (course sanity checks)",
              ("tests/miner/test_course_sanity.py",), 6),
        Group("miner: scheduler policy (SRTF, faults, chunk sizes)",
              ("tests/miner/test_scheduler.py",), 6),
        Group("miner: end to end (kill -9, lost client, fairness, 20% loss)",
              ("tests/miner/test_end_to_end.py",), 10),
    ]),
    "p2": ("P2: Raft (the course's split: part A 45, part B 145, spread over the tests; "
           "part D, MIT's lab 3D snapshots, 10 a test, and K, MIT's lab 4 KV service, 5 a test, "
           "are ours: the course has neither)", [
        *(Group(f"A {name}", (f"tests/raft/{path}::test_{name}",), 9) for path, name in (
            ("test_raft_course.py", "initial_election_2a"),
            ("test_raft_course.py", "re_election_2a"),
            ("test_raft_mit.py", "initial_election_terms_2a"),
            ("test_raft_mit.py", "re_election_full_2a"),
            ("test_raft_mit.py", "many_elections_2a"))),
        *(Group(f"B {name}", (f"tests/raft/test_raft_course.py::test_{name}",), 20)
          for name in ("basic_agree_2b", "fail_agree_2b", "fail_no_agree_2b",
                       "concurrent_put_commands_2b")),
        *(Group(f"B {name}", (f"tests/raft/test_raft_mit.py::test_{name}",), 13)
          for name in ("rejoin_2b", "backup_2b", "count_2b", "rpc_bytes_2b",
                       "leader_failure_no_majority_2b")),
        # MIT's unreliable variants (install_unreliable_3d, install_uncrash_3d) are marked
        # slow, so the grader, which runs the default selection, leaves them out.
        *(Group(f"D {name}", (f"tests/raft/test_raft_snapshot.py::test_{name}",), 10,
                "part D: MIT lab 3D, snapshots")
          for name in ("snapshot_basic_3d", "snapshot_install_3d", "snapshot_install_crash_3d",
                       "snapshot_all_crash_3d", "snapshot_init_3d")),
        # Beyond the course: MIT's lab 4 on our Raft, each history checked for linearizability.
        # The slow-marked variants are left out, as above.
        *(Group(f"K {name}", (f"tests/kvraft/test_kvraft_mit.py::test_{name}",), 5,
                "KV service: MIT lab 4, linearizable histories")
          for name in ("basic", "concurrent", "unreliable", "one_partition",
                       "persist_concurrent", "persist_partition_unreliable_linearizable",
                       "snapshot_rpc", "snapshot_size", "snapshot_recover")),
    ]),
    # The course's split, a point per test invocation (handout B8, B12). Its checkpoint table
    # lists 22 tests (6 client, 8 mailbox, 8 OneActor) though B12 says 21 points: we give a
    # point to each test listed.
    "p3": ("P3: actors, geo-replicated store, CMUD (the course's split: checkpoint, final)", [
        *course(P3_CHECKPOINT, "tests/cmud", ["ClientGet", "ClientList", "ClientPut",
                                              "ClientBalance", "ClientSequential",
                                              "ClientConcurrent"]),
        *course(P3_CHECKPOINT, "tests/actor", ["MailboxBasic1", "MailboxBasic2", "MailboxBasic3",
                                               "MailboxPushBlock", "MailboxPopBlock",
                                               "MailboxClosePush", "MailboxClosePop",
                                               "MailboxMultiple"]),
        *course(P3_CHECKPOINT, "tests/cmud", ONE_ACTOR),
        *course(P3_FINAL, "tests/cmud", ONE_ACTOR),
        *course(P3_FINAL, "tests/actor", ["RemoteTellBasic", "RemoteTellOrder",
                                          "RemoteTellNoBlock"]),
        *course(P3_FINAL, "tests/cmud", [
            *numbered("LocalSyncBasic", 4), *numbered("LocalSyncFrequency", 4),
            *numbered("LocalSyncSize", 4), *numbered("LocalSyncLWW", 4),
            *numbered("LocalSyncStress", 2),
            *numbered("RemoteSyncBasic", 4), *numbered("RemoteSyncLocal", 4),
            *numbered("RemoteSyncFrequency", 4), *numbered("RemoteSyncSize", 4),
            *numbered("RemoteSyncNoBcast", 2), *numbered("RemoteSyncLWW", 4),
            *numbered("ServerStartup", 5), *numbered("RemoteSyncStress", 2)]),
    ]),
}

DEF_TEST = re.compile(r"^(?:async\s+)?def\s+(test_\w+)\s*\(", re.MULTILINE)


def _normal(name: str) -> str:
    return name.lower().replace("_", "").removeprefix("test")


def defined_tests(path: str) -> list[str]:
    """The module-level test functions a file defines (read, not imported)."""
    try:
        with open(os.path.join(ROOT, path), encoding="utf-8") as source:
            return DEF_TEST.findall(source.read())
    except OSError:
        return []


def resolve(target: str) -> str | None:
    """A pytest target that exists, or None: the file is missing, the test is not defined in
    it, or no file under the directory defines the course test named."""
    path, sep, name = target.partition("::")
    if sep and name.startswith("~"):
        want = _normal(name[1:])
        for file in sorted(glob.glob(os.path.join(ROOT, path, "**", "test_*.py"),
                                     recursive=True)):
            relative = os.path.relpath(file, ROOT)
            for test in defined_tests(relative):
                if _normal(test) == want:
                    return f"{relative}::{test}"
        return None
    if not os.path.exists(os.path.join(ROOT, path)):
        return None
    if sep and "::" not in name and name not in defined_tests(path):
        return None
    return target


@dataclass(frozen=True)
class Outcome:
    """How one group's run went: status "pass", "fail", "error" or "missing"; `reason` one
    line saying why (empty when it passed); `summary` pytest's own last line; `detail` the
    failing assertion and its message as pytest reported them (its `E` lines), cut to
    DETAIL_CHARS."""
    status: str
    seconds: float
    reason: str
    summary: str = ""
    detail: str = ""


REASON_CHARS = 100
DETAIL_CHARS = 1500
DETAIL_LINES = 20
SHORT_SUMMARY = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$")


def outcome_of(returncode: int, stdout: str, stderr: str, seconds: float) -> Outcome:
    """Read a `pytest -q -rfE` run: its status and a one-line reason (pure; see Outcome).

    The reason is the first failing test's name and message (from pytest's short summary, or
    its report when the summary line was cut), "(and N more)" when others failed too; without
    a short summary (pytest stopped), the first error line pytest printed, else its last line
    of output."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    tail = lines or [line for line in stderr.splitlines() if line.strip()]
    summary = tail[-1].strip() if tail else ""
    if returncode == 0:
        return Outcome("pass", seconds, "", summary)
    found = [match for match in map(SHORT_SUMMARY.match, lines) if match]
    failed = [match for match in found if match.group(1) == "FAILED"]
    status = "fail" if failed and returncode == 1 else "error"
    first = (failed or found or [None])[0]
    if first is not None:
        node = first.group(2)
        test = node.rsplit("::", 1)[-1] if "::" in node else os.path.basename(node)
        message = first.group(3) or _first_error_line(lines, test) or "error"
        reason = f"{test}: {message}"
        if len(found) > 1:
            reason += f" (and {len(found) - 1} more)"
    else:
        reason = (_first_error_line(lines) or summary
                  or f"pytest exited with status {returncode}")
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS - 3] + "..."
    test = ""
    if first is not None and "::" in first.group(2):
        test = first.group(2).rsplit("::", 1)[-1]
    detail = _error_lines(lines, test) or reason
    if len(detail) > DETAIL_CHARS:
        detail = detail[:DETAIL_CHARS - 3] + "..."
    return Outcome(status, seconds, reason, summary, detail)


def _error_lines(lines: list[str], test: str) -> str:
    """The `E ...` lines (the failing assertion, its message and the values pytest compared)
    of the first run of them in the report on `test` (or of the whole output), at most
    DETAIL_LINES of them."""
    start = 0
    if test:
        heading = re.compile(rf"^_+ (?:ERROR at \w+ of )?{re.escape(test)} _+$")
        start = next((n for n, line in enumerate(lines) if heading.match(line)), 0)
    found: list[str] = []
    for line in lines[start:]:
        if line.startswith("E "):
            found.append(line[1:].strip())
            if len(found) == DETAIL_LINES:
                break
        elif found:
            break
    return "\n".join(found)


def _first_error_line(lines: list[str], test: str = "") -> str:
    """The first `E   ...` line (an exception and its message) of the report on `test` (its
    section is headed `____ test ____`), or of the whole output when `test` is not given or
    has no section. pytest cuts the message off a short summary line that would not fit the
    terminal's width, hence this second look."""
    start = 0
    if test:
        heading = re.compile(rf"^_+ (?:ERROR at \w+ of )?{re.escape(test)} _+$")
        start = next((n for n, line in enumerate(lines) if heading.match(line)), 0)
    for line in lines[start:]:
        if line.startswith("E "):
            return line[1:].strip()
    return ""


@dataclass(frozen=True)
class Limits:
    """What one group's pytest process (and everything it starts) may use: wall-clock
    `seconds` and `memory_mb` (RLIMIT_DATA: heap, thread stacks, mappings) or None for no
    limit, and `output_mb` for any one file it writes (RLIMIT_FSIZE, its stdout included)."""
    seconds: float | None = None
    memory_mb: int | None = None
    output_mb: int = 64


OWN_CODE_LIMITS = Limits()  # our own code: as before, no time or memory limit
SUBMISSION_LIMITS = Limits(seconds=600.0, memory_mb=4096)
KEEP_OUTPUT_BYTES = 256 * 1024  # of a run's stdout and stderr, each end kept for the reason
MARKER_VARIABLE = "GRADE_RUN_MARKER"


@dataclass(frozen=True)
class Ran:
    """A contained run: its exit status (negative: the signal that ended it), its output
    (the first and last KEEP_OUTPUT_BYTES of each stream), and whether the time ran out."""
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def _apply_limits(limits: Limits) -> None:
    """In the child, between fork and exec (Popen's preexec_fn): only setrlimit calls."""
    if limits.memory_mb is not None:
        size = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (size, size))
    size = limits.output_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def _ends_of(file) -> str:
    """A run's output file: whole if short, else its first and last KEEP_OUTPUT_BYTES (what
    pytest says first, and its summary at the end), the middle cut out."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    if size <= 2 * KEEP_OUTPUT_BYTES:
        data = file.read()
    else:
        head = file.read(KEEP_OUTPUT_BYTES)
        file.seek(size - KEEP_OUTPUT_BYTES)
        data = head + f"\n[... {size - 2 * KEEP_OUTPUT_BYTES} bytes cut ...]\n".encode() + \
            file.read()
    return data.decode("utf-8", errors="replace")


def kill_marked(marker: str) -> int:
    """SIGKILL every process of ours whose environment carries `marker` (a run's
    descendants that left its process group: setsid, a double fork); returns how many were
    found. Processes we may not read are not ours, and are left alone."""
    found = marked_processes(MARKER_VARIABLE, marker)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass   # gone meanwhile
    return len(found)


def run_contained(command: list[str], cwd: str, limits: Limits,
                  env: dict[str, str] | None = None) -> Ran:
    """Run `command` in its own session (so its own process group) under `limits`; blocks
    until it exits or its time is up (then it is killed). Afterwards nothing it started is
    left: its process group is killed, then any process carrying this run's marker.
    Thread-safe: each call has its own process and files."""
    marker = uuid.uuid4().hex
    env = dict(os.environ if env is None else env, **{MARKER_VARIABLE: marker})
    start = time.monotonic()
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True,
                                preexec_fn=lambda: _apply_limits(limits))
        try:
            proc.wait(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # the group is gone already
            proc.wait()
            kill_marked(marker)
        seconds = time.monotonic() - start
        return Ran(proc.returncode, _ends_of(out), _ends_of(err), timed_out, seconds)


def _contained_outcome(ran: Ran, limits: Limits) -> Outcome:
    """Read a contained pytest run: outcome_of, unless the grader had to stop it."""
    if ran.timed_out:
        return Outcome("error", ran.seconds, f"time limit: still running after "
                       f"{limits.seconds:g} s, stopped", "",
                       "the group did not finish within its time limit (a hang or a loop, "
                       "at import or in a test, or threads that never end)")
    if ran.returncode == -signal.SIGXFSZ:
        reason = f"output limit: wrote more than {limits.output_mb} MB to one file, stopped"
        return Outcome("error", ran.seconds, reason, "", reason)
    if ran.returncode < 0:
        name = signal.Signals(-ran.returncode).name
        reason = f"pytest was killed by {name}"
        if name in ("SIGKILL", "SIGSEGV", "SIGABRT") and limits.memory_mb is not None:
            reason += f" (memory limit {limits.memory_mb} MB?)"
        return Outcome("error", ran.seconds, reason, "", reason)
    outcome = outcome_of(ran.returncode, ran.stdout, ran.stderr, ran.seconds)
    if outcome.status != "pass" and "File too large" in outcome.reason:
        # Python ignores SIGXFSZ: a write over the limit raises OSError(EFBIG) instead.
        reason = f"output limit: wrote more than {limits.output_mb} MB to one file"
        return Outcome(outcome.status, outcome.seconds, reason, outcome.summary,
                       outcome.detail)
    return outcome


def run_group(targets: list[str], root: str = ROOT,
              limits: Limits = OWN_CODE_LIMITS) -> Outcome:
    """Run one group in its own pytest process under `limits`, in the repository at `root`
    (targets are resolved in ours, whose tests a grading copy shares); "missing" (then
    nothing ran) when a target is not written yet."""
    resolved = [resolve(t) for t in targets]
    missing = [t.replace("::~", "::Test") for t, r in zip(targets, resolved) if r is None]
    if missing:
        return Outcome("missing", 0.0, "not written yet: " + ", ".join(missing))
    env = dict(os.environ)
    if root != ROOT:  # a grading copy: its packages, never ours
        env["PYTHONPATH"] = root
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    ran = run_contained(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
         "--show-capture=no", *resolved], root, limits, env)
    return _contained_outcome(ran, limits)


def collect(files: tuple[str, ...], points: int, section: str) -> list[Group]:
    """One group per test the files define (pytest's collection), `points` each; files not
    written yet contribute nothing."""
    files = tuple(f for f in files if os.path.exists(os.path.join(ROOT, f)))
    if not files:
        return []
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *files], cwd=ROOT, capture_output=True,
                          text=True)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    return [Group(node.split("::", 1)[1], (node,), points, section) for node in ids]


class Output:
    """Table lines (unless --json) and, on a terminal, the project's status line below them
    (csp.cli.StatusLine) saying which group runs."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.status = StatusLine().__enter__()

    def progress(self, text: str) -> None:
        self.status.show(text)

    def clear(self) -> None:
        self.status.close()

    def line(self, text: str) -> None:
        if not self.as_json:
            self.status.echo(text)


RESULT_WORDS = {"pass": "passed", "fail": "failed", "error": "error", "missing": "missing"}


class Table:
    """The columns of a project's table: test, result, points, seconds, reason. Rows of a
    section are indented under its title; subtotal and total rows fill the points column."""

    def __init__(self, groups: list[Group]) -> None:
        self.width = max(len("  test"), len("  total"), *(
            len(group.label) + (4 if group.section else 2) for group in groups))
        if any(group.section for group in groups):
            self.width = max(self.width, len("    subtotal"))

    def _row(self, label: str, result: str, points: str, seconds: str, reason: str) -> str:
        return (f"{label:<{self.width}}  {result:<7}  {points:>7}  {seconds:>7}  {reason}"
                .rstrip())

    def heading(self) -> str:
        return self._row("  test", "result", "points", "seconds", "reason")

    def test(self, label: str, outcome: Outcome, got: int, out_of: int, indent: str) -> str:
        seconds = f"{outcome.seconds:.1f}" if outcome.status != "missing" else "-"
        return self._row(indent + label, RESULT_WORDS[outcome.status],
                         f"{got:>3}/{out_of:<3}", seconds, outcome.reason)

    def subtotal(self, label: str, got: int, out_of: int, indent: str) -> str:
        return self._row(indent + label, "", f"{got:>3}/{out_of:<3}", "", "")


def grade(project: str, out: Output, root: str = ROOT, limits: Limits = OWN_CODE_LIMITS,
          only: tuple[str, ...] = (), jobs: int = 1) -> dict:
    """Run one project's groups in the repository at `root`, printing its table as the rows
    come in (in order); returns its JSON object. `only`: the groups whose label contains one
    of these words (case-insensitive), all when empty. `jobs` groups run at a time."""
    title, declared = PROJECTS[project]
    groups = [row for group in declared
              for row in (collect(group.targets, group.points, group.section)
                          if group.label == "collect" else [group])]
    if only:
        groups = [g for g in groups if any(w.lower() in g.label.lower() for w in only)]
    out.line(f"\n{title}")
    result = {"title": title, "rows": [], "points": 0, "max": 0, "passed": True}
    if not groups:
        out.line("  (not built yet: no graded tests)" if not only else
                 "  (no group's label contains " + " or ".join(map(repr, only)) + ")")
        return result
    table = Table(groups)
    out.line(table.heading())
    section = ""
    subtotal = [0, 0]

    def close_section() -> None:
        if section:
            out.line(table.subtotal("subtotal", *subtotal, indent="    "))

    def run(group: Group) -> Outcome:
        return run_group(list(group.targets), root, limits)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = pool.map(run, groups)
        for n, group in enumerate(groups, 1):
            if group.section != section:
                close_section()
                section, subtotal = group.section, [0, 0]
                if section:
                    out.line(f"  {section}")
            out.progress(f"{project} {n}/{len(groups)}: running {group.label} ...")
            outcome = next(outcomes)
            got = group.points if outcome.status == "pass" else 0
            subtotal[0] += got
            subtotal[1] += group.points
            result["points"] += got
            result["max"] += group.points
            result["passed"] &= outcome.status == "pass"
            result["rows"].append({
                "label": group.label, "section": group.section,
                "targets": [resolve(t) or t for t in group.targets], "points": got,
                "max": group.points, "status": outcome.status,
                "seconds": round(outcome.seconds, 2), "reason": outcome.reason,
                "summary": outcome.summary, "detail": outcome.detail})
            out.line(table.test(group.label, outcome, got, group.points,
                                indent="    " if section else "  "))
    close_section()
    out.line(table.subtotal("total", result["points"], result["max"], indent="  "))
    return result


def prepare_copy(project: str, submission: str, copy: str) -> kits.Matched:
    """Fill `copy` (an empty directory) with the repository, every student file of
    `project` as its starter stub, and over them the student files found in `submission`
    (nothing else from it); returns what was taken, ignored and absent. Raises ValueError
    when `submission` is not a directory. Symbolic links in a submission are ignored."""
    if not os.path.isdir(submission):
        raise ValueError(f"{submission} is not a directory")
    kit = kits.KITS[project]
    for path in kits.repository_files(ROOT):
        os.makedirs(os.path.dirname(os.path.join(copy, path)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), os.path.join(copy, path))
    submitted, links = [], []
    for path in kits.repository_files(submission):
        (links if os.path.islink(os.path.join(submission, path)) else submitted).append(path)
    matched = kits.match_submission(kit, submitted)
    for path in kit.student:
        with open(os.path.join(ROOT, path), encoding="utf-8") as source:
            stub = starter.stub_source(source.read())
        if path in matched.used:
            with open(os.path.join(submission, matched.used[path]), "rb") as taken:
                data = taken.read()
            with open(os.path.join(copy, path), "wb") as target:
                target.write(data)
        else:
            with open(os.path.join(copy, path), "w", encoding="utf-8") as target:
                target.write(stub)
    return kits.Matched(matched.used, sorted(matched.ignored + links), matched.absent)


GRADESCOPE_OUTPUT_CHARS = 4000


def gradescope_results(project: str, result: dict, matched: kits.Matched,
                       seconds: float) -> dict:
    """Gradescope's results.json for one project's grading (pure): a test per group, its
    output the failing assertion and its message; the top output says which files were
    taken, ignored or absent. Fields as Gradescope documents them."""
    tests = []
    for number, row in enumerate(result["rows"], 1):
        if row["status"] == "pass":
            output = "passed"
        elif row["status"] == "missing":
            output = row["reason"]
        else:
            output = row["reason"]
            if row["detail"] and row["detail"] != row["reason"]:
                output += "\n\n" + row["detail"]
        tests.append({
            "name": row["label"], "number": str(number),
            "score": row["points"], "max_score": row["max"],
            "status": "passed" if row["status"] == "pass" else "failed",
            "output": output[:GRADESCOPE_OUTPUT_CHARS], "output_format": "text",
            "visibility": "visible",
            "tags": [project] + ([row["section"]] if row["section"] else [])})
    lines = [f"{result['title']}: {result['points']}/{result['max']}"]
    lines.append("graded from your submission: " + (", ".join(matched.used) or "nothing"))
    if matched.absent:
        lines.append("not in your submission (graded as the starter stub): "
                     + ", ".join(matched.absent))
    if matched.ignored:
        lines.append("ignored (only the student files are graded): "
                     + ", ".join(matched.ignored))
    return {"score": result["points"], "execution_time": round(seconds, 1),
            "output": "\n".join(lines)[:GRADESCOPE_OUTPUT_CHARS], "output_format": "text",
            "visibility": "visible", "stdout_visibility": "visible", "tests": tests}


def grade_submission(args: argparse.Namespace, out: Output) -> dict:
    """Grade `args.submission` as project `args.project`: a temporary copy (see
    prepare_copy), the table, and the copy removed. Returns the project's JSON object with a
    "submission" entry (used, ignored, absent); writes --gradescope's file when asked.
    Raises ValueError for a bad submission directory."""
    start = time.monotonic()
    limits = Limits(seconds=args.group_seconds, memory_mb=args.memory_mb,
                    output_mb=args.output_mb)
    with tempfile.TemporaryDirectory(prefix="grade-submission-") as copy:
        matched = prepare_copy(args.project, caller_path(args.submission), copy)
        out.line(f"submission {args.submission}")
        out.line("  graded: " + (", ".join(f"{s} (from {f})" if s != f else s
                                           for s, f in matched.used.items()) or "nothing"))
        if matched.absent:
            out.line("  absent, graded as the starter stub: " + ", ".join(matched.absent))
        if matched.ignored:
            out.line("  ignored (not a student file): " + ", ".join(matched.ignored))
        result = grade(args.project, out, copy, limits, tuple(args.only), args.jobs)
    result["submission"] = {"used": matched.used, "ignored": matched.ignored,
                            "absent": matched.absent}
    if args.gradescope:
        document = gradescope_results(args.project, result, matched, time.monotonic() - start)
        path = caller_path(args.gradescope)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
    return result


def caller_path(path: str) -> str:
    """`path` as the caller meant it: scripts/grade moves to the repository root and says in
    CALLER_PWD where the caller was."""
    return os.path.join(os.environ.get("CALLER_PWD", os.getcwd()), os.path.expanduser(path))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/grade", description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", default="all", choices=[*PROJECTS, "all"])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--submission", metavar="DIR",
                        help="grade a student's files in DIR instead of our own code")
    parser.add_argument("--gradescope", metavar="RESULTS_JSON",
                        help="with --submission: write Gradescope's results.json here")
    parser.add_argument("--only", metavar="LABEL", action="append", default=[],
                        help="only the groups whose label contains LABEL (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="groups run at a time (default 1)")
    parser.add_argument("--group-seconds", type=float, default=SUBMISSION_LIMITS.seconds,
                        metavar="S", help="with --submission: a group's time limit")
    parser.add_argument("--memory-mb", type=int, default=SUBMISSION_LIMITS.memory_mb,
                        metavar="MB", help="with --submission: a group's memory limit")
    parser.add_argument("--output-mb", type=int, default=SUBMISSION_LIMITS.output_mb,
                        metavar="MB", help="a group's limit on any one file it writes")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    problem = _bad_combination(args)
    if problem:
        print(f"scripts/grade: error: {problem}", file=sys.stderr)
        return 2
    out = Output(args.json)
    document: dict = {}
    if args.submission:
        try:
            document[args.project] = grade_submission(args, out)
        except (ValueError, OSError, SyntaxError) as exc:
            out.clear()
            print(f"scripts/grade: error: {exc}", file=sys.stderr)
            return 2
        chosen = [args.project]
    else:
        chosen = list(PROJECTS) if args.project == "all" else [args.project]
        own = Limits(output_mb=args.output_mb)
        for project in chosen:
            document[project] = grade(project, out, ROOT, own, tuple(args.only), args.jobs)
    total = {"points": sum(d["points"] for d in document.values()),
             "max": sum(d["max"] for d in document.values()),
             "passed": all(d["passed"] for d in document.values())}
    if len(chosen) > 1:
        out.line(f"\ngrand total {total['points']}/{total['max']}")
    out.clear()
    document["total"] = total
    if args.json:
        print(json.dumps(document, indent=2))
    return 0 if total["passed"] else 1


def _bad_combination(args: argparse.Namespace) -> str:
    """Why these arguments cannot go together, or "" (pure)."""
    if args.submission and args.project not in kits.KITS:
        return f"--submission needs one project with a starter kit: {', '.join(kits.KITS)}"
    if args.gradescope and not args.submission:
        return "--gradescope needs --submission"
    if args.jobs < 1 or args.output_mb < 1 or (args.memory_mb or 1) < 1 or \
            (args.group_seconds or 1) <= 0:
        return "--jobs, --group-seconds, --memory-mb and --output-mb must be positive"
    return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
