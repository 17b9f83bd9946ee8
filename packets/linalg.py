"""Kernel-callable dense linear algebra for small Hermitian matrices.

Every function here follows the kernel rules of docs/architecture.md: plain
``@numba.njit`` without a signature, no allocation, no exceptions, no array
methods, only scalars, ``math``/``cmath`` and indexing into caller-provided
arrays.  numba-cuda therefore compiles them as device functions when a CUDA
kernel calls them, and the CPU driver inlines the very same code.

Conventions
-----------
* Eigenvalues are returned in ascending order in ``w``.
* Eigenvectors are the *columns* of ``v``: ``H v[:, n] = w[n] v[:, n]``.
* The phase (gauge) of the eigenvectors is arbitrary but deterministic.
  Nothing downstream may depend on it: geometry is computed from
  gauge-invariant sum-over-states formulas (see :mod:`packets.geometry`).
"""
import math

import numba

from .jit import kernel
import numpy as np

#: Relative off-diagonal tolerance at which the Jacobi sweeps stop.
JACOBI_TOL = 1e-15
#: Upper bound on Jacobi sweeps (quadratic convergence needs ~6-10 for N <= 8).
JACOBI_MAX_SWEEPS = 60


@kernel(inline="always")
def _abs2(z):
    return z.real * z.real + z.imag * z.imag


@kernel
def eigh2(h, w, v):
    """Closed-form eigen-decomposition of a 2x2 Hermitian matrix.

    Writes H = a0 + d.sigma with d = (Re h01, -Im h01, (h00 - h11)/2); the
    eigenvalues are a0 -/+ |d|.  The eigenvector formula is chosen by the sign
    of d_z so that it never divides by a small number; at |d| = 0 (exact
    degeneracy) the identity is returned.

    Parameters
    ----------
    h : complex128[2, 2]
        Hermitian matrix (only the upper triangle and the diagonal are read).
    w : float64[2]
        Output eigenvalues, ascending.
    v : complex128[2, 2]
        Output unitary matrix of eigenvectors (columns).
    """
    a0 = 0.5 * (h[0, 0].real + h[1, 1].real)
    dz = 0.5 * (h[0, 0].real - h[1, 1].real)
    dx = h[0, 1].real
    dy = -h[0, 1].imag
    dn = math.sqrt(dx * dx + dy * dy + dz * dz)
    w[0] = a0 - dn
    w[1] = a0 + dn
    if dn == 0.0:
        v[0, 0] = 1.0
        v[1, 0] = 0.0
        v[0, 1] = 0.0
        v[1, 1] = 1.0
        return
    # upper eigenvector (a, b) of d.sigma with eigenvalue +|d|
    if dz >= 0.0:
        a = complex(dn + dz, 0.0)
        b = complex(dx, dy)
    else:
        a = complex(dx, -dy)
        b = complex(dn - dz, 0.0)
    nrm = math.sqrt(_abs2(a) + _abs2(b))
    a = a / nrm
    b = b / nrm
    v[0, 1] = a
    v[1, 1] = b
    # lower eigenvector is orthogonal: (-conj(b), conj(a))
    v[0, 0] = -b.conjugate()
    v[1, 0] = a.conjugate()


