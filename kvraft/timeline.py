"""The explanation of a history that is not linearizable, as a timeline a person can read: one
line per operation (its place in the longest linearizable prefix the checker found, client,
call and return in milliseconds from the key's first call, a bar of its interval, the
operation, and the value after it), and the operation that cannot follow, marked `!`.

    key 'x' is not linearizable: get('x') -> 'a' by client 2 cannot follow the longest
    linearizable prefix (2 of 3 operations), after which the value is 'b': it returned 'a'.
      order  client     call ms   return ms  interval (32 columns)  operation -> value after
          1       0       0.000       1.000  [=====]                put('x', 'a')  -> 'a'
          2       1       2.000       3.000         [=====]         put('x', 'b')  -> 'b'
          !       2       4.000       5.000                [======] get('x') -> 'a'
      order: place in the longest linearizable prefix; -: not in it; !: cannot follow it

A long key shows the end of the prefix, the stuck operation and those concurrent with it, and
says how many lines it left out. Pure: no threads, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvraft.history import Operation, shorten

BAR_COLUMNS = 32
PREFIX_TAIL_SHOWN = 8   # linearized operations shown before the stuck one
MAX_LINES = 40


@dataclass(frozen=True)
class Stuck:
    """Where the search got stuck deepest: `prefix` (operation indices, in linearization
    order), the value after it, and the operation that returned before it could follow."""

    prefix: list[int]
    value: str
    blocked: int


def render(key: str, operations: list[Operation], stuck: Stuck | None) -> str:
    """The explanation for one key's operations (all of them, in the checker's indices)."""
    if stuck is None:  # cannot happen for an illegal verdict; say so rather than crash
        return f"key {key!r} is not linearizable"
    blocked = operations[stuck.blocked]
    header = (f"key {key!r} is not linearizable: {blocked.describe()} by client "
              f"{blocked.client_id} cannot follow the longest linearizable prefix "
              f"({len(stuck.prefix)} of {len(operations)} operations), after which the value "
              f"is {shorten(stuck.value)}: {_why(blocked, stuck.value)}.")
    order = {index: place for place, index in enumerate(stuck.prefix, start=1)}
    values_after = _values_after(operations, stuck.prefix)
    shown = _lines_to_show(operations, stuck)
    origin = min(op.call_nanos for op in operations)
    end = max([op.return_nanos for op in operations if op.returned]
              + [op.call_nanos for op in operations])
    # The axis spans the operations that returned (an old call that never returned would
    # squeeze the rest into a few columns); one that started earlier begins with '<'.
    start = min([operations[i].call_nanos for i in shown if operations[i].returned]
                or [operations[i].call_nanos for i in shown])
    if not all(operations[i].returned for i in shown):
        end += (end - start) // 4 + 1   # room for the '>' of operations that never returned
    shown_span = (start, end)
    lines = [header,
             f"  {'order':>5}  {'client':>6}  {'call ms':>10}  {'return ms':>10}  "
             f"{'interval':<{BAR_COLUMNS}}  operation -> value after"]
    hidden_before = len(stuck.prefix) - sum(1 for i in shown if i in order)
    if hidden_before > 0:
        lines.append(f"  ({_count(hidden_before, 'linearized operation')} earlier or elsewhere "
                     f"in the prefix not shown)")
    for index in shown:
        op = operations[index]
        mark = "!" if index == stuck.blocked else str(order.get(index, "-"))
        returned = f"{(op.return_nanos - origin) / 1e6:10.3f}" if op.returned else \
            f"{'never':>10}"
        after = f"  -> {shorten(values_after[index])}" if index in order else ""
        lines.append(f"  {mark:>5}  {op.client_id:>6}  {(op.call_nanos - origin) / 1e6:10.3f}"
                     f"  {returned}  {_bar(op, *shown_span)}  {op.describe()}{after}")
    left_out = len(operations) - len(shown) - max(hidden_before, 0)
    if left_out > 0:
        lines.append(f"  ({_count(left_out, 'other operation')} not shown)")
    lines.append("  order: place in the longest linearizable prefix; -: not in it; "
                 "!: cannot follow it")
    return "\n".join(lines)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


def _why(blocked: Operation, value: str) -> str:
    if blocked.kind == "get" and blocked.output != value:
        return f"it returned {shorten(blocked.output or '')}"
    return ("it returned before it could be linearized: every order of the operations still "
            "pending there leads to a contradiction")


def _values_after(operations: list[Operation], prefix: list[int]) -> dict[int, str]:
    value, after = "", {}
    for index in prefix:
        op = operations[index]
        if op.kind == "put":
            value = op.value
        elif op.kind == "append":
            value = value + op.value
        after[index] = value
    return after


def _lines_to_show(operations: list[Operation], stuck: Stuck) -> list[int]:
    """Indices to print, by call time: all of a short key; else the prefix's last few, the
    stuck operation and every operation whose interval overlaps it."""
    everything = sorted(range(len(operations)), key=lambda i: operations[i].call_nanos)
    if len(operations) <= MAX_LINES:
        return everything
    blocked = operations[stuck.blocked]
    chosen = set(stuck.prefix[-PREFIX_TAIL_SHOWN:]) | {stuck.blocked}
    linearized = set(stuck.prefix)
    for index, op in enumerate(operations):
        if len(chosen) >= MAX_LINES:
            break
        if not op.returned and index in linearized:
            continue  # it took effect long before; it is part of the prefix, not the scene
        ends = op.return_nanos if op.returned else float("inf")
        if op.call_nanos <= blocked.return_nanos and ends >= blocked.call_nanos:
            chosen.add(index)
    return [i for i in everything if i in chosen]


def _bar(op: Operation, start: int, end: int) -> str:
    """The interval drawn on BAR_COLUMNS columns from `start` to `end` nanoseconds; an
    operation that never returned runs to the right edge with '>', one called before `start`
    begins with '<' at the left edge."""
    span = max(end - start, 1)

    def column(nanos: int) -> int:
        return min(max((nanos - start) * (BAR_COLUMNS - 1) // span, 0), BAR_COLUMNS - 1)

    first = column(op.call_nanos)
    opening = "<" if op.call_nanos < start else "["
    if not op.returned:
        return (" " * first + opening + ">" * (BAR_COLUMNS - first - 1))[:BAR_COLUMNS]
    last = max(column(op.return_nanos), first + 1)
    if last >= BAR_COLUMNS:
        first, last = BAR_COLUMNS - 2, BAR_COLUMNS - 1
    bar = " " * first + opening + "=" * (last - first - 1) + "]"
    return bar.ljust(BAR_COLUMNS)
