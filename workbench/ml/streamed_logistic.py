"""Logistic regression over chunks, the loss and its derivatives streamed.

The problem is scikit-learn's ``LogisticRegression``: mean log-loss plus
``‖w‖² / (2·C·n)``, the intercept not penalised; binary with one sigmoid column,
multinomial (softmax over all classes) beyond two. Each pass over the chunks is
computed on the device for device chunks and summed in float64; the few parameters
stay on the host.

* **Binary, up to** :data:`NEWTON_FEATURES` **features: Newton's method** (as
  scikit-learn's ``newton-cholesky``): each pass also sums the Hessian, ``(f+1)²``
  numbers, so it converges in a handful of passes, with a backtracking step when the
  loss would rise. A pass is bound by reading the chunks, so fewer passes is what
  makes a fit beyond the budget fast.
* **Otherwise: full-batch L-BFGS** (SciPy's L-BFGS-B), one loss-and-gradient pass per call.

Both work on coefficients for standardised features (means and variances from one
streamed pass first), which keeps the problem well conditioned. It is the same problem
re-parametrised (the penalty is carried over exactly), so the answer is
scikit-learn's, not that of a model fitted to scaled features; the rows themselves are
never rescaled in the frame.

>>> import numpy as np, polars as pl, workbench as wb
>>> from workbench.ml.chunks import FeatureChunks
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=2000)
>>> f = wb.Frame.from_polars(pl.DataFrame({"x": x, "y": (x + rng.normal(size=2000) > 0).astype(int)}))
>>> m = StreamedLogistic(n_classes=2).fit(FeatureChunks(f, ["x"], "y", rows=512))
>>> bool((m.predict(x[:, None]) == (x > 0)).mean() > 0.95)
True
"""

from __future__ import annotations

import warnings

import numpy as np

from workbench.ml.streaming import (BLOCK_SUMS, array_module, as_matrix, chunk_sums, host,
                                   kernel_input, module_of, moments, on)

#: binary problems with up to this many features are solved by Newton's method
NEWTON_FEATURES = 64
#: up to this many parameters (features + intercept) a Newton pass is one GPU kernel per chunk
_FUSED_PARAMETERS = 16


