"""Training beyond the device budget: the features stream past the GPU chunk by chunk.

``fit`` comes here on the GPU when the feature matrix (rows x features x 4 bytes, plus
the target) is larger than the session's resident limit. The models of
``workbench.ml.outofcore.BEYOND_BUDGET`` train on all rows by
``outofcore.fit_streaming`` over ``chunks.FeatureChunks``; the held-out rows (the same
``held_out`` rows as in memory) are then streamed through the fitted model for the
metrics. Any other model is a ``DoesNotFit`` naming those that do run.
"""

from __future__ import annotations

import time

from workbench.errors import DoesNotFit
from workbench.ml import metrics as _metrics
from workbench.ml.streaming import module_of
from workbench.ml import targets
from workbench.ml.model import Model


def does_not_fit(name: str, needed: int, limit: int, runs: tuple[str, ...]) -> DoesNotFit:
    from workbench.sizes import format_bytes

    err = DoesNotFit(needed, limit)
    err.args = (f"{name}'s features need {format_bytes(needed)} on the device, more than the "
                f"resident limit of {format_bytes(limit)}, and {name} does not train beyond "
                f"the budget; these do: {', '.join(runs)}. Pick one of them, raise the budget "
                "(WORKBENCH_GPU_BUDGET), select fewer rows or features, or pass backend='cpu'",)
    return err


def needed_bytes(rows: int, width: int, supervised: bool) -> int:
    """Device bytes of a fit's float32 feature matrix and its target."""
    return rows * (width + bool(supervised)) * 4


def fit(frame, name: str, task: str, recipe, target, *, params: dict, test_size: float,
        seed: int, needed: int, session, start: float, is_name: bool,
        device: bool = True) -> Model:
    """Train ``name`` out of core and evaluate it on the held-out rows, streamed.

    ``device=False`` streams the same chunks through the host solvers (how the CPU
    tests run this path)."""
    from workbench.ml import outofcore
    from workbench.ml.chunks import FeatureChunks

    runs = tuple(outofcore.BEYOND_BUDGET)
    if not is_name or name not in runs:
        raise does_not_fit(name, needed, session.resident_limit, runs)
    if recipe.categories:
        raise ValueError(f"string feature column(s) {sorted(recipe.categories)} cannot be "
                         "one-hot encoded beyond the budget yet: encode them as numbers first "
                         "(e.g. pl.col(c).cast(pl.Categorical).to_physical()) or leave them out")
    labels = None
    if task == "classification":
        labels = targets.labels_of(frame, target, device=device)
        targets.check_classes(labels, target)
    train = FeatureChunks(frame, recipe.features, None if task == "clustering" else target,
                          device=device, encode=labels.encode if labels else None,
                          test_size=test_size, seed=seed, part="train")
    if name in outofcore.MANY_PASSES:
        # The first pass keeps the held-out rows too: the metrics replay them.
        train = train.cached(classes=len(labels) if labels else None, held_out=bool(test_size))
    seconds = {"prepare": time.perf_counter() - start}
    start = time.perf_counter()
    params = dict(params)
    if name == "kmeans":
        params.setdefault("random_state", seed)
    estimator = outofcore.fit_streaming(name, train, task=task,
                                        n_classes=len(labels) if labels else None, device=device,
                                        params=params)
    seconds["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    test = train.held_out_part() if test_size else train
    scores = stream_metrics(estimator, task, test, n_classes=len(labels) if labels else 0)
    n_test = scores.pop("_rows")
    seconds["evaluate"] = time.perf_counter() - start
    n_train = len(frame) - n_test
    notes = [] if test_size else ["test_size=0: metrics are on the training rows"]
    notes += [f"out of core: {name} streamed in chunks of {train.chunk_bytes:,} bytes "
             f"(features {needed:,} bytes, resident limit {session.resident_limit:,})"]
    where = "gpu" if device else "cpu"
    session.note(f"ml.fit {name} on {where}, out of core: fit {seconds['fit']:.3f} s, "
                 f"{n_train:,} train rows")
    return Model(estimator, name, where, task, recipe.features, target,
                 classes_=None if labels is None else labels.classes_, metrics=scores,
                 seconds=seconds, n_train=n_train, n_test=n_test, out_of_core=True,
                 notes=notes, recipe=recipe, labels=labels)


def stream_metrics(estimator, task: str, chunks, n_classes: int = 0) -> dict:
    """Metrics of ``estimator`` over the chunks of the test part, one chunk on the device
    at a time; ``"_rows"`` holds the number of rows seen."""
    # The held-out scores AUC ranks stay on the device while they take at most the
    # resident limit (else they are counted in pieces from the host).
    room = chunks.frame._session.resident_limit if chunks.device else 0
    acc = _metrics.Streamed(task, binary=n_classes == 2, device_bytes=room)
    probabilities = task == "classification" and hasattr(estimator, "predict_proba")
    for X, y, _ in chunks:
        if X.shape[0] == 0:
            continue
        if task == "clustering":
            acc.add_inertia(len(X), -estimator.score(X))
            continue
        xp = module_of(X)
        if probabilities:  # one inference per chunk: the labels are the likeliest classes
            proba = xp.asarray(estimator.predict_proba(X))
            predicted = proba.argmax(axis=1)
        else:
            predicted, proba = xp.asarray(estimator.predict(X)), None
        if y is not None:
            y = xp.asarray(y)
            predicted = predicted.astype(y.dtype) if task == "classification" else predicted
        acc.add(y, predicted, proba)
    out = acc.result() if acc.n else {}
    out["_rows"] = acc.n
    return out
