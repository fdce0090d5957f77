"""The clerk's manners on simnet: it goes straight to the leader it found, follows hints, and
backs off instead of busy-looping while no replica can serve; a replica answers a request it
cannot parse with an error, and the clerk raises it rather than retrying for ever."""

import pytest

import csp
from kvraft import BadRequest, Clerk
from kvraft.messages import ERR_BAD_REQUEST, GetArgs, PutAppendArgs
from tests.kvraft.config import ELECTION_TIMEOUT_SECONDS, Config


class CountingEnd:
    """A simnet end that counts the calls made through it."""

    def __init__(self, end) -> None:
        self.end = end
        self.calls = 0

    def call(self, method, args):
        self.calls += 1
        return self.end.call(method, args)


@pytest.fixture
def cfg():
    config = Config(3, unreliable=False)
    yield config
    config.cleanup()


def counting_clerk(cfg: Config):
    recorded = cfg.make_client()
    ends = [CountingEnd(replica._end) for replica in recorded.clerk._replicas]
    recorded.clerk._replicas = [type(replica)(end) for replica, end
                                in zip(recorded.clerk._replicas, ends)]
    return recorded, ends


def test_after_the_first_operation_each_one_is_a_single_call_to_the_leader(cfg):
    clerk, ends = counting_clerk(cfg)
    clerk.put("k", "0")
    before = sum(end.calls for end in ends)
    for i in range(20):
        clerk.append("k", str(i % 10))
        clerk.get("k")
    assert sum(end.calls for end in ends) - before == 40
    cfg.check_history()


def test_no_busy_loop_while_no_replica_can_serve(cfg):
    clerk, ends = counting_clerk(cfg)
    clerk.put("k", "before")
    leader = cfg.leader()
    cfg.partition([0], [1], [2])   # nobody can reach a majority
    # The old leader would hold each call for seconds; the others answer at once.
    cfg.connect_client(clerk, [i for i in range(3) if i != leader])
    done = csp.Chan(1)
    writer = csp.go(lambda: done.send(clerk.put("k", "after")), name="kvraft-test/writer")
    calls_before = sum(end.calls for end in ends)
    finished = csp.Recv(done)
    case, _, _ = csp.select_case(finished, csp.Recv(csp.after(3.0)))
    assert case is not finished, "a put completed without a majority"
    calls = sum(end.calls for end in ends) - calls_before
    # Back-off from 20 ms doubling to 500 ms: a few dozen calls in 3 s, not thousands.
    assert calls < 60, f"{calls} calls in 3 s while no replica could serve"
    cfg.connect_all()
    case, _, _ = csp.select_case(finished, csp.Recv(csp.after(10 * ELECTION_TIMEOUT_SECONDS)))
    assert case is finished, "the put did not complete after the partition healed"
    writer.join()
    assert clerk.get("k") == "after"
    cfg.check_history()


def test_a_malformed_request_gets_an_error_reply(cfg):
    server = cfg.servers[0]
    assert server.get(GetArgs(7)).err.startswith(ERR_BAD_REQUEST)
    assert server.get(PutAppendArgs("put", "k", "v", 1, 1)).err.startswith(ERR_BAD_REQUEST)
    for args in (PutAppendArgs("get", "k", "", 1, 1), PutAppendArgs("put", "k", None, 1, 1),
                 PutAppendArgs("put", "k", "v", 1, 0), GetArgs("k")):
        assert server.put_append(args).err.startswith(ERR_BAD_REQUEST), args
    clerk = cfg.make_client()
    clerk.put("k", "still serving")
    assert clerk.get("k") == "still serving"


def test_the_clerk_raises_a_refusal_instead_of_retrying(cfg):
    clerk = cfg.make_client()
    clerk.put("k", "v")
    with pytest.raises(TypeError):
        clerk.clerk.put("k", 5)
    raw = Clerk.over([])
    assert raw.clerk_id >= 0
    # A replica's refusal reaches the caller as BadRequest.
    clerk.clerk._seq = -5   # the next put has seq -4: refused by every replica
    with pytest.raises(BadRequest, match="seq"):
        clerk.clerk.put("k", "w")
