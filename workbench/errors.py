"""Exceptions and warnings raised by workbench.

They subclass the built-in exception a caller would catch anyway (``ValueError``,
``RuntimeError``...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every workbench error."""


class GPUUnavailableError(WorkbenchError, RuntimeError):
    """A GPU step was required (``backend="gpu"`` or ``strict=True``) but cannot run."""


class PolicyAlreadyAppliedError(WorkbenchError, RuntimeError):
    """A different memory policy was asked for after GPU memory was allocated."""


class MissingDependencyError(WorkbenchError, ImportError):
    """An optional dependency is not installed."""


class ConfigurationError(WorkbenchError, ValueError):
    """A ``WORKBENCH_*`` environment variable or an option has a value that cannot be used."""


class GPUFallbackWarning(UserWarning):
    """A step ran on the CPU because it could not run on the GPU (see ``session.log``)."""


class PinnedLimitWarning(UserWarning):
    """Host memory was not pinned because the policy's pinned limit was reached."""


def missing(package: str, extra: str | None = None, purpose: str = "") -> MissingDependencyError:
    """The error for an optional dependency that is not installed, with the install hint."""
    hint = f"pip install 'workbench[{extra}]'" if extra else f"pip install {package}"
    what = f" ({purpose})" if purpose else ""
    return MissingDependencyError(
        f"{package} is not available{what}. Please make sure '{package}' is installed: {hint}"
    )
