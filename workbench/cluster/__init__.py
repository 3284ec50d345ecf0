"""``workbench.cluster()``: a Dask client on this machine's GPUs, its CPUs, or a shared scheduler.

Dask is for work that outgrows one process: more data than one GPU holds, several GPUs,
or a lab where many students share a few GPU workers through one scheduler. The
workbench does no scheduling of its own; it starts the right Dask cluster and carries
the session's memory policy to the workers:

* ``wb.cluster()`` on a GPU session: ``dask_cuda.LocalCUDACluster``, one worker per
  visible GPU, each with the session's RMM pool, budget and cuDF spilling
  (:meth:`workbench.memory.MemoryPolicy.to_dask_cuda_kwargs`);
* on a CPU session (or ``backend="cpu"``): ``distributed.LocalCluster`` with worker
  processes;
* ``wb.cluster("tcp://host:8786")``: a client of an existing scheduler (a lab's shared
  GPU workers, say); nothing is started, and closing the client leaves them running.
  The scheduler must answer within ``timeout`` seconds, or a
  :class:`~workbench.cluster.connect.ClusterConnectionError` names the address and the fix.

Every worker started here runs :class:`~workbench.cluster.plugin.PolicyPlugin`: the
session's memory policy (budget per worker, spilling, pinned host buffers) is applied
on each worker, and again on a worker that the nanny restarts after it died.

Asking for GPU workers where there is no GPU (or no dask-cuda) follows the fallback
contract of the rest of the workbench: CPU workers with a warning, or an error with
``strict=True``.
"""

from __future__ import annotations

import sys
import types

from distributed import Client, LocalCluster

from workbench.cluster.connect import (CONNECT_TIMEOUT, ClusterConnectionError, check_address,
                                       check_count, check_memory_limit, check_timeout, probe)
from workbench.cluster.plugin import RMM_OPTIONS, PolicyPlugin, worker_policy
from workbench.session import current_session

__all__ = ["cluster", "LocalClient", "BACKENDS", "ClusterConnectionError", "PolicyPlugin",
           "worker_policy"]

BACKENDS = ("auto", "gpu", "cpu")


class LocalClient(Client):
    """A client that owns the local cluster it was started with.

    Closing it (``close()``, the end of a ``with`` block, or the end of the process)
    also stops the workers, so a notebook that restarts its cell does not pile up
    worker processes.
    """

    def close(self, *args, **kwargs):
        cluster = self.cluster
        result = super().close(*args, **kwargs)
        if cluster is not None and cluster.status.name not in ("closing", "closed"):
            cluster.close()
        return result


def cluster(address: str | None = None, *, backend: str = "auto", n_workers: int | None = None,
            threads_per_worker: int | None = None, memory_limit: str | int = "auto",
            dashboard_address: str | None = ":0", strict: bool | None = None,
            timeout: float | str = CONNECT_TIMEOUT, **options) -> Client:
    """A Dask client for this session's work.

    Parameters
    ----------
    address : str, optional
        An existing scheduler (``"tcp://10.0.0.5:8786"``) to connect to instead of
        starting workers here.
    backend : {"auto", "gpu", "cpu"}
        ``"auto"``: GPU workers when the session runs on the GPU, else CPU workers.
    n_workers : int, optional
        Workers to start. GPU: one per visible GPU by default; CPU: Dask's default
        (about one per core group).
    threads_per_worker, memory_limit, dashboard_address
        Passed to the cluster (``memory_limit`` is host memory per worker).
    strict : bool, optional
        Raise instead of starting CPU workers when GPU workers were asked for and cannot
        start. Defaults to the session's ``strict``.
    timeout : float or str
        Seconds (or ``"30s"``) allowed for reaching a scheduler and hearing back from it.
    **options
        More keyword arguments for ``LocalCUDACluster`` or ``LocalCluster``; for GPU
        workers they override the memory policy's.

    Returns
    -------
    distributed.Client
        For workers started here, a :class:`LocalClient`: closing it stops them.

    Examples
    --------
    >>> import workbench as wb
    >>> with wb.cluster(backend="cpu", n_workers=2) as client:  # doctest: +SKIP
    ...     print(len(client.scheduler_info()["workers"]))
    2
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    seconds = check_timeout(timeout)
    session = current_session()
    if address is not None:
        address = check_address(address)
        if n_workers is not None or threads_per_worker is not None or options:
            raise ValueError("n_workers, threads_per_worker and worker options describe workers "
                             f"started here; the scheduler at {address} has its own: pass "
                             "either an address or worker options, not both")
        probe(address, seconds)
        client = Client(address, timeout=seconds)
        workers = len(client.scheduler_info().get("workers", {}))
        session.note(f"cluster: connected to the scheduler at {address} ({workers} workers)")
        return client
    common = {"n_workers": check_count("n_workers", n_workers),
              "threads_per_worker": check_count("threads_per_worker", threads_per_worker),
              "memory_limit": check_memory_limit(memory_limit),
              "dashboard_address": dashboard_address}
    use_gpu = session.gpu if backend == "auto" else backend == "gpu"
    if use_gpu:
        started = _gpu_cluster(session, common, options, strict)
        if started is not None:
            client = LocalClient(started, timeout=seconds)
            own_rmm = any(k in options for k in RMM_OPTIONS)
            client.register_plugin(PolicyPlugin.from_session(session, gpu=True, apply=not own_rmm))
            return client
    local = LocalCluster(processes=True, **common, **options)
    session.note(f"cluster: {len(local.workers)} CPU workers ({local.scheduler_address})")
    client = LocalClient(local, timeout=seconds)
    client.register_plugin(PolicyPlugin.from_session(session, gpu=False))
    return client


def _gpu_cluster(session, common: dict, options: dict, strict: bool | None):
    """A LocalCUDACluster with the session's memory policy, or None after a fallback."""
    if not session.gpu:
        session.fallback("cluster", session._why_cpu(), strict=strict)
        return None
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:  # a fallback, not an error: CPU workers run the same work
        session.fallback("cluster", "dask-cuda is not installed: pip install 'gpu-workbench[gpu]'",
                         strict=strict)
        return None
    # Unset values take dask-cuda's defaults (one worker per visible GPU, one thread each).
    given = {k: v for k, v in common.items() if v is not None}
    # The RMM resource is the policy's, set by PolicyPlugin on each worker (the same
    # resources as in this process); dask-cuda keeps spilling and its memory limits.
    policy_kwargs = {k: v for k, v in session.policy.to_dask_cuda_kwargs().items()
                     if k not in RMM_OPTIONS}
    kwargs = {**policy_kwargs, **given, **options}
    started = LocalCUDACluster(**kwargs)
    session.note(f"cluster: {len(started.workers)} GPU workers ({started.scheduler_address}), "
                 f"memory policy {session.policy.summary()}")
    return started


class _CallableModule(types.ModuleType):
    """``import workbench.cluster`` binds this module where ``wb.cluster`` is the
    function; calling the module calls the function, so both spellings work."""

    def __call__(self, *args, **kwargs) -> Client:
        return cluster(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
