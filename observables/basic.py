"""Built-in observables: current, density on a grid, band populations,
pseudospin density matrix, energy (issue: dynamics, item 5).

Charge convention: carrier charge q = -1 (docs/conventions.md), so the current
density is j = q sum_i w_i dx_i/dt = -sum_i w_i dx_i/dt.
"""
import math

import numba
import numpy as np

from packets import scratch as sc

Q = -1.0


class Current:
    """Current density j = q sum_i w_i v_i, split into parts.

    Components (each a vector of length dim): ``total``, ``band`` (band
    velocity: sum_n |c_n|^2 d eps_n/dk in coherent mode, d eps_n/dk in
    adiabatic mode), ``anomalous`` = dx/dt - band (Berry-curvature /
    inter-band coherence part) and ``jump``, the side-jump current
    q sum_i w_i (displacement by events during the record interval)/interval
    (Sinitsyn, Niu & MacDonald 2006) — the jumps are instantaneous, so they never appear in
    dx/dt.  total = band + anomalous + jump.  The first three are
    instantaneous values at the record time, ``jump`` is the average over the
    preceding record interval (both are what a time average over a steady
    state needs).  In adiabatic mode, ``per_band=True`` adds the
    total current carried by each band (shape (nbands, dim)).

    Units: e E0/(hbar L0^(d-1)) (code units); divide by E to get a
    conductivity in e^2/hbar (use ``Result.conductivity``).
    """

    name = "current"

    def __init__(self, per_band=False):
        self.per_band = bool(per_band)

    def build(self, ctx):
        model, dynamics = ctx.model, ctx.dynamics
        dim = model.dim
        nb = model.nbands
        per_band = self.per_band
        if per_band and dynamics != "adiabatic":
            raise ValueError("Current(per_band=True) needs dynamics='adiabatic' (a coherent packet has no single band)")
        ncomp = 4 * dim + (nb * dim if per_band else 0)
        axes = "xyz"[:dim]
        labels = ([f"total_{a}" for a in axes] + [f"band_{a}" for a in axes] + [f"anomalous_{a}" for a in axes]
                  + [f"jump_{a}" for a in axes])
        if per_band:
            labels += [f"band{n}_{a}" for n in range(nb) for a in axes]

        @numba.njit
        def kernel(weight, n, x, k, C, out):
            xd = C[sc.C_XDOT]
            vb = C[sc.C_VBAND]
            xj = C[sc.C_XJUMP]
            for a in range(dim):
                out[a] += Q * weight * (xd[a] + xj[a])
                out[dim + a] += Q * weight * vb[a]
                out[2 * dim + a] += Q * weight * (xd[a] - vb[a])
                out[3 * dim + a] += Q * weight * xj[a]
            if per_band:
                for a in range(dim):
                    out[4 * dim + n * dim + a] += Q * weight * (xd[a] + xj[a])

        return ncomp, labels, (ncomp,), kernel

    PARTS = {"total": 0, "band": 1, "anomalous": 2, "jump": 3}

    @staticmethod
    def part(values, dim, part="total"):
        """Select ``part`` in {'total', 'band', 'anomalous', 'jump'} from the component axis (last)."""
        i = Current.PARTS[part]
        return values[..., i * dim:(i + 1) * dim]


