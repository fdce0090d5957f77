"""csp.Lifecycle (one close shape for every endpoint) and csp.select_case (branch on the case
object, not its position)."""

from __future__ import annotations

import threading

import pytest

import csp
from tests.csp.helpers import nothing_within, recv_within


def test_begin_is_true_exactly_once_among_racing_threads():
    life = csp.Lifecycle()
    start = threading.Barrier(8)
    winners = csp.Chan(None)

    def racer():
        start.wait()
        winners.send(life.begin())

    threads = [csp.go(racer, name=f"test/racer-{i}") for i in range(8)]
    for thread in threads:
        thread.join(10)
    results = [winners.recv()[0] for _ in range(8)]
    assert results.count(True) == 1 and results.count(False) == 7


def test_states_and_channels_move_in_order():
    life = csp.Lifecycle()
    assert repr(life) == "<Lifecycle running>"
    assert not life.is_stopping and not life.is_stopped
    nothing_within(life.stopping, 0.05, "stopping to stay open while running")
    assert life.begin()
    assert life.is_stopping and not life.is_stopped
    assert recv_within(life.stopping) == (None, False)
    assert not life.wait(timeout=0.05)
    life.finish()
    assert life.is_stopped and repr(life) == "<Lifecycle stopped>"
    assert life.wait(timeout=0) and life.wait()


def test_close_once_runs_shut_down_once_and_every_caller_returns_after_it():
    life = csp.Lifecycle()
    release = csp.Chan()
    ran = []

    def shut_down():
        ran.append(threading.current_thread().name)
        release.recv()  # hold the first close open while the others arrive

    returned = csp.Chan(None)

    def closer(i):
        life.close_once(shut_down)
        returned.send((i, life.is_stopped))

    threads = [csp.go(closer, i, name=f"test/closer-{i}") for i in range(4)]
    recv_within(life.stopping)
    nothing_within(returned, 0.1, "no close() to return while the first one runs")
    release.send(None)
    answers = [recv_within(returned)[0] for _ in range(4)]
    for thread in threads:
        thread.join(10)
    assert len(ran) == 1
    assert all(stopped for _, stopped in answers), "a close() returned before the endpoint stopped"
    life.close_once(shut_down)  # long after: returns at once, runs nothing
    assert len(ran) == 1


def test_close_once_finishes_even_when_shut_down_raises():
    life = csp.Lifecycle()

    def broken():
        raise RuntimeError("port already gone")

    with pytest.raises(RuntimeError):
        life.close_once(broken)
    assert life.is_stopped
    life.close_once(broken)  # no second attempt, no exception


def test_select_case_names_the_case_that_ran():
    ready, idle = csp.Chan(1), csp.Chan()
    ready.send("x")
    tick, request = csp.Recv(idle), csp.Recv(ready)
    case, value, ok = csp.select_case(tick, request)
    assert case is request and (value, ok) == ("x", True)
    out = csp.Chan(1)
    put = csp.Send(out, 7)
    case, value, ok = csp.select_case(tick, put)
    assert case is put and (value, ok) == (None, True) and out.recv() == (7, True)


def test_select_case_default_and_closed():
    idle = csp.Chan()
    assert csp.select_case(csp.Recv(idle), default=True) == (None, None, False)
    idle.close()
    case = csp.Recv(idle)
    assert csp.select_case(case, default=True) == (case, None, False)
