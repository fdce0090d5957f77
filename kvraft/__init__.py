"""kvraft: beyond the course, a linearizable key-value service on Raft (MIT 6.5840's lab 4
shape): replicas (`kvraft.server`), the clerk (`kvraft.clerk`), the state machine
(`kvraft.state_machine`), and a linearizability checker with a history recorder
(`kvraft.linearizability`, `kvraft.history`). It imports raft; raft never imports it."""

from kvraft.clerk import BadRequest, Clerk, ClerkClosed

__all__ = ["Clerk", "ClerkClosed", "BadRequest"]
