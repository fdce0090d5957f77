"""Our own real-socket tests of the KV server (127.0.0.1): requests cut at any byte, malformed
lines, huge and colon-bearing values, abrupt resets, a slow reader that must not slow anyone
else, and close() under load. Every wait has a deadline; counts are polled, never slept for."""

from __future__ import annotations

import random
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from kv import KeyValueServer, KVStore
from kv.protocol import MAX_LINE_BYTES
from tests.kv.kvclient import DEFAULT_WAIT, LineClient, call_within, close_server_within
from tests.waiting import wait_until

FAST_ROUND_TRIP = 2.0       # seconds: a Put+Get round trip that takes longer is "slowed"
CLOSE_WITHIN = 5.0          # seconds: close() with clients connected must return by then
SLOW_VALUE_BYTES = 16 * 1024
SLOW_GETS = 3000            # Gets a slow client sends: far more than 500 queued + kernel buffers


@pytest.fixture
def kv():
    store = KVStore()
    server = KeyValueServer(store)
    server.start(0)
    clients: list[LineClient] = []

    def connect(name: str = "client") -> LineClient:
        client = LineClient(server.port, name=name)
        clients.append(client)
        return client

    try:
        yield SimpleNamespace(store=store, server=server, port=server.port, connect=connect)
    finally:
        try:
            for client in clients:
                client.close()
        finally:
            close_server_within(server)


def counts(server) -> tuple[int, int]:
    return (call_within(server.count_active, what="count_active()"),
            call_within(server.count_dropped, what="count_dropped()"))


def wait_counts(server, active: int, dropped: int, timeout: float = DEFAULT_WAIT) -> None:
    seen = []

    def reached() -> bool:
        seen[:] = [counts(server)]
        return seen[0] == (active, dropped)

    wait_until(reached, f"(count_active, count_dropped) == ({active}, {dropped})", timeout,
               describe=lambda: seen[0] if seen else None)


def snapshot(store: KVStore) -> dict[str, list[bytes]]:
    """The whole store (read while the server is idle: after a round trip has come back)."""
    return {key: store.get(key) for key in store.keys()}


def random_value(rng: random.Random, size: int, colons: bool = True) -> bytes:
    alphabet = bytes(b for b in range(256) if b != 0x0A and (colons or b != 0x3A))
    return bytes(rng.choice(alphabet) for _ in range(size))


def new_rng() -> random.Random:
    seed = random.SystemRandom().randrange(2**32)
    print(f"random seed: {seed}")
    return random.Random(seed)


# ---- framing --------------------------------------------------------------------------------

ERROR = object()   # stands for "one line starting with Error:" in an expected reply list
BAD_LINES = [b"Frob:k:v", b"Get:k:x", b"Put:k", b"Update:k:o", b"Get:", b"", b"nocolon",
             b"Put:\xff:v"]


def make_script(rng: random.Random, prefix: str, length: int = 60):
    """Random requests on a few keys, with the replies a correct server gives, in order.
    Returns (requests, expected replies, final contents of those keys)."""
    keys = [f"{prefix}{i}".encode() for i in range(4)]
    model: dict[bytes, list[bytes]] = {}
    requests: list[bytes] = []
    replies: list = []
    for _ in range(length):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.35:
            value = random_value(rng, rng.randrange(0, 30))     # may hold ':' and any byte
            model.setdefault(key, []).append(value)
            requests.append(b"Put:" + key + b":" + value + b"\n")
        elif roll < 0.6:
            requests.append(b"Get:" + key + b"\n")
            replies += [key + b":" + value + b"\n" for value in model.get(key, [])]
        elif roll < 0.7:
            requests.append(b"Delete:" + key + b"\n")
            model.pop(key, None)
        elif roll < 0.88:
            values = model.setdefault(key, [])
            olds = [value for value in values if b":" not in value]  # an old value has no ':'
            old = rng.choice(olds) if olds and rng.random() < 0.8 else b"absent"
            new = random_value(rng, rng.randrange(0, 30))
            if old in values:
                values.remove(old)   # the first equal one
            values.append(new)
            requests.append(b"Update:" + key + b":" + old + b":" + new + b"\n")
        else:
            requests.append(rng.choice(BAD_LINES) + b"\n")
            replies.append(ERROR)
    return requests, replies, {k.decode(): v for k, v in model.items()}


