"""Per-packet equations of motion and integrators, written once for both backends.

Everything returned by the factories here is a plain ``@numba.njit`` function
without a signature that follows the kernel rules of docs/architecture.md: scratch
comes in through the tuple ``S`` built by :func:`make_scratch_allocator` (CPU) or
by the GPU driver (``cuda.local.array``), parameters through the tuple ``P`` of
float64 arrays; both are reached by the names of :mod:`packets.scratch`
(``S[sc.K]``, ``P[sc.P_MODEL]``).  The factories
close over the model's and the field's own ``@njit`` functions, so a user's
Hamiltonian or E(t) is inlined into the compiled step, and physics that is not
used (texture, B, U) is compiled out.

Two dynamics levels (docs/architecture.md, "Dynamics"):

``coherent``
    The packet carries a pseudospin chi over all bands of the model, in the
    model's *orbital* basis (no Berry gauge is ever fixed).  Tu, Li & Yao,
    Eqs. 8-10 and 19-21, with hbar = 1 and carrier charge q = -1::

        dx/dt   = <chi| dH/dk |chi>
        dk/dt   = q E(t) - <chi| dH/dx |chi> - grad U(x) + q (dx/dt) x B
        i dchi/dt = H(x, k) chi

    The constant parts of the energy (U(x), -qE.x) only give chi a global
    phase and are left out of its evolution.  The anomalous velocity is not
    put in by hand: it emerges from the inter-band coherence of chi.

``adiabatic``
    One band n per packet.  Tu, Li & Yao, Eq. 43 with the phase-space Berry
    curvatures Omega^{k k}, Omega^{k x}, Omega^{x x} (Eq. 44) and, with B,
    Wong & Tserkovnyak 2021, Eqs. 35-40 (orbital-moment energy eps - m.B and
    the phase-space density factor).  All are obtained at once by solving the
    linear system ``omega xi_dot = grad_xi H`` exactly (Gaussian elimination),
    where xi = (x, k), H = eps_n - m_n.B + U(x) - qE.x, and the symplectic
    form is

        omega[x_a, x_b] = q eps_abc B_c + Omega^{x_a x_b}
        omega[x_a, k_b] = -delta_ab + Omega^{x_a k_b}
        omega[k_a, k_b] = Omega^{k_a k_b}

    This reproduces Eq. 43 term by term (check: with no texture and no B it
    gives dk/dt = qE, dx/dt = grad eps - dk/dt x Omega, docs/conventions.md)
    and contains D = |Pf omega| = 1 + (e/hbar) B.Omega (Wong & Tserkovnyak
    2021, Eq. 37) exactly.

Integrators
-----------
``rk4`` (default)
    Classical RK4 for (x, k) fused with the fourth-order *commutator-free*
    Lie-group method of Celledoni, Marthinsen & Owren (2003) for chi: every
    stage and the final update are products of exact exponentials
    exp(-i H_eff tau), so |chi| = 1 to round-off however long the run (the
    norm is conserved, not renormalised).  On (x, k) the scheme *is* classical
    RK4.  In adiabatic mode this is plain RK4.
``rk45``
    The same stages are not embedded, so the adaptive option is step
    doubling: one step of dt against two of dt/2 gives a local error
    estimate (x, k and chi) and Richardson-extrapolated (x, k)
    (order 5); steps adapt inside each record interval to the requested
    tolerance.  See :func:`make_stepper`.
"""
import math

import numba

from .jit import kernel
import numpy as np

from . import bandgeom, linalg
from . import status as st
from . import scratch as sc
from .variant import field_key, model_key

#: carrier charge (units of e); docs/conventions.md
Q = -1.0


@kernel(inline="always")
def lorentz(K, j, B, dim):
    """Lorentz force: K[j, 1] += q (K[j, 0] x B), with K[j, 0] = dx/dt; dim 2 (B_z) or 3."""
    if dim == 2:
        K[j, 1, 0] += Q * K[j, 0, 1] * B[2]
        K[j, 1, 1] -= Q * K[j, 0, 0] * B[2]
    elif dim == 3:
        K[j, 1, 0] += Q * (K[j, 0, 1] * B[2] - K[j, 0, 2] * B[1])
        K[j, 1, 1] += Q * (K[j, 0, 2] * B[0] - K[j, 0, 0] * B[2])
        K[j, 1, 2] += Q * (K[j, 0, 0] * B[1] - K[j, 0, 1] * B[0])


