"""raft: P2, a Raft peer following the extended paper's Figure 2 (election and log
replication) and Figure 13 (snapshots), talking to its peers only through
`peers[j].call(method, args)`."""

from raft.messages import ApplyCommand, ApplySnapshot
from raft.raft import Raft

__all__ = ["Raft", "ApplyCommand", "ApplySnapshot"]
