"""The scheduler's policy as pure rules: answers equal brute force under any interleaving of
joins, losses and results (one chunk per miner, and two: the pipelined default); cancelled
requests dispatch nothing; SRTF ordering; chunk sizing; a miner's queued chunk hides the round
trip and is timed from the previous result."""

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from miner.bitcoin import hash as bitcoin_hash
from miner.scheduler import Answer, Dispatch, Scheduler


def brute_force(data, lower, upper):
    return min((bitcoin_hash(data, n), n) for n in range(lower, upper + 1))


def answer_of(dispatch):
    return brute_force(dispatch.data, dispatch.lower, dispatch.upper)


def small_scheduler(**overrides):
    """One chunk per miner unless `pipeline_depth` is given, so the tests below can name the
    one dispatch each event makes."""
    options = dict(target_chunk_seconds=1.0, initial_chunk=4, min_chunk=1, max_chunk=40,
                   pipeline_depth=1)
    options.update(overrides)
    return Scheduler(**options)


def test_one_miner_one_request_end_to_end():
    s = small_scheduler()
    assert s.request(client=10, data="msg", lower=0, upper=9, now=0.0) == []   # no miner yet
    (first,) = s.miner_joined(1, now=0.0)
    assert first == Dispatch(1, "msg", 0, 3)
    answers, t = [], 0.0
    dispatch = first
    while True:
        t += 1.0
        actions = s.result(1, *answer_of(dispatch), now=t)
        answers += [a for a in actions if type(a) is Answer]
        dispatches = [a for a in actions if type(a) is Dispatch]
        if not dispatches:
            break
        (dispatch,) = dispatches
    assert answers == [Answer(10, *brute_force("msg", 0, 9))]
    assert s.requests == 0 and s.busy_miners == 0


def test_small_request_overtakes_a_huge_one():
    s = small_scheduler(max_chunk=10)
    s.miner_joined(1, 0.0)
    s.miner_joined(2, 0.0)
    s.request(client=100, data="huge", lower=0, upper=10_000, now=0.0)
    s.request(client=200, data="small", lower=0, upper=15, now=0.1)
    # Both miners are busy with "huge"; each frees itself onto "small" next.
    (d1,) = [a for a in s.result(1, 0, 0, 1.0) if type(a) is Dispatch]
    (d2,) = [a for a in s.result(2, 0, 0, 1.0) if type(a) is Dispatch]
    assert d1.data == d2.data == "small"


def test_similar_requests_finish_in_arrival_order():
    s = small_scheduler(initial_chunk=5, max_chunk=5)
    finished = []
    for client in (1, 2, 3):
        s.request(client, f"r{client}", 0, 49, now=0.0)
    running = [a for m in (7, 8) for a in s.miner_joined(m, 0.0)]   # oldest chunk first
    t = 0.0
    while running:
        t += 1.0
        dispatch = running.pop(0)
        for action in s.result(dispatch.miner, *answer_of(dispatch), now=t):
            if type(action) is Answer:
                finished.append(action.client)
            else:
                running.append(action)
    assert finished == [1, 2, 3]


def test_lost_miner_chunk_goes_to_the_next_idle_miner_or_waits():
    s = small_scheduler()
    s.miner_joined(1, 0.0)
    (d,) = s.request(5, "x", 0, 3, now=0.0)
    assert s.miner_lost(1, 1.0) == []            # nobody to take it: it waits
    assert s.miner_joined(2, 2.0) == [Dispatch(2, "x", d.lower, d.upper)]


def test_cancelled_request_dispatches_nothing_and_its_results_are_ignored():
    s = small_scheduler()
    s.miner_joined(1, 0.0)
    s.miner_joined(2, 0.0)
    s.request(5, "x", 0, 100, now=0.0)
    assert s.client_lost(5, 0.5) == []
    assert s.result(1, 1, 1, 1.0) == []
    assert s.result(2, 1, 1, 1.0) == []
    assert s.busy_miners == 0 and s.requests == 0