def check_replies(client: LineClient, expected: list, what: str, barrier: str) -> None:
    for number, want in enumerate(expected):
        line = client.read_line(what=f"reply {number + 1} of {len(expected)} ({what})")
        if want is ERROR:
            assert line.startswith(b"Error:"), f"{what}: reply {number + 1}: expected an " \
                                               f"Error: line, got {line[:80]!r}"
        else:
            assert line == want, f"{what}: reply {number + 1}: expected {want[:80]!r}, " \
                                 f"got {line[:80]!r}"
    # Nothing more: the next line is the reply to our barrier.
    client.round_trip(barrier, b"ok")


def test_requests_cut_at_any_byte_get_the_same_replies(kv):
    rng = new_rng()
    for trial in range(6):
        requests, replies, final = make_script(rng, f"t{trial}-")
        stream = b"".join(requests)
        if trial == 0:
            pieces = [stream]                                   # the reference: one write
        else:
            cuts = sorted(rng.sample(range(1, len(stream)), min(40, len(stream) - 1)))
            pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        client = kv.connect(f"trial {trial}")
        for piece in pieces:
            client.send(piece)
            # Space the writes out (not a wait for anything): with TCP_NODELAY each piece
            # then reaches the server as its own segment, cut wherever the cut fell.
            time.sleep(0.001)
        check_replies(client, replies, f"trial {trial}, {len(pieces)} writes",
                      barrier=f"barrier-{trial}")
        stored = {key: kv.store.get(key) for key in final}
        assert stored == final, f"trial {trial}: the store disagrees with the model"
        client.close()


# ---- malformed lines ------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    pytest.param(b"Frob:k:v", id="unknown-command"),
    pytest.param(b"put:k:v", id="lowercase-command"),
    pytest.param(b"Put:k", id="put-missing-value"),
    pytest.param(b"Update:k:v1", id="update-missing-new"),
    pytest.param(b"Update:k", id="update-missing-old-and-new"),
    pytest.param(b"Get:k:extra", id="get-extra-field"),
    pytest.param(b"Delete:k:extra", id="delete-extra-field"),
    pytest.param(b"Put::v", id="put-empty-key"),
    pytest.param(b"Get:", id="get-empty-key"),
    pytest.param(b"Delete:", id="delete-empty-key"),
    pytest.param(b"Put:\xff\xfe:v", id="put-non-utf8-key"),
    pytest.param(b"Get:\xc3", id="get-non-utf8-key"),
    pytest.param(b"Delete", id="no-colon"),
    pytest.param(b"hello world", id="no-colon-text"),
    pytest.param(b"", id="blank-line"),
])
def test_malformed_line_gets_one_error_and_changes_nothing(kv, bad):
    client = kv.connect("sender")
    bystander = kv.connect("bystander")
    client.send(b"Put:k:v1\nPut:k:v2\nPut:k:extra\n")
    client.round_trip("probe", b"p")
    before = snapshot(kv.store)

    client.send(bad + b"\n" + b"Get:probe\n")
    error = client.read_line(what=f"the Error: reply to {bad!r}")
    assert error.startswith(b"Error:") and len(error) > len(b"Error:\n"), \
        f"{bad!r}: expected one 'Error:<reason>' line, got {error!r}"
    nxt = client.read_line(what="the reply to Get:probe after the error")
    assert nxt == b"probe:p\n", f"{bad!r}: expected exactly one error line, then " \
                                f"b'probe:p\\n'; got {nxt!r} after {error!r}"
    assert snapshot(kv.store) == before, f"{bad!r} changed the store"

    client.round_trip("after", b"still-works")                  # the connection keeps working
    bystander.round_trip("bystander", b"quiet")                  # and the error was not its
    assert bystander.buffered() == b"", bystander.buffered()


def test_overlong_line_gets_one_error_and_the_connection_goes_on(kv):
    client = kv.connect()
    client.round_trip("probe", b"p")
    before = snapshot(kv.store)
    client.send(b"Put:huge:" + b"x" * MAX_LINE_BYTES + b"\nGet:probe\n", timeout=30)
    error = client.read_line(timeout=30, what="the Error: reply to an overlong line")
    assert error.startswith(b"Error:"), f"expected an Error: line, got {error[:80]!r}"
    nxt = client.read_line(what="the reply to Get:probe")
    assert nxt == b"probe:p\n", f"expected one error line, then b'probe:p\\n'; got {nxt[:80]!r}"
    assert snapshot(kv.store) == before, "an overlong line changed the store"
    client.round_trip("after", b"ok")


# ---- values ---------------------------------------------------------------------------------

