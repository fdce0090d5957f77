"""What crosses the wire between actor systems: the registered dataclasses of the remote-tell
service (rpc's codec carries them; `@rpc.register` tags each with its module and name).

    ActorRef(address, counter)           names an actor or a channel ref of the system at
                                         `address` ("host:port"); frozen, so usable as a key
    RemoteTellBatch(counters, texts)     what a sender writes: "RemoteTell.tell_batch"

Threads: none; plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

import rpc


@rpc.register
@dataclass(frozen=True)
class ActorRef:
    address: str
    counter: int

    def uid(self) -> str:
        return f"{self.address}/{self.counter}"


@rpc.register
@dataclass
class RemoteTellBatch:
    """Tells from one system to another, in the order they were made: message `texts[i]`
    (the rpc codec's UTF-8 JSON, as text, which travels cheaper than base64) goes to the
    receiving system's actor or channel ref number `counters[i]`."""
    counters: list
    texts: list
