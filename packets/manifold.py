"""Coherent dynamics inside an active manifold with remote-band curvature (Tu, Li & Yao, §II B).

``Simulation(..., dynamics="coherent", manifold=(lo, hi))`` keeps the
pseudospin chi in the span of the bands lo..hi-1 (the active manifold a) and
accounts for the remote bands r only through their non-Abelian Berry
curvature, to leading order in the field (Tu, Li & Yao, Eqs. 34, 40-42).

Representation (gauge free)
---------------------------
chi stays in the model's orbital basis, constrained to the moving subspace
P_a(x, k) = sum_{n in a} |u_n><u_n|.  Tu, Li & Yao, Eq. 34 (i d eta_a/dt =
Hbar_a eta_a in the band frame) is, written for chi = sum_a eta_n u_n,

    i dchi/dt = G chi,    G = P_a H P_a + i [dP_a/dt, P_a],

the projected Hamiltonian plus the generator of parallel transport of the
subspace.  G is Hermitian, so the same unitary commutator-free scheme as the
full-band mode applies and |chi| = 1 to round-off; chi leaves the subspace
only by the integration error, which is monitored (status ``leakage`` when
|Q_a chi|^2 > 1e-6).  In the instantaneous band basis the only non-zero
blocks of G are diag(eps_a) and, for l in r, n in a,
G_ln = i dP/dt_ln = i sum_lambda lambda_dot M^lambda_ln / (eps_n - eps_l),
with M^lambda = V^dagger dH/dlambda V (sums over states, no gauge).

Centre of mass (Tu, Li & Yao, Eq. 42)
--------------------------------
    dx_a/dt = <chi|dH/dk_a|chi> - sum_b (<F^{k_a x_b}> dx_b/dt + <F^{k_a k_b}> dk_b/dt)
    dk_a/dt = q E_a - <chi|dH/dx_a|chi> + sum_b (<F^{x_a x_b}> dx_b/dt + <F^{x_a k_b}> dk_b/dt)
              + q (dx/dt x B)_a - dU/dx_a

with <F> = chi^dagger F chi and F the remote-band curvature of Eqs. 40-41
(:func:`packets.bandgeom.nonabelian_curvature`).  This is the linear system
omega xi_dot = grad H of the adiabatic mode with Omega replaced by <F>,
solved exactly in the same way.  For a one-band manifold it *is* the
adiabatic dynamics (F = Omega); that identity is a test.
"""
import numpy as np

from . import bandgeom, linalg
from . import scratch as sc
from . import status as st
from .eom import Q, inlined, magnetic_form, make_band_matrices, make_cf4_step, solve_linear
from .jit import kernel


