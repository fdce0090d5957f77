"""Is a recorded history of a key-value service linearizable? A pure checker: no threads, no
sockets; the only clock it reads is the one for its time limit.

The model: a map of strings where an absent key reads as ""; put replaces the value, append
concatenates to it, and a get must return the value. A history is linearizable when every
operation can be given one instant inside its interval [call, return] such that, run in the
order of those instants, each operation does what the model says and each get returns what it
returned. An operation that never returned (`return_nanos` None) may take effect at any time
after its call, or never; a get that never returned observed nothing and is left out.

Method (Wing and Gong's search, with Lowe's memo and porcupine's partitioning):
- Keys are independent in this model, so the history is split by key and each key is checked
  alone (a history is linearizable if and only if each key's is); smaller keys first, so one
  hard key cannot hide another key's violation behind the time limit.
- Each key's operations become a list of events, calls and returns, in time order (a call
  before a return at the same instant: touching intervals count as concurrent, so equal clock
  readings never make a correct history look wrong). The search walks the list: at a call it
  tries to linearize that operation next (the model must accept it), lifts its call and
  return out of the list and starts again from the head; at a return it has met an operation
  that had to be linearized before this point but was not, so it undoes the last choice and
  tries the next call after it. When the list is empty, or holds only operations that never
  returned, the history is linearizable; when there is nothing left to undo, it is not.
- Memo: a (set of linearized operations as a bitset, value) pair already explored leads to
  the same outcome, so it is never explored twice.
- Time limit: past `timeout_seconds` (for the whole check) the answer is "unknown", which is
  not a pass.

When a key fails, the explanation shows the longest linearizable prefix the search found and
the operation that cannot follow it, as a timeline (kvraft/timeline.py).

Threads: none; `check` runs on its caller's thread and is safe to call from many at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kvraft.history import KINDS, Operation
from kvraft.timeline import Stuck, render

GET, PUT, APPEND = 0, 1, 2
_KIND_CODES = {"get": GET, "put": PUT, "append": APPEND}
_TIME_CHECK_EVERY_STEPS = 2048


@dataclass
class CheckResult:
    """verdict "ok" | "illegal" | "unknown"; `key` is the key that failed or timed out (None
    when ok); `explanation` is "" when ok, else a readable account. True only when ok."""

    verdict: str
    key: str | None = None
    explanation: str = ""

    def __bool__(self) -> bool:
        return self.verdict == "ok"


def check(operations: list[Operation], *, timeout_seconds: float = 10.0) -> CheckResult:
    """Check the whole history; never raises for a history that is merely wrong (that is the
    "illegal" verdict). Raises ValueError, with one line saying which operation, when an
    operation is malformed (unknown kind, a return before its call, a non-str field)."""
    deadline = time.monotonic() + timeout_seconds
    by_key: dict[str, list[Operation]] = {}
    for operation in operations:
        _validate(operation)
        if operation.kind == "get" and operation.output is None:
            continue  # a get that never returned observed nothing and changed nothing
        by_key.setdefault(operation.key, []).append(operation)
    for key in sorted(by_key, key=lambda k: (len(by_key[k]), k)):
        result = check_key(key, by_key[key], deadline)
        if not result:
            return result
    return CheckResult("ok")


def assert_linearizable(operations: list[Operation], *, timeout_seconds: float = 10.0) -> None:
    """Raise AssertionError with the explanation unless the history is linearizable; a check
    that timed out fails too (its message says so)."""
    result = check(operations, timeout_seconds=timeout_seconds)
    if not result:
        raise AssertionError(result.explanation)


def check_key(key: str, operations: list[Operation], deadline: float) -> CheckResult:
    """Check the operations of one key (all on `key`) before `deadline` (time.monotonic())."""
    search = _Search(operations)
    verdict = search.run(deadline)
    if verdict == "ok":
        return CheckResult("ok")
    if verdict == "unknown":
        return CheckResult("unknown", key, (
            f"linearizability check timed out on key {key!r} ({len(operations)} operations, "
            f"{search.steps} search steps): no verdict, the history may or may not be "
            f"linearizable; give the check more time or record a shorter history"))
    return CheckResult("illegal", key, render(key, operations, search.stuck))


def _validate(operation: Operation) -> None:
    where = (f"operation {operation.kind}({operation.key!r}) of client "
             f"{operation.client_id}")
    if operation.kind not in KINDS:
        raise ValueError(f"{where}: unknown kind {operation.kind!r} (get, put or append)")
    for name in ("key", "value"):
        if not isinstance(getattr(operation, name), str):
            raise ValueError(f"{where}: {name} must be a str")
    if operation.output is not None and not isinstance(operation.output, str):
        raise ValueError(f"{where}: output must be a str or None")
    if operation.return_nanos is not None and operation.return_nanos < operation.call_nanos:
        raise ValueError(f"{where}: returned at {operation.return_nanos} ns, before its call "
                         f"at {operation.call_nanos} ns")


class _Search:
    """The search over one key's operations. Events live in a doubly linked list over arrays
    (index 0 the head, the last index the tail) so lifting an operation and putting it back
    are O(1); putting back happens in the reverse order of lifting, which restores the links
    exactly (Knuth's dancing links)."""

    def __init__(self, operations: list[Operation]) -> None:
        self.operations = operations
        self.steps = 0
        self.stuck: Stuck | None = None  # the deepest point where the search got stuck
        count = len(operations)
        never = max([op.return_nanos for op in operations if op.return_nanos is not None]
                    + [op.call_nanos for op in operations], default=0) + 1
        events = []  # (time, 0 call | 1 return, operation index)
        for index, op in enumerate(operations):
            events.append((op.call_nanos, 0, index))
            events.append((op.return_nanos if op.returned else never, 1, index))
        events.sort()
        self.tail = len(events) + 1
        self.event_operation = [0] * (self.tail + 1)
        self.event_is_call = [False] * (self.tail + 1)
        self.partner = [0] * (self.tail + 1)  # a call's return event
        position = {}
        for slot, (_, is_return, index) in enumerate(events, start=1):
            self.event_operation[slot] = index
            self.event_is_call[slot] = not is_return
            position[(index, is_return)] = slot
        for index in range(count):
            self.partner[position[(index, 0)]] = position[(index, 1)]
        self.next = list(range(1, self.tail + 2))
        self.previous = [-1] + list(range(0, self.tail))
        self.kind = [_KIND_CODES[op.kind] for op in operations]
        self.value = [op.value for op in operations]
        self.output = [op.output for op in operations]
        self.returned = [op.returned for op in operations]

    def run(self, deadline: float) -> str:
        """"ok", "illegal" (self.stuck then says where) or "unknown" (past the deadline)."""
        nxt, prv = self.next, self.previous
        event_operation, event_is_call, partner = (self.event_operation, self.event_is_call,
                                                   self.partner)
        kind, value, output, returned = self.kind, self.value, self.output, self.returned
        tail = self.tail
        state = ""
        linearized = 0
        stack: list[tuple[int, str]] = []  # (call event lifted, value before it)
        memo: set[tuple[int, str]] = set()
        deepest = -1
        steps = 0
        event = nxt[0]
        while event != tail:
            steps += 1
            if steps % _TIME_CHECK_EVERY_STEPS == 0 and time.monotonic() > deadline:
                self.steps = steps
                return "unknown"
            index = event_operation[event]
            if event_is_call[event]:
                code = kind[index]
                if code == GET:
                    if output[index] != state:
                        event = nxt[event]
                        continue
                    new_state = state
                elif code == PUT:
                    new_state = value[index]
                else:
                    new_state = state + value[index]
                new_linearized = linearized | (1 << index)
                explored = (new_linearized, new_state)
                if explored in memo:
                    event = nxt[event]
                    continue
                memo.add(explored)
                stack.append((event, state))
                state, linearized = new_state, new_linearized
                back = partner[event]  # lift the call and its return out of the list
                nxt[prv[event]] = nxt[event]
                prv[nxt[event]] = prv[event]
                nxt[prv[back]] = nxt[back]
                prv[nxt[back]] = prv[back]
                event = nxt[0]
                continue
            if not returned[index]:
                break  # only operations that never returned are left: they may never happen
            # `index` returned before it could be linearized: undo the last choice.
            if len(stack) > deepest:
                deepest = len(stack)
                self.stuck = Stuck([event_operation[e] for e, _ in stack], state, index)
            if not stack:
                self.steps = steps
                return "illegal"
            call, state = stack.pop()
            linearized ^= 1 << event_operation[call]
            back = partner[call]  # put the return, then the call, back where they were
            nxt[prv[back]] = back
            prv[nxt[back]] = back
            nxt[prv[call]] = call
            prv[nxt[call]] = call
            event = nxt[call]
        self.steps = steps
        return "ok"
