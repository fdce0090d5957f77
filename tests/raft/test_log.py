"""raft.log: global indices over a log whose beginning a snapshot replaced, checked against a
model that keeps every entry (hypothesis), and the position helper on its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft.log import Log, position
from raft.messages import LogEntry


@given(st.integers(0, 50), st.integers(1, 20), st.integers(-5, 80))
def test_position_maps_only_the_held_indices(snapshot_index, length, index):
    if snapshot_index <= index < snapshot_index + length:
        assert position(index, snapshot_index, length) == index - snapshot_index
    else:
        with pytest.raises(IndexError):
            position(index, snapshot_index, length)


operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.lists(st.integers(0, 3), max_size=4)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("compact"), st.floats(0, 1), st.booleans()),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_log_matches_a_model_that_forgets_nothing(ops):
    """Model: every entry ever held at each global index (index 0: term 0), and the index
    the snapshot covers; the Log must agree at every index it still holds."""
    log, model, snapshot_index, term = Log(), [LogEntry(0, None)], 0, 0
    for op in ops:
        if op[0] == "append":
            term = max([term] + op[1])
            for command in op[1]:
                entry = LogEntry(term, command)
                log.append(entry)
                model.append(entry)
        elif op[0] == "truncate" and len(model) - 1 > snapshot_index:
            first = snapshot_index + 1 + int(op[1] * (len(model) - 1 - snapshot_index))
            del log[first:]
            del model[first:]
        elif op[0] == "compact":
            index = snapshot_index + 1 + int(op[1] * (len(model) - snapshot_index))
            if index < len(model) and op[2]:   # a snapshot of an entry the log holds
                log.compact(index, model[index].term)
                model[index] = LogEntry(model[index].term, None)
            else:                              # one the log lacks or disagrees with
                stranger_term = term + 1
                log.compact(index, stranger_term)
                del model[index:]
                model.extend([LogEntry(0, None)] * (index + 1 - len(model)))
                model[index] = LogEntry(stranger_term, None)
                term = stranger_term
            snapshot_index = index
        assert log.snapshot_index == snapshot_index
        assert log.last_index == len(model) - 1 == len(log) - 1
        assert log.snapshot_term == model[snapshot_index].term
        assert log.last_term == model[-1].term
        for index in range(snapshot_index + 1, len(model)):
            assert log[index] == model[index]
            assert log.holds(index, model[index].term)
        assert log[snapshot_index:] == [LogEntry(model[snapshot_index].term, None)] + \
            model[snapshot_index + 1:]
        assert log[-1] == model[-1] or len(model) - 1 == snapshot_index
        if snapshot_index > 0:
            with pytest.raises(IndexError):
                log[snapshot_index - 1]
            with pytest.raises(IndexError):
                del log[snapshot_index:]
        assert log.copy() == log


def test_compacting_at_or_before_the_snapshot_is_refused():
    log = Log([LogEntry(1, "a"), LogEntry(1, "b")])
    log.compact(1, 1)
    with pytest.raises(IndexError):
        log.compact(1, 1)
    assert log.snapshot_index == 1 and log[2] == LogEntry(1, "b")
