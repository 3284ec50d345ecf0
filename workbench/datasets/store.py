"""The dataset cache: where datasets live, their manifests, and builds that are atomic.

A dataset is a directory of Parquet files (or of such directories, one per table) and,
beside it, ``<dir>.manifest.json`` with the identity (dataset, generator version, rows,
seed, parameters), row counts and SHA-256 checksums. Parquet readers scan the directory,
so nothing else may sit inside it. A build holds ``<dir>.lock`` (see :mod:`.guard`),
checks the disk has room, writes into ``<dir>.tmp-<pid>-<id>`` and renames it into
place, then writes the manifest (itself through a temporary name): a dataset without a
valid manifest is never used, and an interrupted build leaves only a temporary folder,
removed by the next build once no build holds its lock.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workbench.config import data_home
from workbench.errors import WorkbenchError
from workbench.datasets.generators._table import TablePlan
from workbench.datasets import guard
from workbench.datasets.writer import default_threads, estimate_bytes, file_digest, tail_digest, write_table

CACHE_FORMAT = 1  # layout of the cache and manifest; bump to orphan every older cache


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
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def table_dir(path: Path, layout: str, table: str) -> Path:
    return path if layout == "table" else path / table


def problem(path: Path, ident: dict, verify: bool | None = None) -> str | None:
    """Why the dataset at ``path`` cannot be used for ``ident``; None when it can.

    File lists, sizes and each file's footer (its last 64 KiB) are always checked. Whole
    files are re-hashed against the manifest's SHA-256 unless ``verify`` is False; with
    None (the default) a file this process already hashed, unchanged since (same size,
    mtime, inode), is not hashed again; with True it always is.

    Why a whole-file hash rather than reading with page checksums: polars' reader does
    not check Parquet page CRCs, and pyarrow checks them only while decoding every page,
    which costs about as much as reading the data. SHA-256 (OpenSSL, SHA extensions) runs
    at ~1.4 GB/s per core and files are hashed in parallel, so 1e8 h2o rows (1.6 GB) cost
    a fraction of a second, and the pages it reads are in the page cache for the read that
    follows.
    """
    m = read_manifest(path)
    if m is None:
        return "no readable manifest"
    for key in ("format", "dataset", "version", "rows", "seed", "params"):
        if m.get(key) != ident[key]:
            return f"written with {key}={m.get(key)!r}, expected {ident[key]!r}"
    to_hash = []
    try:
        for table, t in m["tables"].items():
            d = table_dir(path, m["layout"], table)
            on_disk = sorted(p.name for p in d.iterdir())
            listed = sorted(f["path"] for f in t["files"])
            if on_disk != listed:
                return f"{d} holds {len(on_disk)} files, the manifest lists {len(listed)}"
            for f in t["files"]:
                p = d / f["path"]
                st = p.stat()
                if st.st_size != f["bytes"]:
                    return f"{p} has {st.st_size} bytes, the manifest says {f['bytes']} (partial write?)"
                if tail_digest(p, st.st_size) != f["tail_sha256"]:
                    return f"{p} does not match its checksum (corrupted)"
                stamp = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, f["sha256"])
                if verify or (verify is None and _hashed.get(str(p)) != stamp):
                    to_hash.append((p, stamp))
        for (p, stamp), digest in zip(to_hash, _digests([p for p, _ in to_hash])):
            if digest != stamp[-1]:
                _hashed.pop(str(p), None)
                return f"{p} does not match its checksum (corrupted)"
            _hashed[str(p)] = stamp
    except (OSError, KeyError, TypeError, AttributeError, ValueError) as e:  # a manifest of the wrong shape
        return f"unreadable ({e})"
    return None


_hashed: dict[str, tuple] = {}  # files this process hashed and found whole: path -> stat and digest


def _digests(paths: list[Path]) -> list[str]:
    """SHA-256 of each file, over threads (hashlib releases the GIL while it hashes)."""
    if len(paths) <= 1:
        return [file_digest(p) for p in paths]
    with ThreadPoolExecutor(min(len(paths), default_threads(1)), thread_name_prefix="workbench-verify") as pool:
        return list(pool.map(file_digest, paths))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def foreign_files(path: Path) -> list[str]:
    """What inside the folder ``path`` the manifest beside it does not list (all of it
    when there is no manifest): files a person put there, which a build must not delete."""
    m = read_manifest(path)
    own: set[str] = set()
    if m is not None:
        try:
            for table, t in m["tables"].items():
                d = table_dir(Path(), m["layout"], table)
                own |= {(d / f["path"]).as_posix() for f in t["files"]} | ({d.as_posix()} if d != Path() else set())
        except (KeyError, TypeError, AttributeError):
            own = set()
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                  if p.relative_to(path).as_posix() not in own)


def check_target(path: Path, owned: bool) -> None:
    """Refuse, before anything is written, a ``path`` the user named that holds anything
    but an earlier workbench dataset (the cache, ``owned``, is the workbench's own)."""
    if owned or not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        raise FileExistsError(
            errno.EEXIST, f"{path} is a file, not a folder for a dataset; remove it or choose another path")
    foreign = foreign_files(path)
    if not foreign:
        return
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    if read_manifest(path) is None:
        raise FileExistsError(
            errno.EEXIST,
            f"{path} exists, is not empty and is not a workbench dataset (no {manifest_path(path).name} beside "
            f"it; it holds {shown}); nothing was changed. Choose another path, or empty that folder")
    raise FileExistsError(
        errno.EEXIST,
        f"{path} is a workbench dataset that also holds files it did not write ({shown}); nothing was changed. "
        "Move those files elsewhere, or choose another path")


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
    verify: bool | None = None,
) -> dict:
    """Generate ``plans`` into ``path`` atomically; the manifest written beside it.

    ``owned`` says whether an existing, invalid ``path`` may be replaced (the cache) or
    must be left alone unless it is itself a workbench dataset holding nothing else (a
    path the user named). Builds of one ``path`` take turns (its lock); one that finds,
    once its turn comes, that another build made the dataset returns that one.
    """
    path = Path(os.path.abspath(path))
    mpath = manifest_path(path)
    check_target(path, owned)
    # Before anything is created, even the folder: a request the disk cannot hold leaves
    # no trace. (Checked once: a build waiting for the lock may find the dataset made.)
    what = f"{ident['dataset']} with {ident['rows']:_} rows"
    short = guard.check_space(path.parent, sum(estimate_bytes(p) for p in plans.values()), what)
    if short:
        raise DatasetWriteError(errno.ENOSPC, short)
    tmp = guard.temp_name(path)
    placed = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with guard.lock(path):
            guard.clean_stale(path, held=True)
            if problem(path, ident, verify) is None:  # another process built it while this one waited
                return read_manifest(path)
            check_target(path, owned)
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
            if path.exists() or path.is_symlink() or mpath.exists():
                old = read_manifest(path)
                _remove(mpath)  # first: the old data stops looking valid
                _remove_dataset(path, old, owned)
            os.replace(tmp, path)
            placed = True
            mtmp = guard.temp_name(mpath)
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
        if isinstance(exc, OSError) and not isinstance(exc, (DatasetWriteError, FileExistsError)):
            raise write_error(path, exc) from exc
        raise


def _remove_dataset(path: Path, manifest: dict | None, owned: bool) -> None:
    """Remove an earlier dataset before its replacement is renamed into place. In a folder
    the user named only the files its manifest lists go (then the emptied folders), so a
    file put there since is never deleted: the folder is then not empty and the rename fails."""
    if owned or not path.is_dir():
        _remove(path)
        return
    if manifest is not None:
        for table, t in manifest["tables"].items():
            d = table_dir(path, manifest["layout"], table)
            for f in t["files"]:
                (d / f["path"]).unlink(missing_ok=True)
            if d != path:
                d.rmdir()
    path.rmdir()


def _version() -> str:
    from workbench import __version__

    return __version__