@kernel(inline="always")
def magnetic_form(om, B, dim):
    """Add the magnetic part q eps_abc B_c to the x-x block of the symplectic form omega."""
    if dim == 2:
        om[0, 1] += Q * B[2]
        om[1, 0] -= Q * B[2]
    elif dim == 3:
        om[0, 1] += Q * B[2]
        om[1, 0] -= Q * B[2]
        om[1, 2] += Q * B[0]
        om[2, 1] -= Q * B[0]
        om[2, 0] += Q * B[1]
        om[0, 2] -= Q * B[1]


def inlined(fn):
    """An ``inline="always"`` twin of an ``@njit`` function (model fillers, E(t), U(x)).

    Numba compiles each ``@njit`` function into its own library, so calls
    between them are real calls that marshal every array argument; on the CPU
    that overhead dominated the two-band step.  Re-jitting the Python source
    with IR-level inlining removes it; numba-cuda inlines device functions
    anyway, so both backends run the same code.
    """
    py = getattr(fn, "py_func", None)
    if py is None:
        return fn
    return kernel(py, inline="always")


def make_scratch_allocator(dim, nb):
    """CPU allocator of one packet's scratch tuple S, every group (layout in :mod:`packets.scratch`).

    The GPU driver builds the same tuple from ``cuda.local.array``.
    """
    return sc.make_allocator(sc.scratch_layout(dim, nb), "cpu")


@kernel
def solve_linear(a, b, n):
    """Solve a y = b in place (b <- y) by Gaussian elimination with partial pivoting.

    ``a`` is overwritten.  Returns False when a pivot is below 1e-300 relative
    (singular phase-space form, D = 0).
    """
    for c in range(n):
        piv = c
        best = abs(a[c, c])
        for r in range(c + 1, n):
            if abs(a[r, c]) > best:
                best = abs(a[r, c])
                piv = r
        if best < 1e-300:
            return False
        if piv != c:
            for j in range(n):
                t = a[c, j]
                a[c, j] = a[piv, j]
                a[piv, j] = t
            t = b[c]
            b[c] = b[piv]
            b[piv] = t
        for r in range(c + 1, n):
            f = a[r, c] / a[c, c]
            if f != 0.0:
                for j in range(c, n):
                    a[r, j] -= f * a[c, j]
                b[r] -= f * b[c]
    for c in range(n - 1, -1, -1):
        acc = b[c]
        for j in range(c + 1, n):
            acc -= a[c, j] * b[j]
        b[c] = acc / a[c, c]
    return True


# ----------------------------------------------------------------------------
# right-hand sides
# ----------------------------------------------------------------------------


def make_coherent_rates(model, field):
    """Build ``rates(t, x, k, chi, P, S, K, j)``: Tu, Li & Yao, Eqs. 19-21.

    Writes dx/dt = <chi|dH/dk|chi> into ``K[j, 0]`` and
    dk/dt = qE(t) - <chi|dH/dx|chi> - grad U + q (dx/dt) x B into ``K[j, 1]``
    (indexing, not views: creating array views in the hot loop costs
    reference counting on the CPU).  Scratch: DHDK, DHDX, EFIELD, GRAD_U, WORK.
    """
    dim = model.dim
    dhdk = inlined(model.dhdk)
    dhdx = inlined(model.dhdx)
    efield = inlined(field.efield)
    potential = inlined(field.potential)
    textured = model.textured
    has_u = field.has_potential
    has_b = field.has_B

    @kernel(inline="always")
    def rates(t, x, k, chi, P, S, K, j):
        pm = P[sc.P_MODEL]
        dk = S[sc.DHDK]
        dx = S[sc.DHDX]
        ev = S[sc.EFIELD]
        g = S[sc.GRAD_U]
        work = S[sc.WORK]
        dhdk(x, k, pm, dk, work)
        for a in range(dim):
            K[j, 0, a] = linalg.expectation_at(dk, a, chi)
        efield(t, P[sc.P_EFIELD], ev)
        for a in range(dim):
            K[j, 1, a] = Q * ev[a]
        if textured:
            dhdx(x, k, pm, dx, work)
            for a in range(dim):
                K[j, 1, a] -= linalg.expectation_at(dx, a, chi)
        if has_u:
            potential(x, P[sc.P_POTENTIAL], g)
            for a in range(dim):
                K[j, 1, a] -= g[a]
        if has_b:
            lorentz(K, j, P[sc.P_B], dim)

    return rates