@kernel
def jacobi_eigh(a, w, v):
    """Cyclic complex Jacobi eigen-decomposition of an N x N Hermitian matrix.

    Each 2x2 rotation annihilates one off-diagonal pair exactly; sweeps stop
    when the off-diagonal Frobenius norm falls below ``JACOBI_TOL`` times the
    Frobenius norm of the matrix.  Convergence is quadratic and unconditional,
    also for (near-)degenerate spectra, which is why Jacobi is used instead of
    a QR iteration: it needs no shifts and no allocation.

    Parameters
    ----------
    a : complex128[N, N]
        Hermitian matrix; **overwritten** (it ends up diagonal).  Pass a copy
        when the matrix is still needed.
    w : float64[N]
        Output eigenvalues, ascending.
    v : complex128[N, N]
        Output unitary eigenvector matrix (columns).
    """
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            v[i, j] = 0.0
        v[i, i] = 1.0
    total = 0.0
    for i in range(n):
        for j in range(n):
            total += _abs2(a[i, j])
    thresh = JACOBI_TOL * JACOBI_TOL * total
    for _sweep in range(JACOBI_MAX_SWEEPS):
        off = 0.0
        for p in range(n):
            for q in range(p + 1, n):
                off += _abs2(a[p, q])
        if 2.0 * off <= thresh:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p, q]
                mag = math.sqrt(_abs2(apq))
                if mag == 0.0:
                    continue
                # phase so that a[p, q] = mag * ph
                ph = apq / mag
                app = a[p, p].real
                aqq = a[q, q].real
                # real symmetric rotation on the de-phased pair
                theta = 0.5 * (aqq - app) / mag
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                # unitary G acting on columns p, q:
                #   col_p' = c col_p - s conj(ph) col_q
                #   col_q' = s ph col_p + c col_q
                sp = s * ph
                spc = sp.conjugate()
                # A <- A G  (columns)
                for k in range(n):
                    akp = a[k, p]
                    akq = a[k, q]
                    a[k, p] = c * akp - spc * akq
                    a[k, q] = sp * akp + c * akq
                # A <- G^dagger A  (rows)
                for k in range(n):
                    apk = a[p, k]
                    aqk = a[q, k]
                    a[p, k] = c * apk - sp * aqk
                    a[q, k] = spc * apk + c * aqk
                a[p, q] = 0.0
                a[q, p] = 0.0
                a[p, p] = a[p, p].real
                a[q, q] = a[q, q].real
                # V <- V G
                for k in range(n):
                    vkp = v[k, p]
                    vkq = v[k, q]
                    v[k, p] = c * vkp - spc * vkq
                    v[k, q] = sp * vkp + c * vkq
    for i in range(n):
        w[i] = a[i, i].real
    # selection sort, ascending, swapping eigenvector columns along
    for i in range(n - 1):
        m = i
        for j in range(i + 1, n):
            if w[j] < w[m]:
                m = j
        if m != i:
            tmp = w[i]
            w[i] = w[m]
            w[m] = tmp
            for k in range(n):
                z = v[k, i]
                v[k, i] = v[k, m]
                v[k, m] = z


@kernel
def eigh(h, w, v, work):
    """Eigen-decomposition of a small Hermitian matrix, closed form for N = 2.

    Parameters
    ----------
    h : complex128[N, N]
        Hermitian matrix, not modified.
    w : float64[N]
        Output eigenvalues, ascending.
    v : complex128[N, N]
        Output eigenvectors (columns).
    work : complex128[N, N]
        Scratch (used for N > 2).
    """
    n = h.shape[0]
    if n == 1:
        w[0] = h[0, 0].real
        v[0, 0] = 1.0
    elif n == 2:
        eigh2(h, w, v)
    else:
        for i in range(n):
            for j in range(n):
                work[i, j] = h[i, j]
        jacobi_eigh(work, w, v)


@kernel(inline="always")
def sandwich(v, m, out):
    """Basis change ``out = v^dagger m v`` for N x N matrices.

    Used to take dH/dk_a from the orbital basis to the band basis, giving the
    velocity matrix elements <u_n|dH/dk_a|u_m>.
    """
    n = v.shape[0]
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                vki = v[k, i].conjugate()
                for l in range(n):
                    acc += vki * m[k, l] * v[l, j]
            out[i, j] = acc


@kernel(inline="always")
def expectation2_at(m3, a, c0, c1):
    """Real part of ``<c|m3[a]|c>`` for a two-component state (c0, c1)."""
    return ((c0.real * c0.real + c0.imag * c0.imag) * m3[a, 0, 0].real
            + (c1.real * c1.real + c1.imag * c1.imag) * m3[a, 1, 1].real
            + 2.0 * (c0.conjugate() * m3[a, 0, 1] * c1).real)


@kernel(inline="always")
def expectation_at(m3, a, chi):
    """Real part of ``<chi| m3[a] |chi>`` (indexes a stack without making a view)."""
    n = chi.shape[0]
    acc = 0.0
    for k in range(n):
        ck = chi[k].conjugate()
        for l in range(n):
            acc += (ck * m3[a, k, l] * chi[l]).real
    return acc


@kernel(inline="always")
def expectation(m, chi):
    """Real part of ``<chi| m |chi>`` for a Hermitian matrix ``m``."""
    n = chi.shape[0]
    acc = 0.0
    for k in range(n):
        ck = chi[k].conjugate()
        for l in range(n):
            acc += (ck * m[k, l] * chi[l]).real
    return acc


@kernel(inline="always")
def band_amplitudes(v, chi, out):
    """Components ``out[n] = <u_n|chi>`` of ``chi`` in the eigenbasis given by the columns of ``v``."""
    n = chi.shape[0]
    for i in range(n):
        acc = 0j
        for k in range(n):
            acc += v[k, i].conjugate() * chi[k]
        out[i] = acc


