"""workbench: polars on the CPU, RAPIDS on the GPU, over one copy of the data.

``import workbench`` is cheap and safe on any machine: nothing here imports a GPU
library, and the submodules load on first use (a table of names below rather than
``lazy_loader``, which would be one more dependency for the same twenty lines).
In a notebook, ``%load_ext workbench`` starts the session and adds the ``%%wb`` magic.

>>> import workbench as wb
>>> s = wb.init(backend="cpu")
>>> s.backend
'cpu'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "init": ("workbench.session", "init"),
    "Session": ("workbench.session", "Session"),
    "current_session": ("workbench.session", "current_session"),
    "show_versions": ("workbench.diagnostics", "show_versions"),
    "doctor": ("workbench.diagnostics", "doctor"),
    "Frame": ("workbench.frame", "Frame"),
    "collect": ("workbench.engine", "collect"),
    "explain": ("workbench.engine.explain", "explain"),
    "cluster": ("workbench.cluster", "cluster"),
    "monitor": ("workbench.lab.monitor", "monitor"),
    "config": ("workbench.config", None),
    "datasets": ("workbench.datasets", None),
    "ml": ("workbench.ml", None),
    "lab": ("workbench.lab", None),
    "hardware": ("workbench.hardware", None),
    "memory": ("workbench.memory", None),
    "errors": ("workbench.errors", None),
}

__all__ = sorted(_LAZY) + ["__version__"]


def load_ipython_extension(ipython) -> None:
    """``%load_ext workbench``: start the session and add the ``%%wb`` cell magic
    (see :mod:`workbench.diagnostics.notebook`)."""
    from workbench.diagnostics.notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from workbench.diagnostics.notebook import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return __all__
