"""Versions of the stack, read from package metadata without importing anything.

Importing cudf to ask its version can crash on a broken driver, and importing the
rest costs seconds; ``importlib.metadata`` reads the installed distributions instead.

>>> from workbench.diagnostics.versions import stack_versions
>>> "polars" in stack_versions()
True
"""

from __future__ import annotations

import platform
from importlib import metadata

# name shown -> distribution names to try, CUDA 13 wheels first
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "workbench": ("workbench",),
    "polars": ("polars",),
    "pyarrow": ("pyarrow",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "dask": ("dask",),
    "distributed": ("distributed",),
    "nvidia-ml-py": ("nvidia-ml-py",),
    "cudf": ("cudf-cu13", "cudf-cu12", "cudf"),
    "cudf-polars": ("cudf-polars-cu13", "cudf-polars-cu12", "cudf-polars"),
    "cuml": ("cuml-cu13", "cuml-cu12", "cuml"),
    "rmm": ("rmm-cu13", "rmm-cu12", "rmm"),
    "dask-cuda": ("dask-cuda",),
    "cupy": ("cupy-cuda13x", "cupy-cuda12x", "cupy"),
    "duckdb": ("duckdb",),
}
RAPIDS = ("cudf", "cudf-polars", "cuml", "rmm")


def distribution(name: str) -> str | None:
    """The installed distribution behind a name of :data:`DISTRIBUTIONS` (``cudf`` → ``cudf-cu13``)."""
    for dist in DISTRIBUTIONS.get(name, (name,)):
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return dist
    return None


def version(name: str) -> str | None:
    """The installed version of a name of :data:`DISTRIBUTIONS`, or None."""
    dist = distribution(name)
    return metadata.version(dist) if dist else None


def rapids_cuda() -> str | None:
    """Which CUDA the installed RAPIDS wheels were built for (``"cu13"``, ``"cu12"``), or None.

    Conda packages carry no suffix: None there too.
    """
    for name in RAPIDS:
        dist = distribution(name)
        if dist and dist.rsplit("-", 1)[-1].startswith("cu"):
            return dist.rsplit("-", 1)[-1]
    return None


def stack_versions() -> dict[str, str | None]:
    """Versions of Python and the stack (None where not installed), and the RAPIDS CUDA flavour.

    Returns
    -------
    dict
        ``{"python": "3.11.9", "workbench": "0.1.0", "polars": "1.44.2", ..., "rapids-cuda": "cu13"}``
    """
    out: dict[str, str | None] = {"python": platform.python_version()}
    out.update({name: version(name) for name in DISTRIBUTIONS})
    out["rapids-cuda"] = rapids_cuda()
    return out


def show_versions() -> dict[str, str | None]:
    """Print :func:`stack_versions` one per line and return it.

    Examples
    --------
    >>> import workbench as wb
    >>> wb.show_versions()  # doctest: +SKIP
    python        3.11.9
    workbench     0.1.0
    ...
    """
    versions = stack_versions()
    width = max(map(len, versions))
    for name, value in versions.items():
        print(f"{name:<{width}}  {value or '-'}")
    return versions