def make_band_matrices(model):
    """Build ``eigen_and_matrices(x, k, P, S)``: eigensystem and band-basis derivative matrices.

    Diagonalises H(x, k) into S[W] (energies) and S[V] (eigenvector columns)
    and fills S[M][lambda] = V^dagger dH/dlambda V for lambda = (x_1..x_d,
    k_1..k_d) (x components only for textured models).
    """
    dim = model.dim
    h = inlined(model.h)
    dhdk = inlined(model.dhdk)
    dhdx = inlined(model.dhdx)
    textured = model.textured
    eigh = linalg.eigh_for(model.nbands)

    @kernel
    def eigen_and_matrices(x, k, P, S):
        pm = P[sc.P_MODEL]
        hm = S[sc.HM]
        w = S[sc.W]
        v = S[sc.V]
        work = S[sc.WORK]
        dk = S[sc.DHDK]
        dx = S[sc.DHDX]
        M = S[sc.M]
        h(x, k, pm, hm)
        eigh(hm, w, v, work)
        dhdk(x, k, pm, dk, work)
        for a in range(dim):
            linalg.sandwich(v, dk[a], M[dim + a])
        if textured:
            dhdx(x, k, pm, dx, work)
            for a in range(dim):
                linalg.sandwich(v, dx[a], M[a])

    return eigen_and_matrices


def make_band_state(model, field, orbital_moment=True):
    """Build ``band_state(t, x, k, n, P, S, grad) -> (ok, energy, D)`` for adiabatic packets.

    Diagonalises H(x, k), forms the band-basis derivative matrices
    M^lambda = V^dagger dH/dlambda V for lambda = (x_1..x_d, k_1..k_d) in
    ``S[M]`` (eigensystem in ``S[W]``, ``S[V]``), the symplectic form
    omega in ``S[OMEGA]`` and grad_xi of the band energy (with -m.B if B and
    ``orbital_moment``) in ``grad`` (length 2 dim).  The external potential
    and the electric field are *not* in ``grad``; see the adiabatic rates.
    """
    dim = model.dim
    textured = model.textured
    has_b = field.has_B and dim >= 2
    use_m = has_b and orbital_moment
    degtol = bandgeom.DEGTOL
    nxi = 2 * dim

    @kernel
    def moment_dot_b(w, M, n, B):
        # m_n . B from the k-k band matrices (Wong & Tserkovnyak 2021, Eq. 35;
        # sign: docs/conventions.md)
        if dim == 2:
            return bandgeom.orbital_moment(w, M[dim], M[dim + 1], n, degtol) * B[2]
        mx = bandgeom.orbital_moment(w, M[dim + 1], M[dim + 2], n, degtol)
        my = bandgeom.orbital_moment(w, M[dim + 2], M[dim], n, degtol)
        mz = bandgeom.orbital_moment(w, M[dim], M[dim + 1], n, degtol)
        return mx * B[0] + my * B[1] + mz * B[2]

    eigen_and_matrices = make_band_matrices(model)

    @kernel
    def band_state(t, x, k, n, P, S, grad):
        w = S[sc.W]
        M = S[sc.M]
        om = S[sc.OMEGA]
        B = P[sc.P_B]
        eigen_and_matrices(x, k, P, S)
        energy = w[n]
        for a in range(nxi):
            grad[a] = 0.0
        for a in range(dim):
            grad[dim + a] = M[dim + a][n, n].real
            if textured:
                grad[a] = M[a][n, n].real
        # symplectic form (module docstring); Berry curvatures of band n
        for i in range(nxi):
            om[i, i] = 0.0
            for j in range(i + 1, nxi):
                xi_i = i < dim
                xi_j = j < dim
                if (not textured) and (xi_i or xi_j):
                    c = 0.0
                else:
                    c = bandgeom.curvature(w, M[i], M[j], n, degtol)
                if xi_i and (not xi_j) and (j - dim == i):
                    c -= 1.0
                om[i, j] = c
                om[j, i] = -c
        if has_b:
            magnetic_form(om, B, dim)
        if use_m:
            mb = moment_dot_b(w, M, n, B)
            energy -= mb
        return energy

    @kernel
    def moment_gradient(x, k, n, P, S, grad, hstep):
        # d(m.B)/dxi by fourth-order central differences (the sum-over-states
        # moment has no cheap analytic derivative); error O(hstep^4)
        B = P[sc.P_B]
        for a in range(nxi):
            if a < dim and not textured:
                continue
            acc = 0.0
            for s in range(4):
                off = (-2.0, -1.0, 1.0, 2.0)[s]
                cf = (1.0, -8.0, 8.0, -1.0)[s]
                if a < dim:
                    keep = x[a]
                    x[a] = keep + off * hstep
                    eigen_and_matrices(x, k, P, S)
                    x[a] = keep
                else:
                    keep = k[a - dim]
                    k[a - dim] = keep + off * hstep
                    eigen_and_matrices(x, k, P, S)
                    k[a - dim] = keep
                acc += cf * moment_dot_b(S[sc.W], S[sc.M], n, B)
            grad[a] -= acc / (12.0 * hstep)

    return band_state, moment_gradient, use_m


