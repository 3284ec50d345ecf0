"""Training beyond the GPU budget: every streamed model on a frame several times the budget,
with metrics equal to the CPU library's and the device's peak (RMM statistics) within it.

Each case runs in a fresh interpreter: a memory budget is applied once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gpu

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np, polars as pl, cupy as cp
    import workbench as wb
    from workbench import memory
    from workbench.ml.chunks import FeatureChunks
    from workbench.ml.outofcore import fit_streaming
    from workbench.ml.split import held_out

    budget, n, f, models = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
    s = wb.init(backend="gpu", budget=budget, strict=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, f)) * rng.uniform(0.5, 5, f) + rng.uniform(-3, 3, f)
    coef = rng.normal(size=f)
    score = (X - X.mean(0)) / X.std(0) @ coef
    cols = {f"x{j}": X[:, j] for j in range(f)}
    cols["y"] = 2 * score + 1 + rng.normal(size=n)
    cols["label"] = (score + rng.normal(size=n) > 0).astype(np.int32)
    names = [f"x{j}" for j in range(f)]
    frame = wb.Frame.from_polars(pl.DataFrame(cols))
    del cols
    out = {"budget": s.policy.budget, "frame_bytes": frame.nbytes,
           "resident_limit": s.resident_limit}

    test = held_out(0, n, 0.2, 0)
    X32 = frame.to_numpy(names, dtype="float32")
    Xtr, Xte = X32[~test].astype(np.float64), X32[test].astype(np.float64)
    y, label = frame.to_numpy(["y"], "float64")[:, 0], frame.to_numpy(["label"], "int32")[:, 0]
    ytr, yte, ltr, lte = y[~test], y[test], label[~test], label[test]

    def chunks(target):
        return FeatureChunks(frame, names, target, device=True, test_size=0.2)

    # One pass allocates its buffers once, not once per chunk.
    c = FeatureChunks(frame, names, "y", device=True, part="all")
    before = memory.device_memory_stats()["total_count"]
    mark = len(s.transfers)
    got = np.concatenate([cp.asnumpy(x) for x, _, _ in c])
    out["chunks"] = {"count": len(c), "allocations": memory.device_memory_stats()["total_count"] - before,
                     "equal": bool((got == X32).all()),
                     "kinds": sorted({t.kind for t in s.transfers.since(mark)})}
    del got

    # A cached pass replays exactly the chunks the first pass assembled.
    cc = chunks("label").cached(classes=2)  # codes replayed as int8, the same values
    first = [(cp.asnumpy(x), cp.asnumpy(t), st) for x, t, st in cc]
    mark = len(s.transfers)
    again = [(cp.asnumpy(x), cp.asnumpy(t), st) for x, t, st in cc]
    out["cache"] = {"complete": cc.is_cached, "chunks": len(first),
                    "equal": all((a[0] == b[0]).all() and (a[1] == b[1]).all() and a[2] == b[2]
                                 for a, b in zip(first, again)) and len(first) == len(again),
                    "replay": [t.what.split(",")[0] + " " + t.kind for t in s.transfers.since(mark)]}
    from workbench.frame import device as _dev
    # the recorded chunks sit in one host block, page-locked once the pass completed
    out["cache"]["locked"] = all(_dev.is_pinned(x.ctypes.data, x.nbytes) and
                                 (t is None or _dev.is_pinned(t.ctypes.data, t.nbytes))
                                 for x, t, _ in cc._cache.parts)
    del first, again, cc
    # The held-out rows the training pass kept replay in chunks joined up to a chunk's
    # rows: fewer chunks, the same rows in the same order.
    hc = chunks("label").cached(classes=2, held_out=True)
    for _ in hc:
        pass
    test = hc.held_out_part()
    joined = [(cp.asnumpy(x), cp.asnumpy(t)) for x, t, _ in test]
    plain = [(cp.asnumpy(x), cp.asnumpy(t)) for x, t, _ in hc.replace(part="test")]
    out["held"] = {"kept": len(hc._held.parts), "replayed": len(joined),
                   "rows": max(len(x) for x, _ in joined), "chunk_rows": hc.rows,
                   "equal": bool((np.concatenate([x for x, _ in joined]) == np.concatenate([x for x, _ in plain])).all()
                                 and (np.concatenate([t for _, t in joined]) == np.concatenate([t for _, t in plain])).all())}
    del hc, test, joined, plain

    from sklearn import metrics
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    def host(a):
        return cp.asnumpy(a) if isinstance(a, cp.ndarray) else np.asarray(a)

    def batched(fn, X, rows=1 << 16):
        # The held-out matrix alone is most of the budget: evaluate it a block at a time.
        return np.concatenate([host(fn(cp.asarray(X[i:i + rows]))) for i in range(0, len(X), rows)])

    for name in models:
        entry = {}
        if name in ("linear_regression", "ridge"):
            m = fit_streaming(name, chunks("y"), task="regression", device=True)
            ref = (Ridge() if name == "ridge" else LinearRegression()).fit(Xtr, ytr)
            entry["coef_err"] = float(np.abs(m.coef_ - ref.coef_).max() / np.abs(ref.coef_).max())
            entry["r2"] = float(metrics.r2_score(yte, batched(m.predict, Xte)))
            entry["r2_cpu"] = float(ref.score(Xte, yte))
        elif name == "logistic_regression":
            m = fit_streaming(name, chunks("label"), task="classification", n_classes=2, device=True,
                              params={"tol": 1e-8})
            ref = LogisticRegression(tol=1e-10, solver="newton-cholesky").fit(Xtr, ltr)
            entry["coef_err"] = float(np.abs(m.coef_ - ref.coef_).max() / np.abs(ref.coef_).max())
            p = batched(m.predict_proba, Xte)[:, 1]
            entry["auc"] = float(metrics.roc_auc_score(lte, p))
            entry["auc_cpu"] = float(metrics.roc_auc_score(lte, ref.predict_proba(Xte)[:, 1]))
        elif name == "kmeans":
            init = Xtr[:8].copy()
            m = fit_streaming(name, chunks(None), task="clustering", device=True,
                              params={"n_clusters": 8, "init": init})
            ref = KMeans(n_clusters=8, init=init, n_init=1, algorithm="lloyd").fit(Xtr)
            entry["inertia"], entry["inertia_cpu"] = float(m.inertia_), float(ref.inertia_)
        else:
            import xgboost
            task = "regression" if name == "xgboost_regressor" else "classification"
            target = "y" if task == "regression" else "label"
            params = {"n_estimators": 30, "max_depth": 6, "learning_rate": 0.3}
            m = fit_streaming(name, chunks(target), task=task, n_classes=None if task == "regression" else 2,
                              device=True, params=params)
            objective = "reg:squarederror" if task == "regression" else "binary:logistic"
            ref = xgboost.train({"tree_method": "hist", "device": "cpu", "max_depth": 6, "learning_rate": 0.3,
                                 "objective": objective},
                                xgboost.QuantileDMatrix(Xtr.astype(np.float32), ytr if task == "regression" else ltr),
                                num_boost_round=30)
            cpu = ref.inplace_predict(Xte.astype(np.float32))
            if task == "regression":
                entry["r2"] = float(metrics.r2_score(yte, batched(m.predict, Xte)))
                entry["r2_cpu"] = float(metrics.r2_score(yte, cpu))
            else:
                entry["auc"] = float(metrics.roc_auc_score(lte, batched(m.predict_proba, Xte)[:, 1]))
                entry["auc_cpu"] = float(metrics.roc_auc_score(lte, cpu))
        out[name] = entry
    out["peak"] = memory.device_memory_stats()["peak_bytes"]
    print(json.dumps(out))
""")


