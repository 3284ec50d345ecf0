"""Gradient boosting beyond the device budget: XGBoost's external memory.

An ``xgboost.DataIter`` walks a :class:`~workbench.ml.chunks.FeatureChunks` (CuPy
chunks on the GPU, NumPy ones on the CPU; the same code) into an
``xgboost.ExtMemQuantileDMatrix``: XGBoost sketches the quantiles chunk by chunk,
keeps the quantised pages in host memory (a disk cache on the CPU) and streams
them to the device while it grows each tree. Only ``X`` is paged; labels, gradients
and predictions (a few bytes per row) stay whole, so wide data gains the most.

On the GPU, an XGBoost built with RMM allocates through it (``use_rmm=True``), so
its memory comes from the session's resource (an async pool under the budget's
limit, counted by the statistics adaptor): a fit over the budget fails as a
``MemoryError`` instead of taking the GPU from everyone else, and the peak is
measured. An XGBoost built without RMM (the PyPI wheels) allocates from the CUDA
driver's async pool (``use_cuda_async_pool=True``, XGBoost >= 3.2), outside the
session's statistics. XGBoost would size its pages and device cache from the whole
GPU's memory; with a budget they are sized from it instead.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np

from workbench.ml.streaming import module_of
from workbench.optional import import_optional

_ROUNDS = 100
_ALIASES = {"random_state": "seed", "n_jobs": "nthread"}


def _iterator_class(xgboost):
    class ChunkIter(xgboost.DataIter):
        """Feeds XGBoost one chunk per ``next``; a fresh view each time, because XGBoost
        caches a batch's conversion by the identity of its ``X``."""

        def __init__(self, chunks, cache_prefix: str):
            self.chunks, self._it = chunks, None
            super().__init__(cache_prefix=cache_prefix, release_data=True, on_host=True,
                             min_cache_page_bytes=_page_bytes(chunks))

        def reset(self):
            self._it = None

        def next(self, input_data) -> bool:
            if self._it is None:
                self._it = iter(self.chunks)
            try:
                X, y, _ = next(self._it)
            except StopIteration:
                return False
            input_data(data=X.view(), label=y)
            return True

    return ChunkIter


#: Under a budget, XGBoost's cache pages are at least this share of it. Each page is
#: one transfer and a few kernels per tree level, so fewer, larger pages cost less;
#: a page must still fit on the device beside the one being read.
PAGE_SHARE = 8