_ADIABATIC_RATES = {}


def make_adiabatic_rates(model, field, orbital_moment=True, moment_step=1e-4):
    """Build ``rates(t, x, k, n, P, S, K, j, vband) -> (ok, energy)`` for one-band packets.

    Memoised on what the kernel depends on (:func:`packets.variant.model_key`,
    :func:`packets.variant.field_key`, the flags): the step and the measurement
    context both call it, and every variant of the same model and field shares
    one compiled copy.

    Writes dx/dt into ``K[j, 0]``, dk/dt into ``K[j, 1]`` and the band
    velocity d(eps - m.B)/dk into ``vband`` (length dim).

    Solves omega xi_dot = grad_xi(eps_n - m.B + U - qE.x) exactly (module
    docstring; Tu, Li & Yao, Eq. 43, Wong & Tserkovnyak 2021, Eqs. 35-40).  Returns False when
    omega is singular (the packet is then flagged).
    """
    key = (model_key(model), field_key(field), bool(orbital_moment), float(moment_step))
    if key not in _ADIABATIC_RATES:
        _ADIABATIC_RATES[key] = _build_adiabatic_rates(model, field, orbital_moment, moment_step)
    return _ADIABATIC_RATES[key]


def _build_adiabatic_rates(model, field, orbital_moment, moment_step):
    dim = model.dim
    nxi = 2 * dim
    efield = field.efield
    potential = field.potential
    has_u = field.has_potential
    band_state, moment_gradient, use_m = make_band_state(model, field, orbital_moment)

    @kernel
    def rates(t, x, k, n, P, S, K, j, vband):
        rhs = S[sc.GRAD]
        om = S[sc.OMEGA]
        ev = S[sc.EFIELD]
        gu = S[sc.GRAD_U]
        energy = band_state(t, x, k, n, P, S, rhs)
        if use_m:
            # clobbers the eigensystem in S but not omega
            moment_gradient(x, k, n, P, S, rhs, moment_step)
        # band-velocity part d(eps - m.B)/dk, for the current split
        for a in range(dim):
            vband[a] = rhs[dim + a]
        efield(t, P[sc.P_EFIELD], ev)
        for a in range(dim):
            rhs[a] -= Q * ev[a]
        if has_u:
            u = potential(x, P[sc.P_POTENTIAL], gu)
            energy += u
            for a in range(dim):
                rhs[a] += gu[a]
        ok = solve_linear(om, rhs, nxi)
        # omega xi_dot = grad H, xi = (x, k)
        for a in range(dim):
            K[j, 0, a] = rhs[a]
            K[j, 1, a] = rhs[dim + a]
        return ok, energy

    return rates


