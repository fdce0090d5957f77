"""The miner server's scheduling policy, as a pure object its event loop drives: no sockets,
threads or clocks (every event carries `now`, in seconds, from the caller's clock).

Policy
- A request (the inclusive nonce range lower..upper) is cut into chunks as it is handed out, not
  up front: each idle miner gets the next chunk of the request with the SHORTEST REMAINING WORK
  (nonces not yet answered: unassigned plus in flight), ties going to the earlier request. This
  is shortest-remaining-time-first, which minimises mean response time: a small request that
  arrives while a huge one runs takes every miner as it finishes its current chunk, so it ends
  first; of two similar requests the earlier has less left once it has started, so they finish
  roughly in arrival order. A steady stream of small requests can delay a huge one (the price of
  SRTF); the huge one still gets every miner the small ones leave idle.
- No miner sits idle while work is waiting: every event hands chunks to all idle miners.
- Chunk size follows the miner's measured speed: about `target_chunk_seconds` of work at the
  rate its last chunk showed (`initial_chunk` nonces before the first result), kept between
  `min_chunk` and `max_chunk`. Slow miners therefore get smaller chunks, and since a miner only
  gets a chunk when it is idle, they get less work overall. A chunk is also at most an even share
  of the request among all miners, so a small request is spread over every miner.
- A miner holds one chunk at a time. A lost miner's chunk goes back to the front of its request
  and to the next idle miner (or waits for one to join). A lost client's requests are dropped at
  once: nothing more of them is handed out, and results of their in-flight chunks are ignored.
- Results merge into the minimum (hash, nonce): the smaller nonce wins a tie, so any split of a
  range gives the answer of a single brute-force pass. A request is answered when its last
  chunk's result arrives.

- Nothing outlives its owner: a miner is kept from its join until it is lost, a request until
  it is answered or its client is lost; no other state is kept per miner or client id.

Actions returned: `Dispatch(miner, data, lower, upper)` (send a Request to the miner) and
`Answer(client, hash, nonce)` (send a Result to the client), in the order to perform them.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Dispatch:
    miner: int
    data: str
    lower: int
    upper: int


@dataclass(frozen=True)
class Answer:
    client: int
    hash: int
    nonce: int


class _Request:
    __slots__ = ("id", "client", "data", "unassigned", "unanswered", "best")

    def __init__(self, request_id: int, client: int, data: str, lower: int, upper: int) -> None:
        self.id = request_id
        self.client = client
        self.data = data
        self.unassigned: deque[tuple[int, int]] = deque([(lower, upper)])
        self.unanswered = upper - lower + 1   # nonces unassigned or in flight
        self.best: tuple[int, int] | None = None


class _Chunk:
    __slots__ = ("request", "lower", "upper", "sent_at")

    def __init__(self, request: _Request, lower: int, upper: int, sent_at: float) -> None:
        self.request = request
        self.lower = lower
        self.upper = upper
        self.sent_at = sent_at

    @property
    def size(self) -> int:
        return self.upper - self.lower + 1


class _Miner:
    __slots__ = ("chunk", "nonces_per_second")

    def __init__(self) -> None:
        self.chunk: _Chunk | None = None
        self.nonces_per_second: float | None = None


class Scheduler:
    """Not thread-safe: one event loop owns it. Miner and client ids are the caller's (LSP
    connection ids); an id is either a miner's or a client's."""

    def __init__(self, *, target_chunk_seconds: float = 0.05, initial_chunk: int = 10_000,
                 min_chunk: int = 1_000, max_chunk: int = 1_000_000) -> None:
        if not 1 <= min_chunk <= initial_chunk <= max_chunk or target_chunk_seconds <= 0:
            raise ValueError("need 1 <= min_chunk <= initial_chunk <= max_chunk and a "
                             "positive target_chunk_seconds")
        self._target_seconds = target_chunk_seconds
        self._initial_chunk = initial_chunk
        self._min_chunk = min_chunk
        self._max_chunk = max_chunk
        self._miners: dict[int, _Miner] = {}          # insertion order: join order
        self._requests: dict[int, _Request] = {}      # insertion order: arrival order
        self._ids = itertools.count()

    # ---- what the loop and tests may look at ------------------------------------------------

    @property
    def miners(self) -> int:
        return len(self._miners)

    @property
    def busy_miners(self) -> int:
        return sum(1 for m in self._miners.values() if m.chunk is not None)

    @property
    def requests(self) -> int:
        return len(self._requests)

    # ---- events ------------------------------------------------------------------------------

    def request(self, client: int, data: str, lower: int, upper: int, now: float) -> list:
        """A client's request for the minimum hash over lower..upper (lower <= upper)."""
        if not 0 <= lower <= upper:
            raise ValueError(f"empty or negative range {lower}..{upper}")
        request_id = next(self._ids)
        self._requests[request_id] = _Request(request_id, client, data, lower, upper)
        return self._dispatch(now)

    def miner_joined(self, miner: int, now: float) -> list:
        if miner not in self._miners:
            self._miners[miner] = _Miner()
        return self._dispatch(now)

    def result(self, miner: int, hash_value: int, nonce: int, now: float) -> list:
        """The miner's answer for its current chunk (ignored if it has none)."""
        state = self._miners.get(miner)
        if state is None or state.chunk is None:
            return []
        chunk, state.chunk = state.chunk, None
        elapsed = now - chunk.sent_at
        if elapsed > 0:
            state.nonces_per_second = chunk.size / elapsed
        actions = []
        request = chunk.request
        if self._requests.get(request.id) is request:
            request.unanswered -= chunk.size
            candidate = (hash_value, nonce)
            if request.best is None or candidate < request.best:
                request.best = candidate
            if request.unanswered == 0:
                del self._requests[request.id]
                actions.append(Answer(request.client, *request.best))
        return actions + self._dispatch(now)

    def miner_lost(self, miner: int, now: float) -> list:
        state = self._miners.pop(miner, None)
        if state is None or state.chunk is None:
            return []
        chunk = state.chunk
        if self._requests.get(chunk.request.id) is chunk.request:
            chunk.request.unassigned.appendleft((chunk.lower, chunk.upper))
        return self._dispatch(now)

    def client_lost(self, client: int, now: float) -> list:
        """Drops the client's requests; their in-flight chunks' results will be ignored."""
        for request_id in [r.id for r in self._requests.values() if r.client == client]:
            del self._requests[request_id]
        return []

    # ---- the rules ---------------------------------------------------------------------------

    def _dispatch(self, now: float) -> list:
        actions = []
        for miner_id, miner in self._miners.items():
            if miner.chunk is not None:
                continue
            request = self._next_request()
            if request is None:
                break
            lower, upper = request.unassigned.popleft()
            size = min(self._chunk_size(miner, request), upper - lower + 1)
            if lower + size <= upper:
                request.unassigned.appendleft((lower + size, upper))
            miner.chunk = _Chunk(request, lower, lower + size - 1, now)
            actions.append(Dispatch(miner_id, request.data, lower, lower + size - 1))
        return actions

    def _next_request(self) -> _Request | None:
        best = None
        for request in self._requests.values():   # arrival order: ties keep the earlier
            if request.unassigned and (best is None or request.unanswered < best.unanswered):
                best = request
        return best

    def _chunk_size(self, miner: _Miner, request: _Request) -> int:
        if miner.nonces_per_second is None:
            size = self._initial_chunk
        else:
            size = int(miner.nonces_per_second * self._target_seconds)
        share = -(-request.unanswered // len(self._miners))   # ceil: an even share
        return max(self._min_chunk, min(size, share, self._max_chunk))