class StreamedLogistic:
    """L2-penalised logistic regression (scikit-learn's ``C`` convention) from chunks
    whose ``y`` holds class indices ``0..n_classes-1``."""

    def __init__(self, n_classes: int = 2, C: float = 1.0, fit_intercept: bool = True,
                 max_iter: int = 200, tol: float = 1e-6):
        if n_classes < 2:
            raise ValueError(f"logistic regression needs at least 2 classes; got {n_classes}")
        if C <= 0:
            raise ValueError(f"C must be > 0 (the inverse of the penalty strength); got {C}")
        self.n_classes, self.C, self.fit_intercept = int(n_classes), float(C), bool(fit_intercept)
        self.max_iter, self.tol = int(max_iter), float(tol)

    def fit(self, chunks) -> StreamedLogistic:
        from scipy.optimize import minimize

        if chunks.target is None:
            raise ValueError("logistic regression needs a target column; FeatureChunks has none")
        n, mean, var = moments(chunks)
        scale = np.sqrt(var)
        scale[scale == 0] = 1.0
        if not self.fit_intercept:
            mean = np.zeros_like(mean)
        f, k = len(mean), 1 if self.n_classes == 2 else self.n_classes
        xp = array_module(chunks.device)
        self._passes = 0

        def raw(theta):
            # Standardised coefficients v and intercept c -> those of the raw features.
            v = theta[: f * k].reshape(f, k)
            w = v / scale[:, None]
            c = theta[f * k:] if self.fit_intercept else np.zeros(k)
            return w, c - mean @ w

        def loss_grad(theta):
            w, b = raw(theta)
            loss, gw, gb = self._stream(chunks, xp, w, b, n)
            loss += (w * w).sum() / (2 * self.C * n)
            gw += w / (self.C * n)
            # Chain rule back to (v, c): b = c - meanᵀ(v / scale).
            gv = (gw - np.outer(mean, gb)) / scale[:, None]
            grad = np.concatenate([gv.ravel(), gb]) if self.fit_intercept else gv.ravel()
            return loss, grad

        if k == 1 and f <= NEWTON_FEATURES:
            v, c, self.n_iter_ = self._newton(chunks, xp, mean, scale, n)
            w = v / scale
            self.coef_ = w[None, :].copy()
            self.intercept_ = np.array([c - mean @ w])
            self.classes_ = np.arange(self.n_classes)
            self.n_features_in_ = f
            return self
        theta0 = np.zeros(f * k + (k if self.fit_intercept else 0))
        result = minimize(loss_grad, theta0, method="L-BFGS-B", jac=True,
                          options={"maxiter": self.max_iter, "gtol": self.tol,
                                   "ftol": 64 * np.finfo(float).eps, "maxls": 50})
        if not result.success and result.nit >= self.max_iter:
            warnings.warn(f"streamed logistic regression did not converge in {self.max_iter} "
                          "iterations; raise max_iter", RuntimeWarning, stacklevel=2)
        w, b = raw(result.x)
        self.coef_, self.intercept_ = w.T.copy(), b
        self.classes_ = np.arange(self.n_classes)
        self.n_iter_, self.n_features_in_ = int(result.nit), f
        return self

    def _newton(self, chunks, xp, mean, scale, n):
        """Binary problem by Newton's method on standardised features: (v, c, iterations)."""
        f = len(mean)
        p = f + int(self.fit_intercept)
        penalty = np.zeros(p)
        penalty[:f] = 1.0 / (self.C * n * scale ** 2)  # ‖w‖² = Σ v² / scale²

        def evaluate(theta):
            loss, g, H = self._newton_pass(chunks, xp, mean, scale, theta, n)
            return (loss + 0.5 * (penalty * theta * theta).sum(), g + penalty * theta,
                    H + np.diag(penalty))

        theta = np.zeros(p)
        loss, g, H = evaluate(theta)
        for it in range(self.max_iter + 1):
            if np.abs(g).max() <= self.tol:
                break
            if it == self.max_iter:
                warnings.warn(f"streamed logistic regression did not converge in {self.max_iter} "
                              "iterations; raise max_iter", RuntimeWarning, stacklevel=3)
                break
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(H, g, rcond=None)[0]
            t, slope = 1.0, float(g @ step)
            while True:
                new = theta - t * step
                new_loss, new_g, new_H = evaluate(new)
                if new_loss <= loss - 1e-4 * t * slope or t < 1e-8:
                    break
                t /= 2
            if new_loss > loss - 64 * np.finfo(float).eps * max(1.0, abs(loss)):
                break  # no descent left at float64 precision: converged as far as it goes
            theta, loss, g, H = new, new_loss, new_g, new_H
        return theta[:f], (theta[f] if self.fit_intercept else 0.0), it

    def _newton_pass(self, chunks, xp, mean, scale, theta, n):
        """Mean log-loss, gradient and Hessian at ``theta`` (standardised), one pass."""
        f = len(mean)
        M, S = on(xp, mean), on(xp, scale)
        v = on(xp, theta[:f])
        c = float(theta[f]) if self.fit_intercept else 0.0
        p = len(theta)
        if xp is not np and p <= _FUSED_PARAMETERS:
            return self._fused_pass(chunks, M, S, v, c, n)
        loss, g, H = xp.zeros(()), xp.zeros(p), xp.zeros((p, p))
        for X, y, _ in chunks:
            A = (X.astype(xp.float64) - M) / S
            z = A @ v + c
            t = y.astype(xp.float64)
            loss += (xp.logaddexp(0.0, z) - t * z).sum()
            s = xp.exp(-xp.logaddexp(0.0, -z))  # the sigmoid, without overflow
            r, w = s - t, s * (1.0 - s)
            g[:f] += A.T @ r
            H[:f, :f] += A.T @ (A * w[:, None])
            if self.fit_intercept:
                g[f] += r.sum()
                col = A.T @ w
                H[:f, f] += col
                H[f, :f] += col
                H[f, f] += w.sum()
        self._passes += 1
        return float(host(loss)) / n, host(g) / n, host(H) / n

    def _fused_pass(self, chunks, M, S, v, c, n):
        """:meth:`_newton_pass` on the GPU as one kernel per chunk (see ``_NEWTON_SOURCE``)."""
        import cupy as cp

        f = len(M)
        p = f + int(self.fit_intercept)
        width = 1 + p + p * (p + 1) // 2
        total = cp.zeros(width)
        for X, y, _ in chunks:
            total += _newton_chunk(X, y, M, S, v, c, self.fit_intercept, width)
        self._passes += 1
        total = host(total) / n
        g, H = total[1: 1 + p], np.zeros((p, p))
        H[np.tril_indices(p)] = total[1 + p:]
        H = H + np.tril(H, -1).T
        return float(total[0]), g, H

    def _stream(self, chunks, xp, w, b, n):
        """Mean log-loss and its gradient in (w, b), one pass over the chunks."""
        W, B = on(xp, w), on(xp, b)
        loss, gw, gb = xp.zeros(()), xp.zeros_like(W), xp.zeros_like(B)
        for X, y, _ in chunks:
            X = X.astype(xp.float64)
            Z = X @ W + B
            if self.n_classes == 2:
                t = y.astype(xp.float64)[:, None]
                loss += (xp.logaddexp(0.0, Z) - t * Z).sum()
                G = xp.exp(-xp.logaddexp(0.0, -Z)) - t  # the sigmoid, without overflow
            else:
                top = Z.max(axis=1, keepdims=True)
                E = xp.exp(Z - top)
                total = E.sum(axis=1, keepdims=True)
                rows = xp.arange(len(Z))
                labels = y.astype(xp.int64)
                loss += (xp.log(total[:, 0]) + top[:, 0] - Z[rows, labels]).sum()
                G = E / total
                G[rows, labels] -= 1.0
            gw += X.T @ G
            gb += G.sum(axis=0)
        self._passes += 1
        return float(host(loss)) / n, host(gw) / n, host(gb) / n

    def decision_function(self, X):
        xp, X = as_matrix(X, self.n_features_in_, "StreamedLogistic")
        Z = X @ on(xp, self.coef_.T) + on(xp, self.intercept_)
        return Z[:, 0] if self.n_classes == 2 else Z

    def predict_proba(self, X):
        """Class probabilities, shape ``(n, n_classes)``, in the kind of array ``X`` is."""
        Z = self.decision_function(X)
        xp = module_of(Z)
        if self.n_classes == 2:
            # Written into the output, not stacked: no second (n, 2) temporary.
            out = xp.empty((len(Z), 2))
            out[:, 1] = xp.exp(-xp.logaddexp(0.0, -Z))
            xp.subtract(1.0, out[:, 1], out=out[:, 0])
            return out
        Z -= Z.max(axis=1, keepdims=True)  # Z is this call's own array
        xp.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        return Z

    def predict(self, X):
        """Class indices ``0..n_classes-1``: the largest score (no probabilities needed)."""
        Z = self.decision_function(X)
        return (Z > 0).astype(np.int64) if self.n_classes == 2 else Z.argmax(axis=1)


