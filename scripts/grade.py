"""Grade like the course: run each graded group of tests on its own and print a points table.

    scripts/grade all          every project, then the grand total
    scripts/grade csp|p0|p1|p2|p3

A group earns its points only when every test in it passes, as the course's per-test grading
does. Exit status 0 when every group that exists passed, 1 otherwise, 2 for a bad argument.
Each group runs in a fresh pytest process, so one hang or crash costs only that group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# project -> (title, [(label, [pytest targets], points)]). Later issues add their rows here.
PROJECTS: dict[str, tuple[str, list[tuple[str, list[str], int]]]] = {
    "csp": ("csp: channels, select, timers (the runtime)", [
        ("channels: rendezvous, buffering, close", ["tests/csp/test_chan.py"], 10),
        ("select: readiness, fairness, close, no polling", ["tests/csp/test_select.py"], 10),
        ("timers, go, WaitGroup", ["tests/csp/test_timers_go.py"], 5),
        ("synchronisation rule (no locks outside the runtime)", ["tests/test_sync_rule.py"], 5),
    ]),
    "p0": ("P0: key-value messaging server and Squarer tests", [
        *((f"TestBasic{n}", [f"tests/kv/test_server.py::test_basic{n}"], 1) for n in range(1, 7)),
        *((f"TestCount{n}", [f"tests/kv/test_server.py::test_count{n}"], 1) for n in (1, 2)),
        *((f"TestSlowClient{n}", [f"tests/kv/test_server.py::test_slow_client{n}"], 1)
          for n in (1, 2)),
        ("Squarer tests: pass the correct one, catch every buggy one",
         ["tests/kv/test_squarer_catches_bugs.py"], 5),
    ]),
    "p1": ("P1: Live Sequence Protocol (lsp1-lsp6, a point per course test) and the miner",
           [("collect", [f"tests/lsp/test_lsp{n}.py" for n in range(1, 7)], 1),
            ("miner: hash check values and messages", ["tests/miner/test_bitcoin.py"], 2),
            ("miner: ctest and mtest (course sanity checks)",
             ["tests/miner/test_course_sanity.py"], 6),
            ("miner: scheduler policy (SRTF, faults, chunk sizes)",
             ["tests/miner/test_scheduler.py"], 6),
            ("miner: end to end (kill -9, lost client, fairness, 20% loss)",
             ["tests/miner/test_end_to_end.py"], 10)]),
    "p2": ("P2: Raft (the course's split: part A 45, part B 145, spread over the tests)", [
        *((f"A {name}", [f"tests/raft/{path}::test_{name}"], 9) for path, name in (
            ("test_raft_course.py", "initial_election_2a"),
            ("test_raft_course.py", "re_election_2a"),
            ("test_raft_mit.py", "initial_election_terms_2a"),
            ("test_raft_mit.py", "re_election_full_2a"),
            ("test_raft_mit.py", "many_elections_2a"))),
        *((f"B {name}", [f"tests/raft/test_raft_course.py::test_{name}"], 20) for name in (
            "basic_agree_2b", "fail_agree_2b", "fail_no_agree_2b",
            "concurrent_put_commands_2b")),
        *((f"B {name}", [f"tests/raft/test_raft_mit.py::test_{name}"], 13) for name in (
            "rejoin_2b", "backup_2b", "count_2b", "rpc_bytes_2b",
            "leader_failure_no_majority_2b")),
    ]),
    "p3": ("P3: actors, geo-replicated store, CMUD", [
        *((f"Mailbox{name}", [f"tests/actor/test_mailbox.py::test_mailbox_{test}"], 1)
          for name, test in (("Basic1", "basic1"), ("Basic2", "basic2"), ("Basic3", "basic3"),
                             ("PushBlock", "push_block"), ("PopBlock", "pop_block"),
                             ("ClosePush", "close_push"), ("ClosePop", "close_pop"),
                             ("Multiple", "multiple"))),
        *((f"RemoteTell{name}", [f"tests/actor/test_remote_tell.py::test_remote_tell_{test}"], 1)
          for name, test in (("Basic", "basic"), ("Order", "order"), ("NoBlock", "no_block"))),
    ]),
}


def run_group(targets: list[str]) -> tuple[bool, float, str]:
    """Run one group in its own pytest process: (passed, seconds, last line of output)."""
    start = time.monotonic()
    missing = [t for t in targets if not os.path.exists(os.path.join(ROOT, t.split("::")[0]))]
    if missing:
        return False, 0.0, "missing: " + ", ".join(missing)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets],
        cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode == 0, time.monotonic() - start, lines[-1] if lines else ""


def collect(files: list[str], points: int) -> list[tuple[str, list[str], int]]:
    """One group per test the files define (pytest's collection), `points` each; files not
    written yet contribute nothing."""
    files = [f for f in files if os.path.exists(os.path.join(ROOT, f))]
    if not files:
        return []
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *files], cwd=ROOT, capture_output=True,
                          text=True)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    return [(node.split("::", 1)[1], [node], points) for node in ids]


def grade(project: str) -> tuple[int, int, bool]:
    """Print one project's table; returns (earned, possible, all passed)."""
    title, groups = PROJECTS[project]
    groups = [row for label, targets, points in groups
              for row in (collect(targets, points) if label == "collect"
                          else [(label, targets, points)])]
    print(f"\n{title}")
    if not groups:
        print("  (not built yet: no graded tests)")
        return 0, 0, True
    earned = possible = 0
    ok_all = True
    width = max(len(label) for label, _, _ in groups)
    for label, targets, points in groups:
        ok, seconds, summary = run_group(targets)
        got = points if ok else 0
        earned += got
        possible += points
        ok_all &= ok
        mark = "PASS" if ok else "FAIL"
        print(f"  {label:<{width}}  {mark}  {got:>3}/{points:<3} {seconds:6.1f}s  {summary}")
    print(f"  {'total':<{width}}        {earned:>3}/{possible:<3}")
    return earned, possible, ok_all


def main(argv: list[str]) -> int:
    choice = argv[0] if argv else "all"
    if choice not in PROJECTS and choice != "all" or len(argv) > 1:
        print(f"usage: scripts/grade [{'|'.join(PROJECTS)}|all]", file=sys.stderr)
        return 2
    chosen = list(PROJECTS) if choice == "all" else [choice]
    earned = possible = 0
    ok_all = True
    for project in chosen:
        e, p, ok = grade(project)
        earned, possible, ok_all = earned + e, possible + p, ok_all and ok
    if len(chosen) > 1:
        print(f"\ngrand total {earned}/{possible}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
