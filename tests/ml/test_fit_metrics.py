"""The metrics equal scikit-learn's on the same predictions (in one piece and streamed)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as sk

import workbench as wb
from workbench.ml import metrics
from workbench.ml.split import held_out

SCORES = st.integers(2, 200).flatmap(lambda n: st.tuples(
    arrays(np.int64, n, elements=st.integers(0, 1)),
    # few distinct values, so ties are common
    arrays(np.float64, n, elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1)),
))


@settings(max_examples=80, deadline=None)
@given(SCORES)
def test_auc_accuracy_and_log_loss_equal_scikit_learn(case):
    truth, score = case
    predicted = (score > 0.5).astype(np.int64)
    assert metrics.accuracy(truth, predicted) == pytest.approx(sk.accuracy_score(truth, predicted))
    proba = np.stack([1 - score, score], axis=1)
    assert metrics.log_loss(truth, proba) == pytest.approx(sk.log_loss(truth, proba, labels=[0, 1]),
                                                           rel=1e-9, abs=1e-12)
    if len(set(truth.tolist())) == 2:
        assert metrics.roc_auc(truth, score) == pytest.approx(sk.roc_auc_score(truth, score), abs=1e-12)
    else:
        assert np.isnan(metrics.roc_auc(truth, score))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 100).flatmap(lambda n: st.tuples(
    arrays(np.float64, n, elements=st.floats(-1e6, 1e6)),
    arrays(np.float64, n, elements=st.floats(-1e6, 1e6)))))
def test_r2_and_rmse_equal_scikit_learn(case):
    truth, predicted = case
    assert metrics.rmse(truth, predicted) == pytest.approx(
        np.sqrt(sk.mean_squared_error(truth, predicted)), rel=1e-9, abs=1e-9)
    assert metrics.r2(truth, predicted) == pytest.approx(sk.r2_score(truth, predicted), rel=1e-7, abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 300), st.integers(1, 50), st.integers(0, 2 ** 16))
def test_streamed_metrics_equal_the_whole(n, chunk, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = rng.random(n)
    proba = np.stack([1 - score, score], axis=1)
    y, pred = rng.normal(size=n), rng.normal(size=n)
    cls, reg = metrics.Streamed("classification", binary=True), metrics.Streamed("regression")
    for a in range(0, n, chunk):
        s = slice(a, a + chunk)
        cls.add(truth[s], (score[s] > 0.5).astype(np.int64), proba[s])
        reg.add(y[s], pred[s])
    whole = {"accuracy": metrics.accuracy(truth, (score > 0.5).astype(np.int64)),
             "log_loss": metrics.log_loss(truth, proba), "auc": metrics.roc_auc(truth, score)}
    got = cls.result()
    for k, v in whole.items():
        assert got[k] == pytest.approx(v, rel=1e-9, nan_ok=True)
    assert reg.result()["r2"] == pytest.approx(metrics.r2(y, pred), rel=1e-9, abs=1e-12)
    assert reg.result()["rmse"] == pytest.approx(metrics.rmse(y, pred), rel=1e-9)


def test_kmeans_inertia_equals_scikit_learns():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    km = KMeans(3, n_init=1, random_state=0).fit(X)
    assert metrics.inertia(X, km.cluster_centers_, km.labels_) == pytest.approx(km.inertia_, rel=1e-9)


def test_fit_metrics_are_scikit_learns_on_the_same_predictions():
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=(n, 2))
    df = pl.DataFrame({"a": x[:, 0], "b": x[:, 1],
                       "label": (x[:, 0] + rng.normal(scale=0.8, size=n) > 0).astype(np.int8)})
    m = wb.ml.fit(df, "label", ["a", "b"], backend="cpu")
    test = df.filter(pl.Series(held_out(0, n, 0.2, 0)))
    proba = m.predict_proba(test)
    truth = test["label"].to_numpy()
    assert m.metrics["accuracy"] == pytest.approx(sk.accuracy_score(truth, m.predict(test)))
    assert m.metrics["auc"] == pytest.approx(sk.roc_auc_score(truth, proba[:, 1]))
    assert m.metrics["log_loss"] == pytest.approx(sk.log_loss(truth, proba), rel=1e-6)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=50), st.lists(st.integers(0, 6), min_size=1, max_size=50),
       st.integers(1, 9))
def test_the_pair_count_in_pieces_is_the_whole_one(pos, neg, rows):
    # The GPU's counting in pieces (here with NumPy as the array module): ties, either
    # class the smaller, pieces of any size.
    a, b = np.array(pos) / 4, np.array(neg) / 4
    got = metrics._device_pair_auc(a, b, rows, xp=np)
    assert got == pytest.approx(metrics.pair_auc(a, b), abs=1e-12)
    truth = np.r_[np.ones(len(a)), np.zeros(len(b))]
    assert got == pytest.approx(sk.roc_auc_score(truth, np.r_[a, b]), abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=20), min_size=1, max_size=6),
       st.lists(st.lists(st.integers(0, 6), max_size=20), min_size=1, max_size=6))
def test_the_auc_of_scores_in_pieces_is_the_whole_ones(pos, neg):
    # Pieces of any sizes (empty ones too), either class the smaller, ties.
    a, b = [np.array(p, dtype=np.float32) / 4 for p in pos], [np.array(p, dtype=np.float32) / 4 for p in neg]
    whole_a, whole_b = np.concatenate(a), np.concatenate(b)
    got = metrics.pieces_auc(a, b)
    if len(whole_a) == 0 or len(whole_b) == 0:
        assert np.isnan(got)
        return
    truth = np.r_[np.ones(len(whole_a)), np.zeros(len(whole_b))]
    assert got == pytest.approx(sk.roc_auc_score(truth, np.r_[whole_a, whole_b]), abs=1e-12)
    assert got == pytest.approx(metrics.pair_auc(whole_a, whole_b), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), max_size=30), st.integers(0, 120))
def test_replayed_chunks_join_consecutive_runs_up_to_the_rows_given(lengths, merge_rows):
    from workbench.ml.chunk_cache import ChunkCache

    cache = ChunkCache(device=False, merge_rows=merge_rows)
    cache.parts = [(np.zeros((n, 1)), None, i) for i, n in enumerate(lengths)]
    batches = cache.batches()
    assert [i for b in batches for i in b] == list(range(len(lengths)))  # each once, in order
    for b in batches:
        assert len(b) == 1 or sum(lengths[i] for i in b) <= merge_rows
    for b, c in zip(batches, batches[1:]):  # greedy: the next one would not have fitted
        assert sum(lengths[i] for i in b) + lengths[c[0]] > merge_rows
