"""actor: P3, the actor system (the course's `actor` package): mailboxes, actors on their own
threads, every message marshalled with the rpc codec, remote tells over rpc/TCP, stats."""

from actor.mailbox import Mailbox
from actor.system import (Actor, ActorContext, ActorRef, ActorSystem, RemoteTellsBlocked, Stats,
                          block_remote_tells, last_actor_system, set_artificial_latency_ms,
                          unblock_remote_tells)

__all__ = ["Mailbox", "Actor", "ActorContext", "ActorRef", "ActorSystem", "Stats",
           "last_actor_system", "set_artificial_latency_ms", "block_remote_tells",
           "unblock_remote_tells", "RemoteTellsBlocked"]
