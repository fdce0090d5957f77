"""raft.persister: MemoryPersister and FilePersister (save_state / save_log / sync / load / close),
FilePersister's record format `length(4, big-endian) crc32(4) JSON`, crash recovery (torn last
record cut off with a warning; damage before more data -> CorruptStateError) and compaction."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import uuid
import zlib
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import raft.persister as persister_module
from raft.messages import LogEntry
from raft.persister import CorruptStateError, FilePersister, MemoryPersister
from rpc import codec

HEADER = struct.Struct(">III")   # length, payload crc32, crc32 of those 8 bytes


# ---- helpers ------------------------------------------------------------------------------------

def entries(*terms_and_commands):
    return [LogEntry(term, command) for term, command in terms_and_commands]


def record_bytes(payload: bytes) -> bytes:
    head = struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def record(value) -> bytes:
    return record_bytes(codec.dumps(value))


def record_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record of a well-formed file."""
    spans, offset = [], 0
    while offset < len(data):
        length, _, _ = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        assert end <= len(data), "helper expects a well-formed file"
        spans.append((offset, end))
        offset = end
    return spans


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def reopen(path):
    """Open `path`, load, close; returns what was loaded."""
    p = FilePersister(str(path))
    try:
        return p.load()
    finally:
        p.close()


def raft_warnings(caplog):
    return [r for r in caplog.records if r.name == "raft" and r.levelno == logging.WARNING]


@pytest.fixture(params=["memory", "file"])
def persister(request, tmp_path):
    if request.param == "memory":
        p = MemoryPersister()
    else:
        p = FilePersister(str(tmp_path / "state.raft"))
    yield p
    p.close()


# ---- both persisters ----------------------------------------------------------------------------

def test_empty_load(persister):
    assert persister.load() == (0, None, [])


def test_state_round_trip(persister):
    persister.save_state(1, None)
    persister.sync()
    assert persister.load() == (1, None, [])
    persister.save_state(7, 2)
    persister.save_state(8, 0)
    persister.sync()
    assert persister.load() == (8, 0, [])


def test_log_round_trip_with_various_commands(persister):
    log = entries((1, 5), (1, "put x"), (2, [1, "a", None]), (3, {"k": [1, {"n": b"\x00\xff"}]}),
                  (3, None), (4, True), (4, 2.5), (5, "ünï©ødé"))
    persister.save_state(5, 1)
    persister.save_log(1, log)
    persister.sync()
    term, voted_for, loaded = persister.load()
    assert (term, voted_for) == (5, 1)
    assert loaded == log
    assert all(type(e) is LogEntry for e in loaded)


def test_save_log_truncates_then_appends(persister):
    a, b, c, d, x, y, z = entries((1, "a"), (1, "b"), (2, "c"), (2, "d"),
                                  (3, "x"), (3, "y"), (4, "z"))
    persister.save_log(1, [a, b, c, d])
    assert persister.load()[2] == [a, b, c, d]
    persister.save_log(3, [])                       # truncate only
    assert persister.load()[2] == [a, b]
    persister.save_log(3, [c])                      # append at len+1
    assert persister.load()[2] == [a, b, c]
    persister.save_log(2, [x, y])                   # replace a suffix
    assert persister.load()[2] == [a, x, y]
    persister.save_log(1, [z])                      # replace from index 1
    assert persister.load()[2] == [z]
    persister.save_log(1, [])                       # truncate everything
    assert persister.load()[2] == []
    persister.save_log(1, [a])                      # append to an empty log
    persister.save_log(2, [b, c])
    persister.save_log(4, [])                       # truncate-only at len+1: no change
    persister.sync()
    assert persister.load()[2] == [a, b, c]


def test_load_returns_copies(persister):
    persister.save_state(2, 1)
    persister.save_log(1, entries((1, [1, 2]), (2, {"k": "v"})))
    persister.sync()
    _, _, loaded = persister.load()
    loaded.append(LogEntry(9, "extra"))
    loaded[0].term = 99
    loaded[0].command.append(3)
    loaded[1].command["k"] = "changed"
    del loaded[1]
    assert persister.load() == (2, 1, entries((1, [1, 2]), (2, {"k": "v"})))


