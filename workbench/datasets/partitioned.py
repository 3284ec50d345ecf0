"""Datasets cut for a cluster: a chosen number of Parquet partitions, read as Dask frames.

:func:`write_partitioned` writes a catalog dataset as exactly ``partitions`` files of
near-equal row counts (``make`` cuts files by size instead), so every worker of a
cluster gets work; the rows are the catalog generator's, the same as ``make``'s for the
same seed and parameters, written by the same file writer and described by the same
manifest (``make`` and ``load`` accept the result). :func:`load_dask` reads a dataset
as a Dask DataFrame, with cuDF partitions (dask_cudf) when the workers have GPUs.

>>> import tempfile, workbench.datasets.partitioned as wp
>>> path = wp.write_partitioned("h2o_groupby", tempfile.mkdtemp() + "/g", 1000, 4, k=10)
>>> sorted(p.name for p in path.iterdir())
['part-00000.parquet', 'part-00001.parquet', 'part-00002.parquet', 'part-00003.parquet']
>>> wp.load_dask(path, backend="pandas").npartitions
4
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import uuid
from pathlib import Path

from workbench.datasets import catalog as _catalog, store as _store
from workbench.datasets.writer import write_file

BACKENDS = ("auto", "pandas", "cudf")


def write_partitioned(name: str, path: str | os.PathLike, rows=None, partitions: int = 8, *,
                      seed: int = 0, table: str | None = None, **params) -> Path:
    """Write dataset ``name`` to ``path`` as ``partitions`` Parquet files; the path.

    ``rows`` and ``**params`` are those of :func:`workbench.datasets.make`; ``table``
    picks one table of a multi-table dataset (``h2o_join``: x, small, medium, big).
    A valid dataset already at ``path`` with the same rows, seed, parameters and
    partitions is reused; anything else there is refused, never overwritten.
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a positive whole number; got {partitions!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name}: seed must be a non-negative integer (got {seed!r})")
    entry = _catalog.entry(name)
    rows, params = _catalog.resolve(name, rows, params)
    plans = _catalog.generator(name).plan(rows, seed, **params)
    if table is None and len(plans) > 1:
        raise ValueError(f"{name} has tables {', '.join(plans)}; pass table= to write one of them")
    table = table or next(iter(plans))
    if table not in plans:
        raise ValueError(f"{name} has no table {table!r}; tables: {', '.join(plans)}")
    plan = plans[table]
    if partitions > max(plan.rows, 1):
        raise ValueError(f"{partitions} partitions of {plan.rows} rows would leave some empty; "
                         f"ask for at most {max(plan.rows, 1)}")
    target = Path(path).expanduser().absolute()
    ident = {**_store.identity(name, entry["version"], rows, seed, params), "table": table,
             "partitions": partitions}
    if _reusable(target, ident):
        return target
    _store.check_target(target, owned=False)
    if target.exists():
        raise FileExistsError(f"{target} holds another dataset; choose another path or remove it")
    return _write(target, ident, plan, partitions)


def _reusable(target: Path, ident: dict) -> bool:
    manifest = _store.read_manifest(target)
    if manifest is None or any(manifest.get(k) != v for k, v in ident.items()):
        return False
    return _store.problem(target, {k: ident[k] for k in ident if k not in ("table", "partitions")}) \
        is None


def _write(target: Path, ident: dict, plan, partitions: int) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    mtmp = _store.manifest_path(tmp)
    cuts = [plan.rows * i // partitions for i in range(partitions + 1)]  # near-equal rows
    try:
        tmp.mkdir()
        files = [write_file(plan, tmp / f"part-{i:05d}.parquet", a, b, lambda n: None)
                 for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
        manifest = {**ident, "layout": "table", "tables": {plan.name: {"rows": plan.rows,
                                                                      "files": files}},
                    "bytes": sum(f["bytes"] for f in files),
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        os.rename(tmp, target)  # fails, leaving the target alone, if it appeared meanwhile
        with open(mtmp, "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(mtmp, _store.manifest_path(target))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        mtmp.unlink(missing_ok=True)
    return target


def load_dask(name_or_path, rows=None, *, seed: int = 0, backend: str = "auto", columns=None,
              **params):
    """A dataset as a Dask DataFrame, one partition per Parquet file.

    ``name_or_path`` is a folder (or file, or glob) of Parquet, or a catalog name, which
    is made (or reused) with ``rows``, ``seed`` and ``**params`` as by ``make``.
    ``backend``: ``"cudf"`` (dask_cudf partitions, on GPU workers), ``"pandas"``, or
    ``"auto"``: cudf when the session runs on the GPU and dask_cudf is installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and text in _catalog.names():
        from workbench.datasets import make

        where = make(text, rows, seed=seed, progress=False, **params)
    else:
        if rows is not None or params:
            raise ValueError(f"rows and dataset parameters apply to catalog names "
                             f"({', '.join(_catalog.names())}), not to the path {text!r}")
        where = Path(text).expanduser()
        if not where.exists() and not any(c in text for c in "*?["):
            raise FileNotFoundError(f"{where} does not exist and is not a catalog dataset "
                                    f"({', '.join(_catalog.names())})")
    if backend == "auto":
        backend = "cudf" if _gpu() else "pandas"
    import dask.dataframe as dd

    ddf = dd.read_parquet(str(where), columns=columns)
    if backend == "cudf":
        from workbench.optional import missing

        try:
            import dask_cudf  # noqa: F401 - registers the cudf backend of dask.dataframe
        except ImportError:
            raise missing("dask_cudf", "cuDF partitions for Dask") from None
        ddf = ddf.to_backend("cudf")
    return ddf


def _gpu() -> bool:
    from workbench.optional import available
    from workbench.session import current_session

    return current_session().gpu and available("dask_cudf")