# ----------------------------------------------------------------------------
# steppers
# ----------------------------------------------------------------------------


def make_cf4_step(stage, nb, dim):
    """Fourth-order commutator-free Lie-group step for (x, k, chi) from a stage function.

    ``stage(t, x, k, chi, P, S, K, j, G) -> status`` writes the rates
    (dx/dt, dk/dt) into ``K[j]`` and the Hermitian generator of chi
    (i dchi/dt = G chi) into ``G``.  The scheme (Celledoni, Marthinsen &
    Owren, Future Gener. Comput. Syst. 19, 341 (2003)), fused with classical
    RK4 for (x, k)::

        Y2 = exp(-i dt/2 G1) chi,                 (x, k)_2 = (x, k) + dt/2 K1
        Y3 = exp(-i dt/2 G2) chi,                 (x, k)_3 = (x, k) + dt/2 K2
        Y4 = exp(-i dt/2 (2 G3 - G1)) Y2,         (x, k)_4 = (x, k) + dt K3
        chi' = exp(-i dt (-G1 + 2G2 + 2G3 + 3G4)/12) exp(-i dt (3G1 + 2G2 + 2G3 - G4)/12) chi

    Every update of chi is a product of unitary exponentials.  A non-OK status
    of the first stage aborts the step; later stages abort only on
    ``SINGULAR`` (their states are intermediate).  Scratch: the stage
    position and rates XS, KS, K, the generators G1..G4, their combination
    GCOMB, the stage states CHI_Y2, CHI_Y3 and, for the exponentials,
    EXP_W, EXP_V, WORK and TMP.
    """
    expm = linalg.expm_for(nb)

    @kernel(inline="always")
    def combine(G1, G2, G3, G4, c1, c2, c3, c4, out):
        for i in range(nb):
            for j in range(nb):
                out[i, j] = c1 * G1[i, j] + c2 * G2[i, j] + c3 * G3[i, j] + c4 * G4[i, j]

    @kernel
    def step(t, dt, x, k, chi, n, P, S):
        xs = S[sc.XS]
        ks = S[sc.KS]
        K = S[sc.K]
        G1 = S[sc.G1]
        G2 = S[sc.G2]
        G3 = S[sc.G3]
        G4 = S[sc.G4]
        comb = S[sc.GCOMB]
        ca = S[sc.CHI_Y3]
        cb = S[sc.CHI_Y2]
        w = S[sc.EXP_W]
        vv = S[sc.EXP_V]
        work = S[sc.WORK]
        tmp = S[sc.TMP]
        h2 = 0.5 * dt
        # stage indices as int64, not literals: a literal argument compiles the stage once per value
        code = stage(t, x, k, chi, P, S, K, np.int64(0), G1)
        if code != st.OK:
            return code
        # stage 2: Y2 = exp(-i dt/2 G1) chi
        for a in range(dim):
            xs[a] = x[a] + h2 * K[0, 0, a]
            ks[a] = k[a] + h2 * K[0, 1, a]
        for i in range(nb):
            cb[i] = chi[i]
        expm(G1, h2, cb, w, vv, work, tmp)
        if stage(t + h2, xs, ks, cb, P, S, K, np.int64(1), G2) == st.SINGULAR:
            return st.SINGULAR
        # stage 3: Y3 = exp(-i dt/2 G2) chi
        for a in range(dim):
            xs[a] = x[a] + h2 * K[1, 0, a]
            ks[a] = k[a] + h2 * K[1, 1, a]
        for i in range(nb):
            ca[i] = chi[i]
        expm(G2, h2, ca, w, vv, work, tmp)
        if stage(t + h2, xs, ks, ca, P, S, K, np.int64(2), G3) == st.SINGULAR:
            return st.SINGULAR
        # stage 4: Y4 = exp(-i dt/2 (2 G3 - G1)) Y2
        for a in range(dim):
            xs[a] = x[a] + dt * K[2, 0, a]
            ks[a] = k[a] + dt * K[2, 1, a]
        combine(G1, G2, G3, G1, -1.0, 0.0, 2.0, 0.0, comb)  # G4 not computed yet
        expm(comb, h2, cb, w, vv, work, tmp)
        if stage(t + dt, xs, ks, cb, P, S, K, np.int64(3), G4) == st.SINGULAR:
            return st.SINGULAR
        # final update: two unitary exponentials
        combine(G1, G2, G3, G4, 3.0 / 12.0, 2.0 / 12.0, 2.0 / 12.0, -1.0 / 12.0, comb)
        expm(comb, dt, chi, w, vv, work, tmp)
        combine(G1, G2, G3, G4, -1.0 / 12.0, 2.0 / 12.0, 2.0 / 12.0, 3.0 / 12.0, comb)
        expm(comb, dt, chi, w, vv, work, tmp)
        d6 = dt / 6.0
        for a in range(dim):
            x[a] += d6 * (K[0, 0, a] + 2.0 * K[1, 0, a] + 2.0 * K[2, 0, a] + K[3, 0, a])
            k[a] += d6 * (K[0, 1, a] + 2.0 * K[1, 1, a] + 2.0 * K[2, 1, a] + K[3, 1, a])
        return st.OK

    return step