def test_save_log_does_not_keep_the_callers_objects(persister):
    """What was saved is what is stored: the caller mutating its list or entries afterwards
    changes nothing (MemoryPersister copies on the way in; a FilePersister already wrote the
    record, so a stored alias would make its memory disagree with its file)."""
    given_entries = entries((1, [1]), (2, {"k": "v"}))
    persister.save_log(1, given_entries)
    persister.sync()
    given_entries[0].command.append(2)
    given_entries[0].term = 50
    given_entries[1].command["k"] = "changed"
    given_entries.append(LogEntry(3, "appended"))
    assert persister.load()[2] == entries((1, [1]), (2, {"k": "v"}))


def test_close_twice_is_harmless(persister):
    persister.save_state(1, 0)
    persister.close()
    persister.close()


# ---- FilePersister: reopening -------------------------------------------------------------------

def test_file_reopen_after_close(tmp_path):
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    p.save_state(3, 2)
    p.save_log(1, entries((1, "a"), (2, "b"), (3, "c")))
    p.save_log(3, entries((3, "c2")))
    p.close()                                       # close syncs
    assert reopen(path) == (3, 2, entries((1, "a"), (2, "b"), (3, "c2")))
    # and again after more work in the reopened persister
    p = FilePersister(path)
    p.save_state(4, None)
    p.save_log(2, [])
    p.close()
    assert reopen(path) == (4, None, entries((1, "a")))


def test_file_missing_is_created_empty(tmp_path):
    path = tmp_path / "new.raft"
    p = FilePersister(str(path))
    assert p.load() == (0, None, [])
    p.close()
    assert path.exists()
    assert reopen(path) == (0, None, [])


def test_file_crash_after_sync_copying_bytes(tmp_path):
    """A crash right after sync(): the bytes on disk hold everything synced."""
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    p.save_state(1, None)
    p.save_log(1, entries((1, "a")))
    p.sync()
    p.save_state(2, 0)
    p.save_log(2, entries((2, "b"), (2, "c")))
    p.save_log(3, entries((2, "c2")))
    p.sync()
    crashed = str(tmp_path / "crashed.raft")
    shutil.copyfile(path, crashed)                  # the persister is still open, never closed
    assert reopen(crashed) == (2, 0, entries((1, "a"), (2, "b"), (2, "c2")))
    p.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_file_crash_after_sync_dropping_the_object(tmp_path):
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    p.save_state(5, 1)
    p.save_log(1, entries((4, "a"), (5, "b")))
    p.sync()
    del p                                           # no close()
    assert reopen(path) == (5, 1, entries((4, "a"), (5, "b")))


# ---- FilePersister: random operations against the MemoryPersister model ------------------------

commands = st.one_of(st.integers(-5, 5), st.text(max_size=4), st.none(),
                     st.lists(st.integers(0, 3), max_size=3),
                     st.dictionaries(st.text(max_size=2), st.integers(0, 3), max_size=2))
entry_lists = st.lists(st.builds(LogEntry, st.integers(0, 5), commands), max_size=4)

