"""The miner server's scheduling policy, as a pure object its event loop drives: no sockets,
threads or clocks (every event carries `now`, in seconds, from the caller's clock).

Policy
- A request (the inclusive nonce range lower..upper) is cut into chunks as it is handed out, not
  up front: each free slot of a miner (see below) gets the next chunk of the request with the
  SHORTEST REMAINING WORK (nonces not yet answered: unassigned plus in flight), ties going to
  the earlier request. This is shortest-remaining-time-first, which minimises mean response
  time: a small request that arrives while a huge one runs takes every miner's slot as it
  frees up, so it ends first; of two similar requests the earlier has less left once it has
  started, so they finish roughly in arrival order. A steady stream of small requests can
  delay a huge one (the price of SRTF); the huge one still gets every slot the small ones
  leave free.
- No miner waits for the server between chunks: a miner holds up to `pipeline_depth` chunks
  (default 2: the one it mines and the next, queued in its LSP connection), and every event
  tops every miner up, idle miners first (each gets one chunk before any gets a second). So
  the round trip of a result and the next request is hidden behind the queued chunk, and chunks
  can be short (the default `target_chunk_seconds` is 15 ms): a request that arrives while
  every miner is busy waits at most for the chunks a miner already holds (about 30 ms of work)
  before its first chunk starts. (Measured on a loaded 2-core machine, issue 20, runs of the
  two policies interleaved: with one 50 ms chunk per miner a 100,000-nonce request behind a
  20,000,000-nonce one took over 3x its idle time in some round of most runs; with two 15 ms
  chunks the median fell from about 1.7x to about 1.3x and a round above 3x became rare,
  for about 0.1 less two-miner speed-up.)
  Chunks of the same miner are mined in the order sent, so a result answers that miner's
  oldest chunk.
- Chunk size follows the miner's measured speed: about `target_chunk_seconds` of work at its
  estimated rate, kept between `min_chunk` and `max_chunk` (`initial_chunk` nonces before its
  first result). Each result measures a rate (the chunk's size over the time from when the
  miner could start it, the later of its dispatch and the miner's previous result, to its
  result), and the estimate is the mean of that and the previous estimate. Slow miners therefore
  get smaller chunks, and since a miner only gets a chunk when a slot is free, they get less
  work overall. A chunk is also at most an even share of the request among all miners, so a
  small request is spread over every miner.
- A lost miner's chunks go back to the front of their requests, in order, and to the next miner
  with a free slot (or wait for one to join). A lost client's requests are dropped at once:
  nothing more of them is handed out, and results of their in-flight chunks are ignored.
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
    __slots__ = ("chunks", "nonces_per_second", "last_result_at")

    def __init__(self) -> None:
        self.chunks: deque[_Chunk] = deque()   # in flight, oldest (being mined) first
        self.nonces_per_second: float | None = None
        self.last_result_at: float | None = None


class Scheduler:
    """Not thread-safe: one event loop owns it. Miner and client ids are the caller's (LSP
    connection ids); an id is either a miner's or a client's."""

    def __init__(self, *, target_chunk_seconds: float = 0.015, initial_chunk: int = 10_000,
                 min_chunk: int = 1_000, max_chunk: int = 1_000_000,
                 pipeline_depth: int = 2) -> None:
        if (not 1 <= min_chunk <= initial_chunk <= max_chunk or target_chunk_seconds <= 0
                or pipeline_depth < 1):
            raise ValueError("need 1 <= min_chunk <= initial_chunk <= max_chunk, a "
                             "positive target_chunk_seconds and pipeline_depth >= 1")
        self._depth = pipeline_depth
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
        return sum(1 for m in self._miners.values() if m.chunks)

    @property
    def chunks_in_flight(self) -> int:
        return sum(len(m.chunks) for m in self._miners.values())

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
        """The miner's answer for its oldest chunk (ignored if it has none)."""
        state = self._miners.get(miner)
        if state is None or not state.chunks:
            return []
        chunk = state.chunks.popleft()
        started = chunk.sent_at
        if state.last_result_at is not None and state.last_result_at > started:
            started = state.last_result_at   # it was queued behind the previous chunk
        state.last_result_at = now
        elapsed = now - started
        if elapsed > 0:
            measured = chunk.size / elapsed
            # Averaged with the previous estimate: a result that reached us late makes the
            # next one look early (its chunk fast), and one such chunk must not double the
            # next chunk's length.
            previous = state.nonces_per_second
            state.nonces_per_second = measured if previous is None else (previous + measured) / 2
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
        if state is None or not state.chunks:
            return []
        for chunk in reversed(state.chunks):   # the oldest ends up in front
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
        for slots in range(1, self._depth + 1):   # every miner's first slot before any second
            for miner_id, miner in self._miners.items():
                if len(miner.chunks) >= slots:
                    continue
                request = self._next_request()
                if request is None:
                    return actions
                lower, upper = request.unassigned.popleft()
                size = min(self._chunk_size(miner, request), upper - lower + 1)
                if lower + size <= upper:
                    request.unassigned.appendleft((lower + size, upper))
                miner.chunks.append(_Chunk(request, lower, lower + size - 1, now))
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
