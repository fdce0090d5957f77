"""The remote-tell pipeline: a sender batches what is due into one call; order, latency,
at-most-once failure reporting and hostile batches at the receiving port."""

import json
import socket
import time

import pytest

import csp
import rpc
import actor
from actor.system import RemoteTellBatch
from rpc.wire import iter_frames
from tests.actor.messages import Echo, Ping


def raw_call(address, method, args):
    """One call written by hand (JSON with \\u escapes, so even a lone surrogate goes
    out, which rpc.Client refuses to send); returns the reply envelope."""
    host, port = address.rsplit(":", 1)
    text = json.dumps({"id": 1, "method": method, "args": rpc.codec.to_wire(args)})
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(rpc.codec.frame(text.encode()))
        for payload in iter_frames(sock):
            return json.loads(payload)
    raise AssertionError("no reply")


def recv_within(chan, seconds=5.0):
    index, value, _ = csp.select(csp.Recv(chan), csp.Recv(csp.after(seconds)))
    assert index == 0, f"nothing arrived within {seconds} s"
    return value


class Recorder(actor.Actor):
    """Collects Ping values; at `expected` of them tells the list to the last reply_to."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.values = []

    def on_message(self, message):
        self.values.append(message.value)
        if message.value == -1:
            self.ctx.tell(message.reply_to, self.values)


def test_thousands_of_remote_tells_arrive_once_each_in_order(make_system):
    sender, receiver = make_system(), make_system()
    recorder = receiver.start_actor(Recorder)
    ref, chan = receiver.new_channel_ref()
    count = 3000
    for i in range(count):
        sender.tell(recorder, Ping(i, ref))
    sender.tell(recorder, Ping(-1, ref))
    assert recv_within(chan, 20) == list(range(count)) + [-1]
    sent = sender.stats()
    assert receiver.stats().remote_bytes_received == sent.bytes_sent
    assert sender.errors == [] and receiver.errors == []


def test_artificial_latency_delays_each_tell_and_keeps_order(make_system):
    actor.set_artificial_latency_ms(150)
    sender, receiver = make_system(), make_system()
    recorder = receiver.start_actor(Recorder)
    ref, chan = receiver.new_channel_ref()
    start = time.monotonic()
    for i in range(50):
        sender.tell(recorder, Ping(i, ref))
    sender.tell(recorder, Ping(-1, ref))
    assert recv_within(chan, 2) == list(range(50)) + [-1]
    assert time.monotonic() - start >= 0.15


def test_tells_to_an_address_nobody_listens_on_are_dropped_and_reported(make_system):
    system = make_system()
    probe = make_system()
    dead = probe.address
    probe.close()                        # its port is free now: nothing listens there
    for i in range(200):
        system.tell(actor.ActorRef(dead, 0), i)
    deadline = time.monotonic() + 5
    while not system.errors and time.monotonic() < deadline:
        csp.after(0.01).recv()
    assert system.errors, "no failure was reported"
    assert len(system.errors) <= 200     # at most one report per tell (one per lost batch)
    assert all(isinstance(e, rpc.RPCError) for e in system.errors)


@pytest.mark.parametrize("batch", [
    RemoteTellBatch([0, 1], ["1"]),                 # lengths differ
    RemoteTellBatch("0", ["1"]),                    # not lists
    RemoteTellBatch([0], [b"1"]),                   # bytes where text goes
    RemoteTellBatch([True], ["1"]),                 # a bool is no counter
    RemoteTellBatch([0], ["\ud800"]),               # not encodable as UTF-8
    RemoteTellBatch([0], [None]),
])
def test_a_malformed_batch_is_reported_and_dropped_whole(make_system, batch):
    system = make_system()
    echo = system.start_actor(Echo)      # counter 0
    reply_ref, reply = system.new_channel_ref()
    assert raw_call(system.address, "RemoteTell.tell_batch", batch) == {"id": 1, "reply": False}
    system.tell(echo, Ping(5, reply_ref))
    assert recv_within(reply) == 5
    assert len(system.errors) == 1 and isinstance(system.errors[0], ValueError)
    assert system.stats().remote_bytes_received == 0


def test_a_batch_with_a_bad_message_delivers_the_others_and_reports_it(make_system):
    system = make_system()
    echo = system.start_actor(Echo)
    refs = [system.new_channel_ref() for _ in range(2)]
    good = [rpc.codec.dumps(Ping(i, ref)).decode() for i, (ref, _) in enumerate(refs)]
    client = rpc.dial(system.address)
    try:
        batch = RemoteTellBatch([echo.counter] * 3, [good[0], "not json", good[1]])
        assert client.call("RemoteTell.tell_batch", batch, timeout=2) is True
    finally:
        client.close()
    assert [recv_within(chan) for _, chan in refs] == [0, 1]
    assert len(system.errors) == 1 and isinstance(system.errors[0], rpc.FrameError)


def test_a_batch_to_several_destinations_reaches_each_in_order(make_system):
    """Runs of tells to one actor go in as one mailbox item each; interleaved runs, single
    tells and a channel ref (which takes one message, the second is reported) all arrive,
    each actor's in the order of the batch."""
    system = make_system()
    first, second = system.start_actor(Recorder), system.start_actor(Recorder)
    (ref_a, chan_a), (ref_b, chan_b) = system.new_channel_ref(), system.new_channel_ref()
    ref_once, chan_once = system.new_channel_ref()
    tells = [(first, 0), (first, 1), (second, 10), (first, 2), (first, 3), (first, 4),
             (second, 11), (second, 12), (first, -1), (second, -1)]
    counters = [target.counter for target, _ in tells] + [ref_once.counter] * 2
    texts = [rpc.codec.dumps(Ping(value, ref_a if target is first else ref_b)).decode()
             for target, value in tells] + [rpc.codec.dumps("once").decode()] * 2
    client = rpc.dial(system.address)
    try:
        assert client.call("RemoteTell.tell_batch", RemoteTellBatch(counters, texts),
                           timeout=5) is True
    finally:
        client.close()
    assert recv_within(chan_a) == [0, 1, 2, 3, 4, -1]
    assert recv_within(chan_b) == [10, 11, 12, -1]
    assert recv_within(chan_once) == "once"
    assert len(system.errors) == 1 and isinstance(system.errors[0], LookupError)
    assert system.stats().remote_bytes_received == sum(len(t.encode()) for t in texts)


def test_take_due_sends_what_is_due_within_the_byte_limit():
    from collections import deque
    from actor.sender import take_due

    backlog = deque([(1, b"aa", 0.0), (2, b"bbb", 0.5), (3, b"c", 2.0)])
    assert take_due(backlog, 1.0, 100) == ([1, 2], ["aa", "bbb"])   # the third is not due
    assert list(backlog) == [(3, b"c", 2.0)]
    backlog = deque([(1, b"aa", 0.0), (2, b"bbb", 0.0), (3, b"c", 0.0)])
    assert take_due(backlog, 1.0, 4) == ([1], ["aa"])               # 5 bytes would not fit
    assert take_due(backlog, 1.0, 4) == ([2, 3], ["bbb", "c"])
    assert not backlog
    backlog = deque([(1, "é".encode() * 9, 0.0), (2, b"b", 0.0)])
    assert take_due(backlog, 1.0, 4) == ([1], ["é" * 9])            # the oldest always goes
    assert list(backlog) == [(2, b"b", 0.0)]
