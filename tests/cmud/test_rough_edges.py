"""Rough edges a new user hit with the store's commands: a port range past 65535, a shell or
status pointed at a server's first port or at nobody, and a server that logged the same lost
connection twice a second while its peer was down."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import csp
import rpc
from actor.system import LinkReport
from cmud.client import Client, NotAQueryActor, RoundRobinRouter
from cmud.server import MAX_PORT, new_server, port_range_problem
from cmud.status import query_status
from tests.cmud.harness import PORTS
from tests.waiting import wait_until

WIDE = {**os.environ, "COLUMNS": "300"}   # typer's error box unwrapped, for the asserts


def cmud(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmud", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env=WIDE)


# ---- the port range ------------------------------------------------------------------------------

@pytest.mark.parametrize("start, count, fine", [
    (65533, 2, True), (65534, 1, True), (1, 1, True),
    (65535, 2, False), (65535, 1, False), (65534, 2, False), (0, 1, False), (-5, 1, False),
    (70000, 1, False)])
def test_the_whole_port_range_is_checked_first(start, count, fine):
    problem = port_range_problem(start, count)
    assert (problem == "") == fine
    if not fine:
        with pytest.raises(ValueError, match="port"):
            new_server(start, count, [])


def test_a_range_past_the_last_port_is_a_usage_error_not_a_traceback():
    result = cmud("server", "--port", str(MAX_PORT), "--count", "2")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Error" not in result.stdout
    assert f"{MAX_PORT}..{MAX_PORT + 2}" in result.stderr
    assert f"at most {MAX_PORT - 2}" in result.stderr
    zero = cmud("server", "--port", "6000", "--count", "0")
    assert zero.returncode == 2 and "Traceback" not in zero.stderr


# ---- a shell or status at the wrong address ------------------------------------------------------

@pytest.fixture
def server():
    running, _ = new_server(PORTS.block(), 2, [])
    yield running
    running.close()


def test_the_first_port_is_named_as_the_actor_system(server):
    first = server.system.address
    port = int(first.rpartition(":")[2])
    hint = f"{first} is a cmud server's actor system; its query actors listen on the next " \
           f"ports ({port + 1}, ...)"
    client = Client(RoundRobinRouter([first]), timeout=10)
    try:
        with pytest.raises(NotAQueryActor) as caught:
            client.get("k")
        assert str(caught.value) == hint
    finally:
        client.close()
    [row] = query_status([first])
    assert row["error"] == hint
    result = cmud("shell", first, stdin="put k v\n")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {hint}"]
    status = cmud("status", first)
    assert status.returncode == 1 and hint in status.stdout


def test_an_rpc_server_without_the_query_service_is_not_called_an_actor_system():
    class Echo:
        def echo(self, text):
            return text

    other = rpc.Server()
    other.register(Echo())
    other.listen(0, "127.0.0.1")
    addr = f"127.0.0.1:{other.port}"
    client = Client(RoundRobinRouter([addr]), timeout=10)
    try:
        with pytest.raises(rpc.RemoteError) as caught:
            client.get("k")
        assert type(caught.value) is rpc.RemoteError and "QueryReceiver" in str(caught.value)
        [row] = query_status([addr])
        assert "actor system" not in row["error"] and "QueryStatus" in row["error"]
    finally:
        client.close()
        other.close()


def test_a_shell_at_a_dead_address_fails_at_start():
    dead = PORTS.block()   # a block of free ports: nobody listens on it
    result = cmud("shell", f"127.0.0.1:{dead}", stdin="put k v\nget k\n")
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: cannot connect to 127.0.0.1:{dead}")


def test_a_shell_at_a_query_actor_starts(server):
    result = cmud("shell", server.query_addrs[0], stdin="put k v\nget k\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok", "v"] and result.stderr == ""


# ---- a lost peer is logged on change, not twice a second -----------------------------------------

events = st.lists(st.booleans(), max_size=200)   # True: a batch got through; False: lost


@given(events)
def test_link_report_says_each_change_of_state_once(outcomes):
    link = LinkReport()
    news = []
    for delivered in outcomes:
        if (link.delivered() if delivered else link.lost()):
            news.append(delivered)
    # the news alternates, starting with a loss (a link starts as working) ...
    assert news == [i % 2 == 1 for i in range(len(news))]
    # ... and there is one item per change of state
    states = [True] + outcomes
    assert len(news) == sum(a != b for a, b in zip(states, states[1:]))
    assert link.down == (not states[-1])


def test_a_long_outage_is_one_line_however_many_batches_it_drops():
    link = LinkReport()
    assert link.lost() and not any(link.lost() for _ in range(10_000))
    assert link.delivered() and not any(link.delivered() for _ in range(10_000))


def test_a_server_whose_peer_is_down_says_so_once_and_once_when_it_is_back(caplog):
    caplog.set_level(logging.WARNING, logger="actor")
    peer_port = PORTS.block()
    peer, peer_desc = new_server(peer_port, 1, [])
    server, _ = new_server(PORTS.block(), 1, [peer_desc])
    peer_again = None
    peer_addr = peer.system.address

    def lines(word: str) -> list[str]:
        about_peer = f"{server.system.address}: remote tells to {peer_addr} "
        return [r.getMessage() for r in caplog.records if r.name == "actor"
                and r.getMessage().startswith(about_peer) and word in r.getMessage()]

    try:
        writer = Client(RoundRobinRouter(server.query_addrs))
        reader = Client(RoundRobinRouter(peer.query_addrs))
        try:   # the link works: a Put crosses it
            writer.put("k", "v")
            wait_until(lambda: reader.get("k") == ("v", True), "the Put crossing the link")
        finally:
            writer.close()
            reader.close()
        assert lines("are dropped:") == []
        peer.close()
        wait_until(lambda: lines("are dropped:"), "the lost peer reported")
        csp.after(2.0).recv()   # a window of heartbeats (2 a second) that all fail
        assert len(lines("are dropped:")) == 1, lines("are dropped:")

        peer_again, _ = new_server(peer_port, 1, [])   # the same ports, the same sync actor
        wait_until(lambda: lines("get through again"), "the return reported")
        csp.after(1.0).recv()
        assert len(lines("get through again")) == 1 and len(lines("are dropped:")) == 1
        peer_again.close()
        wait_until(lambda: len(lines("are dropped:")) == 2, "the second outage said")
        csp.after(1.0).recv()
        assert len(lines("are dropped:")) == 2 and len(lines("get through again")) == 1
    finally:
        server.close()
        peer.close()
        if peer_again is not None:
            peer_again.close()


def test_a_handler_set_with_on_error_still_gets_every_lost_batch():
    import actor
    system = actor.ActorSystem(0)
    probe = actor.ActorSystem(0)
    dead = probe.address
    probe.close()
    errors = []
    system.on_error(errors.append)
    try:
        for i in range(3):
            system.tell(actor.ActorRef(dead, 0), i)
            wait_until(lambda: len(errors) > i, f"tell {i} reported")
        assert len(errors) == 3 and all(isinstance(e, rpc.ConnectionLost) for e in errors)
    finally:
        system.close()