def test_one_mebibyte_value_round_trips_byte_exact(kv):
    rng = new_rng()
    value = random_value(rng, 1 << 20)
    client = kv.connect()
    client.send(b"Put:big:" + value + b"\n")
    client.send(b"Get:big\n")
    expected = b"big:" + value + b"\n"
    got = client.read_exactly(len(expected), timeout=15, what="the 1 MiB Get reply")
    assert got == expected, "the 1 MiB value came back altered"
    assert kv.store.get("big") == [value]
    client.round_trip("after-big", b"ok")


def test_values_with_colons_round_trip_as_documented(kv):
    client = kv.connect()
    # A Put's value is the rest of the line, colons included.
    client.send(b"Put:c:a:b:c\nPut:c::\nGet:c\n")
    assert client.read_line() == b"c:a:b:c\n"
    assert client.read_line() == b"c::\n"
    # An Update's old value ends at its first ':'; the new value takes the rest.
    client.send(b"Put:u:x\nUpdate:u:x:y:z\nGet:u\n")
    assert client.read_line() == b"u:y:z\n"
    # So an old value that holds ':' cannot be named: "a" is not in the list, "b:c" is appended.
    client.send(b"Update:c:a:b:c\nGet:c\n")
    assert [client.read_line() for _ in range(3)] == [b"c:a:b:c\n", b"c::\n", b"c:b:c\n"]
    assert kv.store.get("c") == [b"a:b:c", b":", b"b:c"]
    assert kv.store.get("u") == [b"y:z"]


def test_utf8_keys_and_binary_values_round_trip(kv):
    client = kv.connect()
    key = "ключ_é_🔑"
    value = b"\xff\x00\r\tvalue"
    client.send(b"Put:" + key.encode() + b":" + value + b"\nGet:" + key.encode() + b"\n")
    assert client.read_line() == key.encode() + b":" + value + b"\n"
    assert kv.store.get(key) == [value]


# ---- abrupt departures ----------------------------------------------------------------------

def test_resets_count_as_dropped_and_others_keep_working(kv):
    idle = kv.connect("idle")
    half = kv.connect("mid-line")
    worker = kv.connect("worker")
    wait_counts(kv.server, 3, 0)

    idle.reset()                                   # RST, no FIN
    wait_counts(kv.server, 2, 1)

    half.send(b"Put:partial:abc")                  # no newline: a request never finished
    half.reset()
    wait_counts(kv.server, 1, 2)

    worker.round_trip("alive", b"yes")
    assert "partial" not in kv.store.keys(), "an unfinished line was applied"
    assert counts(kv.server) == (1, 2)


def test_reset_while_the_server_is_writing_counts_once(kv):
    rng = new_rng()
    victim = kv.connect("victim")
    other = kv.connect("other")
    value = random_value(rng, 256 * 1024)
    victim.send(b"Put:v:" + value + b"\n" + b"Get:v\n" * 200)
    # The server is writing to the victim once its replies show up in our receive queue.
    wait_until(lambda: victim.kernel_unread() > 0, "the server writing to the victim")
    victim.reset()
    wait_counts(kv.server, 1, 1)
    other.round_trip("other", b"fine")
    assert counts(kv.server) == (1, 1), "the reset client was counted more than once"


# ---- slow readers ---------------------------------------------------------------------------

def seen_by(observer: LineClient, key: str) -> bool:
    """One round trip through the server: does `observer` see a value under `key` now?"""
    observer.send(f"Get:{key}\nPut:observer-probe:1\nGet:observer-probe\n"
                  f"Delete:observer-probe\n".encode())
    lines = observer.read_until(b"observer-probe:1\n")
    return any(line.startswith(key.encode() + b":") for line in lines[:-1])


def fill_queue_of(slow: LineClient, observer: LineClient, rng: random.Random) -> int:
    """Make the server offer `slow` far more than it can queue, and wait (through `observer`)
    until the server has handled every one of those requests. Returns the Gets sent."""
    value = random_value(rng, SLOW_VALUE_BYTES)
    slow.send(b"Put:slow:" + value + b"\n" + b"Get:slow\n" * SLOW_GETS + b"Put:slow-sent:1\n")
    wait_until(lambda: seen_by(observer, "slow-sent"), "the server handling the slow client's "
               "Gets")
    return SLOW_GETS