def make_coherent_step(model, field):
    """Build ``step(t, dt, x, k, chi, n, P, S) -> status`` for coherent packets (any N).

    :func:`make_cf4_step` with G_i = H(x_i, k_i) and the rates of Tu, Li & Yao,
    Eqs. 19-21; exponentials through the Jacobi eigensystem (N > 2).
    """
    h = inlined(model.h)
    rates = make_coherent_rates(model, field)

    # not IR-inlined: the step calls it four times, and each inlined copy (rates and the model's
    # fillers inlined in it) would be typed and compiled again
    @kernel
    def stage(t, x, k, chi, P, S, K, j, G):
        h(x, k, P[sc.P_MODEL], G)
        rates(t, x, k, chi, P, S, K, j)
        return st.OK

    return make_cf4_step(stage, model.nbands, model.dim)


def make_coherent_step2(model, field):
    """Two-band version of :func:`make_coherent_step` in closed-form 2x2 algebra.

    The same scheme (commutator-free fourth order for chi, RK4 for x, k) with
    chi held in two complex scalars, H reduced to its d-vector and every
    exponential the unitary closed form :func:`packets.linalg.pade2`: no
    eigensolver and no per-stage arrays for chi.  Tested to agree with the
    general N-band step (which it replaces for ``nbands == 2``).
    """
    dim = model.dim
    h = inlined(model.h)
    dhdk = inlined(model.dhdk)
    dhdx = inlined(model.dhdx)
    efield = inlined(field.efield)
    potential = inlined(field.potential)
    textured = model.textured
    has_u = field.has_potential
    has_b = field.has_B
    pade2 = linalg.pade2
    dvector = linalg.dvector

    @kernel(inline="always")
    def rates2(t, x, k, c0, c1, P, S, K, j):
        pm = P[sc.P_MODEL]
        dk = S[sc.DHDK]
        dx = S[sc.DHDX]
        ev = S[sc.EFIELD]
        g = S[sc.GRAD_U]
        work = S[sc.WORK]
        dhdk(x, k, pm, dk, work)
        for a in range(dim):
            K[j, 0, a] = linalg.expectation2_at(dk, a, c0, c1)
        efield(t, P[sc.P_EFIELD], ev)
        for a in range(dim):
            K[j, 1, a] = Q * ev[a]
        if textured:
            dhdx(x, k, pm, dx, work)
            for a in range(dim):
                K[j, 1, a] -= linalg.expectation2_at(dx, a, c0, c1)
        if has_u:
            potential(x, P[sc.P_POTENTIAL], g)
            for a in range(dim):
                K[j, 1, a] -= g[a]
        if has_b:
            lorentz(K, j, P[sc.P_B], dim)

    @kernel(inline="always")
    def step(t, dt, x, k, chi, n, P, S):
        xs = S[sc.XS]
        ks = S[sc.KS]
        K = S[sc.K]
        hm = S[sc.G1]
        pm = P[sc.P_MODEL]
        h2 = 0.5 * dt
        c0 = chi[0]
        c1 = chi[1]
        # stage 1
        h(x, k, pm, hm)
        d1x, d1y, d1z = dvector(hm)
        rates2(t, x, k, c0, c1, P, S, K, 0)
        # stage 2: Y2 = exp(-i dt/2 H1) chi
        for a in range(dim):
            xs[a] = x[a] + h2 * K[0, 0, a]
            ks[a] = k[a] + h2 * K[0, 1, a]
        b0, b1 = pade2(d1x, d1y, d1z, h2, c0, c1)
        h(xs, ks, pm, hm)
        d2x, d2y, d2z = dvector(hm)
        rates2(t + h2, xs, ks, b0, b1, P, S, K, 1)
        # stage 3: Y3 = exp(-i dt/2 H2) chi
        for a in range(dim):
            xs[a] = x[a] + h2 * K[1, 0, a]
            ks[a] = k[a] + h2 * K[1, 1, a]
        a0, a1 = pade2(d2x, d2y, d2z, h2, c0, c1)
        h(xs, ks, pm, hm)
        d3x, d3y, d3z = dvector(hm)
        rates2(t + h2, xs, ks, a0, a1, P, S, K, 2)
        # stage 4: Y4 = exp(-i dt/2 (2 H3 - H1)) Y2
        for a in range(dim):
            xs[a] = x[a] + dt * K[2, 0, a]
            ks[a] = k[a] + dt * K[2, 1, a]
        e0, e1 = pade2(2.0 * d3x - d1x, 2.0 * d3y - d1y, 2.0 * d3z - d1z, h2, b0, b1)
        h(xs, ks, pm, hm)
        d4x, d4y, d4z = dvector(hm)
        rates2(t + dt, xs, ks, e0, e1, P, S, K, 3)
        # final update: two unitary exponentials
        c0, c1 = pade2((3.0 * d1x + 2.0 * d2x + 2.0 * d3x - d4x) / 12.0,
                       (3.0 * d1y + 2.0 * d2y + 2.0 * d3y - d4y) / 12.0,
                       (3.0 * d1z + 2.0 * d2z + 2.0 * d3z - d4z) / 12.0, dt, c0, c1)
        c0, c1 = pade2((-d1x + 2.0 * d2x + 2.0 * d3x + 3.0 * d4x) / 12.0,
                       (-d1y + 2.0 * d2y + 2.0 * d3y + 3.0 * d4y) / 12.0,
                       (-d1z + 2.0 * d2z + 2.0 * d3z + 3.0 * d4z) / 12.0, dt, c0, c1)
        chi[0] = c0
        chi[1] = c1
        d6 = dt / 6.0
        for a in range(dim):
            x[a] += d6 * (K[0, 0, a] + 2.0 * K[1, 0, a] + 2.0 * K[2, 0, a] + K[3, 0, a])
            k[a] += d6 * (K[0, 1, a] + 2.0 * K[1, 1, a] + 2.0 * K[2, 1, a] + K[3, 1, a])
        return st.OK

    return step


