"""`python -m raft cluster` and `python -m raft submit` as a user runs them: the cluster prints
each node's id, address and PID and where its state is, and removes the temporary state
directory it made; submit says on standard error what it is waiting for when no leader answers,
keeps to its deadline, and ends with one clear error line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from raft.client import NoLeader, local_addresses, submit
from tests.processes import ROOT, pid_alive, read_until, stop

DEADLINE_SECONDS = 60   # process starts and an election on a loaded machine included


def raft_env(**extra: str) -> dict:
    return dict(os.environ, PYTHONPATH=ROOT, **extra)


def exec_arguments(pid: int) -> list[bytes]:
    """The argv of process `pid` from /proc, once its exec has set them up. Popen returns
    when the child's exec has passed the point of no return, but the kernel fills in the new
    argument area a moment later: in between, /proc/PID/cmdline reads empty (seen on a loaded
    machine), so an empty read is asked again until the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
        if args != [b""] or time.monotonic() > deadline:
            return args
        time.sleep(0.01)   # the kernel's exec in progress: nothing to wait on


def test_cluster_prints_each_nodes_pid_and_removes_its_temporary_state(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "raft", "cluster", "--nodes", "3",
                             "--seconds", "4"], cwd=ROOT, bufsize=0, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=raft_env(TMPDIR=str(tmp_path)))
    pids = []
    try:
        peers_line, state_line, *node_lines = read_until(proc, "node 2  ")
        peers = peers_line.removeprefix("peers ").split(",")
        state = re.fullmatch(r"state in (.+) \(a temporary directory, removed at exit; "
                             r"--data-dir keeps the state\)", state_line)
        assert state, state_line
        state_dir = state.group(1)
        assert os.path.dirname(state_dir) == str(tmp_path) and os.path.isdir(state_dir)
        for i, line in enumerate(node_lines):
            node = re.fullmatch(rf"node {i}  (\S+)  pid (\d+)", line)
            assert node, line
            assert node.group(1) == peers[i]
            pids.append(int(node.group(2)))
        if os.path.isdir("/proc"):   # the PID is that node's process
            for i, pid in enumerate(pids):
                args = exec_arguments(pid)
                assert b"-m" in args, args
                assert [b"raft", b"node", b"--id", str(i).encode()] == \
                    args[args.index(b"-m") + 1:args.index(b"-m") + 5], args
        returncode = proc.wait(DEADLINE_SECONDS)
        err = proc.stderr.read().decode()
    finally:
        stop(proc)           # SIGTERM first: the cluster command stops its nodes
        proc.stderr.close()
        for pid in pids:     # a failed test must not leave the cluster's nodes behind
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert returncode == 0, err
    assert not os.path.exists(state_dir), "the temporary state directory was left behind"
    assert os.listdir(tmp_path) == []


def test_submit_with_nobody_answering_says_what_it_waits_for_then_one_error_line():
    addresses = local_addresses(3)   # free ports: nobody listens
    proc = subprocess.run([sys.executable, "-m", "raft", "submit", "hello", "--peers",
                           ",".join(addresses), "--wait-seconds", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=DEADLINE_SECONDS,
                          env=raft_env())
    assert proc.returncode == 1
    assert proc.stdout == ""
    waiting, error = proc.stderr.splitlines()
    assert waiting.startswith("waiting for a leader among 3 peers (up to 1 s; node 0: "), waiting
    assert error.startswith("error: no leader committed the commands within 1 s; last "
                            "answers: node 0: "), error
    assert all(f"node {i}: cannot connect to {address}" in error
               for i, address in enumerate(addresses)), error


def test_submit_keeps_to_its_deadline_and_reports_waiting_once():
    waits: list[str] = []
    started = time.monotonic()
    with pytest.raises(NoLeader, match=r"within 0\.5 s; last answers: node 0: .*; node 1: "):
        submit(local_addresses(2), ["x"], deadline_seconds=0.5, on_wait=waits.append)
    assert time.monotonic() - started < 5.0   # not the 15 s default, nor a 6 s call timeout
    assert len(waits) == 1 and waits[0].startswith("node 0: cannot connect"), waits


def test_submit_to_a_lone_node_commits_once_it_leads():
    address = local_addresses(1)
    node = subprocess.Popen([sys.executable, "-m", "raft", "node", "--id", "0", "--peers",
                             address[0], "--in-memory"], cwd=ROOT, bufsize=0,
                            stdout=subprocess.PIPE, env=raft_env())
    try:
        read_until(node, "node 0 listening on ")
        proc = subprocess.run([sys.executable, "-m", "raft", "submit", "hello", "--peers",
                               address[0], "--wait-seconds", str(DEADLINE_SECONDS)], cwd=ROOT,
                              capture_output=True, text=True, timeout=DEADLINE_SECONDS * 2,
                              env=raft_env())
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "committed at index 1 (leader: node 0)\n"
        # Before its election the node knows no leader: at most the one waiting line.
        waiting = proc.stderr.splitlines()
        assert len(waiting) <= 1 and all(line.startswith("waiting for a leader among 1 peer ")
                                         for line in waiting), proc.stderr
    finally:
        node.terminate()
        node.wait(DEADLINE_SECONDS)
        node.stdout.close()
