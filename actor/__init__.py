"""actor: P3, the actor system (the course's `actor` package): mailboxes, actors on their own
threads, every message marshalled with the rpc codec, remote tells over rpc/TCP, stats."""

from actor.mailbox import Mailbox
from actor.system import (Actor, ActorContext, ActorRef, ActorSystem, Stats,
                          last_actor_system, set_artificial_latency_ms)

__all__ = ["Mailbox", "Actor", "ActorContext", "ActorRef", "ActorSystem", "Stats",
           "last_actor_system", "set_artificial_latency_ms"]
