"""`python -m raft status --json` and `raft cluster` as scripts use them: one JSON document with
an object per node (an "error" member for a node that did not answer), and piped cluster output
made of plain lines only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from raft.client import local_addresses

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE_SECONDS = 30


def raft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raft", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=DEADLINE_SECONDS,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_status_json_with_every_node_unreachable_is_one_document_and_exit_1():
    addresses = local_addresses(2)   # free ports: nobody listens
    proc = raft("status", "--json", "--peers", ",".join(addresses))
    assert proc.returncode == 1
    rows = json.loads(proc.stdout)
    assert [(row["id"], row["address"]) for row in rows] == list(enumerate(addresses))
    assert all("unreachable" in row["error"] for row in rows)


def test_status_json_of_a_live_node_and_a_dead_one():
    addresses = local_addresses(2)
    node = subprocess.Popen([sys.executable, "-m", "raft", "node", "--id", "0", "--peers",
                             ",".join(addresses), "--in-memory"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert "listening" in node.stdout.readline()
        proc = raft("status", "--json", "--peers", ",".join(addresses))
        assert proc.returncode == 0, proc.stderr
        live, dead = json.loads(proc.stdout)
        assert live["id"] == 0 and live["role"] in ("follower", "candidate")
        assert {"term", "commit_index", "last_applied", "last_index", "leader"} <= set(live)
        assert "error" not in live and "error" in dead
        table = raft("status", "--peers", ",".join(addresses))
        assert table.stdout.splitlines()[0].split() == ["id", "role", "term", "commit", "last",
                                                        "leader"]
    finally:
        node.terminate()
        node.wait(DEADLINE_SECONDS)


def test_cluster_piped_prints_plain_lines_and_elects_a_leader(tmp_path):
    proc = raft("cluster", "--nodes", "3", "--seconds", "8", "--data-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout and "\033" not in proc.stdout
    assert re.search(r"^\d\d:\d\d:\d\d node \d: leader term \d+$", proc.stdout, re.MULTILINE), \
        proc.stdout
    # A directory the user gave is kept, with the nodes' state in it, and the output says so.
    assert f"state in {tmp_path} (kept at exit)\n" in proc.stdout
    assert os.listdir(tmp_path), "the nodes wrote no state into --data-dir"
