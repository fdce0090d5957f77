"""Recording what clerks saw, for the linearizability checker (kvraft/linearizability.py).

An `Operation` is one call as its client saw it: what it asked, what came back, and when it was
called and returned on `time.monotonic_ns()` (one clock for every client of the process, so
intervals of different clients compare). A call that raised (the clerk closed, a timeout) never
returned: its `output` and `return_nanos` are None, and the checker lets it take effect at any
time after its call, or never.

    recorder = HistoryRecorder()
    clerk = recorder.wrap(kvraft.Clerk(addrs), client_id=3)
    clerk.put("k", "v"); clerk.get("k")          # each call recorded
    assert_linearizable(recorder.operations())

Threads: none of its own. A `HistoryRecorder` is thread-safe: many client threads record at
once; its list of operations is owned by whoever holds the capacity-1 channel `_box` (the Go
idiom of a channel as the mutex), so kvraft keeps to channels. A `RecordingClerk` is used by one
thread at a time, as the clerk it wraps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import csp

KINDS = ("get", "put", "append")


@dataclass(frozen=True)
class Operation:
    """One call of a clerk. `value` is the argument ("" for get); `output` is what a get
    returned ("" for a put or append that returned, None when the call never returned)."""

    client_id: int
    kind: str
    key: str
    value: str
    output: str | None
    call_nanos: int
    return_nanos: int | None

    @property
    def returned(self) -> bool:
        return self.return_nanos is not None

    def describe(self, width: int = 24) -> str:
        """The call as a person writes it: `put('k', 'v')`, `get('k') -> 'v'`, `get('k') -> ?`
        when it never returned. Strings longer than `width` are cut in the middle."""
        key = shorten(self.key, width)
        if self.kind == "get":
            answer = "?" if self.output is None else shorten(self.output, width)
            return f"get({key}) -> {answer}"
        tail = "" if self.returned else "  (never returned)"
        return f"{self.kind}({key}, {shorten(self.value, width)}){tail}"


def shorten(text: str, width: int = 24) -> str:
    """repr(text), cut in the middle with '...' when it is longer than `width` characters."""
    shown = repr(text)
    if len(shown) <= width:
        return shown
    half = max((width - 3) // 2, 1)
    return f"{shown[:half]}...{shown[-half:]} ({len(text)} chars)"


class HistoryRecorder:
    """Collects operations from many threads. `record` never blocks for long (only while
    another thread appends); `operations` returns a new list in recording order."""

    def __init__(self) -> None:
        self._box: csp.Chan = csp.Chan(1)
        self._box.send([])

    def record(self, operation: Operation) -> None:
        """Add one operation (thread-safe)."""
        if operation.kind not in KINDS:
            raise ValueError(f"unknown operation kind {operation.kind!r} (expected get, put "
                             f"or append)")
        recorded, _ = self._box.recv()
        recorded.append(operation)
        self._box.send(recorded)

    def operations(self) -> list[Operation]:
        """A copy of every operation recorded so far (thread-safe)."""
        recorded, _ = self._box.recv()
        copy = list(recorded)
        self._box.send(recorded)
        return copy

    def wrap(self, clerk: Any, client_id: int) -> "RecordingClerk":
        """A clerk whose get/put/append are recorded here as client `client_id`; every other
        attribute (close, ...) is the wrapped clerk's."""
        return RecordingClerk(clerk, client_id, self)


class RecordingClerk:
    """Forwards get/put/append to the wrapped clerk, recording each call with the times just
    before and just after it. A call that raises is recorded as never returned, then the
    exception goes on to the caller."""

    def __init__(self, clerk: Any, client_id: int, recorder: HistoryRecorder) -> None:
        self.clerk = clerk
        self.client_id = client_id
        self._recorder = recorder

    def get(self, key: str) -> str:
        return self._call("get", key, "")

    def put(self, key: str, value: str) -> None:
        self._call("put", key, value)

    def append(self, key: str, value: str) -> None:
        self._call("append", key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.clerk, name)

    def _call(self, kind: str, key: str, value: str) -> Any:
        method = getattr(self.clerk, kind)
        call_nanos = time.monotonic_ns()
        try:
            result = method(key) if kind == "get" else method(key, value)
        except BaseException:
            self._recorder.record(Operation(self.client_id, kind, key, value, None,
                                            call_nanos, None))
            raise
        return_nanos = time.monotonic_ns()
        output = result if kind == "get" else ""
        self._recorder.record(Operation(self.client_id, kind, key, value, output,
                                        call_nanos, return_nanos))
        return result
