"""`python -m cmud status`: each query actor's figures, fetched over its QueryStatus service.

Each row: the actor, its keys, the Puts it accepted, the sync messages (and their bytes) it
received and sent, and `last_sync_in_age_ms`: how long ago it last *received* a sync message
(a batch from a local peer or from its server's sync actor), None ("never" in the table) when
it has received none. An actor that only sends (every Put of its server landed on it) has
none: that is not a fault.

Threads: the caller's only.
"""

from __future__ import annotations

import dataclasses

import rpc
from cmud.client import NotAQueryActor, actor_system_hint
from cmud.messages import StatusArgs, StatusReply

COLUMNS = [("addr", "query actor"), ("keys", "keys"), ("puts_accepted", "puts"),
           ("sync_messages_in", "msgs in"), ("sync_bytes_in", "bytes in"),
           ("sync_messages_out", "msgs out"), ("sync_bytes_out", "bytes out"),
           ("last_sync_in_age_ms", "last sync in")]


def status_row(addr: str, reply: StatusReply) -> dict:
    """The row of one StatusReply: its fields, "addr", and the age of the last sync message
    received under a name that says so (None, not the wire's -1, when there was none)."""
    row = {"addr": addr, **dataclasses.asdict(reply)}
    age_ms = row.pop("last_sync_age_ms")
    row["last_sync_in_age_ms"] = age_ms if age_ms >= 0 else None
    return row


def query_status(addrs: list[str], timeout: float = 5.0) -> list[dict]:
    """One dict per address (status_row), or "addr" and "error". Blocks: one call each."""
    rows = []
    for addr in addrs:
        try:
            with rpc.dial(addr, timeout=timeout) as client:
                try:
                    reply = client.call("QueryStatus.get", StatusArgs(), timeout=timeout)
                except rpc.RemoteError as exc:   # "can't find service": maybe a first port
                    hint = actor_system_hint(client, addr, timeout)
                    if hint:
                        raise NotAQueryActor(hint) from exc
                    raise
            if type(reply) is not StatusReply:
                raise rpc.RemoteError(f"unexpected answer {type(reply).__name__}")
            rows.append(status_row(addr, reply))
        except rpc.RPCError as exc:
            rows.append({"addr": addr, "error": str(exc)})
    return rows


def render_table(rows: list[dict]) -> str:
    """Right-aligned columns as wide as their widest cell; an error row is its address and
    the error."""
    cells_of_rows = []
    for row in rows:
        if "error" in row:
            continue
        cells = []
        for name, _ in COLUMNS:
            value = row[name]
            if name == "last_sync_in_age_ms":
                value = "never" if value is None else f"{value} ms"
            cells.append(str(value))
        cells_of_rows.append(cells)
    widths = [max([len(title)] + [len(cells[i]) for cells in cells_of_rows])
              for i, (_, title) in enumerate(COLUMNS)]
    if any("error" in row for row in rows):
        widths[0] = max([widths[0]] + [len(row["addr"]) for row in rows if "error" in row])
    lines = ["  ".join(f"{title:>{width}}" for (_, title), width in zip(COLUMNS, widths))]
    good = iter(cells_of_rows)
    for row in rows:
        if "error" in row:
            lines.append(f"{row['addr']:>{widths[0]}}  error: {row['error']}")
        else:
            lines.append("  ".join(f"{cell:>{width}}" for cell, width in zip(next(good), widths)))
    return "\n".join(lines)