@kernel(inline="always")
def unitary_step(w, v, tau, chi, tmp):
    """Apply ``exp(-i H tau)`` to ``chi`` in place, from H's eigensystem.

    ``exp(-i H tau) = V diag(exp(-i w tau)) V^dagger`` is unitary to round-off
    for any tau, so the pseudospin norm is conserved by construction (not
    renormalised).

    Parameters
    ----------
    w, v : eigenvalues and eigenvector columns of H (from :func:`eigh`).
    tau : float
        Time (code units, hbar = 1).
    chi : complex128[N]
        State, overwritten.
    tmp : complex128[N]
        Scratch.
    """
    n = chi.shape[0]
    for i in range(n):
        acc = 0j
        for k in range(n):
            acc += v[k, i].conjugate() * chi[k]
        ph = -w[i] * tau
        tmp[i] = acc * complex(math.cos(ph), math.sin(ph))
    for k in range(n):
        acc = 0j
        for i in range(n):
            acc += v[k, i] * tmp[i]
        chi[k] = acc


@kernel
def is_hermitian(h, tol):
    """True when ``max |h - h^dagger| <= tol * max(1, max |h|)``."""
    n = h.shape[0]
    scale = 1.0
    err = 0.0
    for i in range(n):
        for j in range(n):
            a = abs(h[i, j])
            if a > scale:
                scale = a
            d = abs(h[i, j] - h[j, i].conjugate())
            if d > err:
                err = d
    return err <= tol * scale


@kernel(inline="always")
def pade2(dx, dy, dz, tau, c0, c1):
    """Unitary (2,2) Pade approximant of ``exp(-i tau d.sigma)`` applied to (c0, c1).

    Since (d.sigma)^2 = |d|^2, the diagonal Pade approximant
    R(z) = (1 + z/2 + z^2/12)/(1 - z/2 + z^2/12) at z = -i tau d.sigma is

        R = [(A^2 - B) - i A tau d.sigma] / (A^2 + B),   A = 1 - |d|^2 tau^2/12,  B = |d|^2 tau^2/4,

    *exactly unitary* (a rotation by 2 atan(tau |d| / 2A) instead of tau |d|,
    an O((tau |d|)^5) phase error, the order of the fourth-order integrators
    that use it) and free of sqrt and trigonometric functions — this is what
    makes the two-band coherent step cheap on both backends.  Returns the new
    pair.
    """
    d2t2 = (dx * dx + dy * dy + dz * dz) * tau * tau
    a = 1.0 - d2t2 / 12.0
    b = 0.25 * d2t2
    inv = 1.0 / (a * a + b)
    c = (a * a - b) * inv
    s = a * tau * inv
    n0 = c * c0 - 1j * s * (dz * c0 + complex(dx, -dy) * c1)
    n1 = c * c1 - 1j * s * (complex(dx, dy) * c0 - dz * c1)
    return n0, n1


@kernel(inline="always")
def dvector(h):
    """(d_x, d_y, d_z) of a 2x2 Hermitian h = a0 + d.sigma (a0 dropped: a global phase)."""
    return h[0, 1].real, -h[0, 1].imag, 0.5 * (h[0, 0].real - h[1, 1].real)


@kernel(inline="always")
def expm2_apply(h, tau, chi):
    """Apply the unitary Pade approximant of ``exp(-i H tau)`` (see :func:`pade2`) to a 2-vector.

    The scalar part a0 of H = a0 + d.sigma only contributes a global phase and
    is dropped (no observable depends on it).
    """
    dx, dy, dz = dvector(h)
    n0, n1 = pade2(dx, dy, dz, tau, chi[0], chi[1])
    chi[0] = n0
    chi[1] = n1


@kernel
def expm_eig_apply(h, tau, chi, w, v, work, tmp):
    """Apply ``exp(-i H tau)`` to ``chi`` in place via the Jacobi eigensystem (any N)."""
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            work[i, j] = h[i, j]
    jacobi_eigh(work, w, v)
    unitary_step(w, v, tau, chi, tmp)


@kernel
def _eigh1(h, w, v, work):
    w[0] = h[0, 0].real
    v[0, 0] = 1.0


@kernel(inline="always")
def _eigh2w(h, w, v, work):
    eigh2(h, w, v)


@kernel
def _eighj(h, w, v, work):
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            work[i, j] = h[i, j]
    jacobi_eigh(work, w, v)


@kernel(inline="always")
def _expm2w(h, tau, chi, w, v, work, tmp):
    expm2_apply(h, tau, chi)


def eigh_for(n):
    """The eigensolver ``f(h, w, v, work)`` for a compile-time size ``n``.

    Closed form for n <= 2, Jacobi otherwise; kernel factories use this so
    the Jacobi code is not compiled into two-band kernels.
    """
    if n == 1:
        return _eigh1
    if n == 2:
        return _eigh2w
    return _eighj


def expm_for(n):
    """``f(h, tau, chi, w, v, work, tmp)`` applying exp(-i h tau) for compile-time size ``n``."""
    return _expm2w if n == 2 else expm_eig_apply
