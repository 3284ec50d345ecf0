"""Datasets: a catalog of deterministic generators, cached as partitioned Parquet.

Nothing is downloaded: every dataset is generated from a recipe in the catalog (the
top-level ``datasets/`` folder, installed as ``workbench/catalog``), in chunks and in
parallel, so a billion rows need no more than ~2 GB of memory. The same seed, parameters
and row count give the same rows whatever the chunking, thread count or machine.

Generated datasets are cached under ``WORKBENCH_DATA`` (default: the user cache folder
from ``platformdirs``: ``~/.cache/workbench`` or ``$XDG_CACHE_HOME/workbench`` on Linux)
with a manifest of parameters, row counts and SHA-256 checksums, and Parquet page
checksums inside the files; ``load`` and ``make`` reuse a valid cache and rebuild a
partial, corrupted or outdated one. Builds of one dataset take turns (a file lock), check
the free space first, and clean up after themselves when interrupted or terminated.

>>> import workbench.datasets as wd
>>> wd.list()
['h2o_groupby', 'h2o_join', 'taxi']
>>> wd.describe("h2o_groupby")["params"]["k"]["default"]
100
>>> t = wd.generate("h2o_groupby", rows=1000, k=10)
>>> t.num_rows, t.column_names[:3]
(1000, ['id1', 'id2', 'id3'])
"""

from __future__ import annotations

import builtins
import copy
from pathlib import Path

import pyarrow as pa

from workbench.datasets import catalog as _catalog, guard as _guard, store as _store
from workbench.datasets.catalog import UnknownDatasetError
from workbench.datasets.partitioned import load_dask, write_partitioned
from workbench.datasets.store import DatasetWriteError, data_home
from workbench.progress import bar as progress_bar

__all__ = [
    "list", "describe", "make", "load", "sample", "generate", "data_home",
    "write_partitioned", "load_dask",
    "DatasetWriteError", "UnknownDatasetError",
]


def list() -> builtins.list[str]:  # noqa: A001 - the catalog's verb
    """Names of the datasets in the catalog, sorted."""
    return _catalog.names()


def describe(name: str) -> dict:
    """The catalog entry of ``name``: description, schema with dtypes, parameters and ranges,
    how rows scale, origin and licence of the recipe."""
    return copy.deepcopy(_catalog.entry(name))


def _resolve(name: str, rows, seed: int, params: dict):
    entry = _catalog.entry(name)
    rows, params = _catalog.resolve(name, rows, params)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name}: seed must be a non-negative integer (got {seed!r})")
    return entry, rows, params


def generate(name: str, rows=None, *, seed: int = 0, start: int = 0, stop: int | None = None,
             table: str | None = None, **params) -> pa.Table:
    """Rows ``[start, stop)`` of a dataset table, in memory and uncached (for small sizes).

    ``table`` picks one table of a multi-table dataset (``h2o_join``: x, small, medium, big).
    Any range equals the same slice of the whole table.
    """
    entry, rows, params = _resolve(name, rows, seed, params)
    plans = _catalog.generator(name).plan(rows, seed, **params)
    if table is None:
        if len(plans) > 1:
            raise ValueError(f"{name} has tables {', '.join(plans)}; pass table=")
        table = next(iter(plans))
    if table not in plans:
        raise ValueError(f"{name} has no table {table!r}; tables: {', '.join(plans)}")
    plan = plans[table]
    stop = plan.rows if stop is None else stop
    return plan.generate(start, stop).cast(_reader_schema(plan.schema))


def _reader_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as Parquet readers see it (dictionary-encoded columns as their values)."""
    return pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema])


def make(name: str, rows=None, *, seed: int = 0, path: str | Path | None = None, progress: bool | None = None,
         threads: int | None = None, verify: bool | None = None, **params) -> Path:
    """Generate a dataset as partitioned Parquet (or reuse a valid copy); its path.

    Parameters
    ----------
    name : a catalog name (see ``list()``).
    rows : row count N (default: the catalog's); ``1e7`` is accepted.
    seed : the random seed; same seed, rows and parameters give the same data.
    path : where to write; default the cache under ``WORKBENCH_DATA``. The manifest is
        written beside it as ``<path>.manifest.json``.
    progress : show a progress bar (rows/s, ETA); default when stderr is a terminal or in a
        Jupyter kernel (a widget there, via ``tqdm.auto``).
    threads : worker threads; default the cores, capped to keep memory under ~2 GB.
    verify : how a dataset found on disk is checked before it is reused: sizes and footers
        always; whole-file SHA-256 unless False; None (default) skips files this process
        already hashed and that have not changed since; True re-hashes every file.
    **params : the dataset's parameters, e.g. ``k=10, na=5, sort=True`` for h2o_groupby.

    Returns
    -------
    Path : for single-table datasets a directory of ``part-00000.parquet``...; for
        ``h2o_join`` a directory holding ``x/``, ``small/``, ``medium/`` and ``big/``.
    """
    entry, rows, params = _resolve(name, rows, seed, params)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None (got {threads!r})")
    gen = _catalog.generator(name)
    ident = _store.identity(name, entry["version"], rows, seed, params)
    target = _store.cache_path(ident, gen.label(rows, **params)) if path is None else Path(path).expanduser()
    target = target.absolute()
    if _store.problem(target, ident, verify) is None:
        return target
    _store.check_target(target, owned=path is None)
    if path is None:
        _guard.sweep(target.parent.parent)  # what killed builds of any dataset left in the cache
    plans = gen.plan(rows, seed, **params)
    with _guard.terminated_cleanly():
        bar = progress_bar(f"{name} {target.name}", sum(p.rows for p in plans.values()), unit="rows",
                           show=progress)
        try:
            _store.build(target, ident, plans, layout=entry["layout"], owned=path is None, threads=threads,
                         progress=bar.update if bar is not None else None, verify=verify)
        finally:
            if bar is not None:
                bar.close()
    return target


def load(name: str, rows=None, *, seed: int = 0, path: str | Path | None = None, progress: bool | None = None,
         **params):
    """``make`` (or reuse), then read as ``workbench.Frame``; for ``h2o_join`` a dict
    ``{"x", "small", "medium", "big"}`` of Frames."""
    from workbench.frame import Frame

    where = make(name, rows, seed=seed, path=path, progress=progress, **params)
    if _catalog.entry(name)["layout"] == "table":
        return Frame.from_parquet(where)
    return {t: Frame.from_parquet(where / t) for t in _catalog.entry(name)["tables"]}


def sample(name: str) -> Path:
    """The small committed sample of a dataset (generated with the catalog's ``sample``
    settings): a Parquet file, or for ``h2o_join`` a folder of ``x.parquet``,
    ``small.parquet``... Works offline and needs no cache."""
    entry = _catalog.entry(name)
    path = _catalog.catalog_dir() / "samples" / entry["sample"]["file"]
    if not path.exists():
        raise FileNotFoundError(f"the sample of {name} is missing: {path}; reinstall workbench")
    return path
