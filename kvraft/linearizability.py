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
  readings never make a correct history look wrong). A node of the search is a point where
  some operations are linearized (lifted out of the list) with the value they leave; its
  candidates are the calls before the first return still in the list (that operation must
  be linearized before anything called after it returns). The search tries a candidate the
  model accepts, lifts its call and return out of the list and goes on from the new node;
  when no candidate works it undoes the last choice and tries that node's next one. When the
  list is empty, or holds only operations that never returned, the history is linearizable;
  when there is nothing left to undo, it is not.
- Memo: a (set of linearized operations as a bitset, value) pair already explored leads to
  the same outcome, so it is never explored twice.
- Three rules of this model cut the search without changing the verdict:
  - a candidate get that reads the current value goes next and alone (a get changes nothing,
    and every operation that must precede it already has);
  - a node fails at once when a get among the next few events cannot read what it read: the
    value does not start with it (appends only add to the end) and no put still to
    linearize, called before that get returned, writes a start of it;
  - the candidates are tried in the order the next get's read suggests (the appends that
    grow the value into it; else the puts it starts with first, the appends it shows last),
    so in a correct history the first choice is almost always right and the search runs in
    about linear time.
- Time limit: past `timeout_seconds` (for the whole check) the answer is "unknown", which is
  not a pass. A history that is NOT linearizable can still need a search over many orders
  (many concurrent appends that no read pins down), so refusing one can take far longer than
  accepting a correct one.

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
_LOOK_AHEAD_EVENTS = 16  # how far down the list the search looks for gets


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
        # One frame per linearized operation: the choices of its node, how far they were
        # tried, the value and set before, the call event lifted, and the node's blocking
        # return event.
        stack: list[tuple[list[int], int, str, int, int, int]] = []
        memo: set[tuple[int, str]] = set()
        deepest = -1
        steps = 0
        while True:
            steps += 1
            if steps % _TIME_CHECK_EVERY_STEPS == 0 and time.monotonic() > deadline:
                self.steps = steps
                return "unknown"
            # A node: the candidates are the calls before the first return still in the list.
            event = nxt[0]
            if event == tail:
                break
            candidates = []
            readable_get = -1
            while event_is_call[event]:
                index = event_operation[event]
                if readable_get < 0 and kind[index] == GET and output[index] == state:
                    readable_get = event
                candidates.append(event)
                event = nxt[event]
            blocking = event
            if not returned[event_operation[blocking]]:
                break  # only operations that never returned are left: they may never happen
            if readable_get >= 0:
                choices = [readable_get]  # a get that reads the value now can go first
            else:
                doomed, read = self._look_ahead(state)
                if doomed >= 0:  # no order from here satisfies that get: this node fails
                    choices = []
                    blocking = partner[doomed]
                elif read is not None and len(candidates) > 1:
                    choices = self._guided(candidates, state, read)
                else:
                    choices = candidates
            position = 0
            while True:  # try the node's choices from `position`; undo on failure
                chosen = -1
                while position < len(choices):
                    call = choices[position]
                    position += 1
                    index = event_operation[call]
                    code = kind[index]
                    if code == GET:
                        if output[index] != state:
                            continue
                        new_state = state
                    elif code == PUT:
                        new_state = value[index]
                    else:
                        new_state = state + value[index]
                    new_linearized = linearized | (1 << index)
                    explored = (new_linearized, new_state)
                    if explored in memo:
                        continue
                    memo.add(explored)
                    stack.append((choices, position, state, linearized, call, blocking))
                    state, linearized = new_state, new_linearized
                    back = partner[call]  # lift the call and its return out of the list
                    nxt[prv[call]] = nxt[call]
                    prv[nxt[call]] = prv[call]
                    nxt[prv[back]] = nxt[back]
                    prv[nxt[back]] = prv[back]
                    chosen = call
                    break
                if chosen >= 0:
                    break
                # No choice works: the blocking operation cannot be linearized from here.
                if len(stack) > deepest:
                    deepest = len(stack)
                    self.stuck = Stuck([event_operation[frame[4]] for frame in stack], state,
                                       event_operation[blocking])
                if not stack:
                    self.steps = steps
                    return "illegal"
                choices, position, state, linearized, call, blocking = stack.pop()
                back = partner[call]  # put the return, then the call, back where they were
                nxt[prv[back]] = back
                prv[nxt[back]] = back
                nxt[prv[call]] = call
                prv[nxt[call]] = call
        self.steps = steps
        return "ok"

    def _guided(self, candidates: list[int], state: str, read: str) -> list[int]:
        """The candidates in the order to try them, aimed at `read`, what the next get still
        to linearize read. If the value can grow into it: first the appends that grow it
        that way. Otherwise a put must come first: the puts `read` starts with, then the
        writes it does not show, then the appends it shows. Only the order changes, never
        the verdict; in a correct history the first choice is then almost always right."""
        event_operation, kind, value = self.event_operation, self.kind, self.value
        first, middle, last = [], [], []
        if read != state and read.startswith(state):
            at = len(state)
            for call in candidates:
                index = event_operation[call]
                if kind[index] == APPEND and read.startswith(value[index], at):
                    first.append(call)
                else:
                    last.append(call)
        else:
            for call in candidates:
                index = event_operation[call]
                code = kind[index]
                if code == PUT and read.startswith(value[index]):
                    first.append(call)
                elif code == APPEND and value[index] and value[index] in read:
                    last.append(call)
                else:
                    middle.append(call)
        return first + middle + last

    def _look_ahead(self, state: str) -> tuple[int, str | None]:
        """Over the next events of the list: (the call event of a get that no order from here
        lets read what it read, or -1; what the first get still to linearize read, or None).
        A get is doomed when the value does not start with what it read (appends only add to
        the end) and no put not yet linearized, called before the get returned, writes a
        start of it."""
        nxt, event_is_call, event_operation, kind, output, value, partner = (
            self.next, self.event_is_call, self.event_operation, self.kind, self.output,
            self.value, self.partner)
        first_read = None
        puts_seen: list[str] = []
        needing_put: dict[int, int] = {}  # return event -> call event, of gets
        event = nxt[0]
        for _ in range(_LOOK_AHEAD_EVENTS):
            if event == self.tail:
                break
            index = event_operation[event]
            if event_is_call[event]:
                code = kind[index]
                if code == PUT:
                    puts_seen.append(value[index])
                elif code == GET:
                    read = output[index]
                    if first_read is None:
                        first_read = read
                    if not read.startswith(state):
                        needing_put[partner[event]] = event
            elif needing_put and event in needing_put:
                read = output[index]
                if not any(read.startswith(written) for written in puts_seen):
                    return needing_put[event], first_read
            event = nxt[event]
        return -1, first_read
