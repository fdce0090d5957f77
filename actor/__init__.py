"""actor: P3, the actor system (the course's `actor` package): mailboxes, actors on their own
threads, every message marshalled with the rpc codec, remote tells over rpc/TCP, stats.

Modules: system (the local system: ActorSystem, Actor, ActorContext), wire (the registered
types that travel: ActorRef, RemoteTellBatch), remote (the remote tell call and its receiving
service: the student's part), sender (the per-address remote sender: staff), faults (latency
and partitions, for tests and demos), stats, mailbox."""

from actor.faults import (Faults, RemoteTellsBlocked, block_remote_tells,
                          set_artificial_latency_ms, unblock_remote_tells)
from actor.mailbox import Mailbox
from actor.stats import Stats
from actor.system import Actor, ActorContext, ActorSystem, last_actor_system
from actor.wire import ActorRef

__all__ = ["Mailbox", "Actor", "ActorContext", "ActorRef", "ActorSystem", "Stats",
           "last_actor_system", "set_artificial_latency_ms", "block_remote_tells",
           "unblock_remote_tells", "RemoteTellsBlocked", "Faults"]
