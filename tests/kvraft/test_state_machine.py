"""kvraft.state_machine: apply with the per-clerk dedup table, and the snapshot of both."""

import pytest
from hypothesis import given, strategies as st

from kvraft.state_machine import (NOOP_COMMAND, StateMachine, check_command,
                                  decode_snapshot, write_command)


def test_put_replaces_append_concatenates_absent_reads_empty():
    machine = StateMachine()
    assert machine.get("k") == ""
    assert machine.apply(write_command("append", "k", "a", 1, 1))
    assert machine.apply(write_command("append", "k", "b", 1, 2))
    assert machine.get("k") == "ab"
    assert machine.apply(write_command("put", "k", "", 2, 1))
    assert machine.get("k") == ""


def test_a_retried_operation_takes_effect_once():
    machine = StateMachine()
    append = write_command("append", "k", "x", 7, 1)
    assert machine.apply(append)
    assert not machine.apply(append)           # the same operation, logged twice
    assert machine.get("k") == "x"
    assert machine.is_applied(7, 1) and not machine.is_applied(7, 2)
    assert not machine.is_applied(8, 1)


def test_noop_and_malformed_commands_change_nothing():
    machine = StateMachine()
    for command in (NOOP_COMMAND, ["get", "k", "", 1, 1], ["put", "k", 5, 1, 1],
                    ["put", "k", "v", 1, 0], "junk", None, [1, 2]):
        assert not machine.apply(command)
    assert machine.data == {} and machine.last_seq == {}
    assert check_command(NOOP_COMMAND) == ""
    assert "unknown operation" in check_command(["get", "k", "", 1, 1])


def test_snapshot_round_trip_keeps_the_map_and_the_table():
    machine = StateMachine()
    machine.apply(write_command("put", "ключ", "välue\n", 3, 4))
    machine.apply(write_command("append", "", "empty key", 5, 1))
    copy = decode_snapshot(machine.encode_snapshot())
    assert copy.data == machine.data and copy.last_seq == machine.last_seq
    # The table came along: the old retry is still refused after a restore.
    assert not copy.apply(write_command("put", "ключ", "again", 3, 4))


@pytest.mark.parametrize("damaged", [b"{", b"[]", b'{"m": {}}', b'{"m": {"k": 1}, "c": {}}',
                                     b'{"m": {}, "c": {"x": 1}}', b"\xff"])
def test_a_damaged_snapshot_is_refused(damaged):
    with pytest.raises(ValueError, match="not a kvraft snapshot"):
        decode_snapshot(damaged)


def test_the_empty_snapshot_is_the_empty_machine():
    assert decode_snapshot(b"").data == {}


operations = st.lists(st.tuples(st.sampled_from(["put", "append"]), st.sampled_from("abc"),
                                st.text(max_size=3), st.integers(1, 3), st.integers(1, 6)),
                      max_size=40)


@given(operations)
def test_against_a_model_with_snapshots_anywhere(ops):
    """Every prefix, snapshotted and restored, goes on exactly as the original."""
    machine, model, seen = StateMachine(), {}, {}
    for kind, key, value, clerk, seq in ops:
        fresh = seq > seen.get(clerk, 0)
        if fresh:
            seen[clerk] = seq
            model[key] = value if kind == "put" else model.get(key, "") + value
        assert machine.apply(write_command(kind, key, value, clerk, seq)) == fresh
        machine = decode_snapshot(machine.encode_snapshot())
        assert machine.data == model
