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


class DoesNotFit(WorkbenchError, MemoryError):
    """The columns a step needs are larger than the room for device-resident data.

    Raised before anything is allocated; ``collect`` then streams the data in chunks.
    """

    def __init__(self, needed: int, limit: int):
        super().__init__(f"input larger than the resident-memory limit "
                         f"({needed} bytes needed, limit {limit} bytes)")
        self.needed, self.limit = needed, limit


class LargerThanMemory(WorkbenchError, MemoryError):
    """Data asked for in host memory would take more than the host has available.

    Raised before anything is read (``needed`` and ``available`` are bytes); the
    message says how to read less or query the files without loading them.
    """

    def __init__(self, message: str, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = needed, available


class ClusterConnectionError(WorkbenchError, ConnectionError):
    """No Dask scheduler answered at the address given to ``wb.cluster``."""


class BudgetTooSmall(WorkbenchError, MemoryError):
    """The GPU budget cannot hold even the smallest piece a query can be split into.

    ``smallest`` is the smallest budget (bytes) that would do; the message says how to set it.
    """

    def __init__(self, message: str, smallest: int):
        super().__init__(message)
        self.smallest = smallest


class WorkbenchWarning(UserWarning):
    """Base class of every workbench warning."""


class GPUFallbackWarning(WorkbenchWarning):
    """A step ran on the CPU because it could not run on the GPU (see ``session.log``)."""


class PinnedLimitWarning(WorkbenchWarning):
    """Host memory was not pinned because the policy's pinned limit was reached."""


class ClusterFallbackWarning(WorkbenchWarning):
    """A query for the cluster ran in this process instead (polars streaming); says why."""


def missing(package: str, extra: str | None = None, purpose: str = "") -> MissingDependencyError:
    """The error for an optional dependency that is not installed, with the install hint."""
    hint = f"pip install 'gpu-workbench[{extra}]'" if extra else f"pip install {package}"
    what = f" ({purpose})" if purpose else ""
    return MissingDependencyError(
        f"{package} is not available{what}. Please make sure '{package}' is installed: {hint}"
    )


#: words by which CUDA, RMM, cudf-polars and Python say that memory ran out
OOM_MARKERS = ("memoryerror", "out_of_memory", "out of memory", "bad_alloc",
               "cudaerrormemoryallocation", "outofmemory", "cuda_error_out_of_memory")


def chained(err: BaseException | None):
    """``err`` and every exception behind it: causes, contexts and the members of
    exception groups (cudf-polars' streaming executor raises groups), each once."""
    seen, todo = set(), [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [*getattr(e, "exceptions", ()), e.__context__, e.__cause__]


def behind(err: BaseException | None, kinds) -> bool:
    """Whether ``err``, or an exception behind it (a cause, a context, a group's member),
    is one of ``kinds`` (a class or a tuple of them)."""
    return any(isinstance(e, kinds) for e in chained(err))


def is_out_of_memory(err: BaseException | str) -> bool:
    """Whether an exception (or one behind it), or a message, says memory ran out.

    RMM raises ``MemoryError``; polars may wrap it in its own error and cudf-polars in
    an exception group, so the chain and the text are both read.
    """
    if isinstance(err, str):
        text = err.lower()
        return any(m in text for m in OOM_MARKERS)
    return any(isinstance(e, MemoryError) or is_out_of_memory(f"{type(e).__name__}: {e}")
               for e in chained(err))


def reason(err: BaseException) -> str:
    """One line saying why: the first inner error of a group (cudf-polars' streaming
    executor raises a TaskGroup's group, whose own message says nothing), and the
    operations a plan was refused for (the GPU engine lists them below a heading).

    >>> reason(NotImplementedError("GPU not possible: unsupported operations.\\n"
    ...     "The errors were:\\n- NotImplementedError: Unary function name='corr'", []))
    "NotImplementedError: GPU not possible: unsupported operations: Unary function name='corr'"
    """
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    # the engine's list of refused operations comes with the errors as a second argument,
    # which str() would show as a tuple: its message alone
    listing = len(err.args) > 1 and isinstance(err.args[0], str) and "\n- " in err.args[0]
    message = err.args[0] if listing else str(err)
    text = message.strip().splitlines()
    head = f"{type(err).__name__}: {text[0] if text else ''}"
    # "- NotImplementedError: what" lines, each said once
    listed = dict.fromkeys(line[2:].split(": ", 1)[-1].strip() for line in text[1:]
                           if line.startswith("- "))
    return head.rstrip(".") + ": " + "; ".join(listed) if listed else head
