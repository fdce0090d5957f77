"""The history recorder (kvraft/history.py): a wrapped clerk's calls are recorded with what
they asked, what came back and when; a call that raises is recorded as never returned and the
exception still reaches the caller; many threads record at once without losing an operation;
and the histories of clerks sharing a correct store pass the checker while a clerk that
answers reads from a stale copy is caught."""

from __future__ import annotations

import threading
import time

import pytest

from kvraft.history import HistoryRecorder, Operation, RecordingClerk
from kvraft.linearizability import check


class MemoryStore:
    """A correct, linearizable store: one lock around a dict (a test helper, not kvraft)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.lock = threading.Lock()

    def apply(self, kind: str, key: str, value: str) -> str:
        with self.lock:
            current = self.values.get(key, "")
            if kind == "put":
                self.values[key] = value
            elif kind == "append":
                self.values[key] = current + value
            return current


class MemoryClerk:
    """A clerk over a MemoryStore. `stale_reads` makes it answer gets from the value it saw
    last for that key (a cache never invalidated: not linearizable once others write)."""

    def __init__(self, store: MemoryStore, stale_reads: bool = False) -> None:
        self.store = store
        self.stale_reads = stale_reads
        self.cache: dict[str, str] = {}
        self.closed = False

    def get(self, key: str) -> str:
        if self.stale_reads and key in self.cache:
            return self.cache[key]
        self.cache[key] = self.store.apply("get", key, "")
        return self.cache[key]

    def put(self, key: str, value: str) -> None:
        self.store.apply("put", key, value)

    def append(self, key: str, value: str) -> None:
        self.store.apply("append", key, value)

    def close(self) -> None:
        self.closed = True


class FailingClerk:
    def get(self, key):
        raise TimeoutError("no leader")

    def put(self, key, value):
        raise TimeoutError("no leader")

    append = put


def test_calls_are_recorded_with_arguments_results_and_times():
    recorder = HistoryRecorder()
    clerk = recorder.wrap(MemoryClerk(MemoryStore()), client_id=7)
    assert isinstance(clerk, RecordingClerk)
    before = time.monotonic_ns()
    assert clerk.put("k", "v") is None
    assert clerk.append("k", "w") is None
    assert clerk.get("k") == "vw"
    assert clerk.get("absent") == ""
    after = time.monotonic_ns()
    recorded = recorder.operations()
    assert [(o.client_id, o.kind, o.key, o.value, o.output) for o in recorded] == [
        (7, "put", "k", "v", ""), (7, "append", "k", "w", ""), (7, "get", "k", "", "vw"),
        (7, "get", "absent", "", "")]
    times = [t for o in recorded for t in (o.call_nanos, o.return_nanos)]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    assert check(recorded)


def test_a_call_that_raises_is_recorded_as_never_returned_and_re_raised():
    recorder = HistoryRecorder()
    clerk = recorder.wrap(FailingClerk(), client_id=1)
    with pytest.raises(TimeoutError, match="no leader"):
        clerk.append("k", "x")
    with pytest.raises(TimeoutError):
        clerk.get("k")
    appended, got = recorder.operations()
    assert (appended.kind, appended.value, appended.output, appended.return_nanos) == \
        ("append", "x", None, None)
    assert not appended.returned and appended.call_nanos > 0
    assert (got.kind, got.output, got.return_nanos) == ("get", None, None)


def test_other_attributes_are_the_wrapped_clerks():
    inner = MemoryClerk(MemoryStore())
    clerk = HistoryRecorder().wrap(inner, client_id=0)
    clerk.close()
    assert inner.closed and clerk.clerk is inner


def test_operations_is_a_copy():
    recorder = HistoryRecorder()
    recorder.record(Operation(0, "put", "k", "v", "", 1, 2))
    taken = recorder.operations()
    taken.clear()
    assert len(recorder.operations()) == 1


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown operation kind 'cas'"):
        HistoryRecorder().record(Operation(0, "cas", "k", "v", "", 1, 2))


def test_many_threads_record_without_losing_an_operation():
    recorder = HistoryRecorder()
    store = MemoryStore()
    per_thread, threads = 300, 8

    def client(client_id: int) -> None:
        clerk = recorder.wrap(MemoryClerk(store), client_id)
        for i in range(per_thread):
            clerk.append(f"k{i % 3}", f"{client_id}.{i};")
            clerk.get(f"k{i % 3}")

    workers = [threading.Thread(target=client, args=(c,)) for c in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    recorded = recorder.operations()
    assert len(recorded) == 2 * per_thread * threads
    assert len({(o.client_id, o.value) for o in recorded if o.kind == "append"}) == \
        per_thread * threads
    result = check(recorded, timeout_seconds=60)
    assert result.verdict == "ok", result.explanation


def test_a_clerk_reading_from_a_stale_copy_is_caught():
    recorder = HistoryRecorder()
    store = MemoryStore()
    reader = recorder.wrap(MemoryClerk(store, stale_reads=True), client_id=1)
    writer = recorder.wrap(MemoryClerk(store), client_id=2)
    writer.put("k", "old")
    assert reader.get("k") == "old"
    writer.put("k", "new")
    assert reader.get("k") == "old"   # from its cache
    result = check(recorder.operations())
    assert result.verdict == "illegal" and result.key == "k"
    assert "get('k') -> 'old' by client 1 cannot follow" in result.explanation
