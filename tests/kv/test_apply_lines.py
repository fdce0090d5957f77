"""`kv.server.apply_lines`, the loop's one-pass parse-and-apply, against the reference: each
line through `kv.protocol.parse_request` and then the store call (hypothesis, lines near and
far from the grammar, keys that are not UTF-8); the replies come in bounded lists that never
split a Get's replies. And over a socket: a client that sends requests and closes at once has
every one applied (its departure never overtakes its last batch), and one that half-closes at
once reads every reply (its replies go out before its departure closes the queue)."""

from __future__ import annotations

import socket

from hypothesis import given, settings, strategies as st

from kv import KeyValueServer, KVStore
from kv import server as kv_server
from kv.protocol import GET, PUT, DELETE, BadRequest, LineSplitter, parse_request
from tests.kv.kvclient import close_server_within
from tests.waiting import wait_until

WAIT_SECONDS = 20.0


def reference(store: KVStore, lines: list[bytes]) -> list[bytes]:
    """parse_request on each line, then the store call; the replies in order."""
    replies = []
    for line in lines:
        request = parse_request(line)
        if isinstance(request, BadRequest):
            replies.append(request.reply())
            continue
        op, key, value, new = request
        if op is PUT:
            store.put(key, value)
        elif op is GET:
            replies += [key.encode() + b":" + stored + b"\n" for stored in store.get(key)]
        elif op is DELETE:
            store.delete(key)
        else:
            store.update(key, value, new)
    return replies


def contents(store: KVStore) -> dict:
    return {key: store.get(key) for key in store.keys()}


FIELD = st.sampled_from([b"", b"k", b"key_1", b"x:y", b"\xff", b"\xc3\xa9", b"\xc3", b"v\r",
                         b"a" * 5]) | st.binary(max_size=6).map(lambda b: b.replace(b"\n", b""))
LINE = st.tuples(st.sampled_from([b"Put", b"Get", b"Delete", b"Update", b"get", b"Frob", b""]),
                 st.lists(FIELD, max_size=4)).map(lambda parts: b":".join([parts[0], *parts[1]]))


@settings(max_examples=300)
@given(lines=st.lists(LINE, max_size=40), preload=st.lists(st.tuples(FIELD, FIELD), max_size=6))
def test_apply_lines_does_what_parse_request_and_the_store_do(lines, preload):
    ours, theirs = KVStore(), KVStore()
    for key, value in preload:   # some keys with several values, so Gets answer many lines
        for store in (ours, theirs):
            reference(store, [b"Put:k:" + value, b"Put:" + key + b":" + value])
    delivered: list[list[bytes]] = []
    kv_server.apply_lines(ours, lines, delivered.append)
    assert [reply for batch in delivered for reply in batch] == reference(theirs, lines)
    assert contents(ours) == contents(theirs)
    assert all(delivered), "deliver() was called with an empty list"


def test_replies_come_in_bounded_lists_that_never_split_a_get():
    store = KVStore()
    for value in range(10):
        store.put("k", b"%d" % value)
    gets = 3 * kv_server.REPLY_FLUSH_MESSAGES
    delivered: list[list[bytes]] = []
    kv_server.apply_lines(store, [b"Get:k"] * gets, delivered.append)
    assert sum(map(len, delivered)) == 10 * gets
    assert len(delivered) > 1, "a big batch's replies were held all at once"
    for batch in delivered:
        assert len(batch) % 10 == 0, "a Get's replies were split between deliveries"
        assert len(batch) < kv_server.REPLY_FLUSH_MESSAGES + 10


def test_the_splitter_counts_the_too_long_lines_it_reports():
    splitter = LineSplitter(4)
    assert splitter.feed(b"ab\ncd\n") == [b"ab", b"cd"] and splitter.too_long_lines == 0
    assert splitter.feed(b"abcdef\nok\nxyzuvw") == [splitter._too_long, b"ok", splitter._too_long]
    assert splitter.too_long_lines == 2


def test_a_client_that_sends_and_closes_at_once_has_every_request_applied():
    store = KVStore()
    server = KeyValueServer(store)
    server.start(0)
    try:
        for round_number in range(20):
            client = socket.create_connection(("127.0.0.1", server.port))
            client.sendall(b"".join(b"Put:k%d:%d\n" % (round_number, i) for i in range(200)))
            client.close()
        wait_until(lambda: server.count_dropped() == 20, "every client counted as "
                   "disconnected", WAIT_SECONDS)
        for round_number in range(20):
            assert store.get(f"k{round_number}") == [b"%d" % i for i in range(200)]
    finally:
        close_server_within(server)


def test_a_client_that_half_closes_at_once_still_reads_every_reply():
    """The departure comes right behind the batch: its replies are delivered first."""
    store = KVStore()
    server = KeyValueServer(store)
    server.start(0)
    try:
        for round_number in range(20):
            client = socket.create_connection(("127.0.0.1", server.port))
            client.settimeout(WAIT_SECONDS)
            key = b"h%d" % round_number
            client.sendall(b"Put:" + key + b":v\nGet:" + key + b"\nGet:" + key + b"\n")
            client.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := client.recv(65536):
                data += chunk
            client.close()
            assert data == (key + b":v\n") * 2, f"round {round_number}: {data!r}"
    finally:
        close_server_within(server)
