"""The handout's counter example: an actor that adds what it is told and answers MGet with an
MResult, asked from outside through a channel ref.

Threads: run_counter runs on the caller's thread, beside the threads of the system it starts
and closes (actor.system); Counter runs on its actor thread."""

from __future__ import annotations

from dataclasses import dataclass

import csp
import rpc
from actor.system import Actor, ActorSystem
from actor.wire import ActorRef


@rpc.register
@dataclass
class MAdd:
    value: int


@rpc.register
@dataclass
class MGet:
    reply_to: ActorRef


@rpc.register
@dataclass
class MResult:
    value: int


class Counter(Actor):
    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.total = 0

    def on_message(self, message) -> None:
        if type(message) is MAdd:
            self.total += message.value
        elif type(message) is MGet:
            self.ctx.tell(message.reply_to, MResult(self.total))
        else:
            raise ValueError(f"Counter: unexpected message {message!r}")


def run_counter(timeout_seconds: float = 5.0) -> int:
    """Start a system and a Counter, add 1 and 2, ask: returns the answer (3)."""
    system = ActorSystem()
    try:
        counter = system.start_actor(Counter)
        system.tell(counter, MAdd(1))
        system.tell(counter, MAdd(2))
        reply_ref, reply = system.new_channel_ref()
        system.tell(counter, MGet(reply_ref))
        answered = csp.Recv(reply)
        case, result, _ = csp.select_case(answered, csp.Recv(csp.after(timeout_seconds)))
        if case is not answered:
            raise TimeoutError("the counter did not answer")
        return result.value
    finally:
        system.close()
