"""The store's commands: the shell's lines, `status` (table and --json), `server` errors.
(More of the commands' rough edges: tests/cmud/test_rough_edges.py.)"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time

import pytest

import csp
import rpc
from cmud import shell
from cmud.server import new_server, parse_desc
from cmud.status import query_status, render_table
from tests.cmud.harness import PORTS


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.data: dict[str, str] = {}
        self.fail = fail

    def _check(self):
        if self.fail:
            raise rpc.ConnectionLost("down")

    def get(self, key):
        self._check()
        return (self.data[key], True) if key in self.data else ("", False)

    def put(self, key, value):
        self._check()
        self.data[key] = value

    def list(self, prefix):
        self._check()
        return {k: v for k, v in self.data.items() if k.startswith(prefix)}


def run_shell(client, text: str) -> str:
    out = io.StringIO()
    assert shell.run(client, io.StringIO(text), out) == 0
    return out.getvalue()


def test_shell_get_put_list():
    client = FakeClient()
    out = run_shell(client, "put a hello  world\nget a\nget b\nPUT b 2\nlist\nlist b\n")
    assert client.data == {"a": "hello  world", "b": "2"}
    assert out.splitlines() == ["ok", "hello  world", "(not found)", "ok",
                                "a = hello  world", "b = 2", "(2 entries)", "b = 2", "(1 entry)"]


@pytest.mark.parametrize("line", ["", "   ", "get", "list a b", "frobnicate x", "x" * 100_000,
                                  "\x00\x1b[2J", "put k", "put k   ", "put", "put \udcff v",
                                  "put k \udcff"])
def test_shell_bad_lines_change_nothing(line):
    client = FakeClient()
    out = run_shell(client, line + "\nquit\nput never 1\n")
    assert client.data == {}
    assert "Traceback" not in out


def test_shell_put_needs_a_key_and_a_value_and_says_so():
    client = FakeClient()
    out = run_shell(client, "put k\nput k \t \nput k v\nhelp\n")
    lines = out.splitlines()
    assert lines[0] == lines[1] == shell.USAGE["put"] and "cannot be empty" in lines[0]
    assert lines[2] == "ok" and client.data == {"k": "v"}
    assert "not empty" in lines[3]   # the help says it too


def test_shell_refuses_lines_that_are_not_utf8_and_goes_on():
    client = FakeClient()
    raw = io.TextIOWrapper(io.BytesIO(b"put a \xff\xfe\n\xc3\nput b caf\xc3\xa9\nget b\n"),
                           encoding="utf-8")
    out = io.StringIO()
    assert shell.run(client, raw, out) == 0
    assert out.getvalue().splitlines() == [shell.NOT_UTF8, shell.NOT_UTF8, "ok", "caf\u00e9"]
    assert client.data == {"b": "caf\u00e9"}
    # a text stream that let the bytes through as surrogates (surrogateescape) says the same
    assert run_shell(client, "put a \udcff\n").splitlines() == [shell.NOT_UTF8]
    assert client.data == {"b": "caf\u00e9"}


def test_shell_failed_query_prints_one_line_and_goes_on():
    out = run_shell(FakeClient(fail=True), "get a\nput a 1\nhelp\n")
    lines = out.splitlines()
    assert lines[0].startswith("error: get failed") and lines[1].startswith("error: put failed")
    assert lines[2].startswith("commands:")


def test_status_table_and_json_of_a_running_server():
    server, _ = new_server(PORTS.block(), 2, [])
    try:
        from cmud.client import Client, RoundRobinRouter
        client = Client(RoundRobinRouter(server.query_addrs[:1]))
        client.put("k", "v")
        client.close()
        # actor 1 receives actor 0's batch within a flush; actor 0 sent it and received none.
        # The rows are asked one after the other, so a flush may fall between two of them:
        # wait until one answer shows both ends of it.
        deadline = time.monotonic() + 10
        while True:
            rows = query_status(server.query_addrs + ["127.0.0.1:1"])
            flushed = rows[0]["sync_messages_out"] > 0 and rows[1]["last_sync_in_age_ms"] is not None
            if flushed or time.monotonic() > deadline:
                break
            csp.after(0.02).recv()
        assert rows[0]["puts_accepted"] == 1 and rows[0]["keys"] == 1
        assert rows[0]["actor"] == f"{server.system.address}/0"
        # one batch, to actor 1 and to the sync actor
        assert rows[0]["sync_messages_out"] == 2 and rows[0]["last_sync_in_age_ms"] is None
        assert rows[1]["sync_messages_in"] == 1 and rows[1]["last_sync_in_age_ms"] >= 0
        assert "error" in rows[2]
        table = render_table(rows)
        assert server.query_addrs[0] in table and "error" in table
        header, first, second = table.splitlines()[:3]
        assert header.endswith("last sync in") and first.endswith("never")
        assert second.endswith(" ms") and len(header) == len(first) == len(second)
        result = subprocess.run([sys.executable, "-m", "cmud", "status", "--json",
                                 *server.query_addrs], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        parsed = json.loads(result.stdout)
        assert [row["addr"] for row in parsed] == server.query_addrs
        assert "last_sync_age_ms" not in parsed[0] and parsed[0]["last_sync_in_age_ms"] is None
        assert type(parsed[1]["last_sync_in_age_ms"]) is int
    finally:
        server.close()


def test_desc_round_trip_and_bad_descs():
    server, desc = new_server(PORTS.block(), 1, [])
    try:
        assert parse_desc(desc) == server.sync_ref
    finally:
        server.close()
    for bad in ["", "{}", "[1]", '{"sync": ["a"]}', '{"sync": [1, 2]}', "not json"]:
        with pytest.raises(ValueError, match="not a server desc"):
            parse_desc(bad)


def test_server_command_errors_are_clear():
    bad = subprocess.run([sys.executable, "-m", "cmud", "server", "--port", "1", "nonsense"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "not a server desc" in bad.stderr
    base = PORTS.block()
    taken = socket.socket()
    taken.bind(("127.0.0.1", base + 1))
    taken.listen()
    try:
        busy = subprocess.run([sys.executable, "-m", "cmud", "server", "--port", str(base)],
                              capture_output=True, text=True, timeout=30)
    finally:
        taken.close()
    assert busy.returncode == 1 and "cannot start a server" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_new_server_frees_every_port_when_one_is_taken():
    base = PORTS.block()
    taken = socket.socket()
    taken.bind(("127.0.0.1", base + 3))
    taken.listen()
    try:
        with pytest.raises(OSError):
            new_server(base, 4, [])
    finally:
        taken.close()
    server, _ = new_server(base, 4, [])   # everything it opened was closed
    server.close()
