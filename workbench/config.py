"""Configuration: every ``WORKBENCH_*`` environment variable, read and checked here.

Options passed to :func:`workbench.init` win over the variables. A value that cannot
be used is a :class:`~workbench.errors.ConfigurationError` naming the variable (or the
option), the value and what would work, on every machine: a typo in a CPU-only lab
must fail as it would on the GPU, not be ignored until the first GPU run.

==========================  ==========================================================
``WORKBENCH_BACKEND``       where steps run: ``auto`` (default), ``cpu``, ``gpu``
``WORKBENCH_MEMORY``        the memory mode (see :data:`workbench.memory.MODES`)
``WORKBENCH_GPU_BUDGET``    device memory a process may use: ``8GB``, ``0.25``, ``50%``
``WORKBENCH_DATA``          where generated datasets are cached
``WORKBENCH_STUDENT``       the student a lab kernel records exercise results for
``WORKBENCH_WORKSPACE``     the lab workspace those results go to (set by ``workbench lab``)
==========================  ==========================================================

>>> from workbench import config
>>> config.backend("cpu")
'cpu'
>>> config.backend("tpu")
Traceback (most recent call last):
...
workbench.errors.ConfigurationError: backend='tpu' is not valid; use one of auto, cpu, gpu
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import ConfigurationError

BACKEND = "WORKBENCH_BACKEND"
MEMORY = "WORKBENCH_MEMORY"
BUDGET = "WORKBENCH_GPU_BUDGET"
DATA = "WORKBENCH_DATA"
STUDENT = "WORKBENCH_STUDENT"
WORKSPACE = "WORKBENCH_WORKSPACE"
VARIABLES = (BACKEND, MEMORY, BUDGET, DATA, STUDENT, WORKSPACE)

BACKENDS = ("auto", "cpu", "gpu")
ANY_DEVICE = 1 << 62  # the memory a budget is checked against before the device is known


def _raw(name: str, value):
    """The option when given, else the variable (unset or empty: None), and where it came from."""
    if value is not None:
        return value, None
    raw = os.environ.get(name)
    return (raw, name) if raw not in (None, "") else (None, None)


def _where(option: str, variable: str | None) -> str:
    return f"environment variable {variable}" if variable else option


def _choice(option: str, variable: str, value, valid) -> str | None:
    value, source = _raw(variable, value)
    if value is None:
        return None
    if value not in valid:
        shown = f"{source}={value!r}" if source else f"{option}={value!r}"
        raise ConfigurationError(f"{shown} is not valid; use one of {', '.join(valid)}")
    return value


def backend(value: str | None = None) -> str:
    """The backend asked for: the option, else ``WORKBENCH_BACKEND``, else ``"auto"``."""
    return _choice("backend", BACKEND, value, BACKENDS) or "auto"


def memory_mode(value: str | None = None) -> str:
    """The memory mode asked for: the option, else ``WORKBENCH_MEMORY``, else ``"auto"``."""
    from workbench.memory import MODES

    return _choice("memory", MEMORY, value, MODES) or "auto"


def budget(value=None):
    """The budget asked for (the option, else ``WORKBENCH_GPU_BUDGET``), checked to be a
    readable positive size or fraction; None when neither is set.

    It is returned as given: a fraction becomes bytes only once the device is known.
    """
    from workbench.memory import parse_budget

    value, source = _raw(BUDGET, value)
    if value is None:
        return None
    try:
        # Checked against no particular device (each session checks its own): sizes
        # for their form and sign, fractions for their range.
        parse_budget(value, ANY_DEVICE)
    except ValueError as err:
        raise ConfigurationError(f"{_where('budget', source)}: {err}") from None
    return value


def data_home() -> Path:
    """Where generated datasets are cached: ``WORKBENCH_DATA``, else the user cache folder
    that ``platformdirs`` names (``$XDG_CACHE_HOME/workbench`` or ``~/.cache/workbench`` on
    Linux, ``~/Library/Caches/workbench`` on macOS, ``%LOCALAPPDATA%\\workbench\\Cache``)."""
    raw = os.environ.get(DATA)
    if raw:
        try:
            path = Path(raw).expanduser()
        except RuntimeError:  # "~user" for a user this machine does not have
            path = Path(raw)
        if str(path).startswith("~"):
            raise ConfigurationError(
                f"environment variable {DATA}={raw!r}: {raw.split('/')[0]!r} is not a user "
                "of this machine; set it to a folder path")
        return path
    import platformdirs

    return platformdirs.user_cache_path("workbench", appauthor=False)


def problems() -> list[str]:
    """What is wrong with the ``WORKBENCH_*`` variables set now, one line each."""
    found = []
    for check in (backend, memory_mode, budget, data_home):
        try:
            check()
        except ConfigurationError as err:
            found.append(str(err))
    return found
