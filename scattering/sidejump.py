"""Gauge-invariant coordinate shift (side jump) at a scattering event.

Sinitsyn, Niu & MacDonald, PRB 73, 075318 (2006): for a
scalar impurity and a transition (n, k) -> (m, k'),

    delta r = A_m(k') - A_n(k) - (grad_k + grad_k') arg <u_m(k')|u_n(k)>.

Each term is gauge dependent; the sum is not.  Writing Q = 1 - |u><u| and
using <u|grad u> = -i A, the combination becomes

    delta r_a = -Im [ ( <u'|Q d_a u> + <d_a u'|Q'|u> ) / <u'|u> ]

with u = u_n(k), u' = u_m(k'), and the projected derivatives from sums over
states (no eigenvector derivative, no gauge fixing):

    Q |d_a u_n>       = sum_{l != n} |u_l> <u_l|d_a H|u_n> / (eps_n - eps_l)     at k,
    <d_a u'_m| Q' |u> = sum_{l != m} <u'_m|d_a H'|u'_l> <u'_l|u> / (eps'_m - eps'_l)  at k'.

Pairs closer than ``degtol`` in energy are skipped (the degenerate rule of
:mod:`packets.bandgeom`).  When |<u'|u>| < 1e-12 the shift is undefined; the
Born weight of such a transition vanishes as |<u'|u>|^2, so the function
returns 0 and reports it.
"""
import numba

from packets.jit import kernel


@kernel
def coordinate_shift(w, v, dh, n, w2, v2, dh2, m, degtol, out):
    """Side jump delta r (length, dim components) into ``out``; returns |<u'|u>|.

    Parameters
    ----------
    w, v : eigenvalues / eigenvectors (columns) of H at the initial (x, k).
    dh : complex128[dim, nb, nb], dH/dk at k.
    n : initial band.
    w2, v2, dh2 : the same at the final k'.
    m : final band.
    degtol : energy below which a band pair counts as degenerate.
    out : float64[dim], the shift.
    """
    nb = w.shape[0]
    dim = out.shape[0]
    ov = 0j
    for i in range(nb):
        ov += v2[i, m].conjugate() * v[i, n]
    mag = abs(ov)
    if mag < 1e-12:
        for a in range(dim):
            out[a] = 0.0
        return mag
    for a in range(dim):
        acc = 0j
        # <u'|Q d_a u> = sum_{l != n} <u'|u_l> <u_l|dH|u_n> / (eps_n - eps_l)
        for l in range(nb):
            if l == n or abs(w[n] - w[l]) <= degtol:
                continue
            ovl = 0j
            mel = 0j
            for i in range(nb):
                ovl += v2[i, m].conjugate() * v[i, l]
                vil = v[i, l].conjugate()
                for j in range(nb):
                    mel += vil * dh[a, i, j] * v[j, n]
            acc += ovl * mel / (w[n] - w[l])
        # <d_a u'|Q'|u> = sum_{l != m} <u'_m|dH'|u'_l> <u'_l|u> / (eps'_m - eps'_l)
        for l in range(nb):
            if l == m or abs(w2[m] - w2[l]) <= degtol:
                continue
            ovl = 0j
            mel = 0j
            for i in range(nb):
                ovl += v2[i, l].conjugate() * v[i, n]
                vim = v2[i, m].conjugate()
                for j in range(nb):
                    mel += vim * dh2[a, i, j] * v2[j, l]
            acc += mel * ovl / (w2[m] - w2[l])
        out[a] = -(acc / ov).imag
    return mag


def side_jump(model, k, band, k2, band2, x=None, degtol=None):
    """Host wrapper: the coordinate shift for (band, k) -> (band2, k2) of ``model``.

    Returns a float64 array of length dim (length units).
    """
    import numpy as np

    from packets import bandgeom

    degtol = bandgeom.DEGTOL if degtol is None else degtol
    k = np.asarray(k, dtype=np.float64).reshape(model.dim)
    k2 = np.asarray(k2, dtype=np.float64).reshape(model.dim)
    x = np.zeros(model.dim) if x is None else np.asarray(x, dtype=np.float64).reshape(model.dim)
    for b in (band, band2):
        if not 0 <= b < model.nbands:
            raise ValueError(f"band index {b} out of range [0, {model.nbands - 1}]")
    w, v = model.bands(k[None], x[None])
    w2, v2 = model.bands(k2[None], x[None])
    dh = model.dhdk_matrices(k[None], x[None])[0]
    dh2 = model.dhdk_matrices(k2[None], x[None])[0]
    out = np.zeros(model.dim)
    mag = coordinate_shift(w[0], v[0], dh, int(band), w2[0], v2[0], dh2, int(band2), degtol, out)
    if mag < 1e-12:
        raise ValueError("the overlap <u_m(k')|u_n(k)> vanishes: the side jump is undefined for this transition")
    return out