def make_adiabatic_step(model, field, orbital_moment=True):
    """Build ``step(t, dt, x, k, chi, n, P, S) -> status``: classical RK4 on (x, k).

    The band index n is fixed; chi is not touched.  Returns
    :data:`packets.status.SINGULAR` when the phase-space form is singular.
    """
    dim = model.dim
    rates = make_adiabatic_rates(model, field, orbital_moment)

    @kernel
    def step(t, dt, x, k, chi, n, P, S):
        xs = S[sc.XS]
        ks = S[sc.KS]
        K = S[sc.K]
        vband = S[sc.VBAND]
        h2 = 0.5 * dt
        # stage indices as int64, not literals: a literal argument compiles rates once per value
        ok1, e1 = rates(t, x, k, n, P, S, K, np.int64(0), vband)
        for a in range(dim):
            xs[a] = x[a] + h2 * K[0, 0, a]
            ks[a] = k[a] + h2 * K[0, 1, a]
        ok2, e2 = rates(t + h2, xs, ks, n, P, S, K, np.int64(1), vband)
        for a in range(dim):
            xs[a] = x[a] + h2 * K[1, 0, a]
            ks[a] = k[a] + h2 * K[1, 1, a]
        ok3, e3 = rates(t + h2, xs, ks, n, P, S, K, np.int64(2), vband)
        for a in range(dim):
            xs[a] = x[a] + dt * K[2, 0, a]
            ks[a] = k[a] + dt * K[2, 1, a]
        ok4, e4 = rates(t + dt, xs, ks, n, P, S, K, np.int64(3), vband)
        if not (ok1 and ok2 and ok3 and ok4):
            return st.SINGULAR
        d6 = dt / 6.0
        for a in range(dim):
            x[a] += d6 * (K[0, 0, a] + 2.0 * K[1, 0, a] + 2.0 * K[2, 0, a] + K[3, 0, a])
            k[a] += d6 * (K[0, 1, a] + 2.0 * K[1, 1, a] + 2.0 * K[2, 1, a] + K[3, 1, a])
        return st.OK

    return step


