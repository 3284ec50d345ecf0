"""Frames pin only whole pages that hold nothing but their own buffers (checked on the CPU)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.frame.pages import MIN_PIN_BYTES, PAGE, dedicated, page_ranges

ROWS = 300_000  # 2.4 MB of int64: large enough to be pinned


def _heap_int64(values: np.ndarray, dtype=np.int64) -> pa.Array:
    """An Arrow array over NumPy memory that does not start on a page boundary."""
    raw = np.empty(values.size + 1, dtype=dtype)
    view = raw[1:] if raw.ctypes.data % PAGE == 0 else raw[:-1]
    if view.ctypes.data % PAGE == 0:
        view = raw[1:]
    view[:] = values
    return pa.array(view)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nulls=st.booleans(), offset=st.integers(0, 5))
def test_buffers_move_onto_their_own_pages_and_keep_their_values(seed, nulls, offset):
    rng = np.random.default_rng(seed)
    ints = _heap_int64(rng.integers(-10**9, 10**9, ROWS))
    strings = pa.array([None if nulls and i % 7 == 0 else f"s{i % 1000}" for i in range(ROWS)],
                       pa.large_string())
    table = pa.table({"i": ints, "s": strings, "small": pa.array(range(10)).take(
        pa.array(rng.integers(0, 10, ROWS)))}).slice(offset)
    before = [b.address for c in table.columns for b in c.chunk(0).buffers() if b is not None]
    out, pinnable, copied = dedicated(table)
    assert out.equals(table)  # same values, same schema
    assert [b.address for c in table.columns for b in c.chunk(0).buffers() if b is not None] == before
    assert copied >= ROWS * 8  # the NumPy buffer had to move
    assert pinnable and all(b.address % PAGE == 0 and b.size >= MIN_PIN_BYTES for b in pinnable)
    ranges = page_ranges(pinnable)
    for (s1, n1), (s2, _) in zip(ranges, ranges[1:]):
        assert s1 + n1 <= s2  # merged ranges never overlap
    moved = {b.address for b in pinnable} - set(before)
    assert moved  # moved buffers live in new mappings, registered whole
    again, _, copied_again = dedicated(out)
    assert copied_again == 0 and again is out  # already on their own pages: nothing moves


def test_small_nested_and_dictionary_columns_are_left_alone():
    codes = _heap_int64(np.arange(4 * ROWS) % 3, np.int32)  # 4.8 MB, off a page boundary
    assert codes.buffers()[1].address % PAGE
    table = pa.table({"small": pa.array(np.arange(ROWS) % 100, pa.int8()),
                      "nested": pa.array([[1, 2]] * ROWS, pa.list_(pa.int64())),
                      "dict": pa.DictionaryArray.from_arrays(codes[:ROWS], pa.array(["a", "b", "c"]))})
    out, pinnable, copied = dedicated(table)
    assert out is table and copied == 0 and pinnable == []


def test_page_ranges_round_out_and_merge():
    class B:  # only a buffer's address and size matter here
        def __init__(self, address, size):
            self.address, self.size = address, size
    ranges = page_ranges([B(10 * PAGE, MIN_PIN_BYTES + 5), B(10 * PAGE + MIN_PIN_BYTES + 100, MIN_PIN_BYTES),
                          B(1000 * PAGE, 100), None])
    end = -(-(10 * PAGE + 2 * MIN_PIN_BYTES + 100) // PAGE) * PAGE
    assert ranges == [(10 * PAGE, end - 10 * PAGE)]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 6)), max_size=25),
       st.lists(st.tuples(st.integers(0, 400), st.integers(0, 120)), min_size=1, max_size=20),
       st.data())
def test_the_registry_finds_what_a_walk_over_every_range_finds(spans, asks, data):
    from workbench.frame.pages import Registry

    registry, ranges = Registry(), {}
    for slot, pages in spans:  # disjoint ranges, as the driver keeps them
        start, length = slot * 8 * PAGE, pages * PAGE
        if start not in ranges:
            registry.add(start, length)
            ranges[start] = length
    for start in data.draw(st.lists(st.sampled_from(sorted(ranges)), unique=True)) if ranges else []:
        assert registry.remove(start)
        del ranges[start]
    assert not registry.remove(-1) and registry.nbytes == sum(ranges.values())
    for first, size in asks:
        address, nbytes = first * PAGE // 2, size * PAGE // 3
        end, best = address + nbytes, (address, address)
        for start, length in sorted(ranges.items()):  # the walk the registry replaced
            lo, hi = max(start, address), min(start + length, end)
            if hi - lo > best[1] - best[0]:
                best = (lo, hi)
        assert registry.span(address, nbytes) == best
