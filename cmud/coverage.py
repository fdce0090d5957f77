"""Per-origin versions: which Puts of each origin a replica is sure to have (anti-entropy).

Each query actor numbers the Puts it accepts 1, 2, 3, ... (its seq). A server's sync actor
sends a remote server batches that each say, per local origin, "these are all the Puts of
origin O with seq in (lo, hi] that are still current". Remote tells are in order but at most
once, so the receiver tracks, per origin, `covered`: every Put up to that seq has reached it.
A batch whose range starts at `covered` extends it; one that starts beyond it proves a batch
was lost (its entries are merged anyway: LWW makes that harmless). Every batch also carries
the sender's latest seq per origin, so even a lost *last* batch shows up as latest > covered
at the next batch or heartbeat; the receiver then asks for "origin O after seq s", and the
sender answers with its current entries of O with seq > s (a Put overwritten since is not
needed: what overwrote it travels in its own origin's stream). In steady state nothing but
the small version maps is added to the traffic; no full state is ever resent.

Threads: none (pure).
"""

from __future__ import annotations


class Coverage:
    """What one receiver is sure to hold of one sender's origins."""

    def __init__(self) -> None:
        self.covered: dict[str, int] = {}

    def apply_range(self, origin: str, lo: int, hi: int) -> bool:
        """Record a batch covering (lo, hi] of `origin`. False if it starts past a gap."""
        have = self.covered.get(origin, 0)
        if lo > have:
            return False
        if hi > have:
            self.covered[origin] = hi
        return True

    def missing(self, latest: dict[str, int]) -> dict[str, int]:
        """{origin: covered seq} for every origin whose sender has more than we are sure of."""
        return {origin: self.covered.get(origin, 0) for origin, seq in latest.items()
                if seq > self.covered.get(origin, 0)}
