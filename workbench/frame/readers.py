"""Reading files into Frames: paths, CSV and Parquet, with errors that say where and how to fix.

Paths get ``~`` expanded; URLs (``s3://``, ``https://``...) are passed to polars as they
are, never turned into local paths. When a read fails, the file is looked at again
(only then, so a good read costs nothing extra) to name the line of a malformed CSV,
the encoding a non-UTF-8 file probably has, or the two Parquet files whose schemas clash
and the column they disagree on.
"""

from __future__ import annotations

import csv
import functools
import itertools
import os
import re
from pathlib import Path

import polars as pl
import pyarrow as pa

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# How much of a failed CSV is read again to find the bad line (the error path only).
DIAGNOSE_LINES = 2_000_000
DIAGNOSE_BYTES = 64 << 20


def is_url(path) -> bool:
    return isinstance(path, str) and bool(_URL.match(path))


def local_path(path, what: str) -> Path:
    """``path`` as a local :class:`Path` with ``~`` expanded, or a clear error."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{what} takes a path (str or pathlib.Path), got {type(path).__name__}")
    if str(path) == "":
        raise ValueError(f"{what} was given an empty path; pass the path of a file")
    try:
        return Path(path).expanduser()
    except RuntimeError:  # "~user" for a user this machine does not have
        raise FileNotFoundError(f"{path}: {str(path).split('/')[0]!r} is not a user of this "
                                "machine, so '~' cannot be expanded; give the full path") from None


# ---------------------------------------------------------------------------- CSV


def read_csv(path, options: dict) -> pl.DataFrame:
    """``polars.read_csv`` with errors naming the file, the line and the fix."""
    if is_url(path):
        try:
            return pl.read_csv(path, **options)
        except OSError as err:
            raise OSError(f"could not fetch the CSV file at {path}: {err}; check the address, "
                          "or download the file and pass its local path") from err
    path = local_path(path, "read_csv")
    if not path.exists():
        raise FileNotFoundError(f"no CSV file at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; read_csv takes one CSV file "
                                "(use polars.scan_csv with a glob for many)")
    if not options.get("columns"):  # the file's size stands for all its columns
        _refuse_over_memory(path, load_bytes([str(path)], "csv", {}), "the CSV file",
                            "read only the columns you need (columns=[...])", "pl.scan_csv")
    try:
        return pl.read_csv(path, **options)
    except pl.exceptions.NoDataError as err:
        raise ValueError(f"could not read CSV file {path}: it is empty ({err}); "
                         "give a file with at least a header line") from err
    except pl.exceptions.ComputeError as err:
        raise ValueError(_csv_message(path, str(err), options)) from err


def _csv_message(path: Path, text: str, options: dict) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    if "utf-8" in text.lower() or "utf8" in text.lower():
        return _encoding_message(path, first)
    line = _bad_line(path, text, options)
    where = f" line {line}:" if line else ":"
    fix = ("pass truncate_ragged_lines=True to drop the extra fields, or mend the line"
           if "more fields" in text else
           "pass schema_overrides={column: polars.String} (or a wider type), "
           "infer_schema_length=None to look at every row, or mend the line")
    return f"could not read CSV file {path},{where} {first}; {fix}"


def _encoding_message(path: Path, first: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read(DIAGNOSE_BYTES)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte = data[err.start]
        return (f"could not read CSV file {path}: line {line} is not UTF-8 (byte 0x{byte:02x}); "
                "the file is probably Latin-1 or Windows-1252: pass encoding='latin-1' (or "
                "'cp1252'), or encoding='utf8-lossy' to replace the bad bytes")
    return (f"could not read CSV file {path}: {first}; it is not valid UTF-8: pass the file's "
            "encoding, e.g. encoding='latin-1', or encoding='utf8-lossy'")


def _bad_line(path: Path, text: str, options: dict) -> int | None:
    """The line polars stumbled on: a row with too many fields, or the value it could not parse."""
    value = re.search(r"could not parse `(.*?)` as dtype .*?\(column number (\d+)\)", text, re.S)
    ragged = "more fields than defined" in text
    has_header = options.get("has_header", True)
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(itertools.islice(fh, DIAGNOSE_LINES),
                                delimiter=options.get("separator", ","),
                                quotechar=options.get("quote_char") or '"')
            width = None
            for row in reader:
                if width is None:
                    width = len(row)
                    if has_header:
                        continue
                if ragged and len(row) > width:
                    return reader.line_num
                if value and len(row) >= int(value.group(2)) and row[int(value.group(2)) - 1] == value.group(1):
                    return reader.line_num
    except csv.Error:
        pass
    offset = re.search(r"offset in the file is (\d+) bytes", text)
    if offset:  # the start of the chunk polars was parsing: near, not at, the bad line
        with open(path, "rb") as fh:
            return fh.read(int(offset.group(1))).count(b"\n") + 1
    return None


# ---------------------------------------------------------------------------- Parquet


def read_parquet(path, columns: list[str] | None) -> pa.Table:
    """A Parquet file, a folder of them, or a URL, as one Arrow table."""
    import pyarrow.parquet as pq

    if is_url(path):
        try:
            return pl.read_parquet(path, columns=columns).to_arrow()
        except (OSError, pl.exceptions.ComputeError) as err:
            raise OSError(f"could not read Parquet at {path}: {err}; check the address, "
                          "or download the files and pass their local path") from err
    path = local_path(path, "from_parquet")
    if not path.exists():
        raise FileNotFoundError(f"no Parquet file or directory at {path}")
    if path.is_dir() and not _parquet_files(path):
        raise FileNotFoundError(f"the folder {path} holds no Parquet files; write some there "
                                "or pass the path of a Parquet file")
    _fits_memory(path, columns)
    try:
        return pq.read_table(path, columns=columns, use_threads=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        clash = _schema_clash(path) if path.is_dir() else None
        if clash:
            raise ValueError(clash) from err
        raise ValueError(f"could not read Parquet at {path}: {err}; check that it is a Parquet "
                         "file (or a folder of them) and was written completely") from err


#: footers read per scan at most; beyond, their bytes per file byte stand for the rest
FOOTERS = 16


def load_bytes(paths: list, kind: str, widths: dict[str, int]) -> int:
    """The bytes reading the columns of ``widths`` (name -> the least bytes a value takes
    in memory) from the files ``paths`` of format ``kind`` takes in memory, about.

    Parquet: per column, the larger of its uncompressed size in the footers and its
    rows times its width (a dictionary-encoded column is smaller on disk than in
    memory), from at most :data:`FOOTERS` files, scaled by file size. Other formats:
    the file sizes. Remote or unreadable files count 0.
    """
    stats = {}
    for p in paths:
        try:
            stats[p] = os.stat(p)
        except (OSError, TypeError, ValueError):
            pass
    total = sum(s.st_size for s in stats.values())
    if not stats or kind != "parquet":
        return total
    step = max(1, len(stats) // FOOTERS)
    loads = on_disk = 0
    for p in list(stats)[::step][:FOOTERS]:
        try:
            groups = _footer(p, stats[p].st_size, stats[p].st_mtime_ns)
        except Exception:  # noqa: BLE001 - not a Parquet file: the reader says so itself
            continue
        on_disk += stats[p].st_size
        loads += sum(max(stored[n], rows * w) for rows, stored in groups
                     for n, w in widths.items() if n in stored)
    return int(loads * total / on_disk) if on_disk else total


@functools.lru_cache(maxsize=4096)
def _footer(path: str, size: int, mtime_ns: int) -> tuple:
    """Per row group of a Parquet file, its rows and each column's uncompressed bytes:
    read once per version of the file (``size`` and ``mtime_ns`` tell a rewritten one),
    as a plan's inspection and its CPU run both ask, query after query."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    groups = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stored: dict[str, int] = {}
        for c in range(group.num_columns):
            name = group.column(c).path_in_schema.split(".")[0]
            stored[name] = stored.get(name, 0) + group.column(c).total_uncompressed_size
        groups.append((group.num_rows, stored))
    return tuple(groups)