# One GPU kernel per chunk sums a Newton step's loss, gradient and Hessian (its lower
# triangle) on it: each thread standardises its rows and adds their terms to sums in
# registers (float64), which streaming.block_sums adds up per block. As array
# operations a pass is about twenty passes over each chunk in device memory.
_NEWTON_SOURCE = BLOCK_SUMS + r"""
#define P (F + INTERCEPT)
extern "C" __global__ void newton_step(const XTYPE* X, long long xr, long long xc,
                                       const YTYPE* y, long long yr, long long n,
                                       const double* M, const double* S, const double* v,
                                       double c, double* partial) {
    double mean[F], inv[F], coef[F], acc[WIDTH], a[P];
    #pragma unroll
    for (int j = 0; j < F; ++j) { mean[j] = M[j]; inv[j] = 1.0 / S[j]; coef[j] = v[j]; }
    #pragma unroll
    for (int i = 0; i < WIDTH; ++i) acc[i] = 0.0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; r < n; r += stride) {
        double z = c;
        #pragma unroll
        for (int j = 0; j < F; ++j) {
            a[j] = ((double)X[r * xr + j * xc] - mean[j]) * inv[j];
            z += a[j] * coef[j];
        }
        if (INTERCEPT) a[P - 1] = 1.0;
        const double t = (double)y[r * yr];
        const double e = exp(-fabs(z));
        acc[0] += fmax(z, 0.0) + log1p(e) - t * z;
        const double s = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        const double res = s - t, w = s * (1.0 - s);
        int cell = 1 + P;
        #pragma unroll
        for (int i = 0; i < P; ++i) {
            acc[1 + i] += a[i] * res;
            const double wa = w * a[i];
            #pragma unroll
            for (int j = 0; j <= i; ++j) acc[cell++] += wa * a[j];
        }
    }
    block_sums(acc, partial);
}
"""


def _newton_chunk(X, y, M, S, v, c, intercept, width):
    """One chunk's loss, gradient and Hessian triangle (flat, float64) on the device."""
    import cupy as cp

    X, xr, xc, xtype = kernel_input(X, floating=True)
    y, yr, _, ytype = kernel_input(y if y.ndim == 1 else y.ravel(), floating=False)
    defines = {"F": X.shape[1], "INTERCEPT": int(intercept), "XTYPE": xtype, "YTYPE": ytype}
    return chunk_sums(_NEWTON_SOURCE, "newton_step", defines, len(X), width,
                      (X, cp.int64(xr), cp.int64(xc), y, cp.int64(yr), cp.int64(len(X)),
                       M, S, v, cp.float64(c)))