operations = st.lists(st.one_of(
    st.tuples(st.just("state"), st.integers(0, 10), st.one_of(st.none(), st.integers(0, 4))),
    st.tuples(st.just("log"), st.floats(0, 1, exclude_max=True), entry_lists),
    st.tuples(st.just("sync")),
    st.tuples(st.just("crash")),
), max_size=30)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, compact_min=st.sampled_from([1 << 20, 300, 0]))
def test_file_random_operations_match_the_model(tmp_path, ops, compact_min):
    directory = tmp_path / uuid.uuid4().hex
    directory.mkdir()
    path = str(directory / "state.raft")
    with mock.patch.object(persister_module, "COMPACT_MIN_BYTES", compact_min):
        model, p = MemoryPersister(), FilePersister(path)
        history = [model.load()]                    # model states after each operation
        synced_at = 0                               # index into history at the last sync
        try:
            for op in ops:
                if op[0] == "state":
                    model.save_state(op[1], op[2])
                    p.save_state(op[1], op[2])
                    history.append(model.load())
                elif op[0] == "log":
                    first_index = 1 + int(op[1] * (len(model.load()[2]) + 1))
                    model.save_log(first_index, op[2])
                    p.save_log(first_index, op[2])
                    history.append(model.load())
                elif op[0] == "sync":
                    p.sync()
                    synced_at = len(history) - 1
                else:
                    # A crash now: the file's bytes hold everything synced, and at most some
                    # later operations, in order.
                    crashed = str(directory / "crashed.raft")
                    shutil.copyfile(path, crashed)
                    assert reopen(crashed) in history[synced_at:]
                assert p.load() == model.load()
            p.sync()
            crashed = str(directory / "synced.raft")
            shutil.copyfile(path, crashed)
            assert reopen(crashed) == model.load()
        finally:
            p.close()
        assert reopen(path) == model.load()
        assert not os.path.exists(path + ".tmp")


# ---- FilePersister: a torn or damaged last record ----------------------------------------------

LAST_RECORDS = {
    "state": lambda p: p.save_state(9, 3),
    "log": lambda p: p.save_log(2, entries((9, "last"), (9, [1, 2, 3]))),
    "truncate": lambda p: p.save_log(2, []),
}


def _file_with_last_record(tmp_path, last):
    """A file whose last record is `last`; returns (bytes, start of the last record,
    the state before it, the state with it)."""
    path = str(tmp_path / "whole.raft")
    p = FilePersister(path)
    p.save_state(2, 1)
    p.save_log(1, entries((1, "a"), (2, {"b": [1]}), (2, "c")))
    p.save_state(3, None)
    p.sync()
    before = p.load()
    LAST_RECORDS[last](p)
    after = p.load()
    p.close()
    data = read(path)
    last_start = record_spans(data)[-1][0]
    assert last_start == os.path.getsize(path) - (len(data) - last_start)
    assert reopen(path) == after
    os.remove(path)
    return data, last_start, before, after