def _run(budget, n, f, models):
    proc = subprocess.run([sys.executable, "-c", CHILD, budget, str(n), str(f), ",".join(models)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    assert out["frame_bytes"] >= 4 * out["budget"], out
    assert out["peak"] <= out["budget"], (out["peak"], out["budget"])
    return out


def test_linear_logistic_and_kmeans_beyond_a_64mb_budget_match_scikit_learn():
    # 2e6 rows x 16 float64 features: 272 MB, more than 4x the budget.
    out = _run("64MB", 2_000_000, 16, ["linear_regression", "ridge", "logistic_regression", "kmeans"])
    chunks = out["chunks"]
    assert chunks["equal"] and chunks["count"] > 16
    assert chunks["allocations"] <= 4, chunks  # one matrix, one staging buffer, one target buffer
    assert chunks["kinds"] == ["pinned"], chunks  # from the frame's registered buffers
    cache = out["cache"]
    assert cache["complete"] and cache["equal"] and cache["chunks"] > 16 and cache["locked"], cache
    assert cache["replay"] == ["cached feature chunks pinned"], cache  # one record per pass
    held = out["held"]
    assert held["equal"] and held["replayed"] < held["kept"] / 2 and held["rows"] <= held["chunk_rows"], held
    for name in ("linear_regression", "ridge"):
        assert out[name]["coef_err"] < 1e-6, out[name]
        assert out[name]["r2"] == pytest.approx(out[name]["r2_cpu"], abs=1e-6)
    assert out["logistic_regression"]["coef_err"] < 1e-3, out["logistic_regression"]
    assert out["logistic_regression"]["auc"] == pytest.approx(out["logistic_regression"]["auc_cpu"], abs=1e-4)
    assert out["kmeans"]["inertia"] == pytest.approx(out["kmeans"]["inertia_cpu"], rel=1e-5)


@pytest.mark.parametrize("model", ["xgboost_regressor", "xgboost_classifier"])
def test_xgboost_external_memory_beyond_a_256mb_budget_matches_xgboost_on_the_cpu(model):
    pytest.importorskip("xgboost")
    # 4e6 rows x 32 float64 features: 1.1 GB, more than 4x the budget; wide, as XGBoost's
    # external memory pages X only (labels, gradients and predictions stay whole).
    out = _run("256MB", 4_000_000, 32, [model])
    entry = out[model]
    key = "r2" if model == "xgboost_regressor" else "auc"
    assert entry[key] == pytest.approx(entry[key + "_cpu"], abs=5e-3), entry


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k, f", [(8, 3), (16, 4), (40, 20), (3, 1)])
def test_the_fused_lloyd_step_equals_the_array_one(dtype, k, f):
    import cupy as cp
    import numpy as np

    from workbench.ml import streamed_kmeans as km

    rng = np.random.default_rng(k * f)
    X = rng.normal(size=(300_001, f)).astype(dtype) * 3
    centers = rng.normal(size=(k, f)) * 3
    # row-major, column-major and a column view of a wider matrix: read in place, as laid out
    wide = cp.asarray(np.hstack([X, X[:, :1]]))
    chunks = [(cp.asarray(X[a:a + 70_000]), None, a) for a in range(0, 140_000, 70_000)]
    chunks += [(cp.asfortranarray(cp.asarray(X[a:a + 70_000])), None, a) for a in range(140_000, 280_000, 70_000)]
    chunks += [(wide[280_000:, :f], None, 280_000)]
    fused = km._pass(chunks, cp, centers)
    cells, km._FUSED_CELLS = km._FUSED_CELLS, 0  # the array path on the same chunks
    try:
        plain = km._pass(chunks, cp, centers)
    finally:
        km._FUSED_CELLS = cells
    assert fused[1].sum() == len(X)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(fused[1], plain[1])
    assert fused[2] == pytest.approx(plain[2], rel=1e-9)


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("f, xdtype, ydtype", [(3, "float32", "int32"), (15, "float64", "int8"),
                                               (1, "float32", "float64")])
def test_the_fused_newton_pass_equals_the_array_one(f, xdtype, ydtype, intercept):
    import cupy as cp
    import numpy as np

    from workbench.ml import streamed_logistic as sl

    rng = np.random.default_rng(f)
    X = (rng.normal(size=(250_003, f)) * 2 + 1).astype(xdtype)
    y = (X @ rng.normal(size=f) + rng.normal(size=len(X)) > 0).astype(ydtype)
    # row- and column-major X, and a y read with a stride (a column of a 2-D array)
    chunks = [(cp.asarray(X[a:a + 60_000]), cp.asarray(y[a:a + 60_000]), a) for a in range(0, 120_000, 60_000)]
    chunks += [(cp.asfortranarray(cp.asarray(X[a:a + 60_000])), cp.asarray(np.c_[y, y][a:a + 60_000])[:, 1], a)
               for a in range(120_000, len(X), 60_000)]
    mean, scale = X.mean(0).astype(np.float64), X.std(0).astype(np.float64)
    theta = rng.normal(size=f + int(intercept)) * 0.3
    model = sl.StreamedLogistic(fit_intercept=intercept)
    model._passes = 0
    fused = model._newton_pass(chunks, cp, mean, scale, theta, len(X))
    params, sl._FUSED_PARAMETERS = sl._FUSED_PARAMETERS, 0  # the array path on the same chunks
    try:
        plain = model._newton_pass(chunks, cp, mean, scale, theta, len(X))
    finally:
        sl._FUSED_PARAMETERS = params
    assert fused[0] == pytest.approx(plain[0], rel=1e-10)
    np.testing.assert_allclose(fused[1], plain[1], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fused[2], plain[2], rtol=1e-8, atol=1e-12)


def test_kmeans_score_on_the_device_is_the_inertia_on_the_host():
    import cupy as cp
    import numpy as np

    from workbench.ml.streamed_kmeans import StreamedKMeans

    rng = np.random.default_rng(3)
    X = rng.normal(size=(100_000, 3)).astype(np.float32)
    m = StreamedKMeans(n_clusters=5, init=rng.normal(size=(5, 3)))
    m.cluster_centers_, m.n_features_in_ = rng.normal(size=(5, 3)), 3
    assert m.score(cp.asarray(X)) == pytest.approx(m.score(X), rel=1e-9)
    assert m.score(cp.asarray(X)) == pytest.approx(-((X[:, None, :].astype(np.float64) - m.cluster_centers_) ** 2).sum(2).min(1).sum(), rel=1e-9)


def test_the_device_pair_count_is_the_host_one():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from workbench.ml.metrics import pair_auc

    scores = st.lists(st.integers(0, 6).map(lambda v: v / 4), min_size=1, max_size=60)

    @settings(max_examples=60, deadline=None)
    @given(scores, scores, st.integers(1, 9))
    def check(pos, neg, rows):
        import numpy as np

        a, b = np.array(pos), np.array(neg)
        assert pair_auc(a, b, device_rows=rows) == pytest.approx(pair_auc(a, b), abs=1e-12)

    check()


def test_kmeans_on_a_device_matrix_is_kmeans_on_the_host_one():
    import cupy as cp
    import numpy as np

    from workbench.ml.streamed_kmeans import StreamedKMeans

    rng = np.random.default_rng(5)
    X = np.concatenate([c + rng.normal(size=(40_000, 3)) for c in rng.uniform(-9, 9, (6, 3))])
    X = np.asfortranarray(X.astype(np.float32))  # as Frame.to_cupy lays a matrix out
    on_host = StreamedKMeans(n_clusters=6).fit(X)
    on_device = StreamedKMeans(n_clusters=6).fit(cp.asarray(X, order="F"))
    np.testing.assert_allclose(on_device.cluster_centers_, on_host.cluster_centers_, rtol=1e-6, atol=1e-9)
    assert on_device.inertia_ == pytest.approx(on_host.inertia_, rel=1e-9)
    assert abs(on_device.n_iter_ - on_host.n_iter_) <= 1


def test_the_streamed_auc_on_the_device_spilled_or_not_is_the_host_one():
    import cupy as cp
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from workbench.ml.metrics import Streamed

    rng = np.random.default_rng(5)
    n, step = 300_000, 40_000
    truth = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 3)  # many ties
    proba = np.stack([1 - score, score], axis=1)
    want = roc_auc_score(truth, score)
    # all kept on the device; spilled to the host after three chunks; never on the device
    for room, kept in ((10**9, n * 8), (1_000_000, -1), (0, -1)):
        acc = Streamed("classification", binary=True, device_bytes=room)
        for a in range(0, n, step):
            t, p = cp.asarray(truth[a:a + step]), cp.asarray(proba[a:a + step])
            acc.add(t, p.argmax(axis=1), p)
        assert acc.kept == kept
        assert all(isinstance(x, cp.ndarray) == (kept > 0) for x in acc.positive + acc.negative)
        assert acc.result()["auc"] == pytest.approx(want, abs=1e-12), room


def test_the_split_kernel_holds_out_the_rows_numpy_does():
    import cupy as cp
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from workbench.ml.split import held_out

    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, 2 ** 40), st.integers(0, 5000), st.sampled_from([0.0, 0.01, 0.2, 0.5, 0.999]),
           st.integers(0, 2 ** 31))
    def check(start, n, test_size, seed):
        host = held_out(start, start + n, test_size, seed)
        device = held_out(start, start + n, test_size, seed, xp=cp)
        assert device.dtype == bool and np.array_equal(cp.asnumpy(device), host)

    check()
