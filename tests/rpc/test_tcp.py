"""`rpc.Server` and `rpc.dial` over real TCP on 127.0.0.1.

Concurrency is proved, never timed: handlers meet on channels (N calls inside one handler at
once, a slow call blocked while another completes), and every wait has a deadline. A handler
that blocks does so with a deadline too, so a failing test cannot hang `Server.close()`.
The suite-wide guard (tests/conftest.py) fails any test that leaves a thread running, so every
server and client is closed in a `finally` (through the fixtures)."""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import threading
from types import SimpleNamespace

import pytest

import csp
import rpc
from rpc import codec
from tests.csp.helpers import finish, nothing_within, spawn, value_within

WAIT = 5.0                  # seconds: anything that must happen "now" happens well within this
HANDLER_DEADLINE = 10.0     # a blocked handler gives up after this, so close() never hangs
QUIET = 0.3                 # seconds during which something must NOT happen


@rpc.register
@dataclasses.dataclass
class Args:
    a: int
    b: int


@rpc.register
@dataclasses.dataclass
class Quotient:
    quo: int
    rem: int


@rpc.register
@dataclasses.dataclass
class Tree:
    name: str
    blob: bytes
    kids: list


class Arith:
    """Go's net/rpc example service, plus odds and ends."""

    def multiply(self, args: Args) -> int:
        return args.a * args.b

    def divide(self, args: Args) -> Quotient:
        if args.b == 0:
            raise ZeroDivisionError("divide by zero")
        return Quotient(args.a // args.b, args.a % args.b)

    def echo(self, value):
        return value

    def pair(self, value):
        return (value, value)  # a tuple: the codec refuses it

    def two_args(self, a, b):  # not served: two arguments
        return a + b

    def _private(self, value):  # not served: private
        return value


class Gate:
    """Calls that block until the test opens the gate. Each call reports on `entered`; calls
    give up after HANDLER_DEADLINE so a broken test cannot block Server.close() for ever."""

    def __init__(self) -> None:
        self.entered = csp.Chan(None)
        self.gate = csp.Chan()   # closed by open()

    def wait(self, tag):
        self.entered.send(tag)
        index, _, _ = csp.select(csp.Recv(self.gate), csp.Recv(csp.after(HANDLER_DEADLINE)))
        return tag if index == 0 else "gate never opened"

    def open(self) -> None:
        if not self.gate.closed:
            self.gate.close()


class Meeting:
    """`meet` returns only once `size` calls are inside it at the same time: it proves that
    that many calls run concurrently (or times out, returning False)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.arrivals = csp.Chan(None)
        self.everyone_here = csp.Chan()   # closed when `size` calls have arrived
        self.given_up = csp.Chan()        # closed if they did not within HANDLER_DEADLINE
        self.coordinator = csp.go(self._coordinate, name="test-meeting")

    def _coordinate(self) -> None:
        deadline = csp.after(HANDLER_DEADLINE)
        for _ in range(self.size):
            index, _, _ = csp.select(csp.Recv(self.arrivals), csp.Recv(deadline))
            if index == 1:
                self.given_up.close()  # later calls return at once: a serial server fails fast
                return
        self.everyone_here.close()

    def meet(self, tag):
        self.arrivals.send(tag)
        index, _, _ = csp.select(csp.Recv(self.everyone_here), csp.Recv(self.given_up))
        return index == 0


class Recorder:
    """Records the order in which its calls run (one owner: whoever runs `record`, which the
    tests only use from an ordered service, or read after the calls have ended)."""

    def __init__(self) -> None:
        self.seen = csp.Chan(None)

    def record(self, value):
        self.seen.send(value)
        return value


@pytest.fixture
def net():
    """A server with Arith, Gate (plain and ordered), Recorder (ordered); `dial()` makes clients.
    Everything is closed at the end, gates opened first so no handler is left waiting."""
    server = rpc.Server()
    gate, ordered_gate, recorder = Gate(), Gate(), Recorder()
    server.register(Arith())
    server.register(gate)
    server.register(ordered_gate, name="OrderedGate", ordered=True)
    server.register(recorder, ordered=True)
    port = server.listen(0)
    clients: list[rpc.Client] = []

    def dial() -> rpc.Client:
        client = rpc.dial(f"127.0.0.1:{port}", timeout=WAIT)
        clients.append(client)
        return client

    try:
        yield SimpleNamespace(server=server, port=port, address=f"127.0.0.1:{port}", gate=gate,
                              ordered_gate=ordered_gate, recorder=recorder, dial=dial)
    finally:
        gate.open()
        ordered_gate.open()
        try:
            for client in clients:
                client.close()
        finally:
            server.close()


def done_within(call: rpc.Call, seconds: float = WAIT) -> rpc.Call:
    back = value_within(call.done, seconds, f"the end of {call!r}")
    assert back is call
    return call


def call_in_thread(client, method, args, timeout=WAIT, name="test-caller"):
    return spawn(client.call, method, args, timeout=timeout, name=name)


# ---- calls ------------------------------------------------------------------------------------

def test_echo_call(net):
    client = net.dial()
    assert client.call("Arith.multiply", Args(7, 8), timeout=WAIT) == 56
    assert client.call("Arith.divide", Args(17, 5), timeout=WAIT) == Quotient(3, 2)
    value = {"tree": Tree("root", b"\x00\xff", [Tree("kid", b"", []), None, 1.5, True]),
             "t": "looks like a tag", "list": [[], {}, "", b"x"]}
    assert client.call("Arith.echo", value, timeout=WAIT) == value
    assert client.call("Arith.echo", None, timeout=WAIT) is None


def test_large_values_cross_in_one_piece(net):
    client = net.dial()
    blob = bytes(range(256)) * 20_000   # ~5 MB of bytes, ~7 MB of base64 on the wire
    assert client.call("Arith.echo", blob, timeout=30) == blob


def test_go_returns_at_once_and_done_yields_the_call(net):
    client = net.dial()
    call = client.go("Arith.multiply", Args(6, 7))
    assert isinstance(call, rpc.Call) and call.method == "Arith.multiply"
    done_within(call)
    assert call.error is None and call.reply == 42
    assert len(call.done) == 0  # it yields the call once


def test_many_threads_share_one_client_and_get_their_own_replies(net):
    client = net.dial()
    threads = 8
    per_thread = 40

    def worker(k: int) -> list:
        return [client.call("Arith.multiply", Args(k, i), timeout=WAIT) for i in range(per_thread)]

    runs = [spawn(worker, k, name=f"test-caller-{k}") for k in range(threads)]
    for k, (thread, outcome) in enumerate(runs):
        finish(thread, outcome, 30)
        assert outcome.error is None, outcome.error
        assert outcome.result == [k * i for i in range(per_thread)]


@pytest.mark.parametrize("shared", [True, False], ids=["one-client", "a-client-each"])
def test_concurrent_calls_are_not_serialised(net, shared):
    size = 8
    meeting = Meeting(size)
    net.server.register(meeting)
    clients = [net.dial()] * size if shared else [net.dial() for _ in range(size)]
    runs = [call_in_thread(clients[k], "Meeting.meet", k, timeout=HANDLER_DEADLINE + WAIT,
                           name=f"test-caller-{k}") for k in range(size)]
    try:
        for thread, outcome in runs:
            finish(thread, outcome, HANDLER_DEADLINE + WAIT)
            assert outcome.error is None, outcome.error
            assert outcome.result is True, f"{size} calls were never inside the handler at once"
    finally:
        meeting.coordinator.join()


def test_a_slow_handler_delays_no_other_call(net):
    client = net.dial()
    slow = client.go("Gate.wait", "slow")
    assert value_within(net.gate.entered, WAIT, "the slow call to start") == "slow"
    # The slow call holds its handler; other calls on the same connection still complete.
    assert client.call("Arith.multiply", Args(3, 4), timeout=WAIT) == 12
    other = net.dial()
    assert other.call("Arith.multiply", Args(5, 4), timeout=WAIT) == 20
    assert len(slow.done) == 0, "the slow call ended before its gate opened"
    net.gate.open()
    assert done_within(slow).reply == "slow"


def test_calls_reach_the_server_in_the_order_made(net):
    client = net.dial()
    calls = [client.go("Recorder.record", i) for i in range(300)]
    for call in calls:
        assert done_within(call).reply == call.args
    assert [value_within(net.recorder.seen) for _ in range(300)] == list(range(300))


def test_calls_made_from_several_threads_keep_each_threads_order(net):
    client = net.dial()
    threads, per_thread = 4, 50

    def make_calls(k: int) -> None:
        calls = [client.go("Recorder.record", [k, i]) for i in range(per_thread)]
        for call in calls:
            done_within(call)

    runs = [spawn(make_calls, k, name=f"test-caller-{k}") for k in range(threads)]
    for thread, outcome in runs:
        finish(thread, outcome, 30)
        assert outcome.error is None, outcome.error
    seen = [value_within(net.recorder.seen) for _ in range(threads * per_thread)]
    for k in range(threads):
        assert [i for j, i in seen if j == k] == list(range(per_thread))


# ---- ordered services -------------------------------------------------------------------------

def test_ordered_service_runs_one_call_at_a_time_in_arrival_order(net):
    client = net.dial()
    first = client.go("OrderedGate.wait", 1)
    second = client.go("OrderedGate.wait", 2)
    third = client.go("OrderedGate.wait", 3)
    assert value_within(net.ordered_gate.entered, WAIT, "the first ordered call") == 1
    nothing_within(net.ordered_gate.entered, QUIET, "no second call while the first runs")
    # Calls of other services on the same connection are not held up by it.
    assert client.call("Arith.multiply", Args(2, 2), timeout=WAIT) == 4
    net.ordered_gate.open()
    assert [value_within(net.ordered_gate.entered) for _ in range(2)] == [2, 3]
    assert [done_within(c).reply for c in (first, second, third)] == [1, 2, 3]


def test_ordered_service_is_ordered_per_connection_only(net):
    one, two = net.dial(), net.dial()
    blocked = one.go("OrderedGate.wait", "one")
    assert value_within(net.ordered_gate.entered) == "one"
    other = two.go("OrderedGate.wait", "two")
    assert value_within(net.ordered_gate.entered, WAIT,
                        "another connection's ordered call while the first is blocked") == "two"
    net.ordered_gate.open()
    assert done_within(blocked).reply == "one" and done_within(other).reply == "two"


def test_calls_received_before_a_client_leaves_still_run(net):
    client = net.dial()
    client.go("OrderedGate.wait", "first")
    assert value_within(net.ordered_gate.entered) == "first"
    client.go("OrderedGate.wait", "queued")
    client.call("Arith.multiply", Args(1, 1), timeout=WAIT)  # so "queued" has been read
    client.close()
    net.ordered_gate.open()
    assert value_within(net.ordered_gate.entered, WAIT, "the queued call to run") == "queued"


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["Arith.nope", "Nope.multiply", "multiply", "",
                                    "Arith._private", "Arith.two_args", "Arith.__init__",
                                    "Arith.multiply.x"])
def test_unknown_method_is_a_remote_error_and_the_client_stays_usable(net, method):
    client = net.dial()
    with pytest.raises(rpc.RemoteError, match="can't find"):
        client.call(method, Args(1, 2), timeout=WAIT)
    assert client.call("Arith.multiply", Args(2, 3), timeout=WAIT) == 6


def test_a_raising_handler_is_a_remote_error_with_its_message(net):
    client = net.dial()
    with pytest.raises(rpc.RemoteError) as info:
        client.call("Arith.divide", Args(1, 0), timeout=WAIT)
    assert "divide by zero" in str(info.value) and "ZeroDivisionError" in str(info.value)
    call = done_within(client.go("Arith.divide", Args(1, 0)))
    assert isinstance(call.error, rpc.RemoteError) and "divide by zero" in str(call.error)
    assert client.call("Arith.divide", Args(9, 3), timeout=WAIT) == Quotient(3, 0)


def test_a_reply_the_codec_refuses_is_a_remote_error(net):
    client = net.dial()
    with pytest.raises(rpc.RemoteError, match="list"):
        client.call("Arith.pair", 1, timeout=WAIT)


@pytest.mark.parametrize("args", [(1, 2), {1, 2}, {3: "x"}, object(), [Args(1, 2), (3,)]])
def test_encode_error_is_raised_at_once_and_nothing_is_sent(net, args):
    client = net.dial()
    with pytest.raises(rpc.EncodeError):
        client.call("Recorder.record", args, timeout=WAIT)
    with pytest.raises(rpc.EncodeError):
        client.go("Recorder.record", args)
    assert client.call("Recorder.record", "after", timeout=WAIT) == "after"
    assert value_within(net.recorder.seen) == "after"  # the refused calls never arrived
    assert len(net.recorder.seen) == 0


def test_a_frame_over_the_limit_is_refused_at_the_sender(net, monkeypatch):
    monkeypatch.setattr(codec, "MAX_FRAME_BYTES", 1000)
    client = net.dial()
    with pytest.raises(rpc.EncodeError):
        client.go("Arith.echo", "x" * 1000)
    assert client.call("Arith.echo", "x" * 100, timeout=WAIT) == "x" * 100


def test_call_timeout_leaves_the_client_usable(net):
    client = net.dial()
    with pytest.raises(rpc.CallTimeout):
        client.call("Gate.wait", "late", timeout=0.2)
    assert value_within(net.gate.entered) == "late"
    assert client.call("Arith.multiply", Args(4, 5), timeout=WAIT) == 20
    net.gate.open()  # the late reply arrives now and is dropped
    assert client.call("Gate.wait", "open", timeout=WAIT) == "open"
    assert client.call("Arith.multiply", Args(5, 5), timeout=WAIT) == 25


# ---- the ends of connections ------------------------------------------------------------------

def test_server_close_ends_calls_in_flight_with_connection_lost(net):
    client = net.dial()
    in_flight = client.go("Gate.wait", "held")
    caller, outcome = call_in_thread(client, "OrderedGate.wait", "held too")
    assert value_within(net.gate.entered) == "held"
    assert value_within(net.ordered_gate.entered) == "held too"
    # close() drops the connections at once, then waits for the two running handlers.
    closer, closed = spawn(net.server.close, name="test-server-close")
    assert isinstance(done_within(in_flight).error, rpc.ConnectionLost)
    finish(caller, outcome)
    assert isinstance(outcome.error, rpc.ConnectionLost)
    nothing_within(closed.done, QUIET, "close() to wait for the running handlers")
    net.gate.open()
    net.ordered_gate.open()
    finish(closer, closed)
    assert closed.error is None
    with pytest.raises(rpc.ConnectionLost):
        client.call("Arith.multiply", Args(1, 1), timeout=WAIT)
    assert isinstance(done_within(client.go("Arith.multiply", Args(1, 1))).error,
                      rpc.ConnectionLost)
    with pytest.raises(rpc.ConnectionLost):
        rpc.dial(net.address, timeout=WAIT)


def test_client_close_ends_pending_calls_and_refuses_later_ones(net):
    client = net.dial()
    pending = client.go("Gate.wait", "pending")
    assert value_within(net.gate.entered) == "pending"
    client.close()
    assert isinstance(done_within(pending).error, rpc.ConnectionLost)
    with pytest.raises(rpc.ConnectionLost):
        client.call("Arith.multiply", Args(1, 1), timeout=WAIT)
    later = done_within(client.go("Arith.multiply", Args(1, 1)))
    assert isinstance(later.error, rpc.ConnectionLost)
    client.close()  # idempotent
    # The server is unaffected.
    assert net.dial().call("Arith.multiply", Args(2, 2), timeout=WAIT) == 4


def test_close_from_many_threads_at_once(net):
    client = net.dial()
    client.go("Gate.wait", "x")
    runs = [spawn(client.close, name=f"test-close-{k}") for k in range(4)]
    runs += [spawn(net.server.close, name=f"test-server-close-{k}") for k in range(3)]
    net.gate.open()
    for thread, outcome in runs:
        finish(thread, outcome)
        assert outcome.error is None, outcome.error


def test_dial_a_closed_port_is_connection_lost():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(rpc.ConnectionLost, match=str(port)):
        rpc.dial(f"127.0.0.1:{port}", timeout=WAIT)


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:", ":80", "127.0.0.1:0",
                                     "127.0.0.1:65536", "127.0.0.1:http", "127.0.0.1:-1",
                                     "127.0.0.1:\u0661\u0662", "", 8080, None])
def test_dial_a_bad_address_says_so(address):
    with pytest.raises(ValueError, match="host:port"):
        rpc.dial(address)


# ---- bad input on the wire --------------------------------------------------------------------

def _frame(obj) -> bytes:
    return codec.frame(json.dumps(obj).encode())


@pytest.mark.parametrize("garbage", [
    struct.pack(">I", codec.MAX_FRAME_BYTES + 1),           # oversized length prefix
    b"\xff\xff\xff\xff" + b"x" * 100,
    codec.frame(b"this is not json"),
    codec.frame(b"\xff\xfe\xfd"),                           # not UTF-8
    codec.frame('{"id":1,"method":"Arith.echo","args":1}'.encode("utf-16")),  # not UTF-8
    codec.frame(b"[" * 100_000 + b"]" * 100_000),           # nested past json's limit
    _frame([1, 2, 3]),                                      # not an envelope
    _frame({"id": 1, "method": "Arith.echo"}),              # no args
    _frame({"id": "1", "method": "Arith.echo", "args": 1}),  # id not an int
    _frame({"id": 1, "method": 7, "args": 1}),              # method not a str
    _frame({"id": 1, "method": "Arith.echo", "args": {"t": "no.such.Type", "f": {}}}),
    _frame({"id": 1, "method": "Arith.echo", "args": {"q": 1}}),  # bad tag
], ids=["over-64MiB", "max-length", "not-json", "not-utf8", "utf16", "too-deep", "a-list",
        "no-args", "str-id", "int-method", "unknown-type", "bad-tag"])
def test_a_malformed_frame_drops_that_connection_only(net, garbage):
    good = net.dial()
    assert good.call("Arith.multiply", Args(2, 5), timeout=WAIT) == 10
    with socket.create_connection(("127.0.0.1", net.port), timeout=WAIT) as raw:
        raw.sendall(_frame({"id": 41, "method": "Arith.echo", "args": "first"}) + garbage)
        received = _read_until_closed(raw)
    # The well-formed request before the garbage may or may not be answered; nothing else is.
    assert received in (b"", _frame_compact({"id": 41, "reply": "first"}))
    assert good.call("Arith.multiply", Args(3, 5), timeout=WAIT) == 15
    assert net.dial().call("Arith.multiply", Args(4, 5), timeout=WAIT) == 20


def test_strs_that_are_not_unicode_are_refused_not_fatal(net):
    client = net.dial()
    with pytest.raises(rpc.EncodeError):
        client.go("Arith.echo", "lone \ud800 surrogate")
    with socket.create_connection(("127.0.0.1", net.port), timeout=WAIT) as raw:
        # JSON may spell a lone surrogate as an escape; the echo's reply cannot be UTF-8, and
        # the unknown method's error quotes it: both come back as error replies.
        raw.sendall(codec.frame(b'{"id":1,"method":"Arith.echo","args":"\\ud800"}') +
                    codec.frame(b'{"id":2,"method":"Arith.\\udc00","args":null}'))
        replies = _read_replies(raw, 2)
    assert set(replies[1]) == {"id", "error"} and "cannot" in replies[1]["error"]
    assert set(replies[2]) == {"id", "error"} and "can't find" in replies[2]["error"]
    assert client.call("Arith.echo", "fine", timeout=WAIT) == "fine"


def _read_replies(raw: socket.socket, count: int) -> dict:
    """Read `count` reply envelopes from a raw connection, by id (fails after WAIT)."""
    raw.settimeout(WAIT)
    replies = {}
    buffer = b""
    while len(replies) < count:
        chunk = raw.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
        while len(buffer) >= 4 and len(buffer) >= 4 + codec.frame_length(buffer[:4]):
            length = codec.frame_length(buffer[:4])
            envelope = json.loads(buffer[4:4 + length])
            buffer = buffer[4 + length:]
            replies[envelope["id"]] = envelope
    return replies


def test_raw_peer_speaks_the_documented_envelope(net):
    with socket.create_connection(("127.0.0.1", net.port), timeout=WAIT) as raw:
        raw.sendall(_frame({"id": 7, "method": "Arith.divide",
                            "args": codec.to_wire(Args(7, 2))}) +
                    _frame({"id": 8, "method": "Arith.nope", "args": None}))
        replies = _read_replies(raw, 2)
    assert replies[7] == {"id": 7, "reply": codec.to_wire(Quotient(3, 1))}
    assert set(replies[8]) == {"id", "error"} and "Arith.nope" in replies[8]["error"]


def test_a_peer_vanishing_mid_call_harms_no_one(net):
    with socket.create_connection(("127.0.0.1", net.port), timeout=WAIT) as raw:
        raw.sendall(_frame({"id": 1, "method": "Gate.wait", "args": "abandoned"}))
        assert value_within(net.gate.entered) == "abandoned"
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    net.gate.open()  # its reply has nowhere to go
    assert net.dial().call("Arith.multiply", Args(6, 6), timeout=WAIT) == 36


def _frame_compact(obj) -> bytes:
    return codec.frame(json.dumps(obj, separators=(",", ":")).encode())


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after WAIT)."""
    sock.settimeout(WAIT)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError(f"the server kept the connection open for {WAIT} s") from None
        if not chunk:
            return data
        data += chunk


# ---- registration and lifecycle ---------------------------------------------------------------

def test_register_serves_public_one_argument_methods_under_the_class_name():
    from rpc.server import served_methods

    assert sorted(served_methods(Arith())) == ["divide", "echo", "multiply", "pair"]


def test_register_refuses_duplicates_and_receivers_without_methods():
    server = rpc.Server()
    try:
        server.register(Arith())
        with pytest.raises(ValueError, match="already"):
            server.register(Arith())
        server.register(Arith(), name="Calculator")  # the same class under another name
        with pytest.raises(ValueError, match="no public method"):
            server.register(object())
        with pytest.raises(ValueError):
            server.register(Arith(), name="A.B")
    finally:
        server.close()


def test_a_service_under_another_name(net):
    net.server.register(Arith(), name="Calc")  # registered after listen: served at once
    assert net.dial().call("Calc.multiply", Args(3, 3), timeout=WAIT) == 9


def test_server_lifecycle_errors_and_idempotent_close():
    never_listened = rpc.Server()
    never_listened.close()
    never_listened.close()
    server = rpc.Server()
    server.register(Arith())
    port = server.listen()
    try:
        assert server.port == port > 0
        with pytest.raises(RuntimeError):
            server.listen()
        other = rpc.Server()
        try:
            with pytest.raises(OSError):
                other.listen(port)
        finally:
            other.close()
    finally:
        server.close()
        server.close()
    with pytest.raises(RuntimeError):
        server.listen()


def test_close_leaves_no_rpc_thread_behind():
    before = set(threading.enumerate())
    server = rpc.Server()
    server.register(Arith())
    port = server.listen()
    clients = [rpc.dial(f"127.0.0.1:{port}", timeout=WAIT) for _ in range(3)]
    try:
        calls = [c.go("Arith.multiply", Args(i, i)) for i in range(50) for c in clients]
        for call in calls:
            done_within(call)
    finally:
        for client in clients:
            client.close()
        server.close()
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == [], f"threads left after close(): {left}"


def test_client_of_a_lost_connection_stops_its_threads_without_close():
    server = rpc.Server()
    server.register(Arith())
    port = server.listen()
    client = rpc.dial(f"127.0.0.1:{port}", timeout=WAIT)
    try:
        assert client.call("Arith.multiply", Args(2, 2), timeout=WAIT) == 4
        server.close()
        with pytest.raises(rpc.ConnectionLost):
            client.call("Arith.multiply", Args(2, 2), timeout=WAIT)
        client._loop_thread.join(WAIT)
        client._reader.join(WAIT)
        assert not client._loop_thread.is_alive() and not client._reader.is_alive()
    finally:
        client.close()
        server.close()
