"""rpc: a Go `net/rpc` analogue over TCP (length-prefixed JSON, registered dataclasses) and
`simnet`, the course's simulated lossy network for tests.

    @rpc.register                 a dataclass that may travel
    rpc.Server(), rpc.dial(...)   TCP server and client (rpc.server, rpc.client)
    rpc.wire                      the frames and envelopes they exchange, address parsing
    rpc.simnet                    the simulated network the Raft tests use
"""

from rpc.client import Call, Client, dial
from rpc.codec import register
from rpc.errors import (CallTimeout, ConnectionLost, EncodeError, FrameError, RemoteError,
                        RPCError)
from rpc.server import Server

__all__ = ["register", "Server", "dial", "Client", "Call", "RPCError", "CallTimeout",
           "ConnectionLost", "RemoteError", "EncodeError", "FrameError"]