def test_chunks_follow_each_miners_speed_within_bounds():
    s = Scheduler(target_chunk_seconds=0.5, initial_chunk=1000, min_chunk=100, max_chunk=50_000,
                  pipeline_depth=1)
    s.miner_joined(1, 0.0)   # fast
    s.miner_joined(2, 0.0)   # slow
    s.request(9, "big", 0, 10**9, now=0.0)
    (fast_next,) = s.result(1, 0, 0, now=0.01)  # 1000 nonces in 10 ms: 100,000/s
    (slow_next,) = s.result(2, 0, 0, now=5.0)   # 1000 nonces in 5 s: 200/s
    assert fast_next.upper - fast_next.lower + 1 == 50_000   # 0.5 s of work, capped
    assert slow_next.upper - slow_next.lower + 1 == 100      # at least min_chunk


def test_a_small_request_is_spread_over_every_miner():
    s = Scheduler(initial_chunk=10_000, min_chunk=10, pipeline_depth=1)
    for m in range(4):
        s.miner_joined(m, 0.0)
    actions = s.request(1, "s", 0, 399, now=0.0)
    assert [a.upper - a.lower + 1 for a in actions] == [100, 100, 100, 100]


def test_each_miner_holds_a_queued_chunk_and_idle_miners_are_served_first():
    s = Scheduler(initial_chunk=10, min_chunk=1)   # the default: two chunks per miner
    s.miner_joined(1, 0.0)
    s.miner_joined(2, 0.0)
    actions = s.request(9, "big", 0, 10**6, now=0.0)
    assert [a.miner for a in actions] == [1, 2, 1, 2]   # first slots, then second slots
    assert [(a.lower, a.upper) for a in actions] == [(0, 9), (10, 19), (20, 29), (30, 39)]
    assert s.chunks_in_flight == 4
    # Miner 1 answers its oldest chunk; it gets one more, so it still holds two.
    (next_chunk,) = s.result(1, *brute_force("big", 0, 9), now=0.5)
    assert next_chunk.miner == 1 and s.chunks_in_flight == 4


def test_a_queued_chunk_is_timed_from_the_previous_result():
    s = Scheduler(target_chunk_seconds=1.0, initial_chunk=100, min_chunk=1, max_chunk=10**6)
    s.miner_joined(1, 0.0)
    s.request(9, "big", 0, 10**9, now=0.0)   # chunks 0..99 and 100..199, both sent at 0
    s.result(1, 0, 0, now=1.0)               # 100 in 1 s (round trip included)
    (sized,) = s.result(1, 0, 0, now=1.5)    # queued: started at 1.0, so 100 in 0.5 s
    # 200 nonces/s (not 100 in 1.5 s), averaged with the 100/s before: 1 s at 150 nonces/s.
    assert sized.upper - sized.lower + 1 == 150


def test_one_chunk_that_looks_fast_does_not_double_the_next():
    s = Scheduler(target_chunk_seconds=1.0, initial_chunk=100, min_chunk=1, max_chunk=10**6,
                  pipeline_depth=1)
    s.miner_joined(1, 0.0)
    s.request(9, "big", 0, 10**9, now=0.0)
    (steady,) = s.result(1, 0, 0, now=1.0)          # 100/s: next chunk 100
    assert steady.upper - steady.lower + 1 == 100
    (after_burst,) = s.result(1, 0, 0, now=1.25)    # looks like 400/s (a late result before)
    assert after_burst.upper - after_burst.lower + 1 == 250   # the mean of 100/s and 400/s


def test_a_small_request_waits_only_for_the_chunks_already_held():
    s = Scheduler(target_chunk_seconds=1.0, initial_chunk=10, min_chunk=1, max_chunk=10)
    for miner in (1, 2):
        s.miner_joined(miner, 0.0)
    assert len(s.request(100, "huge", 0, 10**6, now=0.0)) == 4   # two chunks each
    assert s.request(200, "small", 0, 15, now=0.1) == []         # no slot is free
    # Each miner's next chunk after its oldest is answered is the small request's.
    for miner in (1, 2):
        (dispatch,) = s.result(miner, 0, 0, now=1.0)
        assert dispatch.data == "small"


def test_a_lost_miner_gives_back_every_chunk_it_held_in_order():
    s = Scheduler(initial_chunk=10, min_chunk=1)
    s.miner_joined(1, 0.0)
    s.request(9, "x", 0, 39, now=0.0)        # 1 holds 0..9 and 10..19
    assert s.miner_lost(1, 1.0) == []
    actions = s.miner_joined(2, 2.0)
    assert [(a.lower, a.upper) for a in actions] == [(0, 9), (10, 19)]


