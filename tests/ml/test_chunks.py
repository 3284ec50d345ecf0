"""FeatureChunks on the CPU: every row once per part, train and test split as held_out says."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.errors import GPUUnavailableError
from workbench.ml.chunks import FeatureChunks
from workbench.ml.split import held_out


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return wb.Frame.from_polars(pl.DataFrame({
        "a": np.arange(n, dtype=np.float64),
        "b": rng.integers(-5, 5, n).astype(np.int32),
        "c": rng.random(n) < 0.5,
        "label": np.array(["x", "y", "z"])[rng.integers(0, 3, n)],
        "t": rng.normal(size=n),
    }))


def _collect(chunks):
    X, y, starts = [], [], []
    for Xc, yc, start in chunks:
        X.append(Xc.copy())
        y.append(None if yc is None else np.array(yc, copy=True))
        starts.append(start)
    return X, y, starts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3000), rows=st.integers(1, 700), test_size=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
       seed=st.integers(0, 5))
def test_each_part_covers_its_rows_once_and_train_and_test_make_all(n, rows, test_size, seed):
    frame = _frame(n)
    mask = held_out(0, n, test_size, seed)
    seen = {}
    for part in (["train", "test", "all"] if test_size else ["train", "all"]):
        chunks = FeatureChunks(frame, ["a", "b", "c"], "t", rows=rows, test_size=test_size,
                               seed=seed, part=part)
        X, y, starts = _collect(chunks)
        ids = np.concatenate(X)[:, 0].astype(np.int64) if X else np.empty(0, np.int64)
        assert len(ids) == len(np.unique(ids)) == chunks.n_rows  # each row once
        assert all(len(x) <= rows for x in X) and starts == sorted(starts)
        assert all(x.dtype == np.float32 and x.shape[1] == 3 for x in X)
        # the target travels with its rows
        t = frame.to_numpy(["t"], dtype="float64")[:, 0]
        if X:
            np.testing.assert_array_equal(np.concatenate(y), t[ids])
        seen[part] = ids
    np.testing.assert_array_equal(seen["all"], np.arange(n))
    np.testing.assert_array_equal(seen["train"], np.flatnonzero(~mask))
    if test_size:
        np.testing.assert_array_equal(seen["test"], np.flatnonzero(mask))
        assert set(seen["train"]) | set(seen["test"]) == set(range(n))


def test_chunks_are_the_frames_values_as_float32_and_reiterable():
    frame = _frame(2500)
    chunks = FeatureChunks(frame, ["a", "b", "c"], rows=512, part="all")
    first = np.concatenate(_collect(chunks)[0])
    second = np.concatenate(_collect(chunks)[0])  # a second pass gives the same rows
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, frame.to_numpy(["a", "b", "c"], dtype="float32"))
    assert len(chunks) == 5 and chunks.n_features == 3 and chunks.chunk_bytes == 512 * 3 * 4
    assert _collect(chunks)[1] == [None] * 5


def test_encode_sees_the_raw_target_and_its_result_is_y():
    frame = _frame(1000)
    labels = {"x": 0, "y": 1, "z": 2}
    chunks = FeatureChunks(frame, ["a"], "label", rows=300, part="all",
                           encode=lambda y: np.array([labels[v] for v in y], dtype=np.int32))
    y = np.concatenate(_collect(chunks)[1])
    expected = np.array([labels[v] for v in frame.to_polars()["label"]])
    np.testing.assert_array_equal(y, expected)


def test_float64_chunks_and_inputs_other_than_frames():
    n = 1100
    table = pa.table({"u": np.linspace(0, 1, n), "v": np.arange(n)})
    for data in (table, pl.from_arrow(table), table.to_pandas()):
        chunks = FeatureChunks(data, ["u"], "v", rows=256, dtype="float64", part="all")
        X, y, _ = _collect(chunks)
        assert X[0].dtype == np.float64
        np.testing.assert_array_equal(np.concatenate(X)[:, 0], np.linspace(0, 1, n))
        np.testing.assert_array_equal(np.concatenate(y), np.arange(n))


def test_the_frame_is_not_modified():
    frame = _frame(700)
    before = frame.to_arrow()
    for X, y, _ in FeatureChunks(frame, ["a", "b"], "t", rows=100, test_size=0.3):
        X *= 0  # the consumer may scribble on its chunk
    assert frame.to_arrow().equals(before)


def test_partitions_split_the_rows_and_keep_the_split():
    frame = _frame(5000)
    chunks = FeatureChunks(frame, ["a"], "t", rows=333, test_size=0.2, seed=3)
    whole = np.concatenate(_collect(chunks)[0])[:, 0]
    parts = chunks.partitions(4)
    pieces = [np.concatenate(_collect(p)[0])[:, 0] for p in parts]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert sum(p.n_rows for p in parts) == chunks.n_rows
    test = chunks.replace(part="test")
    assert test.n_rows + chunks.n_rows == 5000 and test.rows == 333


def test_an_offset_frame_is_split_as_part_of_the_whole_table():
    whole = _frame(3000)
    chunks = FeatureChunks(whole, ["a"], rows=256, test_size=0.3, seed=2)
    expected = np.concatenate(_collect(chunks)[0])[:, 0]
    tail = wb.Frame.from_arrow(whole.to_arrow().slice(1000))  # a partition starting at row 1000
    part = FeatureChunks(tail, ["a"], rows=256, test_size=0.3, seed=2, offset=1000)
    X, _, starts = _collect(part)
    np.testing.assert_array_equal(np.concatenate(X)[:, 0], expected[expected >= 1000])
    assert starts[0] == 1000 and part.n_rows == (expected >= 1000).sum()


def test_default_rows_on_the_host_leave_room_for_several_chunks():
    import psutil

    chunks = FeatureChunks(_frame(10), ["a", "b"])
    assert chunks.rows % 512 == 0
    assert chunks.chunk_bytes <= min(psutil.virtual_memory().total / 16, 1 << 30)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(features=[]), ValueError, "at least one feature"),
    (dict(features=["a"], target="a"), ValueError, "also listed as a feature"),
    (dict(features=["a"], part="valid"), ValueError, "train, test, all"),
    (dict(features=["a"], part="test"), ValueError, "test_size"),
    (dict(features=["a"], test_size=1.5), ValueError, "test_size"),
    (dict(features=["label"]), TypeError, "label"),
    (dict(features=["nope"]), KeyError, "nope"),
    (dict(features=["a"], target="nope"), KeyError, "nope"),
    (dict(features=["a"], rows=0), ValueError, "rows"),
    (dict(features=["a"], dtype="int8"), ValueError, "float32"),
])
def test_bad_input_names_the_problem(kwargs, error, words):
    with pytest.raises(error, match=words):
        FeatureChunks(_frame(20), **kwargs)


def test_nulls_and_device_without_gpu_are_clear_errors():
    frame = wb.Frame.from_polars(pl.DataFrame({"a": [1.0, None, 3.0], "t": [1, None, 0]}))
    with pytest.raises(TypeError, match="nulls"):
        FeatureChunks(frame, ["a"])
    with pytest.raises(ValueError, match="'t' has 1 nulls"):
        FeatureChunks(wb.Frame.from_polars(pl.DataFrame({"a": [1.0, 2, 3], "t": [1, None, 0]})),
                      ["a"], "t")
    wb.init(backend="cpu")
    with pytest.raises(GPUUnavailableError, match="CPU"):
        FeatureChunks(_frame(10), ["a"], device=True)
    with pytest.raises(TypeError, match="Frame"):
        FeatureChunks({"a": [1]}, ["a"])
