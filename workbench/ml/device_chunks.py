"""Feature chunks assembled on the device (CuPy); used only when a GPU is.

One device matrix (and one staging buffer for the raw column bytes, and one for the
target) is allocated per :class:`~workbench.ml.chunks.FeatureChunks` pass and reused
by every chunk: a pass over data larger than the device moves each byte across the
bus once and allocates nothing per chunk. On discrete GPUs the bytes come from the
frame's pinned host buffers (``cudaHostRegister``, so the copies run at PCIe/C2C
speed); on unified memory the assembly kernel reads the host columns in place.
"""

from __future__ import annotations

import time

import numpy as np

from workbench.ml.chunks import host_values


def _mapped(host: np.ndarray):
    """A CuPy view of host memory the GPU reads in place (unified memory), no copy."""
    import cupy as cp

    mem = cp.cuda.UnownedMemory(host.ctypes.data, host.nbytes, host,
                                device_id=cp.cuda.runtime.getDevice())
    return cp.ndarray(host.shape, dtype=host.dtype, memptr=cp.cuda.MemoryPointer(mem, 0))


class DeviceAssembler:
    """``assembler(start, stop)`` -> ``(X, y)`` on the device for frame rows ``start..stop-1``."""

    def __init__(self, frame, arrays, target, rows: int, dtype: str):
        import cupy as cp

        from workbench.frame import device

        self.cp, self.is_pinned = cp, device.is_pinned
        self.arrays, self.target = arrays, target
        self.unified, self.log = frame._unified, frame._session.transfers
        rows = min(rows, max(len(arrays[0]), 1))
        self.out = cp.empty((rows, len(arrays)), dtype=dtype)
        # Unified memory needs staging only for columns converted on the host (booleans).
        width = max(max(1, a.type.bit_width // 8) for a in arrays)
        self.staging = None if self.unified else cp.empty(rows * width, dtype=cp.uint8)
        self.ybuf = None

    def _place(self, host: np.ndarray, buffer, counts, keep: list):
        """``host`` on the device: a view (unified memory, frame-owned bytes) or a copy into ``buffer``."""
        keep.append(host)  # host memory the stream may still read: alive until it is synchronised
        if self.unified and not host.flags.owndata:
            counts["mapped"] += host.nbytes
            return _mapped(host)
        dev = buffer[: host.nbytes].view(host.dtype)
        dev.set(host)
        pinned = self.is_pinned(host.ctypes.data, host.nbytes)
        counts["pinned" if pinned else "pageable"] += host.nbytes
        return dev

    def __call__(self, start: int, stop: int):
        cp, rows, began = self.cp, stop - start, time.perf_counter()
        counts, keep = {"pinned": 0, "pageable": 0, "mapped": 0}, []
        X = self.out[:rows]
        staging = self.staging
        for j, arr in enumerate(self.arrays):
            host = np.ascontiguousarray(host_values(arr.slice(start, rows)))
            if staging is None and (host.flags.owndata or not self.unified):
                staging = self.staging = cp.empty(self.out.shape[0] * 8, dtype=cp.uint8)
            X[:, j] = self._place(host, staging, counts, keep)
        y = None
        if self.target is not None:
            host = host_values(self.target.slice(start, rows))
            if host.dtype == object:
                y = host  # strings / categoricals: the caller's encode() makes numbers of them
            else:
                host = np.ascontiguousarray(host)
                if self.ybuf is None or self.ybuf.dtype != host.dtype:
                    self.ybuf = cp.empty(self.out.shape[0], dtype=host.dtype)
                y = self._place(host, self.ybuf.view(cp.uint8), counts, keep)
        cp.cuda.get_current_stream().synchronize()  # the copies are done: time them
        seconds = time.perf_counter() - began
        for kind, nbytes in counts.items():
            if nbytes:
                self.log.record(f"feature chunk rows {start}:{stop}", nbytes, "host-to-device", kind,
                                seconds if kind != "mapped" else 0.0)
        return X, y
