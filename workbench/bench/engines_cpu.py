"""The CPU engines: polars (in memory and streaming), pandas and DuckDB.

What each is timed on (``run``): the query and the materialisation of its result, as
db-benchmark does. pandas and polars return finished host frames; DuckDB stores the
answer in a temporary table (``CREATE TEMP TABLE ans AS ...``), as db-benchmark's DuckDB
script does.
"""

from __future__ import annotations

import os

from workbench.bench.engine_base import Engine, parquet_files, polars_chk
from workbench.optional import available


class PolarsEngine(Engine):
    name = "polars"
    label = "polars CPU"
    packages = ("polars",)
    host_factor = 2.0

    def available(self):
        return None if available("polars") else "polars is not installed"

    def load(self, paths):
        import polars as pl

        # In memory and contiguous, like db-benchmark's polars script.
        self.tables = {n: pl.read_parquet(parquet_files(p)).rechunk() for n, p in paths.items()}
        self._lazy = {n: df.lazy() for n, df in self.tables.items()}

    def run(self, q):
        return q.polars(self._lazy).collect()

    def chk(self, result, columns):
        return polars_chk(result, columns)

    def close(self):
        self.tables = self._lazy = None


class PolarsStreamingEngine(PolarsEngine):
    """polars CPU streaming: ``pl.scan_parquet`` and ``collect(engine="streaming")``.

    The tables are never read into memory as a whole: each question reads the columns
    it needs from the Parquet files in batches. This is the CPU reference for tables
    larger than host memory (or than a GPU budget), so it is never refused for RAM;
    a question whose answer is as large as the table (q10, a join) still needs that
    much memory for its answer.
    """

    name = "polars-streaming"
    label = "polars CPU streaming"
    host_factor = 0.0

    def load(self, paths):
        import polars as pl

        self.tables = {n: pl.scan_parquet(parquet_files(p)) for n, p in paths.items()}
        for lf in self.tables.values():
            lf.collect_schema()  # the footers are read here, not inside the first question
        self._lazy = self.tables

    def run(self, q):
        return q.polars(self._lazy).collect(engine="streaming")


class PandasEngine(Engine):
    name = "pandas"
    label = "pandas"
    packages = ("pandas", "pyarrow")
    # Strings and groupby copies: db-benchmark's pandas needs several times the table.
    host_factor = 3.0

    def available(self):
        return None if available("pandas") else "pandas is not installed"

    def load(self, paths):
        import pandas as pd

        self.tables = {n: pd.read_parquet(parquet_files(p)) for n, p in paths.items()}

    def run(self, q):
        return q.pandas(self.tables)

    def chk(self, result, columns):
        sums = {}
        for c in columns:
            s = result[c].astype("float64")
            sums[c] = float(s.sum(skipna=True))
        return len(result), sums


class DuckDBEngine(Engine):
    name = "duckdb"
    label = "DuckDB"
    packages = ("duckdb",)
    host_factor = 2.0

    def available(self):
        return None if available("duckdb") else "duckdb is not installed"

    def load(self, paths):
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET threads = {os.cpu_count() or 1}")
        # No progress bar while timing. In Jupyter it is off already, and turning it
        # off there fails without ipywidgets: only touch it when it is on.
        if self.con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]:
            self.con.execute("SET enable_progress_bar = false")
        for name, p in paths.items():
            files = ", ".join("'" + f.replace("'", "''") + "'" for f in parquet_files(p))
            self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet([{files}])")

    def run(self, q):
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE ans AS {q.sql}")
        return "ans"

    def chk(self, result, columns):
        # NaN (r² of a constant group) is skipped like a null, as in the other engines.
        parts = ["count(*)"] + [
            f"sum(CASE WHEN isnan({c}::DOUBLE) THEN NULL ELSE {c}::DOUBLE END)" for c in columns
        ]
        row = self.con.execute(f"SELECT {', '.join(parts)} FROM {result}").fetchone()
        return int(row[0]), {c: float(v or 0.0) for c, v in zip(columns, row[1:])}

    def close(self):
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
        self.con = None
