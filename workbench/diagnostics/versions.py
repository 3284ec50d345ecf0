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

#: the distribution this package is published as; ``workbench`` on PyPI is another project
DISTRIBUTION = "gpu-workbench"
#: the first words of this package's summary, which tell an old install of it (made
#: while it was still called ``workbench``) from the unrelated ``workbench`` distribution
SUMMARY = "A GPU-accelerated data-science workbench"

# name shown -> distribution names to try, CUDA 13 wheels first
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "workbench": (DISTRIBUTION,),
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


def foreign_workbench(path: list[str] | None = None) -> metadata.Distribution | None:
    """The unrelated ``workbench`` distribution when it is installed, else None.

    It installs a top-level ``workbench`` package too, so the two cannot share one
    environment: whichever was installed last owns ``import workbench``.
    """
    where = {} if path is None else {"path": path}
    for dist in metadata.distributions(name="workbench", **where):
        if not (dist.metadata.get("Summary") or "").startswith(SUMMARY):
            return dist
    return None


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
    if dist is None and name == "workbench":  # an editable install from before the rename
        return next((d.version for d in metadata.distributions(name="workbench")
                     if (d.metadata.get("Summary") or "").startswith(SUMMARY)), None)
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


class Versions(dict):
    """The versions as a dict whose repr is the table, so a notebook cell shows it once."""

    def format(self) -> str:
        width = max(map(len, self), default=0)
        return "\n".join(f"{name:<{width}}  {value or '-'}" for name, value in self.items())

    __str__ = __repr__ = format

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's display, which prefers this
        printer.text(self.format())


def show_versions() -> Versions:
    """The versions of the stack, one per line when shown (a dict underneath).

    Nothing is printed: the value is shown by the notebook cell or the REPL that asks
    (``print(wb.show_versions())`` in a script), so it appears once.

    Examples
    --------
    >>> import workbench as wb
    >>> wb.show_versions()  # doctest: +SKIP
    python        3.11.9
    workbench     0.1.0
    ...
    """
    return Versions(stack_versions())
