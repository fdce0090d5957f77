"""Waiting in a test for something another thread or process does: poll a condition until it
holds, failing with what was awaited (and what was last seen) at a deadline. A test waits this
way, never with a fixed sleep followed by an assertion: on a loaded machine the other side may
simply not have run yet. Every kit ships it.

    wait_until(lambda: server.count_active() == 3, "three active clients", seconds=5)
    leader = wait_until(page.leaders, "a leader", seconds=60)   # returns the truthy value

Threads: none; the calling test's thread polls.
"""

from __future__ import annotations

import time

DEFAULT_SECONDS = 15.0   # generous: two CPU burners beside the suite
POLL_SECONDS = 0.02      # between two looks; a condition is cheap, but not free


def wait_until(holds, what: str = "a condition", seconds: float = DEFAULT_SECONDS,
               describe=None, poll_seconds: float = POLL_SECONDS):
    """Call `holds()` until it returns something truthy, and return that; after `seconds`,
    raise AssertionError naming `what` and, if given, `describe()` (the state last seen)."""
    deadline = time.monotonic() + seconds
    while True:
        value = holds()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; last seen: {describe()}" if describe is not None else ""
            raise AssertionError(f"not within {seconds:g} s: {what}{seen}")
        time.sleep(poll_seconds)   # nothing to wait on: the condition is another's state
