"""The linearizability checker (kvraft/linearizability.py) on histories whose answer is known:
labelled ones built by hand (the classic stale read, the duplicated append, a value no write
produced, overlapping operations that are fine, operations that never returned), histories a
sequential model produced (always accepted, and refused once a get returns a value nobody
wrote), agreement with a brute-force search over every order on small random histories, the
explanation's timeline, and the time limit answering "unknown" on a crafted hard history."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvraft.history import Operation
from kvraft.linearizability import CheckResult, assert_linearizable, check

MS = 1_000_000  # nanoseconds


def op(client, kind, key, value="", output="", call_ms=0, return_ms=None, returned=True):
    """An operation with times in milliseconds; `returned=False` makes it one that never
    returned (output None)."""
    if not returned:
        return Operation(client, kind, key, value, None, call_ms * MS, None)
    return Operation(client, kind, key, value, output, call_ms * MS, return_ms * MS)


def put(client, key, value, call_ms, return_ms, returned=True):
    return op(client, "put", key, value, "", call_ms, return_ms, returned)


def append(client, key, value, call_ms, return_ms, returned=True):
    return op(client, "append", key, value, "", call_ms, return_ms, returned)


def get(client, key, output, call_ms, return_ms, returned=True):
    return op(client, "get", key, "", output, call_ms, return_ms, returned)


# ---- labelled histories ----------------------------------------------------------------------

LINEARIZABLE = {
    "empty history": [],
    "absent key reads empty": [get(0, "x", "", 0, 1)],
    "sequential put then get": [put(0, "x", "a", 0, 1), get(0, "x", "a", 2, 3)],
    "sequential appends": [append(0, "x", "a", 0, 1), append(1, "x", "b", 2, 3),
                           get(2, "x", "ab", 4, 5)],
    "put replaces appends": [append(0, "x", "a", 0, 1), put(1, "x", "z", 2, 3),
                             append(0, "x", "q", 4, 5), get(2, "x", "zq", 6, 7)],
    "empty key and empty value": [put(0, "", "", 0, 1), append(0, "", "", 2, 3),
                                  get(1, "", "", 4, 5)],
    "get overlapping a put may read the old value": [
        put(0, "x", "a", 0, 1), put(1, "x", "b", 2, 10), get(2, "x", "a", 3, 4)],
    "get overlapping a put may read the new value": [
        put(0, "x", "a", 0, 1), put(1, "x", "b", 2, 10), get(2, "x", "b", 3, 4)],
    "concurrent puts in either order": [
        put(0, "x", "a", 0, 10), put(1, "x", "b", 1, 9), get(2, "x", "a", 11, 12)],
    "concurrent appends in the order a later read shows": [
        append(0, "x", "a", 0, 10), append(1, "x", "b", 1, 9), get(2, "x", "ba", 11, 12)],
    "reads old, then new, around a long put": [
        put(0, "x", "a", 0, 1), put(1, "x", "b", 2, 20), get(2, "x", "a", 3, 4),
        get(2, "x", "b", 5, 6), get(3, "x", "b", 7, 8)],
    "touching intervals count as concurrent": [
        put(0, "x", "a", 0, 5), get(1, "x", "", 5, 6)],
    "an append that never returned, seen later": [
        append(0, "x", "a", 0, 0, returned=False), get(1, "x", "a", 5, 6)],
    "an append that never returned, never seen": [
        append(0, "x", "a", 0, 0, returned=False), get(1, "x", "", 5, 6),
        get(1, "x", "", 7, 8)],
    "a put that never returned takes effect late": [
        put(0, "x", "a", 0, 1), put(1, "x", "b", 2, 2, returned=False),
        get(2, "x", "a", 10, 11), get(2, "x", "b", 12, 13)],
    "a get that never returned observed nothing": [
        put(0, "x", "a", 0, 1), get(1, "x", "", 2, 2, returned=False)],
    "keys are independent": [
        put(0, "x", "a", 0, 10), put(1, "y", "b", 0, 10), get(2, "x", "a", 11, 12),
        get(2, "y", "b", 13, 14)],
}

NOT_LINEARIZABLE = {
    "stale read": [put(0, "x", "a", 0, 1), put(1, "x", "b", 2, 3), get(2, "x", "a", 4, 5)],
    "duplicated append": [append(0, "x", "a", 0, 1), get(1, "x", "aa", 2, 3)],
    "value no write produced": [put(0, "x", "a", 0, 1), get(1, "x", "q", 2, 3)],
    "absent key read after a put returned": [put(0, "x", "a", 0, 1), get(1, "x", "", 2, 3)],
    "new then old while a put is in flight": [
        put(0, "x", "a", 0, 1), put(1, "x", "b", 2, 20), get(2, "x", "b", 3, 4),
        get(3, "x", "a", 5, 6)],
    "appends in an order their intervals forbid": [
        append(0, "x", "a", 0, 1), append(1, "x", "b", 2, 3), get(2, "x", "ba", 4, 5)],
    "an append lost although it returned": [
        append(0, "x", "a", 0, 1), append(1, "x", "b", 2, 3), get(2, "x", "b", 4, 5)],
    "a put that never returned seen before its call": [
        get(0, "x", "a", 0, 1), put(1, "x", "a", 2, 2, returned=False)],
    "two readers disagree on the order": [
        append(0, "x", "a", 0, 10), append(1, "x", "b", 0, 10), get(2, "x", "ab", 11, 12),
        get(3, "x", "ba", 13, 14)],
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_linearizable_history_is_accepted(name):
    result = check(LINEARIZABLE[name])
    assert result.verdict == "ok", result.explanation
    assert result and result.key is None and result.explanation == ""


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_history_that_is_not_linearizable_is_refused(name):
    result = check(NOT_LINEARIZABLE[name])
    assert result.verdict == "illegal"
    assert not result
    assert result.key == "x"
    assert "not linearizable" in result.explanation


def test_the_failing_key_is_named_among_good_ones():
    history = (LINEARIZABLE["sequential appends"]
               + [put(5, "bad", "a", 0, 1), put(5, "bad", "b", 2, 3), get(6, "bad", "a", 4, 5)]
               + [put(7, "z", "q", 0, 1)])
    result = check(history)
    assert result.verdict == "illegal" and result.key == "bad"


# ---- the explanation -------------------------------------------------------------------------

def test_stale_read_explanation_shows_the_prefix_and_the_operation_that_cannot_follow():
    result = check(NOT_LINEARIZABLE["stale read"])
    lines = result.explanation.splitlines()
    assert "get('x') -> 'a' by client 2 cannot follow" in lines[0]
    assert "(2 of 3 operations)" in lines[0] and "the value is 'b'" in lines[0]
    rows = [line.split() for line in lines if line.strip()[:1] in ("1", "2", "!")]
    assert [row[0] for row in rows] == ["1", "2", "!"]
    assert [row[1] for row in rows] == ["0", "1", "2"]   # the clients
    assert rows[0][2:4] == ["0.000", "1.000"] and rows[2][2:4] == ["4.000", "5.000"]
    assert "put('x', 'a')" in lines[2] and "-> 'a'" in lines[2]
    assert "get('x') -> 'a'" in lines[4]


def test_explanation_draws_intervals_in_time_order():
    result = check(NOT_LINEARIZABLE["stale read"])
    bars = [line for line in result.explanation.splitlines() if "[" in line]
    starts = [line.index("[") for line in bars]
    assert starts == sorted(starts) and len(set(starts)) == 3


def test_explanation_marks_operations_that_never_returned():
    history = NOT_LINEARIZABLE["a put that never returned seen before its call"]
    explanation = check(history).explanation
    row = next(line for line in explanation.splitlines() if "put('x', 'a')" in line)
    assert row.split()[3] == "never" and "(never returned)" in row
    assert row.rstrip().count(">") >= 3 or "[>" in row   # its bar runs to the right edge


def test_explanation_of_a_long_key_stays_short():
    history = [append(0, "k", "a", 10 * i, 10 * i + 5) for i in range(300)]
    history.append(get(1, "k", "a" * 299 + "b", 3000, 3001))
    result = check(history)
    assert result.verdict == "illegal"
    lines = result.explanation.splitlines()
    assert len(lines) < 60
    assert "(300 of 301 operations)" in lines[0]
    assert "not shown" in result.explanation
    assert "(300 chars)" in lines[0]   # the long value is cut, its length said


def test_assert_linearizable_raises_with_the_explanation():
    assert_linearizable(LINEARIZABLE["sequential appends"])
    with pytest.raises(AssertionError, match="cannot follow"):
        assert_linearizable(NOT_LINEARIZABLE["duplicated append"])


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (Operation(0, "cas", "x", "a", "", 0, 1), "unknown kind 'cas'"),
    (Operation(0, "put", "x", "a", "", 5, 1), "before its call"),
    (Operation(0, "put", "x", 7, "", 0, 1), "value must be a str"),
    (Operation(0, "get", b"x", "", "", 0, 1), "key must be a str"),
])
def test_malformed_operation_is_refused_with_one_line(bad, message):
    with pytest.raises(ValueError, match=message) as raised:
        check([bad])
    assert "\n" not in str(raised.value)


# ---- the time limit --------------------------------------------------------------------------

def hard_history(appends: int) -> list[Operation]:
    """`appends` concurrent appends of distinct letters and a put of "imp" concurrent with
    all, then a read of "impossible", which no order gives. The put keeps that read looking
    reachable until it is placed, so refusing the read means trying every order of the
    appends before it: more than appends! of them."""
    letters = "acdfghjknqrtuvwxyz"
    history = [append(i, "k", letters[i], i, 100 + i) for i in range(appends)]
    history.append(put(98, "k", "imp", 0, 300))
    history.append(get(99, "k", "impossible", 200, 201))
    return history


def test_time_limit_answers_unknown_on_a_hard_history():
    started = time.monotonic()
    result = check(hard_history(12), timeout_seconds=0.5)
    elapsed = time.monotonic() - started
    assert result.verdict == "unknown" and not result
    assert result.key == "k"
    assert "timed out" in result.explanation
    assert elapsed < 10.0   # the limit is kept (generous for a loaded machine)


def test_the_same_hard_shape_small_enough_is_decided():
    assert check(hard_history(5), timeout_seconds=30).verdict == "illegal"


def test_unknown_is_a_failure_for_assert_linearizable():
    with pytest.raises(AssertionError, match="timed out"):
        assert_linearizable(hard_history(12), timeout_seconds=0.3)


def test_result_is_true_only_when_ok():
    assert CheckResult("ok")
    assert not CheckResult("illegal", "k", "x")
    assert not CheckResult("unknown", "k", "x")


# ---- histories from a sequential model -------------------------------------------------------

@st.composite
def model_histories(draw, max_operations=40):
    """A history made by running random operations one after another on the model, each at
    its own instant (10 ms apart), then drawing an interval around each instant (so intervals
    overlap). Some operations never return: they took effect (or, for put and append,
    sometimes never did)."""
    count = draw(st.integers(1, max_operations))
    keys = draw(st.lists(st.sampled_from("xyz"), min_size=1, max_size=3, unique=True))
    values: dict[str, str] = {}
    history = []
    for i in range(count):
        kind = draw(st.sampled_from(["get", "get", "put", "append", "append"]))
        key = draw(st.sampled_from(keys))
        value = "" if kind == "get" else draw(st.text("abc", max_size=2))
        returned = draw(st.integers(0, 9)) > 0
        took_effect = returned or kind == "get" or draw(st.booleans())
        output = ""
        if took_effect:
            if kind == "get":
                output = values.get(key, "")
            elif kind == "put":
                values[key] = value
            else:
                values[key] = values.get(key, "") + value
        instant_ms = 10 * i + 10
        call_ms = instant_ms - draw(st.integers(0, 25))
        return_ms = instant_ms + draw(st.integers(0, 25))
        client = draw(st.integers(0, 4))
        history.append(op(client, kind, key, value, output, call_ms, return_ms, returned))
    return draw(st.permutations(history))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_histories())
def test_a_history_the_model_produced_is_accepted(history):
    result = check(history, timeout_seconds=60)
    assert result.verdict == "ok", result.explanation


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_histories(), st.data())
def test_a_get_of_a_value_no_write_produced_is_refused(history, data):
    gets = [i for i, o in enumerate(history) if o.kind == "get" and o.returned]
    if gets:
        chosen = data.draw(st.sampled_from(gets))
    else:
        history = history + [get(9, history[0].key, "", 10_000, 10_001)]
        chosen = len(history) - 1
    bad = history[chosen]
    garbled = data.draw(st.text("abc", max_size=2))
    spot = data.draw(st.integers(0, len(garbled)))
    history = list(history)
    history[chosen] = Operation(bad.client_id, "get", bad.key, "",
                                garbled[:spot] + "W" + garbled[spot:], bad.call_nanos,
                                bad.return_nanos)
    result = check(history, timeout_seconds=60)
    assert result.verdict == "illegal"
    assert result.key == bad.key


# ---- agreement with brute force on small random histories ------------------------------------

def brute_force_linearizable(history: list[Operation]) -> bool:
    """Try every order of every allowed subset: returned operations all, never-returned
    put/append in or out (never-returned gets observed nothing), keeping real-time order (a
    before b when a returned strictly before b was called) and the model's answers."""
    must = [o for o in history if o.returned]
    maybe = [o for o in history if not o.returned and o.kind != "get"]
    for chosen in itertools.chain.from_iterable(
            itertools.combinations(maybe, n) for n in range(len(maybe) + 1)):
        for order in itertools.permutations(must + list(chosen)):
            if _respects_real_time(order) and _model_agrees(order):
                return True
    return False


