"""The session's memory policy on every Dask worker, restarted ones included.

:class:`PolicyPlugin` is a Dask worker plugin: the scheduler runs its ``setup`` on each
worker that joins, also on one that the nanny restarted after it died, so a
replacement worker gets the same policy as the one it replaces. ``setup`` calls
:func:`workbench.init` with the client session's options (backend, memory mode, budget
in bytes *per worker*, spilling) and, on a GPU worker, applies the policy before the
first task allocates: the worker then has the same RMM resources (the budget's
``LimitingResourceAdaptor``, the statistics adaptor), CuPy allocator, cuDF spilling and
pinned host buffers as the client process.
"""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

NAME = "workbench-memory-policy"
#: dask-cuda options that build an RMM resource; the plugin builds the policy's instead
RMM_OPTIONS = ("rmm_pool_size", "rmm_maximum_pool_size", "rmm_async", "rmm_managed_memory",
               "rmm_release_threshold")


class PolicyPlugin(WorkerPlugin):
    """Run ``workbench.init`` with the client session's options on each worker.

    Parameters
    ----------
    backend : {"cpu", "gpu"}
        Where the worker runs steps.
    memory : str
        The memory mode of the client's policy.
    budget : int or None
        Device bytes each worker may use; None for the worker's own default.
    spill : bool or None
        cuDF spilling.
    apply : bool
        Set the policy's RMM resource on GPU workers (False when the user gave dask-cuda
        RMM options of their own, which then win).
    """

    name = NAME
    idempotent = True

    def __init__(self, backend: str, memory: str, budget: int | None, spill: bool | None,
                 apply: bool = True):
        self.options = {"backend": backend, "memory": memory if backend == "gpu" else None,
                        "budget": budget, "spill": spill}
        self.apply = apply

    @classmethod
    def from_session(cls, session, *, gpu: bool, apply: bool = True) -> PolicyPlugin:
        policy = session.policy
        budget = policy.budget if policy.budget_source == "user" else None
        if not gpu:
            return cls("cpu", "cpu", None, None, apply)
        return cls("gpu", policy.mode, budget, policy.spill, apply)

    def setup(self, worker=None):
        import workbench

        session = workbench.init(**self.options)
        if session.gpu and self.apply:
            session.ensure_gpu()
        session.note(f"dask worker {getattr(worker, 'address', '')}: memory policy "
                     f"{session.policy.summary()}")

    def __repr__(self) -> str:
        return f"PolicyPlugin({self.options})"


def worker_policy(dask_worker=None) -> dict:
    """What the worker runs with (for ``client.run``): backend, the policy and the
    RMM resources in place, top first."""
    from workbench import memory
    from workbench.session import current_session

    session = current_session()
    chain = []
    if session.gpu and memory.applied() is not None:
        chain = [type(mr).__name__ for mr in memory.resource_chain()]
    return {"backend": session.backend, "policy": session.policy.to_dict(),
            "summary": session.policy.summary(), "resources": chain}