def _page_bytes(chunks) -> int | None:
    """Cache pages of a share of the budget (XGBoost's default is a sixteenth of the
    GPU's memory, which may be more than the whole budget)."""
    if not chunks.device:
        return None
    policy = chunks.frame._session.policy
    if not policy.budget:
        return None
    return max(policy.budget // PAGE_SHARE, chunks.chunk_bytes, 1 << 20)


class ExternalXGBoost:
    """A booster trained from chunks; ``predict``/``predict_proba`` take NumPy or CuPy."""

    def __init__(self, task: str, n_classes: int | None = None, device: bool = False, **params):
        if task not in ("classification", "regression"):
            raise ValueError(f"XGBoost's task must be 'classification' or 'regression'; got {task!r}")
        if task == "classification" and (n_classes is None or n_classes < 2):
            raise ValueError(f"an XGBoost classifier needs n_classes >= 2; got {n_classes}")
        self.task, self.n_classes, self.device = task, n_classes, bool(device)
        self.params = dict(params)

    def _train_params(self) -> tuple[dict, int]:
        params = {_ALIASES.get(k, k): v for k, v in self.params.items()}
        rounds = int(params.pop("n_estimators", params.pop("num_boost_round", _ROUNDS)))
        for unsupported in ("tree_method", "device"):
            if params.pop(unsupported, None) not in (None, "hist", "cuda", "cpu", "gpu"):
                raise ValueError(f"{unsupported} is chosen by the workbench for external memory "
                                 "(hist, on the session's device); leave it out")
        params.update(tree_method="hist", device="cuda" if self.device else "cpu")
        params.setdefault("max_bin", 256)
        if self.task == "regression":
            params.setdefault("objective", "reg:squarederror")
        elif self.n_classes == 2:
            params.setdefault("objective", "binary:logistic")
        else:
            params.setdefault("objective", "multi:softprob")
            params["num_class"] = self.n_classes
        return params, rounds

    def fit(self, chunks) -> ExternalXGBoost:
        xgboost = import_optional("xgboost", "gradient boosting beyond the device budget")
        if chunks.target is None:
            raise ValueError("XGBoost needs a target column; FeatureChunks has none")
        if chunks.device != self.device:
            raise ValueError(f"chunks on the {'device' if chunks.device else 'host'} for an XGBoost "
                             f"fit on the {'GPU' if self.device else 'CPU'}; build them with "
                             f"device={self.device}")
        params, rounds = self._train_params()
        extra = {}
        policy = chunks.frame._session.policy
        if self.device and policy.budget:
            # The adaptive device cache is sized from cudaMemGetInfo, which knows nothing
            # of the budget: keep the whole cache on the host.
            extra["cache_host_ratio"] = 1.0
            extra["max_quantile_batches"] = max(1, policy.budget // 4 // max(1, chunks.chunk_bytes))
        with tempfile.TemporaryDirectory(prefix="workbench-xgb-") as cache, _rmm(xgboost, self.device):
            it = _iterator_class(xgboost)(chunks, str(Path(cache) / "cache"))
            train = xgboost.ExtMemQuantileDMatrix(it, max_bin=params["max_bin"], **extra)
            self.booster_ = xgboost.train(params, train, num_boost_round=rounds)
            self._predicts_on = params["device"]
            del train
        self.n_features_in_ = chunks.n_features
        self.classes_ = np.arange(self.n_classes) if self.task == "classification" else None
        return self

    def _raw(self, X):
        xp = module_of(X)
        X = xp.asarray(X, dtype=xp.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"the booster was fitted on {self.n_features_in_} features; got an "
                             f"array of shape {tuple(X.shape)}")
        # A CuPy input is predicted on the device, a NumPy one on the CPU (the booster
        # moves itself; the data stay where they are). Set only when it changes: each
        # set_param reconfigures the booster.
        where = "cuda" if xp is not np else "cpu"
        if getattr(self, "_predicts_on", None) != where:
            self.booster_.set_param({"device": where})
            self._predicts_on = where
        return xp, self.booster_.inplace_predict(X)

    def predict_proba(self, X):
        if self.task != "classification":
            raise AttributeError("predict_proba is for classifiers; this booster is a regressor")
        xp, p = self._raw(X)
        if self.n_classes != 2:
            return p
        out = xp.empty((len(p), 2), dtype=p.dtype)  # filled in place: no stacked temporaries
        out[:, 1] = p
        xp.subtract(1, p, out=out[:, 0])
        return out

    def predict(self, X):
        """Values (regression) or class indices ``0..n_classes-1``, in the kind of array ``X`` is."""
        xp, p = self._raw(X)
        if self.task == "regression":
            return p
        # argmax of (1 - p, p) is p > 0.5 (a tie goes to class 0 either way)
        return (p > 0.5).astype(np.int64) if self.n_classes == 2 else p.argmax(axis=1)


def _rmm(xgboost, device: bool):
    """The memory pool XGBoost advises for external memory on the GPU: RMM
    (``use_rmm=True``) when XGBoost was built with it, else (XGBoost >= 3.2, e.g. the
    PyPI wheels, which are built without RMM) the CUDA driver's async pool."""
    if not device:
        return contextlib.nullcontext()
    if xgboost.build_info().get("USE_RMM"):
        return xgboost.config_context(use_rmm=True)
    if "use_cuda_async_pool" in xgboost.get_config():
        return xgboost.config_context(use_cuda_async_pool=True)
    return contextlib.nullcontext()