@pytest.mark.parametrize("bad", [dict(min_chunk=0), dict(initial_chunk=10, min_chunk=20),
                                 dict(target_chunk_seconds=0), dict(pipeline_depth=0)])
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        Scheduler(**bad)


def test_an_empty_range_is_refused():
    with pytest.raises(ValueError):
        Scheduler().request(1, "x", 5, 4, now=0.0)


class SchedulerMachine(RuleBasedStateMachine):
    """Any interleaving of joins, miner losses, requests, client losses and results; a miner
    answers its chunks in the order they were sent."""

    depth = 1

    def __init__(self):
        super().__init__()
        self.s = small_scheduler(max_chunk=7, pipeline_depth=self.depth)
        self.now = 0.0
        self.held: dict[int, list[Dispatch]] = {}    # miner -> its chunks, oldest first
        self.live_miners: set[int] = set()
        self.next_id = 1
        self.open: dict[int, tuple[str, int, int]] = {}   # client -> (data, lower, upper)
        self.cancelled: set[str] = set()
        self.answered: set[int] = set()
        self.done_nonces: dict[str, int] = {}       # request name -> nonces answered

    def apply(self, actions):
        for action in actions:
            if type(action) is Dispatch:
                assert action.miner in self.live_miners
                chunks = self.held.setdefault(action.miner, [])
                assert len(chunks) < self.depth, f"a miner holds at most {self.depth} chunks"
                assert action.data not in self.cancelled, "work of a lost client handed out"
                assert action.lower <= action.upper
                chunks.append(action)
            else:
                assert action.client in self.open and action.client not in self.answered
                assert (action.hash, action.nonce) == brute_force(*self.open.pop(action.client))
                self.answered.add(action.client)

    def tick(self):
        self.now += 0.25
        return self.now

    @rule()
    def join(self):
        miner = self.next_id
        self.next_id += 1
        self.live_miners.add(miner)
        self.apply(self.s.miner_joined(miner, self.tick()))

    @rule(data=st.data(), lower=st.integers(0, 50), width=st.integers(0, 40))
    def request(self, data, lower, width):
        client = self.next_id
        self.next_id += 1
        name = f"req{client}"
        self.open[client] = (name, lower, lower + width)
        self.apply(self.s.request(client, name, lower, lower + width, self.tick()))

    @precondition(lambda self: self.live_miners)
    @rule(data=st.data())
    def lose_miner(self, data):
        miner = data.draw(st.sampled_from(sorted(self.live_miners)))
        self.live_miners.discard(miner)
        self.held.pop(miner, None)
        self.apply(self.s.miner_lost(miner, self.tick()))

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def lose_client(self, data):
        client = data.draw(st.sampled_from(sorted(self.open)))
        name, _, _ = self.open.pop(client)
        self.cancelled.add(name)
        self.apply(self.s.client_lost(client, self.tick()))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def result(self, data):
        miner = data.draw(st.sampled_from(sorted(self.held)))
        self.finish(miner)

    def finish(self, miner):
        dispatch = self.held[miner].pop(0)
        if not self.held[miner]:
            del self.held[miner]
        self.done_nonces[dispatch.data] = (self.done_nonces.get(dispatch.data, 0)
                                           + dispatch.upper - dispatch.lower + 1)
        self.apply(self.s.result(miner, *answer_of(dispatch), self.tick()))

    @invariant()
    def no_miner_slot_free_while_work_waits(self):
        if self.open and any(len(self.held.get(m, ())) < self.depth for m in self.live_miners):
            # Then every open request's nonces are answered or in flight.
            for name, lower, upper in self.open.values():
                in_flight = sum(d.upper - d.lower + 1 for chunks in self.held.values()
                                for d in chunks if d.data == name)
                assert self.done_nonces.get(name, 0) + in_flight == upper - lower + 1

    def teardown(self):
        # Drain: with a miner present, every open request gets its brute-force answer.
        if not self.live_miners:
            self.join()
        while self.held:
            self.finish(min(self.held))
        assert not self.open, f"unanswered requests: {self.open}"


class PipelinedSchedulerMachine(SchedulerMachine):
    depth = 2


for _machine in (SchedulerMachine, PipelinedSchedulerMachine):
    _machine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None)
test_scheduler_state_machine = SchedulerMachine.TestCase
test_pipelined_scheduler_state_machine = PipelinedSchedulerMachine.TestCase