def _fits_memory(path: Path, columns: list[str] | None) -> None:
    """Raise :class:`~workbench.errors.LargerThanMemory` when reading ``columns`` (all:
    None) of the Parquet at ``path`` would take more host memory than is available: a
    process that runs out of it is killed (a notebook's kernel dies, its work lost)."""
    import pyarrow.parquet as pq

    files = _parquet_files(path) if path.is_dir() else [path]
    try:
        schema = pq.read_schema(files[0])
    except Exception:  # noqa: BLE001 - not Parquet: the read says which file
        return
    # Arrow's layout: fixed-width values at their width, strings and binary at least
    # their 8-byte offsets (large types, as Frames keep them), anything else 8
    widths = {f.name: (f.type.bit_width + 7) // 8 if pa.types.is_primitive(f.type) else 8
              for f in schema if columns is None or f.name in columns}
    what = f"the Parquet ({', '.join(widths)})" if columns is not None else "the Parquet"
    _refuse_over_memory(path, load_bytes([str(f) for f in files], "parquet", widths), what,
                        "read only the columns you need (Frame.from_parquet(path, columns=[...]))",
                        "pl.scan_parquet")


def _refuse_over_memory(path: Path, needed: int, what: str, fewer: str, scan: str) -> None:
    """Raise :class:`~workbench.errors.LargerThanMemory` when ``needed`` bytes are more
    than the host has available, naming ``what`` is read at ``path`` and the ways out."""
    from workbench.errors import LargerThanMemory
    from workbench.session import current_session
    from workbench.sizes import format_bytes

    left = current_session().hardware.host_memory_left()
    if left and needed > left:
        raise LargerThanMemory(
            f"{what} at {path} would take about {format_bytes(needed)} of memory, more than "
            f"the {format_bytes(left)} this machine has available: {fewer}, or query it "
            f"without loading it, which streams it: wb.collect({scan}(path)...)", needed, left)


def _parquet_files(folder: Path) -> list[Path]:
    # As Arrow's dataset discovery: files and folders starting with "." or "_" are not data.
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))


def _schema_clash(folder: Path) -> str | None:
    """Which two files of a folder disagree on a column's type, in words (None if none do)."""
    import pyarrow.parquet as pq

    first, first_schema = None, None
    for file in _parquet_files(folder):
        try:
            schema = pq.read_schema(file)
        except (pa.ArrowInvalid, OSError):
            return f"{file} is not a Parquet file; move it out of {folder}"
        if first is None:
            first, first_schema = file, schema
            continue
        for field in schema:
            if field.name in first_schema.names:
                other = first_schema.field(field.name).type
                if other != field.type:
                    return (f"the Parquet files in {folder} disagree on column {field.name!r}: "
                            f"{other} in {first.name}, {field.type} in {file.name}; rewrite one of "
                            "them with the other's type, or read them one by one and cast")
    return None