def _respects_real_time(order) -> bool:
    for later_position, later in enumerate(order):
        for earlier in order[later_position + 1:]:
            if earlier.returned and earlier.return_nanos < later.call_nanos:
                return False
    return True


def _model_agrees(order) -> bool:
    values: dict[str, str] = {}
    for o in order:
        if o.kind == "get":
            if o.output != values.get(o.key, ""):
                return False
        elif o.kind == "put":
            values[o.key] = o.value
        else:
            values[o.key] = values.get(o.key, "") + o.value
    return True


def random_small_history(rng: random.Random) -> list[Operation]:
    """Up to 6 operations on one or two keys; written values are prefixes of one another or
    empty, and reads are drawn from values the writes can and cannot make, so the search's
    rules on starts of values meet their edge cases."""
    history = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["get", "get", "put", "append"])
        call_ms = rng.randint(0, 8)
        return_ms = call_ms + rng.randint(0, 4)
        history.append(op(rng.randint(0, 3), kind, rng.choice("xy"),
                          "" if kind == "get" else rng.choice(["a", "a", "b", "ab", ""]),
                          rng.choice(["", "", "a", "b", "ab", "ba", "aa", "aab", "abb"])
                          if kind == "get" else "", call_ms, return_ms,
                          returned=rng.random() > 0.15))
    return history


