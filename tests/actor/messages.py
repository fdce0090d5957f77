"""Message types the actor tests send (registered with the rpc codec)."""

from dataclasses import dataclass, field

import rpc
from actor import Actor, ActorRef


@rpc.register
@dataclass
class Ping:
    value: int
    reply_to: ActorRef


@rpc.register
@dataclass
class Bag:
    items: list = field(default_factory=list)
    reply_to: ActorRef | None = None


class Echo(Actor):
    """Tells each Ping's value (or a Bag's items) to its reply_to."""

    def on_message(self, message):
        if type(message) is Ping:
            self.ctx.tell(message.reply_to, message.value)
        elif type(message) is Bag:
            self.ctx.tell(message.reply_to, message.items)
        else:
            raise ValueError(f"unexpected {message!r}")
