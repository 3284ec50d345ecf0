"""Writing table plans as partitioned Parquet, in parallel and in bounded memory.

Each worker thread owns whole files: it generates a row group, writes it, drops it,
then the next, so memory holds about one row group per thread. NumPy and Arrow release
the GIL in the heavy parts, so threads scale over cores without copying data between
processes. The file layout depends on the row count alone, never on the thread count.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import pyarrow.parquet as pq

from workbench.datasets.generators._table import TablePlan, iter_ranges

ROW_GROUP = 1 << 20  # ~1M rows: large enough for GPU readers, small enough to bound memory
FILE_ROWS = 1 << 21  # rows per part file: enough files for 16 threads from 1e8 rows up
TAIL = 1 << 16  # bytes of each file's end (Parquet footer) hashed for the cheap check
MEMORY_BUDGET = 1_750_000_000  # bytes of row groups in flight over all threads (peak RSS stays < 2 GB)


def default_threads(bytes_per_row: int = 160) -> int:
    """Usable cores, capped so that one row group per thread fits the memory budget."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, MEMORY_BUDGET // (ROW_GROUP * bytes_per_row)))


def tail_digest(path: Path, size: int | None = None) -> str:
    size = path.stat().st_size if size is None else size
    with open(path, "rb") as f:
        f.seek(max(0, size - TAIL))
        return hashlib.sha256(f.read()).hexdigest()


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _options(plan: TablePlan) -> dict:
    return dict(
        compression="zstd",
        compression_level=1,
        use_dictionary=list(plan.dictionary_columns) or False,
        store_schema=False,  # readers then see plain strings, not dictionary/categorical columns
        write_statistics=True,
        # A CRC32 in every page header: readers that check them (pyarrow's
        # page_checksum_verification, Spark, parquet-mr) refuse a flipped page instead of
        # decoding it into wrong values. polars does not check them, so the cache also keeps
        # a whole-file SHA-256 in the manifest (see store.problem).
        write_page_checksum=True,
    )


SAMPLE_ROWS = 1 << 16  # rows written to memory to learn a table's bytes per row on disk


def estimate_bytes(plan: TablePlan) -> int:
    """Bytes the plan takes as Parquet, from a sample written to memory.

    The sample is the plan's first rows, so value ranges that grow with the row count
    (h2o's id3, join keys) are those of the full table; a small sample compresses a little
    worse than full row groups, so the estimate errs on the large side.
    """
    n = min(plan.rows, SAMPLE_ROWS)
    if n == 0:
        return 0
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, plan.schema, **_options(plan)) as writer:
        writer.write_table(plan.generate(0, n), row_group_size=n)
    return int(buf.tell() * plan.rows / n)


class Cancelled(Exception):
    """Another file of the same table failed, or the build was interrupted."""


def write_file(
    plan: TablePlan, path: Path, start: int, stop: int, progress: Callable[[int], None],
    cancel: threading.Event | None = None,
) -> dict:
    """Rows [start, stop) of the plan into one Parquet file; its manifest record."""
    with pq.ParquetWriter(path, plan.schema, **_options(plan)) as writer:
        for a, b in iter_ranges(stop - start, ROW_GROUP):
            if cancel is not None and cancel.is_set():
                raise Cancelled(path.name)
            table = plan.generate(start + a, start + b)
            writer.write_table(table, row_group_size=b - a)
            del table
            progress(b - a)
    size = path.stat().st_size
    return {
        "path": path.name,
        "rows": stop - start,
        "bytes": size,
        "sha256": file_digest(path),
        "tail_sha256": tail_digest(path, size),
    }


def write_table(
    plan: TablePlan, directory: Path, *, threads: int | None = None, progress: Callable[[int], None] | None = None
) -> list[dict]:
    """All rows of ``plan`` as ``directory/part-00000.parquet``...; the file records, in order."""
    directory.mkdir(parents=True, exist_ok=False)
    ranges = list(iter_ranges(plan.rows, FILE_ROWS)) or [(0, 0)]
    lock = threading.Lock()

    def tick(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    threads = min(threads or default_threads(plan.bytes_per_row), len(ranges))
    jobs = [(directory / f"part-{i:05d}.parquet", a, b) for i, (a, b) in enumerate(ranges)]
    if threads == 1:
        return [write_file(plan, p, a, b, tick) for p, a, b in jobs]
    cancel = threading.Event()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="workbench-datagen")
    try:
        futures = [pool.submit(write_file, plan, p, a, b, tick, cancel) for p, a, b in jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            raise failed[0].exception()
        return [f.result() for f in futures]
    except BaseException:
        cancel.set()  # running files stop at their next row group, queued ones never start
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