def make_manifold_rates(model, field, lo, hi):
    """Build ``rates(t, x, k, chi, P, S, K, j, G) -> status`` for manifold dynamics.

    Writes dx/dt, dk/dt into K[j] and the orbital-basis generator into G
    (complex128[nb, nb]).  Scratch: the ``bands`` group (eigensystem W, V,
    band matrices M, OMEGA, GRAD, EFIELD, GRAD_U) and the ``manifold`` group
    (band amplitudes MF_AMP, band-basis generator MF_GEN, MF_ORB).
    """
    dim = model.dim
    nb = model.nbands
    nxi = 2 * dim
    textured = model.textured
    efield = inlined(field.efield)
    potential = inlined(field.potential)
    has_u = field.has_potential
    has_b = field.has_B
    degtol = bandgeom.DEGTOL
    eigen_and_matrices = make_band_matrices(model)

    @kernel
    def expect_f(w, ma, mb, c):
        # <F> = sum_{n, m in a} c_n^* F_nm c_m  (real: F is Hermitian)
        acc = 0j
        for n in range(lo, hi):
            for m in range(lo, hi):
                acc += c[n].conjugate() * bandgeom.nonabelian_curvature(w, ma, mb, lo, hi, n, m, degtol) * c[m]
        return acc.real

    @kernel
    def expect_m(ma, c):
        acc = 0j
        for n in range(lo, hi):
            for m in range(lo, hi):
                acc += c[n].conjugate() * ma[n, m] * c[m]
        return acc.real

    @kernel
    def rates(t, x, k, chi, P, S, K, j, G):
        eigen_and_matrices(x, k, P, S)
        w = S[sc.W]
        v = S[sc.V]
        M = S[sc.M]
        om = S[sc.OMEGA]
        rhs = S[sc.GRAD]
        ev = S[sc.EFIELD]
        gu = S[sc.GRAD_U]
        c = S[sc.MF_AMP]
        gb = S[sc.MF_GEN]
        vg = S[sc.MF_ORB]
        linalg.band_amplitudes(v, chi, c)
        leak = 0.0
        for n in range(nb):
            if n < lo or n >= hi:
                leak += c[n].real * c[n].real + c[n].imag * c[n].imag
        # symplectic form with the manifold's remote-band curvature
        for a in range(nxi):
            om[a, a] = 0.0
            for b in range(a + 1, nxi):
                xa = a < dim
                xb = b < dim
                if (not textured) and (xa or xb):
                    f = 0.0
                else:
                    f = expect_f(w, M[a], M[b], c)
                if xa and (not xb) and (b - dim == a):
                    f -= 1.0
                om[a, b] = f
                om[b, a] = -f
        if has_b:
            magnetic_form(om, P[sc.P_B], dim)
        for a in range(dim):
            rhs[dim + a] = expect_m(M[dim + a], c)
            rhs[a] = expect_m(M[a], c) if textured else 0.0
        efield(t, P[sc.P_EFIELD], ev)
        for a in range(dim):
            rhs[a] -= Q * ev[a]
        if has_u:
            potential(x, P[sc.P_POTENTIAL], gu)
            for a in range(dim):
                rhs[a] += gu[a]
        if not solve_linear(om, rhs, nxi):
            return st.SINGULAR
        for a in range(dim):
            K[j, 0, a] = rhs[a]
            K[j, 1, a] = rhs[dim + a]
        # generator in the band basis: diag(eps_a) + i dP/dt (a <-> r blocks)
        for n in range(nb):
            for m in range(nb):
                gb[n, m] = 0.0
        for n in range(lo, hi):
            gb[n, n] = w[n]
            for l in range(nb):
                if l >= lo and l < hi:
                    continue
                if abs(w[n] - w[l]) <= degtol:
                    continue
                acc = 0j
                for a in range(nxi):
                    if a < dim and not textured:
                        continue
                    acc += rhs[a] * M[a][l, n]
                pdot = acc / (w[n] - w[l])
                gb[l, n] = 1j * pdot
                gb[n, l] = (1j * pdot).conjugate()
        # to the orbital basis: G = V gb V^dagger
        for i in range(nb):
            for m in range(nb):
                acc = 0j
                for n in range(nb):
                    acc += v[i, n] * gb[n, m]
                vg[i, m] = acc
        for i in range(nb):
            for l in range(nb):
                acc = 0j
                for m in range(nb):
                    acc += vg[i, m] * v[l, m].conjugate()
                G[i, l] = acc
        if leak > 1e-6:
            return st.LEAKAGE
        return st.OK

    return rates


def make_manifold_step(model, field, lo, hi):
    """Build ``step(t, dt, x, k, chi, n, P, S) -> status`` for manifold dynamics.

    The fourth-order commutator-free scheme of :func:`packets.eom.make_cf4_step`
    with the stage generators G_i of :func:`make_manifold_rates` in place of H_i.
    """
    return make_cf4_step(make_manifold_rates(model, field, lo, hi), model.nbands, model.dim)


def manifold_leakage(model, k, x, chi, lo, hi):
    """Host check: |Q_a chi|^2 for each packet (weight outside the active manifold)."""
    w, v = model.bands(k, x)
    c = np.einsum("nij,ni->nj", v.conj(), chi)
    mask = np.ones(model.nbands, bool)
    mask[lo:hi] = False
    return np.sum(np.abs(c[:, mask]) ** 2, axis=1)
