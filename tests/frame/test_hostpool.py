"""The host pool's bookkeeping, with a registry of pinned ranges kept in a dict (the
device module's own registry needs a GPU; its part is tested in test_split_gpu.py)."""

import gc

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.frame.hostpool import MIN_BLOCK, HostPool, block_size


class Registry:
    """Registered ranges by start, refusing past ``limit`` bytes as the device's does."""

    def __init__(self):
        self.ranges: dict[int, int] = {}
        self.calls = 0

    def register(self, ranges, limit):
        done, skipped = [], 0
        for start, length in ranges:
            self.calls += 1
            if limit is not None and sum(self.ranges.values()) + length > limit:
                skipped += length
                continue
            self.ranges[start] = length
            done.append((start, length))
        return done, skipped

    def unregister(self, ranges):
        for start, _ in ranges:
            del self.ranges[start]


def pool(keep=64 * MIN_BLOCK, limit=None):
    reg = Registry()
    return HostPool(keep, limit, reg.register, reg.unregister), reg


def test_a_block_comes_back_when_its_array_is_gone_and_is_reused():
    p, reg = pool()
    a = p.take(3 * MIN_BLOCK)
    assert a.size == 3 * MIN_BLOCK and reg.ranges == {a.ctypes.data: 4 * MIN_BLOCK}
    a[:] = 7  # writable host memory
    address = a.ctypes.data
    del a
    gc.collect()
    assert p.free_bytes == 4 * MIN_BLOCK and p.leased_bytes == 0
    b = p.take(4 * MIN_BLOCK - 5)  # the same size class: the same block, not registered again
    assert b.ctypes.data == address and p.made == 1 and reg.calls == 1


def test_a_block_stays_leased_while_arrow_holds_a_buffer_over_it():
    p, _ = pool()
    a = p.take(MIN_BLOCK)
    a[:8 * 4] = np.arange(4, dtype=np.int64).view(np.uint8)
    arr = pa.Array.from_buffers(pa.int64(), 4, [None, pa.py_buffer(a).slice(0, 32)])
    del a
    gc.collect()
    assert p.leased_bytes == MIN_BLOCK and p.free_bytes == 0
    assert arr.to_pylist() == [0, 1, 2, 3]
    del arr
    gc.collect()
    assert p.leased_bytes == 0 and p.free_bytes == MIN_BLOCK


def test_a_free_block_up_to_four_times_larger_serves_and_answers_only_reuse():
    p, reg = pool()
    held = p.take(4 * MIN_BLOCK)
    del held  # one free 4 MiB block
    small = p.take(MIN_BLOCK + 1)  # a 2 MiB class: the free 4 MiB block serves it
    assert p.made == 1 and p.reused == 1 and p.leased_bytes == 4 * MIN_BLOCK
    assert p.take(MIN_BLOCK, reuse_only=True) is None  # none free: no new registration
    assert p.made == 1 and len(reg.ranges) == 1
    del small
    tiny = p.take(10, reuse_only=True)  # a 1 MiB class: 4 MiB is within four times it
    assert tiny is not None and p.made == 1 and p.reused == 2
    del tiny
    assert p.take(9 * MIN_BLOCK, reuse_only=True) is None  # larger than any free block


def test_past_the_pinned_limit_it_gives_nothing_after_letting_go_of_free_blocks():
    p, reg = pool(limit=4 * MIN_BLOCK)
    a = p.take(2 * MIN_BLOCK)
    b = p.take(MIN_BLOCK)
    del b
    gc.collect()  # one free 1 MiB block; 3 MiB registered
    c = p.take(2 * MIN_BLOCK)  # needs the free block's room: it is let go of
    assert c is not None and p.free_bytes == 0 and sum(reg.ranges.values()) == 4 * MIN_BLOCK
    assert p.take(MIN_BLOCK) is None  # nothing free, nothing left: the caller copies unpinned
    del a, c


def test_free_blocks_beyond_keep_are_unregistered():
    p, reg = pool(keep=2 * MIN_BLOCK)
    blocks = [p.take(MIN_BLOCK) for _ in range(4)]
    assert len(reg.ranges) == 4
    del blocks
    gc.collect()
    assert p.free_bytes == 2 * MIN_BLOCK and len(reg.ranges) == 2
    assert p.trim(0) == 2 * MIN_BLOCK and reg.ranges == {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5 * MIN_BLOCK)), max_size=30),
       st.integers(1, 16))
def test_the_books_balance_over_any_sequence(steps, keep_blocks):
    p, reg = pool(keep=keep_blocks * MIN_BLOCK, limit=12 * MIN_BLOCK)
    held = []
    for release, nbytes in steps:
        if release and held:
            held.pop(0)  # refcounting frees it here: no cycles to collect
        else:
            a = p.take(nbytes)
            if a is not None:
                assert a.size == nbytes
                held.append(a)
            del a
        # every registered byte is leased or free; free ones within keep
        assert sum(reg.ranges.values()) == p.leased_bytes + p.free_bytes <= 12 * MIN_BLOCK
        assert p.free_bytes <= keep_blocks * MIN_BLOCK
        assert p.leased_bytes >= sum(block_size(a.size) for a in held)
    del held
    assert p.leased_bytes == 0
