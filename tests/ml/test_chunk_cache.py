"""The chunk cache: a recorded pass replays the same chunks, and fits do not change."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.ml import chunk_cache
from workbench.ml.chunks import FeatureChunks
from workbench.ml.outofcore import fit_streaming
from workbench.ml.streamed_kmeans import StreamedKMeans
from workbench.ml.streamed_logistic import StreamedLogistic


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return wb.Frame.from_polars(pl.DataFrame({
        "a": x, "b": rng.normal(size=n).astype(np.float32), "c": rng.integers(-5, 5, n),
        "y": (x + rng.normal(size=n) > 0).astype(np.int8)}))


def _pass(chunks):
    return [(X.copy(), None if y is None else y.copy(), start) for X, y, start in chunks]


def _same(p, q):
    return len(p) == len(q) and all(
        np.array_equal(a[0], b[0]) and (a[1] is None and b[1] is None or np.array_equal(a[1], b[1]))
        and a[2] == b[2] for a, b in zip(p, q))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), rows=st.integers(1, 900), test_size=st.sampled_from([0.0, 0.2, 0.5]),
       part=st.sampled_from(["train", "test", "all"]), target=st.sampled_from([None, "y"]))
def test_replayed_chunks_are_the_assembled_ones(n, rows, test_size, part, target):
    if part == "test" and test_size == 0:
        return
    plain = FeatureChunks(_frame(n), ["a", "b", "c"], target, rows=rows, test_size=test_size, part=part)
    cached = plain.cached()
    recorded = _pass(cached)
    assert cached.is_cached
    assert _same(recorded, _pass(plain))
    assert _same(_pass(cached), recorded)


def test_a_pass_broken_off_is_not_kept_and_the_next_one_records_in_full():
    cached = FeatureChunks(_frame(5000), ["a", "b"], "y", rows=600).cached()
    for i, _ in enumerate(cached):
        if i == 2:
            break
    assert not cached.is_cached
    full = _pass(cached)
    assert cached.is_cached and len(full) == len(cached)


def test_variants_do_not_share_the_cache():
    train = FeatureChunks(_frame(4000), ["a", "b"], "y", rows=500, test_size=0.25).cached()
    _pass(train)
    test = train.replace(part="test")
    assert not test.is_cached
    assert sum(len(X) for X, _, _ in test) + sum(len(X) for X, _, _ in train) == 4000


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), rows=st.integers(1, 900), test_size=st.sampled_from([0.2, 0.5, 0.9]),
       target=st.sampled_from([None, "y"]), seed=st.integers(0, 5))
def test_the_held_out_rows_kept_by_the_first_pass_are_those_the_test_part_assembles(
        n, rows, test_size, target, seed):
    frame = _frame(n)
    train = FeatureChunks(frame, ["a", "b", "c"], target, rows=rows, test_size=test_size,
                          seed=seed).cached(held_out=True)
    assert not train.held_out_part().is_cached  # nothing recorded yet: assembled
    _pass(train)
    test = train.held_out_part()
    assert test.is_cached and test.part == "test"
    assert _same(_pass(test), _pass(train.replace(part="test")))
    assert sum(len(X) for X, _, _ in test) + sum(len(X) for X, _, _ in train) == n


def test_a_broken_off_pass_keeps_no_held_out_rows_and_the_next_keeps_them_all():
    train = FeatureChunks(_frame(5000), ["a", "b"], "y", rows=600, test_size=0.3).cached(held_out=True)
    for i, _ in enumerate(train):
        if i == 2:
            break
    assert not train.held_out_part().is_cached
    _pass(train)
    assert _same(_pass(train.held_out_part()), _pass(train.replace(part="test")))
    assert train.cached() is train  # cached already: the same cache serves


def test_without_room_on_the_host_every_pass_assembles(monkeypatch):
    monkeypatch.setattr(chunk_cache, "HOST_SHARE", 1 << 60)  # room for no bytes at all
    cached = FeatureChunks(_frame(3000), ["a", "b"], "y", rows=500).cached()
    first = _pass(cached)
    assert not cached.is_cached
    assert _same(first, _pass(cached))


def test_fits_over_cached_chunks_equal_those_over_assembled_ones():
    frame = _frame(20_000, seed=3)
    chunks = FeatureChunks(frame, ["a", "b", "c"], "y", rows=1536, test_size=0.2)
    cached = fit_streaming("logistic_regression", chunks, task="classification", n_classes=2)
    plain = StreamedLogistic(n_classes=2).fit(chunks)
    np.testing.assert_array_equal(cached.coef_, plain.coef_)
    np.testing.assert_array_equal(cached.intercept_, plain.intercept_)
    unsupervised = chunks.replace(target=None)
    cached = fit_streaming("kmeans", unsupervised, task="clustering", params={"n_clusters": 4})
    plain = StreamedKMeans(n_clusters=4).fit(unsupervised)
    np.testing.assert_array_equal(cached.cluster_centers_, plain.cluster_centers_)
    assert cached.inertia_ == plain.inertia_


def test_fit_beyond_the_budget_reads_the_frame_once_for_many_passes():
    # Counting passes: the cache records the first and replays the rest.
    frame = _frame(10_000, seed=5)
    chunks = FeatureChunks(frame, ["a", "b"], "y", rows=1024, test_size=0.2).cached()
    calls = []
    original = FeatureChunks._assembled

    def counted(self, *args):
        calls.append(1)
        return original(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FeatureChunks, "_assembled", counted)
        m = StreamedLogistic(n_classes=2).fit(chunks)
    assert m._passes >= 3 and len(calls) == 1


@pytest.mark.parametrize("classes, dtype", [(2, np.int8), (128, np.int8), (129, np.int16), (40_000, np.int32)])
def test_class_codes_are_kept_in_the_smallest_type_with_their_values(classes, dtype):
    frame = _frame(3000, seed=classes)
    codes = FeatureChunks(frame, ["a", "b"], "y", rows=700, test_size=0.2,
                          encode=lambda y: (np.asarray(y, np.int64) * (classes - 1)).astype(np.int32))
    cached = codes.cached(classes=classes)
    recorded = _pass(cached)
    assert {y.dtype for _, y, _ in recorded} == {np.dtype(np.int32)}  # the first pass as assembled
    replayed = _pass(cached)
    assert {y.dtype for _, y, _ in replayed} == {np.dtype(dtype)}
    assert _same(replayed, recorded)  # the same values (and rows, order, starts)
    assert max(int(y.max()) for _, y, _ in replayed) == classes - 1


def test_the_recording_block_hands_out_aligned_arrays_that_do_not_overlap():
    from workbench.ml.chunk_cache import ALIGN, _Block

    block = _Block(4_000)
    a, b, c = block.take((100, 3), np.float32), block.take((7,), np.int8), block.take((10,), np.float64)
    base = block.data.ctypes.data
    assert all((x.ctypes.data - base) % ALIGN == 0 and x.flags.c_contiguous for x in (a, b, c))
    a[:], b[:], c[:] = 1.5, -3, 2.25
    assert (a == 1.5).all() and (b == -3).all() and (c == 2.25).all()  # none wrote over another
    assert block.take((4_000,), np.uint8) is None  # beyond the block: the caller pins its own
    assert not block.locked  # page-locking happens on the GPU only, when a pass completes
