"""`python -m cmud status`: each query actor's figures, fetched over its QueryStatus service.

Threads: the caller's only.
"""

from __future__ import annotations

import dataclasses

import rpc
from cmud.messages import StatusArgs, StatusReply

COLUMNS = [("addr", "query actor"), ("keys", "keys"), ("puts_accepted", "puts"),
           ("sync_messages_in", "msgs in"), ("sync_bytes_in", "bytes in"),
           ("sync_messages_out", "msgs out"), ("sync_bytes_out", "bytes out"),
           ("last_sync_age_ms", "last sync")]


def query_status(addrs: list[str], timeout: float = 5.0) -> list[dict]:
    """One dict per address: the StatusReply's fields plus "addr", or "addr" and "error"."""
    rows = []
    for addr in addrs:
        try:
            with rpc.dial(addr, timeout=timeout) as client:
                reply = client.call("QueryStatus.get", StatusArgs(), timeout=timeout)
            if type(reply) is not StatusReply:
                raise rpc.RemoteError(f"unexpected answer {type(reply).__name__}")
            rows.append({"addr": addr, **dataclasses.asdict(reply)})
        except rpc.RPCError as exc:
            rows.append({"addr": addr, "error": str(exc)})
    return rows


def render_table(rows: list[dict]) -> str:
    lines = ["  ".join(f"{title:>11}" for _, title in COLUMNS)]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['addr']:>11}  error: {row['error']}")
            continue
        cells = []
        for name, _ in COLUMNS:
            value = row[name]
            if name == "last_sync_age_ms":
                value = "never" if value < 0 else f"{value} ms"
            cells.append(f"{value:>11}")
        lines.append("  ".join(cells))
    return "\n".join(lines)
