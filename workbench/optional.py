"""Optional dependencies: one place that imports them, with the install hint.

The GPU stack (cudf, cuml, cupy, rmm, cudf-polars, dask-cuda), JupyterLab and the
benchmark's engines are optional. Code that needs one asks here, so a missing package
always gives the same error naming the package and the ``pip install`` that fixes it.

>>> from workbench.optional import available
>>> available("polars")
True
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from workbench.errors import missing as _missing

#: module -> (distribution to install, workbench extra that brings it)
KNOWN = {
    "cudf": ("cudf-cu13", "gpu"),
    "cudf_polars": ("cudf-polars-cu13", "gpu"),
    "pylibcudf": ("pylibcudf-cu13", "gpu"),
    "cuml": ("cuml-cu13", "gpu"),
    "cupy": ("cupy-cuda13x", "gpu"),
    "rmm": ("rmm-cu13", "gpu"),
    "dask_cuda": ("dask-cuda", "gpu"),
    "dask_cudf": ("dask-cudf-cu13", "gpu"),
    "xgboost": ("xgboost", None),
    "jupyterlab": ("jupyterlab", "lab"),
    "ipywidgets": ("ipywidgets", "lab"),
    "matplotlib": ("matplotlib", "lab"),
    "duckdb": ("duckdb", "bench"),
    "psutil": ("psutil", None),
}


def missing(module: str, purpose: str = ""):
    """The :class:`~workbench.errors.MissingDependencyError` for ``module``, with the
    install hint (the workbench extra that brings it, else the distribution)."""
    top = module.split(".")[0]
    dist, extra = KNOWN.get(top, (top, None))
    return _missing(module if extra else dist, extra, purpose)


def available(module: str) -> bool:
    """Whether ``module`` is installed, without importing it (a broken cudf must not
    crash the caller)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing or half-installed
        return False


def import_optional(module: str, purpose: str = "") -> ModuleType:
    """``import module``, or :class:`~workbench.errors.MissingDependencyError` with the
    install hint when it is not installed.

    Examples
    --------
    >>> import_optional("polars").__name__
    'polars'
    >>> import_optional("no_such_module", "an example")
    Traceback (most recent call last):
    ...
    workbench.errors.MissingDependencyError: no_such_module is not available (an example). Please make sure 'no_such_module' is installed: pip install no_such_module
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and module.split(".")[0] != err.name.split(".")[0] and available(module):
            raise  # the module is there but something it needs is not: show that
        raise missing(module, purpose) from None
