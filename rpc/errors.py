"""The rpc package's errors: every failure a caller can see is an RPCError."""

from __future__ import annotations


class RPCError(Exception):
    """Base of every rpc error."""


class CallTimeout(RPCError):
    """The reply did not come within the call's timeout (the client stays usable)."""


class ConnectionLost(RPCError):
    """The connection is closed, broken or could not be made."""


class RemoteError(RPCError):
    """The remote handler raised, or no such method exists; carries the remote message."""


class EncodeError(RPCError):
    """A value the codec does not carry (raised at the sender, before anything is sent)."""


class FrameError(RPCError):
    """A malformed frame: bad length, not UTF-8 JSON, unknown type, bad fields."""
