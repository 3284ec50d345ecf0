"""Arrow to polars, strings included: ``pl.from_arrow`` against
``workbench.frame.table.as_polars`` (strings cast to Arrow's string views first; it cuts
each large string column into slices where the cores outnumber the string columns) and
against one compacted slice per core of every string column.

What it measures is the first CPU view of a Frame (``Frame.to_polars``) and a GPU
split's answer turned into polars: the string columns must be copied into polars'
string views. Each way runs in a fresh process, as a Frame's first view runs (the
copy's memory pages are touched for the first time), over the same table: the
groupby table's shape (three string keys of 100, 100 and n/100 values, three integer
keys, three values), ``--rows`` rows, made by numpy and pyarrow.

Usage: python benchmarks/polars_views.py --rows 3e7 --out views.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = ("from_arrow", "as_polars", "pieces")


def make_table(rows: int):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(0)
    columns = {}
    for name, groups in (("id1", 100), ("id2", 100), ("id3", max(1, rows // 100))):
        codes = pa.array(rng.integers(1, groups + 1, rows)).cast(pa.string())
        width = len(str(groups))
        columns[name] = pc.binary_join_element_wise("id", pc.utf8_lpad(codes, width, "0"), "") \
            .cast(pa.large_string())
    for name, high in (("id4", 100), ("id5", 100), ("id6", max(1, rows // 100))):
        columns[name] = pa.array(rng.integers(1, high + 1, rows))
    for name in ("v1", "v2", "v3"):
        columns[name] = pa.array(rng.random(rows))
    return pa.table(columns)


def in_pieces(table):
    """The candidate: every string column cut into one slice per core, each slice cast
    to string views on a thread of its own (copied compact first, as the workbench casts
    a slice), the slices kept as the column's chunks."""
    from concurrent.futures import ThreadPoolExecutor

    import polars as pl
    import pyarrow as pa

    from workbench.frame.table import _VIEWS, _as_views

    cores = os.cpu_count() or 1
    columns = table.columns
    jobs = []  # (column index, first row, rows)
    for i, col in enumerate(columns):
        if col.type in _VIEWS:
            step = -(-len(col) // cores)
            jobs += [(i, start, step) for start in range(0, len(col), step)]
    with ThreadPoolExecutor(cores) as pool:
        cast = list(pool.map(
            lambda j: _as_views(columns[j[0]].slice(j[1], j[2])), jobs))
    for i in {j[0] for j in jobs}:
        pieces = [chunk for j, c in zip(jobs, cast) if j[0] == i for chunk in c.chunks]
        columns[i] = pa.chunked_array(pieces, type=_VIEWS[columns[i].type])
    schema = pa.schema([f.with_type(c.type) for f, c in zip(table.schema, columns)])
    return pl.from_arrow(pa.Table.from_arrays(columns, schema=schema), rechunk=False)


def one(path: str, way: str) -> float:
    """Seconds of one conversion of the Arrow file at ``path`` (run in a child process)."""
    import polars as pl
    import pyarrow as pa

    from workbench.frame.table import as_polars

    table = pa.ipc.open_file(pa.memory_map(path)).read_all().combine_chunks()
    start = time.perf_counter()
    df = pl.from_arrow(table, rechunk=False) if way == "from_arrow" else \
        as_polars(table) if way == "as_polars" else in_pieces(table)
    seconds = time.perf_counter() - start
    assert df.height == table.num_rows
    if way == "pieces":  # the same frame as the workbench's way
        assert df.equals(as_polars(table))
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="3e7")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per way")
    ap.add_argument("--out", required=True)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(one(a.child[0], a.child[1]))
        return 0
    import pyarrow as pa
    import polars as pl

    rows = int(float(a.rows))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "table.arrow")
        table = make_table(rows)
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        nbytes = table.nbytes
        del table
        results = {way: [] for way in WAYS}
        for _ in range(a.runs):  # interleaved: the machine's noise falls on every way
            for way in WAYS:
                out = subprocess.run([sys.executable, __file__, "--out", "-", "--child", path, way],
                                     check=True, capture_output=True, text=True)
                results[way].append(float(out.stdout.strip()))
    report = {"benchmark": "polars_views", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
              "rows": rows, "arrow_bytes": nbytes, "cpus": os.cpu_count(),
              "versions": {"polars": pl.__version__, "pyarrow": pa.__version__,
                           "python": sys.version.split()[0]},
              "seconds": results, "best": {k: min(v) for k, v in results.items()}}
    Path(a.out).write_text(json.dumps(report, indent=2))
    for k, v in report["best"].items():
        print(f"{k:<22} best {v:.3f} s   all {', '.join(f'{s:.3f}' for s in results[k])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