def make_adaptive_advance(model, step):
    """Wrap a fixed step into ``advance(t0, t1, dt0, tol, x, k, chi, n, P, S) -> (status, nsteps, dt)``.

    Step doubling: a step of h is compared with two steps of h/2; the
    difference (max over x, k and chi components) estimates the local error
    of the two-half-step result, which is accepted when below ``tol`` and
    then improved by Richardson extrapolation of (x, k)
    (y = y_half + (y_half - y_full)/15, fifth order).  chi keeps the
    half-step (unitary) value so its norm stays exact.  The step is adapted
    with the usual safety factor 0.9 (err/tol)^(-1/5), limited to
    [0.2, 4] per step, and the last step lands exactly on t1.  At most
    2**20 steps per call; a packet that needs more is flagged
    :data:`packets.status.SINGULAR` (the tolerance cannot be met).
    """
    dim = model.dim
    nb = model.nbands

    @kernel
    def advance(t0, t1, dt0, tol, x, k, chi, n, P, S):
        x1 = S[sc.X_FULL]
        k1 = S[sc.K_FULL]
        c1 = S[sc.CHI_FULL]
        x2 = S[sc.X_HALF]
        k2 = S[sc.K_HALF]
        c2 = S[sc.CHI_HALF]
        t = t0
        hh = dt0
        nsteps = 0
        while t < t1 and nsteps < 1048576:
            last = False
            if t + hh >= t1:
                hh = t1 - t
                last = True
            for a in range(dim):
                x1[a] = x[a]
                k1[a] = k[a]
                x2[a] = x[a]
                k2[a] = k[a]
            for i in range(nb):
                c1[i] = chi[i]
                c2[i] = chi[i]
            s1 = step(t, hh, x1, k1, c1, n, P, S)
            s2 = step(t, 0.5 * hh, x2, k2, c2, n, P, S)
            s3 = step(t + 0.5 * hh, 0.5 * hh, x2, k2, c2, n, P, S)
            nsteps += 3
            if s1 != st.OK or s2 != st.OK or s3 != st.OK:
                return st.SINGULAR, nsteps, hh
            err = 0.0
            for a in range(dim):
                err = max(err, abs(x2[a] - x1[a]), abs(k2[a] - k1[a]))
            for i in range(nb):
                err = max(err, abs(c2[i] - c1[i]))
            if not (err == err):
                return st.NAN, nsteps, hh
            if err <= tol:
                for a in range(dim):
                    x[a] = x2[a] + (x2[a] - x1[a]) / 15.0
                    k[a] = k2[a] + (k2[a] - k1[a]) / 15.0
                for i in range(nb):
                    chi[i] = c2[i]
                t = t1 if last else t + hh
            fac = 4.0 if err == 0.0 else min(4.0, max(0.2, 0.9 * (tol / err) ** 0.2))
            if not last or err > tol:
                hh = hh * fac
        if t < t1:
            # step budget exhausted: the tolerance cannot be met
            return st.SINGULAR, nsteps, hh
        return st.OK, nsteps, hh

    return advance
