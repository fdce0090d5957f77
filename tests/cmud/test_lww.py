"""LWW (cmud.lww) and per-origin coverage (cmud.coverage): the pure rules under the sync."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from cmud import lww
from cmud.coverage import Coverage

ORIGINS = ["127.0.0.1:9000/0", "127.0.0.1:9000/1", "127.0.0.1:9100/0"]

entries = st.builds(lww.Entry, value=st.text(max_size=3), stamp_ms=st.integers(0, 30),
                    origin=st.sampled_from(ORIGINS), seq=st.integers(1, 50))
updates = st.lists(st.tuples(st.sampled_from("abc"), entries), max_size=12)


def merged(batch) -> dict:
    store: dict = {}
    for key, entry in batch:
        lww.merge(store, key, entry)
    return store


def merge_stores(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, entry in b.items():
        lww.merge(out, key, entry)
    return out


def same_winners(a: dict, b: dict) -> bool:
    """Equal as replicas: same (value, stamp, origin) per key. Two entries with one stamp and
    one origin never differ in a real run (an actor never stamps two Puts of a key alike)."""
    def view(store):
        return {k: (e.stamp_ms, e.origin) for k, e in store.items()}
    return view(a) == view(b)


@settings(max_examples=300)
@given(updates)
def test_merge_order_does_not_matter(batch):
    assert all(same_winners(merged(batch), merged(order))
               for order in itertools.islice(itertools.permutations(batch), 20))


@settings(max_examples=300)
@given(updates, updates, updates)
def test_merge_is_commutative_associative_idempotent(x, y, z):
    a, b, c = merged(x), merged(y), merged(z)
    assert same_winners(merge_stores(a, b), merge_stores(b, a))
    assert same_winners(merge_stores(merge_stores(a, b), c), merge_stores(a, merge_stores(b, c)))
    assert merge_stores(a, a) == a


@settings(max_examples=200)
@given(updates)
def test_duplicates_change_nothing(batch):
    assert same_winners(merged(batch + batch), merged(batch))


def test_later_stamp_wins_and_ties_break_on_origin():
    early = lww.Entry("x", 100, ORIGINS[1], 1)
    late = lww.Entry("y", 110, ORIGINS[0], 1)
    assert lww.supersedes(late, early) and not lww.supersedes(early, late)
    tie_low = lww.Entry("a", 5, ORIGINS[0], 1)
    tie_high = lww.Entry("b", 5, ORIGINS[1], 1)
    assert lww.supersedes(tie_high, tie_low) and not lww.supersedes(tie_low, tie_high)
    assert not lww.supersedes(tie_low, tie_low)


@given(st.integers(0, 10**13), st.none() | entries)
def test_a_new_stamp_always_supersedes_what_the_actor_holds(now_ms, current):
    stamp = lww.new_stamp(now_ms, current)
    assert stamp >= now_ms
    assert lww.supersedes(lww.Entry("v", stamp, current.origin if current else ORIGINS[0], 2),
                          current)
    if current is None or now_ms > current.stamp_ms:
        assert stamp == now_ms   # the wall clock whenever it is ahead


def test_a_re_put_of_the_same_value_gets_a_new_stamp():
    first = lww.Entry("v", 1000, ORIGINS[0], 1)
    assert lww.new_stamp(1000, first) == 1001
    assert lww.new_stamp(1020, first) == 1020


@given(st.dictionaries(st.text(max_size=4), entries, max_size=10))
def test_pack_unpack_round_trip(store):
    origins, rows = lww.pack(store)
    assert len(origins) == len(set(origins))
    assert dict(lww.unpack(origins, rows)) == store


@pytest.mark.parametrize("origins, rows", [
    (None, []), (["o"], None), ([1], []), (["o"], [[1, "v", 1, 0, 1]]),
    (["o"], [["k", "v", 1, 1, 1]]), (["o"], [["k", "v", 1, 0]]), (["o"], [["k", "v", "1", 0, 1]]),
    (["o"], ["row"]), (["o"], [["k", "v", 1, -1, 1]]),
])
def test_unpack_refuses_malformed_batches(origins, rows):
    with pytest.raises(ValueError):
        lww.unpack(origins, rows)


def test_coverage_extends_on_contiguous_ranges_and_notices_gaps():
    c = Coverage()
    assert c.apply_range("o", 0, 3)
    assert c.apply_range("o", 3, 5)
    assert c.covered["o"] == 5
    assert not c.apply_range("o", 7, 9)        # (5, 7] was lost
    assert c.covered["o"] == 5
    assert c.missing({"o": 9, "p": 0}) == {"o": 5}
    assert c.apply_range("o", 5, 9)            # the resend
    assert c.missing({"o": 9}) == {}
    assert c.apply_range("o", 2, 4) and c.covered["o"] == 9   # an old range changes nothing


def test_coverage_sees_a_lost_last_batch_through_the_sender_latest():
    c = Coverage()
    c.apply_range("o", 0, 4)
    assert c.missing({"o": 6}) == {"o": 4}     # (4, 6] never arrived, nothing came after
    assert c.missing({"q": 1}) == {"q": 0}     # an origin never heard of


@settings(max_examples=200)
@given(st.lists(st.booleans(), min_size=1, max_size=30), st.lists(st.integers(1, 3),
                                                                   min_size=30, max_size=30))
def test_coverage_never_claims_what_was_lost(delivered, sizes):
    """Batches of consecutive seqs, some lost: covered never passes the first lost seq, and a
    resend from covered heals it."""
    c = Coverage()
    low = 0
    first_lost = None
    for ok, size in zip(delivered, sizes):
        if ok:
            c.apply_range("o", low, low + size)
        elif first_lost is None:
            first_lost = low + 1
        low += size
    covered = c.covered.get("o", 0)
    assert covered == low if first_lost is None else covered < first_lost
    need = c.missing({"o": low})
    if first_lost is not None:
        assert need == {"o": covered}
        assert c.apply_range("o", covered, low) and not c.missing({"o": low})