def test_slow_reader_does_not_slow_another_client(kv):
    rng = new_rng()
    slow = kv.connect("slow (never reads)")
    fast = kv.connect("fast")
    gets = fill_queue_of(slow, fast, rng)

    started = time.monotonic()
    worst = 0.0
    for number in range(40):
        if number % 10 == 0:
            slow.send(b"Get:slow\n" * 200)     # keep offering the slow client more
            gets += 200
        began = time.monotonic()
        fast.round_trip(f"fast-{number}", f"v{number}".encode(), timeout=FAST_ROUND_TRIP)
        worst = max(worst, time.monotonic() - began)
    total = time.monotonic() - started
    print(f"40 round trips in {total:.3f}s, worst {worst * 1000:.1f} ms")
    assert total < 10.0, f"40 round trips took {total:.1f}s beside a slow reader"
    assert counts(kv.server) == (2, 0), "the slow client must be kept, its messages dropped"

    # Now the slow client reads: it gets what was queued (at least the 500 the server keeps)
    # and nothing of what was dropped.
    delivered = drain_slow(slow)
    print(f"slow client: {delivered} of {gets} Get replies delivered")
    assert delivered < gets, "nothing was dropped for a client that never read"
    assert delivered >= 500, f"only {delivered} replies were kept for the slow client"


def drain_slow(slow: LineClient, timeout: float = 30.0) -> int:
    """Read the slow client's backlog; returns how many `slow:` lines came before the first
    reply to a marker Get. The marker's reply can itself be dropped while the queue is still
    full, so the marker is asked for again whenever nothing is left to read."""
    slow.send(b"Put:slow-done:1\n")
    deadline = time.monotonic() + timeout
    delivered = 0
    last_ask = 0.0
    while True:
        if b"\n" in slow.buffered() or slow.kernel_unread() > 0:
            line = slow.read_line(what="the slow client's backlog")
            if line == b"slow-done:1\n":
                return delivered
            assert line.startswith(b"slow:"), f"unexpected line {line[:80]!r}"
            delivered += 1
            continue
        now = time.monotonic()
        assert now < deadline, f"the marker never came back ({delivered} lines read)"
        if now - last_ask > 0.1:
            slow.send(b"Get:slow-done\n")
            last_ask = now
        else:
            time.sleep(0.005)


# ---- close, start, counts -------------------------------------------------------------------

def server_threads(port: int) -> list[str]:
    prefix = f"kv-server:{port}"
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_close_with_connected_clients_is_prompt_and_leaves_no_thread(kv):
    rng = new_rng()
    idle = [kv.connect(f"idle {i}") for i in range(3)]
    slow = kv.connect("slow (never reads)")
    fill_queue_of(slow, idle[0], rng)
    wait_counts(kv.server, 4, 0)
    assert server_threads(kv.port), "expected the server's threads to be running"

    began = time.monotonic()
    call_within(kv.server.close, timeout=CLOSE_WITHIN, what="close() with 4 clients connected")
    print(f"close() took {time.monotonic() - began:.3f}s")
    assert server_threads(kv.port) == [], f"alive after close(): {server_threads(kv.port)}"
    for client in idle:
        client.wait_closed_by_server()


def test_close_twice_and_concurrently(kv):
    kv.connect("someone")
    wait_counts(kv.server, 1, 0)
    first = threading.Thread(target=kv.server.close, name="test/close-a")
    second = threading.Thread(target=kv.server.close, name="test/close-b")
    first.start()
    second.start()
    first.join(CLOSE_WITHIN)
    second.join(CLOSE_WITHIN)
    assert not first.is_alive() and not second.is_alive(), "concurrent close() calls hung"
    call_within(kv.server.close, timeout=CLOSE_WITHIN, what="a third close()")
    assert server_threads(kv.port) == []


def test_start_on_a_port_in_use_raises_oserror(kv):
    other = KeyValueServer(KVStore())
    try:
        with pytest.raises(OSError):
            other.start(kv.port)
    finally:
        close_server_within(other)
    with socket.create_server(("127.0.0.1", 0)) as blocker:
        third = KeyValueServer(KVStore())
        try:
            with pytest.raises(OSError):
                third.start(blocker.getsockname()[1])
        finally:
            close_server_within(third)
    kv.connect().round_trip("unharmed", b"yes")      # the first server is unaffected


def test_counts_follow_connections(kv):
    assert counts(kv.server) == (0, 0)
    clients = [kv.connect(f"c{i}") for i in range(3)]
    wait_counts(kv.server, 3, 0)
    clients[0].close()                               # an orderly close (FIN)
    wait_counts(kv.server, 2, 1)
    clients[1].round_trip("k", b"v")                 # talking changes no count
    assert counts(kv.server) == (2, 1)
    clients[1].close()
    clients[2].reset()
    wait_counts(kv.server, 0, 3)
    kv.connect("late")
    wait_counts(kv.server, 1, 3)
