"""The LSP exceptions (docs/architecture.md, "Public contracts")."""

from __future__ import annotations


class LSPError(Exception):
    """An LSP operation failed (closed endpoint, could not connect, ...)."""


class ConnectionLost(LSPError):
    """The connection `conn_id` is lost, closed, or unknown."""

    def __init__(self, conn_id: int, reason: str = "connection lost") -> None:
        super().__init__(f"{reason} (conn {conn_id})")
        self.conn_id = conn_id


class MessageError(ValueError):
    """A datagram that is not a well-formed LSP message (it is dropped, never fatal)."""