def test_agrees_with_brute_force_on_small_random_histories():
    rng = random.Random(19)
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        history = random_small_history(rng)
        expected = brute_force_linearizable(history)
        verdicts[expected] += 1
        assert bool(check(history)) == expected, history
    assert verdicts[True] > 100 and verdicts[False] > 100   # both answers were exercised


@settings(max_examples=500, deadline=None)
@given(st.randoms(use_true_random=False))
def test_agrees_with_brute_force_hypothesis(rng):
    history = random_small_history(rng)
    assert bool(check(history)) == brute_force_linearizable(history)


# ---- a busy history --------------------------------------------------------------------------

def busy_history(operations: int, keys: int, clients: int, seed: int) -> list[Operation]:
    """Clients each calling one operation after another, 0.2 to 5 ms each (now and then a
    50 ms stall), each taking effect at a random instant inside its call; outputs from the
    model run in the order of those instants."""
    rng = random.Random(seed)
    free_at_micros = [rng.randrange(1000) for _ in range(clients)]
    planned = []
    for index in range(operations):
        client = min(range(clients), key=free_at_micros.__getitem__)
        call = free_at_micros[client] + rng.randrange(5, 200)
        latency = rng.randrange(200, 5000) + (50_000 if rng.random() < 0.01 else 0)
        kind = rng.choice(["get", "get", "put", "append"])
        value = "" if kind == "get" else f"{client}.{index};"
        planned.append((call + rng.randrange(latency + 1), index, client, kind,
                        f"k{rng.randrange(keys)}", value, call, call + latency))
        free_at_micros[client] = call + latency
    values: dict[str, str] = {}
    history = []
    for _, index, client, kind, key, value, call, back in sorted(planned):
        output = values.get(key, "") if kind == "get" else ""
        if kind == "put":
            values[key] = value
        elif kind == "append":
            values[key] = values.get(key, "") + value
        history.append(Operation(client, kind, key, value, output, call * 1000, back * 1000))
    return history


def test_a_busy_correct_history_is_accepted_well_within_the_time_limit():
    history = busy_history(6000, keys=3, clients=16, seed=19)
    started = time.monotonic()
    result = check(history, timeout_seconds=60)
    assert result.verdict == "ok", result.explanation
    assert time.monotonic() - started < 30   # a few seconds at most: no search blow-up


def test_a_stale_read_in_a_busy_history_is_found():
    history = busy_history(3000, keys=3, clients=16, seed=7)
    late_gets = [i for i, o in enumerate(history) if o.kind == "get" and o.key == "k0"][-5:]
    first_put = next(o for o in history if o.kind == "put" and o.key == "k0")
    chosen = late_gets[0]
    read = history[chosen]
    history[chosen] = Operation(read.client_id, "get", "k0", "", first_put.value,
                                read.call_nanos, read.return_nanos)
    result = check(history, timeout_seconds=60)
    assert result.verdict == "illegal" and result.key == "k0"
    assert f"get('k0') -> {first_put.value!r}" in result.explanation
