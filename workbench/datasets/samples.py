"""The small samples committed under ``datasets/samples`` (``python -m workbench.datasets.samples``).

Each is the dataset generated with the catalog's ``sample`` settings and default
parameters, as one Parquet file (a folder of one file per table for multi-table
datasets); a test checks that they still equal what the generators make.
"""

from __future__ import annotations

from pathlib import Path

from workbench.datasets import catalog as _catalog
from workbench.datasets.writer import write_file


def write(name: str, directory: Path) -> Path:
    entry = _catalog.entry(name)
    s = entry["sample"]
    rows, params = _catalog.resolve(name, s["rows"], {})
    plans = _catalog.generator(name).plan(rows, s.get("seed", 0), **params)
    target = directory / s["file"]
    if entry["layout"] == "table":
        (plan,) = plans.values()
        write_file(plan, target, 0, plan.rows, lambda n: None)
    else:
        target.mkdir(parents=True, exist_ok=True)
        for table, plan in plans.items():
            write_file(plan, target / f"{table}.parquet", 0, plan.rows, lambda n: None)
    return target


def main() -> None:
    directory = _catalog.catalog_dir() / "samples"
    directory.mkdir(exist_ok=True)
    for name in _catalog.names():
        print(write(name, directory))


if __name__ == "__main__":
    main()
