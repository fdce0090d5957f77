"""The load generator: its progress callback sees the operations grow while the load runs, and
`python -m kv load` piped prints only its result line (no progress, no carriage return), or
with --json one JSON document."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from kv import KeyValueServer, KVStore
from kv.loadgen import run_load
from tests.kv.kvclient import close_server_within

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def server():
    kv_server = KeyValueServer(KVStore())
    kv_server.start(0)
    try:
        yield kv_server
    finally:
        close_server_within(kv_server)


def test_progress_is_reported_on_the_callers_thread_and_grows(server):
    seen: list[tuple[int, float]] = []
    result = run_load("127.0.0.1", server.port, 2, 1.0, 30,
                      progress=lambda ops, elapsed: seen.append((ops, elapsed)),
                      progress_every=0.2)
    assert len(seen) >= 2, seen
    assert [ops for ops, _ in seen] == sorted(ops for ops, _ in seen)
    assert 0 < seen[-1][0] <= result.operations


def test_piped_load_prints_one_plain_result_line(server):
    proc = subprocess.run([sys.executable, "-m", "kv", "load", f"127.0.0.1:{server.port}",
                           "--clients", "2", "--seconds", "0.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout
    assert re.fullmatch(r"\d+ operations in [\d.]+ s from 2 clients: [\d,]+ ops/s\n",
                        proc.stdout), proc.stdout


def test_load_json_is_one_document_with_the_figures(server):
    proc = subprocess.run([sys.executable, "-m", "kv", "load", f"127.0.0.1:{server.port}",
                           "--clients", "2", "--seconds", "0.5", "--pipeline", "9", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert set(document) == {"address", "clients", "pipeline", "seconds", "operations",
                             "ops_per_s"}
    assert document["address"] == f"127.0.0.1:{server.port}"
    assert (document["clients"], document["pipeline"]) == (2, 9)
    assert document["operations"] > 0 and document["seconds"] >= 0.5
    assert document["ops_per_s"] == pytest.approx(document["operations"] / document["seconds"],
                                                  rel=0.01)


def test_load_of_an_address_nobody_listens_on_is_one_error_line():
    kv_server = KeyValueServer(KVStore())
    kv_server.start(0)
    port = kv_server.port
    close_server_within(kv_server)   # now nobody listens on `port`
    proc = subprocess.run([sys.executable, "-m", "kv", "load", f"127.0.0.1:{port}",
                           "--seconds", "0.5", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert re.fullmatch(rf"error: cannot load 127\.0\.0\.1:{port}: .+\n", proc.stderr), \
        proc.stderr