class Density:
    """Packet density n(x) on a user grid (histogram of positions).

    Parameters
    ----------
    edges : sequence of arrays
        Bin edges along each spatial axis (one array per dimension, strictly
        increasing).  Packets outside the grid are not counted.

    The result has shape (n_1, ..., n_d): weight per bin divided by the bin
    volume (a density per unit area/volume times the ensemble's k-space
    density; with a homogeneous Fermi-sea ensemble the sum of
    ``Density * bin volume`` equals the total weight inside the grid).
    """

    name = "density"

    def __init__(self, edges):
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        for e in self.edges:
            if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
                raise ValueError("each edges array must be 1-D, strictly increasing, with at least 2 entries")

    def build(self, ctx):
        model, dynamics = ctx.model, ctx.dynamics
        dim = model.dim
        if len(self.edges) != dim:
            raise ValueError(f"Density needs {dim} edge arrays for a {dim}-D model, got {len(self.edges)}")
        nbins = tuple(e.size - 1 for e in self.edges)
        ncomp = int(np.prod(nbins))
        # flat edges + offsets baked into the closure (compile-time constants)
        flat = np.concatenate(self.edges)
        offs = np.cumsum([0] + [e.size for e in self.edges])
        strides = np.ones(dim, dtype=np.int64)
        for a in range(dim - 2, -1, -1):
            strides[a] = strides[a + 1] * nbins[a + 1]
        invvol = np.ones(nbins)
        for a in range(dim):
            shp = [1] * dim
            shp[a] = nbins[a]
            invvol = invvol / np.diff(self.edges[a]).reshape(shp)
        invvol = invvol.ravel()
        offs = offs.astype(np.int64)
        nb_arr = np.array(nbins, dtype=np.int64)

        @numba.njit
        def kernel(weight, n, x, k, C, out):
            idx = 0
            for a in range(dim):
                lo = offs[a]
                m = nb_arr[a]
                xa = x[a]
                if not (flat[lo] <= xa < flat[lo + m]):
                    return
                # binary search for the bin
                left = 0
                right = m
                while right - left > 1:
                    mid = (left + right) // 2
                    if flat[lo + mid] <= xa:
                        left = mid
                    else:
                        right = mid
                idx += left * strides[a]
            out[idx] += weight * invvol[idx]

        labels = [f"bin{i}" for i in range(ncomp)]
        return ncomp, labels, nbins, kernel


class BandPopulation:
    """Band populations N_n = sum_i w_i |<u_n(x_i, k_i)|chi_i>|^2 in the instantaneous eigenbands.

    In adiabatic mode this is the weight in each band.  Shape (nbands,).
    """

    name = "populations"

    def build(self, ctx):
        model, dynamics = ctx.model, ctx.dynamics
        nb = model.nbands

        @numba.njit
        def kernel(weight, n, x, k, C, out):
            cb = C[sc.C_AMP]
            for i in range(nb):
                out[i] += weight * (cb[i].real * cb[i].real + cb[i].imag * cb[i].imag)

        return nb, [f"band{i}" for i in range(nb)], (nb,), kernel


class DensityMatrix:
    """Ensemble pseudospin density matrix in the instantaneous band basis.

    rho_nm = sum_i w_i c_n c_m^*, c_n = <u_n|chi_i>.  Stored as real and
    imaginary parts; the result has shape (nbands, nbands, 2) and
    :func:`complex_matrix` turns it into a complex array.  Off-diagonal
    elements depend on the (arbitrary but fixed) gauge of the eigenvectors;
    their moduli and the diagonal do not.
    """

    name = "density_matrix"

    def build(self, ctx):
        model, dynamics = ctx.model, ctx.dynamics
        nb = model.nbands

        @numba.njit
        def kernel(weight, n, x, k, C, out):
            cb = C[sc.C_AMP]
            for i in range(nb):
                for j in range(nb):
                    z = cb[i] * cb[j].conjugate()
                    out[2 * (i * nb + j)] += weight * z.real
                    out[2 * (i * nb + j) + 1] += weight * z.imag

        labels = [f"rho{i}{j}_{p}" for i in range(nb) for j in range(nb) for p in ("re", "im")]
        return 2 * nb * nb, labels, (nb, nb, 2), kernel

    @staticmethod
    def complex_matrix(values):
        """(..., nb, nb, 2) real array -> (..., nb, nb) complex."""
        return values[..., 0] + 1j * values[..., 1]


class Energy:
    """Energy density sum_i w_i <chi_i|H|chi_i> + U(x_i) (adiabatic: eps_n - m.B + U)."""

    name = "energy"

    def build(self, ctx):
        model, dynamics = ctx.model, ctx.dynamics
        @numba.njit
        def kernel(weight, n, x, k, C, out):
            out[0] += weight * C[sc.C_ENERGY][0]

        return 1, ["energy"], (1,), kernel
