"""The dataset cache: where datasets live, their manifests, and builds that are atomic.

A dataset is a directory of Parquet files (or of such directories, one per table) and,
beside it, ``<dir>.manifest.json`` with the identity (dataset, generator version, rows,
seed, parameters), row counts and SHA-256 checksums. Parquet readers scan the directory,
so nothing else may sit inside it. A build writes into ``<dir>.tmp-<pid>-<id>`` and renames
it into place, then writes the manifest (itself through a temporary name): a dataset
without a valid manifest is never used, and an interrupted build leaves only a temporary
folder, removed by the next build once its process is gone.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from workbench.config import data_home
from workbench.errors import WorkbenchError
from workbench.datasets.generators._table import TablePlan
from workbench.datasets.writer import file_digest, tail_digest, write_table

CACHE_FORMAT = 1  # layout of the cache and manifest; bump to orphan every older cache
FULL_VERIFY_BYTES = 256 * 2**20  # below this, every load re-hashes whole files


class DatasetWriteError(WorkbenchError, OSError):
    """A dataset could not be written (no space, no permission, ...); nothing was left behind."""


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def identity(dataset: str, version: int, rows: int, seed: int, params: dict) -> dict:
    return {
        "format": CACHE_FORMAT, "dataset": dataset, "version": version, "rows": rows, "seed": seed, "params": params,
    }


def cache_path(ident: dict, label: str) -> Path:
    """``<data_home>/<dataset>/<label>-s<seed>-<hash of the identity>``."""
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    return data_home() / ident["dataset"] / f"{label}-s{ident['seed']}-{digest}"


def read_manifest(path: Path) -> dict | None:
    try:
        with open(manifest_path(path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def table_dir(path: Path, layout: str, table: str) -> Path:
    return path if layout == "table" else path / table


def problem(path: Path, ident: dict, verify: bool | None = None) -> str | None:
    """Why the dataset at ``path`` cannot be used for ``ident``; None when it can.

    Sizes, file lists and each file's footer (its last 64 KiB) are always checked; whole
    files are re-hashed when ``verify`` is true, or when it is None and the dataset is small.
    """
    m = read_manifest(path)
    if m is None:
        return "no readable manifest"
    for key in ("format", "dataset", "version", "rows", "seed", "params"):
        if m.get(key) != ident[key]:
            return f"written with {key}={m.get(key)!r}, expected {ident[key]!r}"
    full = verify if verify is not None else m.get("bytes", 0) <= FULL_VERIFY_BYTES
    try:
        for table, t in m["tables"].items():
            d = table_dir(path, m["layout"], table)
            on_disk = sorted(p.name for p in d.iterdir())
            listed = sorted(f["path"] for f in t["files"])
            if on_disk != listed:
                return f"{d} holds {len(on_disk)} files, the manifest lists {len(listed)}"
            for f in t["files"]:
                p = d / f["path"]
                size = p.stat().st_size
                if size != f["bytes"]:
                    return f"{p} has {size} bytes, the manifest says {f['bytes']} (partial write?)"
                if tail_digest(p, size) != f["tail_sha256"] or (full and file_digest(p) != f["sha256"]):
                    return f"{p} does not match its checksum (corrupted)"
    except (OSError, KeyError, TypeError) as e:
        return f"unreadable ({e})"
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe probe: leave it to the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale(path: Path) -> None:
    """Remove temporary folders of builds of ``path`` whose process has gone (or > 2 days old)."""
    try:
        candidates = [
            (len(base.name), tmp)
            for base in (path, manifest_path(path))
            for tmp in path.parent.glob(base.name + ".tmp-*")
        ]
    except OSError:
        return
    for skip, tmp in candidates:
        try:
            pid = int(tmp.name[skip + 5 :].split("-")[0])
            old = time.time() - tmp.stat().st_mtime > 2 * 86400
        except (ValueError, OSError):
            continue
        if old or (pid != os.getpid() and not _alive(pid)):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def write_error(path: Path, exc: OSError) -> DatasetWriteError:
    reason = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}.get(
        exc.errno, exc.strerror or str(exc)
    )
    return DatasetWriteError(
        exc.errno,
        f"cannot write the dataset to {path.parent} ({reason}). Nothing was left behind. Set WORKBENCH_DATA "
        f"to a folder with free space and write permission, or pass path= (--path on the command line)",
    )


def build(
    path: Path,
    ident: dict,
    plans: dict[str, TablePlan],
    *,
    layout: str,
    owned: bool,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Generate ``plans`` into ``path`` atomically; the manifest written beside it.

    ``owned`` says whether an existing, invalid ``path`` may be replaced (the cache) or
    must be left alone unless it is itself a workbench dataset (a path the user named).
    """
    path = Path(os.path.abspath(path))
    mpath = manifest_path(path)
    if not owned and path.exists() and read_manifest(path) is None:
        raise FileExistsError(
            errno.EEXIST,
            f"{path} exists and is not a workbench dataset (no {mpath.name} beside it); "
            "remove it or choose another path",
        )
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    found = read_manifest(path)  # the copy found wanting; replaced unless another build replaced it first
    placed = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        start = time.perf_counter()
        tables = {}
        if layout != "table":
            tmp.mkdir()
        for name, plan in plans.items():
            files = write_table(plan, table_dir(tmp, layout, name), threads=threads, progress=progress)
            tables[name] = {"rows": plan.rows, "files": files}
        manifest = {
            **ident,
            "layout": layout,
            "tables": tables,
            "bytes": sum(f["bytes"] for t in tables.values() for f in t["files"]),
            "seconds": round(time.perf_counter() - start, 3),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "workbench": _version(),
        }
        if path.exists() or mpath.exists():
            if read_manifest(path) != found and problem(path, ident, verify=False) is None:  # another process won
                shutil.rmtree(tmp)
                return read_manifest(path)
            _remove(mpath)  # first: the old data stops looking valid
            _remove(path)
        os.replace(tmp, path)
        placed = True
        mtmp = mpath.with_name(f"{mpath.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        with open(mtmp, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(mtmp, mpath)
        return manifest
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        for leftover in path.parent.glob(f"{mpath.name}.tmp-{os.getpid()}-*") if path.parent.is_dir() else ():
            leftover.unlink(missing_ok=True)
        if placed:
            _remove(path)
        if isinstance(exc, OSError) and not isinstance(exc, DatasetWriteError):
            raise write_error(path, exc) from exc
        raise


def _version() -> str:
    from workbench import __version__

    return __version__
