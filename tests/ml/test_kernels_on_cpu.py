"""The streamed solvers' GPU kernels, their arithmetic checked on the CPU.

The CUDA sources of ``streamed_kmeans`` and ``streamed_logistic`` are compiled as C++
with a small stand-in for the CUDA built-ins (one thread per block, run block after
block), then fed row-major, column-major and strided matrices: their sums must equal
the NumPy passes of the same solvers. This checks what the kernels compute (indexing,
strides, the register and the shared-memory paths, the casts); the GPU tests check
them on the device, warps and all.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from workbench.ml import streamed_kmeans as km
from workbench.ml import streamed_logistic as sl
from workbench.ml import streaming

CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build the kernels for the CPU")

SHIM = r"""
#include <cmath>
using std::fmax; using std::fabs; using std::exp; using std::log1p;
struct dim { unsigned x; };
static dim threadIdx = {0}, blockIdx = {0}, blockDim = {1}, gridDim = {1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() {}
inline double __shfl_down_sync(unsigned, double, int) { return 0.0; }  // no other lanes
inline double atomicAdd(double* p, double v) { double old = *p; *p += v; return old; }
"""
GRID = 7  # blocks, so rows are shared out with a stride as on the GPU


def _build(tmp_path, source: str, defines: dict, kernel: str, params: str, args: str):
    head = "".join(f"#define {k} {v}\n" for k, v in {**defines, "THREADS": 32}.items())
    driver = (f'extern "C" void run({params}, double* partial) {{ gridDim.x = {GRID};\n'
              f"  for (unsigned b = 0; b < {GRID}; ++b) {{ blockIdx.x = b; {kernel}({args}, partial); }} }}\n")
    name = "k" + str(abs(hash((source, tuple(sorted(defines.items()))))))
    src, lib = tmp_path / f"{name}.cpp", tmp_path / f"{name}.so"
    src.write_text(SHIM + head + source + driver)
    subprocess.run([CXX, "-O1", "-w", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib)).run


def _strided(a: np.ndarray, floating: bool = True):
    """The array as the GPU launcher passes it: pointer, element strides, (kept alive)."""
    a, r, c, _ = streaming.kernel_input(a, floating)
    return ctypes.c_void_p(a.ctypes.data), ctypes.c_longlong(r), ctypes.c_longlong(c), a


def _layouts(X):
    wide = np.hstack([X, X[:, :1]])
    return {"row-major": np.ascontiguousarray(X), "column-major": np.asfortranarray(X),
            "column view": wide[:, : X.shape[1]]}


@pytest.mark.parametrize("k, f", [(8, 3), (16, 4), (40, 20), (3, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lloyd_kernel_sums_are_the_numpy_pass(tmp_path, k, f, dtype):
    rng = np.random.default_rng(k + f)
    X = (rng.normal(size=(2_001, f)) * 3).astype(dtype)
    centers = rng.normal(size=(k, f)) * 3
    want = km._pass([(X, None, 0)], np, centers)
    width = k * f + k + 1
    registers = width <= km._REGISTER_CELLS
    ctype = streaming._C_TYPES[dtype]
    run = _build(tmp_path, (streaming.BLOCK_SUMS if registers else "") + km._LLOYD_SOURCE,
                 {"K": k, "F": f, "TYPE": ctype, "REGISTERS": int(registers), "WIDTH": width},
                 "lloyd_step", f"const {ctype}* X, long long xr, long long xc, long long n, const double* C",
                 "X, xr, xc, n, C")
    C = np.ascontiguousarray(centers)
    for layout, A in _layouts(X).items():
        partial = np.zeros((GRID, width))
        ptr, xr, xc, _ = _strided(A)
        run(ptr, xr, xc, ctypes.c_longlong(len(A)), ctypes.c_void_p(C.ctypes.data),
            ctypes.c_void_p(partial.ctypes.data))
        got = partial.sum(axis=0)
        np.testing.assert_allclose(got[: k * f].reshape(k, f), want[0], rtol=1e-10, atol=1e-9, err_msg=layout)
        np.testing.assert_array_equal(got[k * f: k * f + k], want[1], err_msg=layout)
        assert got[-1] == pytest.approx(want[2], rel=1e-10), layout


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("f, xdtype, ydtype", [(3, "float32", "int32"), (15, "float64", "int8"),
                                               (1, "float32", "bool")])
def test_newton_kernel_sums_are_the_numpy_pass(tmp_path, f, xdtype, ydtype, intercept):
    rng = np.random.default_rng(f)
    X = (rng.normal(size=(1_503, f)) * 2 + 1).astype(xdtype)
    y = (X @ rng.normal(size=f) + rng.normal(size=len(X)) > 0).astype(ydtype)
    mean, scale = X.mean(0).astype(np.float64), X.std(0).astype(np.float64)
    theta = rng.normal(size=f + int(intercept)) * 0.3
    model = sl.StreamedLogistic(fit_intercept=intercept)
    model._passes = 0
    loss, g, H = model._newton_pass([(X, y, 0)], np, mean, scale, theta, len(X))
    p = f + int(intercept)
    width = 1 + p + p * (p + 1) // 2
    xtype, ytype = streaming._C_TYPES[xdtype], streaming._C_TYPES[ydtype]
    run = _build(tmp_path, sl._NEWTON_SOURCE,
                 {"F": f, "INTERCEPT": int(intercept), "XTYPE": xtype, "YTYPE": ytype, "WIDTH": width},
                 "newton_step", f"const {xtype}* X, long long xr, long long xc, const {ytype}* y, "
                 "long long yr, long long n, const double* M, const double* S, const double* v, double c",
                 "X, xr, xc, y, yr, n, M, S, v, c")
    ys = np.repeat(y, 2)[::2]  # a strided target
    for layout, A in _layouts(X).items():
        partial = np.zeros((GRID, width))
        ptr, xr, xc, _ = _strided(A)
        yptr, yr, _, _ = _strided(ys, floating=False)
        run(ptr, xr, xc, yptr, yr, ctypes.c_longlong(len(A)), ctypes.c_void_p(mean.ctypes.data),
            ctypes.c_void_p(scale.ctypes.data), ctypes.c_void_p(np.ascontiguousarray(theta[:f]).ctypes.data),
            ctypes.c_double(theta[f] if intercept else 0.0), ctypes.c_void_p(partial.ctypes.data))
        total = partial.sum(axis=0) / len(X)
        assert total[0] == pytest.approx(loss, rel=1e-12), layout
        np.testing.assert_allclose(total[1: 1 + p], g, rtol=1e-9, atol=1e-14, err_msg=layout)
        tri = np.zeros((p, p))
        tri[np.tril_indices(p)] = total[1 + p:]
        np.testing.assert_allclose(tri + np.tril(tri, -1).T, H, rtol=1e-9, atol=1e-14, err_msg=layout)