def _check_cut_off(path, caplog, valid_length, before):
    """Opening `path` warns, yields `before`, cuts the file to `valid_length`; the cut file
    takes new records and reopens cleanly."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="raft"):
        p = FilePersister(path)
    try:
        warned = raft_warnings(caplog)
        assert len(warned) == 1, [r.getMessage() for r in caplog.records]
        assert path in warned[0].getMessage()
        assert p.load() == before
        assert os.path.getsize(path) == valid_length
        p.save_state(before[0] + 1, 0)
        p.save_log(len(before[2]) + 1, entries((7, "after the cut")))
        p.sync()
    finally:
        p.close()
    expected = (before[0] + 1, 0, before[2] + entries((7, "after the cut")))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="raft"):
        assert reopen(path) == expected
    assert raft_warnings(caplog) == []


@pytest.mark.parametrize("last", sorted(LAST_RECORDS))
def test_torn_last_record_at_every_offset(tmp_path, caplog, last):
    data, last_start, before, _ = _file_with_last_record(tmp_path, last)
    path = str(tmp_path / "torn.raft")
    for cut in range(last_start + 1, len(data)):
        write(path, data[:cut])
        _check_cut_off(path, caplog, last_start, before)


def test_file_cut_exactly_at_a_record_boundary_is_clean(tmp_path, caplog):
    data, last_start, before, _ = _file_with_last_record(tmp_path, "log")
    path = str(tmp_path / "cut.raft")
    write(path, data[:last_start])
    with caplog.at_level(logging.WARNING, logger="raft"):
        assert reopen(path) == before
    assert raft_warnings(caplog) == []
    assert os.path.getsize(path) == last_start


@pytest.mark.parametrize("last", sorted(LAST_RECORDS))
def test_flipped_header_byte_in_last_record_is_corrupt(tmp_path, last):
    """The header has its own checksum: a damaged header is damage, even at the end."""
    data, last_start, _, _ = _file_with_last_record(tmp_path, last)
    path = str(tmp_path / "flipped.raft")
    for position in range(last_start, last_start + HEADER.size):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        write(path, bytes(damaged))
        _assert_corrupt(path, bytes(damaged))


@pytest.mark.parametrize("zeros", [1, 11, 12, 40])
def test_zero_filled_tail_is_cut_off(tmp_path, caplog, zeros):
    data, last_start, before, after = _file_with_last_record(tmp_path, "log")
    path = str(tmp_path / "zeros.raft")
    write(path, data + bytes(zeros))
    _check_cut_off(path, caplog, len(data), after)


@pytest.mark.parametrize("last", sorted(LAST_RECORDS))
def test_flipped_byte_in_last_record_is_treated_as_torn(tmp_path, caplog, last):
    data, last_start, before, _ = _file_with_last_record(tmp_path, last)
    path = str(tmp_path / "flipped.raft")
    # every payload byte (a crash may leave garbage in what was not synced)
    for position in range(last_start + HEADER.size, len(data)):
        for mask in (0x01, 0x80):
            damaged = bytearray(data)
            damaged[position] ^= mask
            write(path, bytes(damaged))
            _check_cut_off(path, caplog, last_start, before)


# ---- FilePersister: damage before more data ------------------------------------------------------

def _file_with_records(tmp_path):
    path = str(tmp_path / "whole.raft")
    p = FilePersister(path)
    p.save_state(1, 0)
    p.save_log(1, entries((1, "a"), (1, "b")))
    p.save_state(2, 1)
    p.save_log(2, entries((2, [1, 2])))
    p.close()
    data = read(path)
    os.remove(path)
    return data


def _assert_corrupt(path, original: bytes | None = None):
    with pytest.raises(CorruptStateError) as info:
        FilePersister(path)
    assert path in str(info.value)
    if original is not None:                        # the evidence is left alone
        assert read(path) == original


def test_flipped_byte_in_an_earlier_record_is_corrupt(tmp_path):
    data = _file_with_records(tmp_path)
    spans = record_spans(data)
    assert len(spans) == 4
    path = str(tmp_path / "damaged.raft")
    for start, end in spans[:-1]:
        # crc bytes and every payload byte
        for position in list(range(start + 4, start + 8)) + list(range(start + 8, end)):
            damaged = bytearray(data)
            damaged[position] ^= 0x04
            write(path, bytes(damaged))
            _assert_corrupt(path, bytes(damaged))


@pytest.mark.parametrize("mask", [0x01, 0x04])
def test_shorter_length_in_an_earlier_record_is_corrupt(tmp_path, mask):
    data = _file_with_records(tmp_path)
    path = str(tmp_path / "damaged.raft")
    for start, _ in record_spans(data)[:-1]:
        damaged = bytearray(data)
        if not damaged[start + 3] & mask:
            continue
        damaged[start + 3] ^= mask                  # the low byte of the length: shorter
        write(path, bytes(damaged))
        _assert_corrupt(path, bytes(damaged))


@pytest.mark.parametrize("record_index", [0, 1, 2])
def test_huge_length_in_an_earlier_record_is_corrupt(tmp_path, caplog, record_index):
    """A length field damaged so that it runs past the end of the file, in a record that is
    followed by more (synced) records: that is damage, not a crash mid-write of the last
    record, and must not be 'cut off' (which would silently drop and truncate away every
    record from there on)."""
    data = _file_with_records(tmp_path)
    start, _ = record_spans(data)[record_index]
    damaged = bytearray(data)
    damaged[start] ^= 0x40                          # the high byte of the length
    path = str(tmp_path / "damaged.raft")
    write(path, bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="raft"):
        _assert_corrupt(path, bytes(damaged))


def _base(tmp_path) -> tuple[bytes, str]:
    path = str(tmp_path / "base.raft")
    p = FilePersister(path)
    p.save_state(1, 0)
    p.save_log(1, entries((1, "a")))
    p.close()
    data = read(path)
    os.remove(path)
    return data, str(tmp_path / "bad.raft")


GARBAGE_PAYLOADS = {
    "not json": b"not json at all",
    "not utf-8": b"\xff\xfe\x00",
    "empty": b"",
    "untagged object": b'{"s": [1, 2]}',
    "bad base64": b'{"b": "***"}',
    "unknown type": b'{"t": "nowhere.Nothing", "f": {}}',
    "no record key": codec.dumps({"x": 1}),
    "empty dict": codec.dumps({}),
    "a list": codec.dumps([1, 2]),
    "an int": codec.dumps(5),
    "state too short": codec.dumps({"s": [1]}),
    "state too long": codec.dumps({"s": [1, 2, 3]}),
    "state not a list": codec.dumps({"s": 5}),
    "log too short": codec.dumps({"l": [1]}),
    "log entries not a list": codec.dumps({"l": [1, 5]}),
    "log index not a number": codec.dumps({"l": ["1", []]}),
}


@pytest.mark.parametrize("position", ["last", "middle"])
@pytest.mark.parametrize("name", sorted(GARBAGE_PAYLOADS))
def test_garbage_with_a_valid_crc_is_corrupt(tmp_path, name, position):
    data, path = _base(tmp_path)
    garbage = record_bytes(GARBAGE_PAYLOADS[name])
    if position == "last":
        contents = data + garbage
    else:
        contents = data + garbage + record({"s": [5, 1]})
    write(path, contents)
    _assert_corrupt(path, contents)


@pytest.mark.parametrize("first_index", [0, -1, 3, 10])
def test_log_record_out_of_range_is_corrupt(tmp_path, first_index):
    data, path = _base(tmp_path)                    # the log holds one entry
    contents = data + record({"l": [first_index, entries((2, "skip"))]})
    write(path, contents)
    _assert_corrupt(path, contents)
    # first_index 1..len+1 is fine
    for ok_index, expected in [(1, entries((2, "ok"))), (2, entries((1, "a"), (2, "ok")))]:
        write(path, data + record({"l": [ok_index, entries((2, "ok"))]}))
        assert reopen(path) == (1, 0, expected)


def test_log_record_skipping_ahead_in_the_middle_is_corrupt(tmp_path):
    data, path = _base(tmp_path)
    contents = data + record({"l": [3, entries((2, "skip"))]}) + record({"s": [4, 2]})
    write(path, contents)
    _assert_corrupt(path, contents)


# ---- FilePersister: compaction ------------------------------------------------------------------

def _compacted_size(state) -> int:
    term, voted_for, log = state
    return len(record({"s": [term, voted_for]})) + len(record({"l": [1, log]}))


def test_compaction_keeps_the_file_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(persister_module, "COMPACT_MIN_BYTES", 2048)
    path = str(tmp_path / "state.raft")
    p, model = FilePersister(path), MemoryPersister()
    both = (p, model)
    for q in both:
        q.save_log(1, entries(*[(1, f"base-{i}") for i in range(10)]))
    p.sync()
    sizes = []
    for round_ in range(400):
        for q in both:
            q.save_state(round_, round_ % 3)
            q.save_log(6, entries(*[(round_, f"v{round_}-{i}" + "x" * 20) for i in range(5)]))
            q.save_log(9, entries((round_, "tail")))   # overwrites part of what was just saved
        p.sync()
        sizes.append(os.path.getsize(path))
        assert p.load() == model.load()
    expected = model.load()
    assert len(expected[2]) == 9
    live = _compacted_size(expected)
    written = 400 * (len(record({"s": [399, 0]})) + len(record({"l": [6, expected[2][5:]]})))
    assert written > 10 * max(2048, 3 * live)      # without compaction the file would be big
    assert max(sizes) <= max(2048, 3 * live) + 64, (max(sizes), live)
    assert any(later < earlier for earlier, later in zip(sizes, sizes[1:]))  # it did compact
    assert os.listdir(tmp_path) == ["state.raft"]   # no .tmp left behind
    # more work after a compaction goes to the new file
    for q in both:
        q.save_log(10, entries((500, "after")))
    p.sync()
    expected = model.load()
    assert p.load() == expected
    crashed = str(tmp_path / "crashed.raft")
    shutil.copyfile(path, crashed)
    assert reopen(crashed) == expected              # synced, never closed
    p.close()
    assert reopen(path) == expected
    assert sorted(os.listdir(tmp_path)) == ["crashed.raft", "state.raft"]


def test_compaction_with_an_emptied_log(tmp_path, monkeypatch):
    monkeypatch.setattr(persister_module, "COMPACT_MIN_BYTES", 256)
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    for round_ in range(200):
        p.save_log(1, entries((round_, "a" * 30), (round_, "b")))
        p.save_log(1, [])
        p.save_state(round_, None)
        p.sync()
        assert os.path.getsize(path) <= 256 + 200
    p.close()
    assert reopen(path) == (199, None, [])
    assert os.listdir(tmp_path) == ["state.raft"]


def test_compaction_after_reopen_with_large_entries(tmp_path, monkeypatch):
    """After a reopen the per-entry sizes are only estimated; big entries still come back
    intact through a compaction."""
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    big = entries(*[(1, "z" * 3000 + str(i)) for i in range(20)])
    p.save_state(1, 1)
    p.save_log(1, big)
    p.close()
    monkeypatch.setattr(persister_module, "COMPACT_MIN_BYTES", 1024)
    p = FilePersister(path)
    for round_ in range(50):
        p.save_log(21, entries((2, round_)))
        p.sync()
    p.close()
    assert reopen(path) == (1, 1, big + entries((2, 49)))
    assert os.path.getsize(path) < 3 * _compacted_size((1, 1, big + entries((2, 49))))
    assert os.listdir(tmp_path) == ["state.raft"]


def test_stale_tmp_file_from_a_crashed_compaction_is_ignored(tmp_path, monkeypatch):
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    p.save_state(3, 1)
    p.save_log(1, entries((1, "a")))
    p.close()
    write(path + ".tmp", b"half a compaction")      # a crash before the rename
    assert reopen(path) == (3, 1, entries((1, "a")))
    monkeypatch.setattr(persister_module, "COMPACT_MIN_BYTES", 0)
    p = FilePersister(path)
    sizes = []
    for round_ in range(20):                        # compacts, over the stale .tmp
        p.save_log(2, entries((3, "b")))
        p.sync()
        sizes.append(os.path.getsize(path))
    p.close()
    assert any(later < earlier for earlier, later in zip(sizes, sizes[1:]))
    assert reopen(path) == (3, 1, entries((1, "a"), (3, "b")))
    assert os.listdir(tmp_path) == ["state.raft"]


# ---- snapshots --------------------------------------------------------------------------------

def test_snapshot_trims_the_log_it_covers(persister):
    persister.save_state(3, 1)
    persister.save_log(1, entries((1, "a"), (2, "b"), (3, "c"), (3, "d")))
    persister.save_snapshot(2, 2, b"through two")
    persister.sync()
    assert persister.load_snapshot() == (2, 2, b"through two")
    assert persister.load() == (3, 1, entries((3, "c"), (3, "d")))
    persister.save_log(4, entries((4, "d2")))       # indices stay global
    assert persister.load()[2] == entries((3, "c"), (4, "d2"))
    with pytest.raises(ValueError):
        persister.save_log(2, [])                   # inside the snapshot
    with pytest.raises(ValueError):
        persister.save_snapshot(2, 2, b"again")     # not past the snapshot
    assert persister.load_snapshot() == (2, 2, b"through two")


def test_snapshot_of_an_entry_the_log_lacks_drops_the_whole_log(persister):
    persister.save_log(1, entries((1, "a"), (1, "b")))
    persister.save_snapshot(2, 5, b"from the leader")   # (2, 5) is not in this log
    assert persister.load()[2] == []
    persister.save_snapshot(9, 6, b"far ahead")
    assert persister.load_snapshot() == (9, 6, b"far ahead")
    persister.save_log(10, entries((6, "x")))
    assert persister.load()[2] == entries((6, "x"))


def test_empty_snapshot_state_loads_as_none(persister):
    assert persister.load_snapshot() == (0, 0, b"")


def test_memory_copy_carries_the_snapshot():
    p = MemoryPersister()
    p.save_log(1, entries((1, "a"), (1, "b")))
    p.save_snapshot(1, 1, b"s")
    twin = p.copy()
    p.save_snapshot(2, 1, b"t")
    assert twin.load_snapshot() == (1, 1, b"s") and twin.load()[2] == entries((1, "b"))


def test_file_snapshot_survives_reopen_and_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(persister_module, "COMPACT_MIN_BYTES", 512)
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    blob = bytes(range(256)) * 4
    for round_ in range(1, 60):
        p.save_log(10 * round_ - 9, entries(*[(round_, f"c{round_}.{k}") for k in range(10)]))
        p.save_snapshot(10 * round_ - 2, round_, blob + bytes([round_]))
        p.sync()
    size = os.path.getsize(path)
    p.close()
    assert size < 4 * (len(blob) * 4 // 3 + 1000), size   # the snapshot bounds the file
    q = FilePersister(path)
    assert q.load_snapshot() == (588, 59, blob + bytes([59]))
    assert q.load()[2] == entries((59, "c59.8"), (59, "c59.9"))
    assert q.raft_state_size() < 400
    q.close()
    assert os.listdir(tmp_path) == ["state.raft"]


def test_file_torn_snapshot_record_is_cut_off(tmp_path, caplog):
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    p.save_log(1, entries((1, "a"), (1, "b")))
    p.close()
    good = read(path)
    p = FilePersister(path)
    p.save_snapshot(1, 1, b"x" * 100)
    p.close()
    whole = read(path)
    write(path, whole[:len(good) + 30])               # a crash mid-write
    with caplog.at_level(logging.WARNING, logger="raft"):
        assert reopen(path) == (0, None, entries((1, "a"), (1, "b")))
    assert raft_warnings(caplog)
    assert FilePersister(path).load_snapshot() == (0, 0, b"")


def test_file_damaged_snapshot_is_refused_naming_file_and_offset(tmp_path):
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    p.save_log(1, entries((1, "a"), (1, "b")))
    p.close()
    start = len(read(path))
    p = FilePersister(path)
    p.save_snapshot(1, 1, b"y" * 100)
    p.save_state(2, None)
    p.close()
    data = bytearray(read(path))
    data[start + HEADER.size + 40] ^= 0x01            # inside the snapshot, more data after
    write(path, bytes(data))
    with pytest.raises(CorruptStateError) as info:
        FilePersister(path)
    assert path in str(info.value) and f"byte {start}" in str(info.value)


@pytest.mark.parametrize("fields", [
    [1, 1, "not bytes"], [0, 1, {"b": ""}], ["1", 1, {"b": ""}], [5, -1, {"b": ""}]])
def test_file_snapshot_record_that_does_not_fit_is_corrupt(tmp_path, fields):
    data, path = _base(tmp_path)
    payload = json.dumps({"d": {"n": fields}}).encode()
    contents = data + record_bytes(payload)
    write(path, contents)
    with pytest.raises(CorruptStateError) as info:
        FilePersister(path)
    assert f"byte {len(data)}" in str(info.value)
    assert read(path) == contents


def test_file_concurrent_saves_and_syncs(tmp_path):
    """Raft saves under its lock while other threads sync: every save is in the file."""
    import threading
    path = str(tmp_path / "state.raft")
    p = FilePersister(path)
    lock = threading.Lock()
    count = [0]

    def saver():
        for _ in range(200):
            with lock:
                count[0] += 1
                p.save_log(count[0], entries((1, count[0])))
            p.sync()

    threads = [threading.Thread(target=saver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p.close()
    assert reopen(path)[2] == entries(*[(1, k) for k in range(1, 801)])
