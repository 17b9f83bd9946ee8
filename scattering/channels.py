"""Event channels: elastic Born scattering, dephasing, relaxation, user channels.

Every channel follows the protocol of :class:`packets.Simulation` (see
:mod:`packets.packet`): ``build(ctx)`` (``ctx``: the
:class:`packets.plugins.BuildContext` of the simulation) returns ``{"apply", "params",
"majorant"}`` where ``apply`` is an ``@njit`` kernel

    apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev) -> (status, accepted, new_band)

called at every *tentative* event of the null-collision process (rate =
majorant).  ``apply`` accepts with probability rate(state)/majorant and
changes the packet; its random numbers come from the packet's Philox stream
through :func:`packets.packet.event_counter` ``(ev, j)``, so they depend only
on (seed, packet id, event index).  Scratch: the ``ew, evec, ek, ebrk, edh,
ec`` entries (27-32) of the stepper scratch tuple plus the stepper's own
arrays, which are free between steps (:mod:`packets.scratch`).

Rules (documented for users in docs/scattering.md)
--------------------------------------------------
ElasticScattering
    Born rate W = 2 pi R^(k - k') |<u_m(k')|u_n(k)>|^2 delta(eps_n - eps_m')
    (Qi, Wang & Watson, Eqs. 4.14-4.15), sampled without bias by
    :mod:`scattering.born`.  *Adiabatic* packets: band n -> m, k -> k'.
    *Coherent* packets (chi = sum_l c_l u_l(k)): the energy shell is chosen
    with the Born-rule probability |c_n|^2; the incoming state psi_in is chi
    projected on the bands within ``coherence_window`` of that energy, and
    the Born amplitude <u_m(k')|psi_in> gives the rate and the distribution
    of k'.  The outgoing state is the on-shell part of the Born amplitude
    applied to *every* component of chi,

        chi' ~ sum_m' u_m'(k') sum_l <u_m'(k')|u_l(k)> c_l
               over the pairs with |eps_m'(k') - eps_l(k)| <= coherence_window,

    normalised.  Components whose own energy shell passes through k' keep
    their mutual coherence: bands degenerate within the window near a
    crossing (the sigma_jl coupling of Qi, Wang & Watson, Eq. 4.15), and also bands at
    different energies whose shells coincide in k space, such as the
    particle-hole symmetric shells |k'| = |k| of the massive and massless
    Dirac cones, where Qi, Wang & Watson, Eq. 4.15 transfers sigma_01(k') =
    O_00 sigma_01(k) O_11^* with the same impurity Fourier component.  Since
    the shell is chosen with weight |c_n|^2, the ensemble average of
    chi' chi'^dagger is the Born-Markov transfer term exactly when the
    coinciding shells have the same density of states along the ray and the
    components the same out-scattering rate (true for particle-hole
    symmetric bands and a scalar disorder spectrum); otherwise the transfer
    of coherence is approximate at the level of that asymmetry.
    Components whose shells do not pass through k' are dropped: in the
    disorder average they land at other momenta, where their coherence with
    this packet is lost.  Limits: the window is a hard cutoff; the no-jump
    evolution between events does not damp components with larger rates
    (exact when the rates are equal); the side jump uses the band-n state.
    Side jump (Sinitsyn, Niu & MacDonald 2006; :mod:`scattering.sidejump`): x -> x + delta r
    for the transition (n, k) -> (m, k'), with band + potential energy
    (U(x) and -qE.x) conserved across the jump, i.e. the final state lies on
    the shifted shell eps_m(x + dr, k') = eps_n(x, k) - du(k'), where
    du = U(x + dr) - U(x) - qE.dr depends on k' through dr.  The proposal
    root on the unshifted shell is moved along its own ray onto the shifted
    shell (Newton, to 1e-12 in energy), and the proposal weight is
    multiplied by [R^ |<u_m(k')|psi>|^2 r^(d-1) / |dF/dr|]_shifted /
    [same / |e.grad eps_m|]_unshifted, with F(r) the shifted shell condition
    along the ray and dF/dr by central differences (h = 1e-4 r).  Real
    events therefore follow W delta(eps_m(k') - eps_n(k) + du) exactly,
    rate and final states, to all orders in E (this is the kernel of the
    anomalous-distribution term of the side-jump Boltzmann theory); if no
    state exists on the shifted shell near the root the event is null.
    Rays that cross the shifted shell but not the unshifted one (within
    O(E dr) of a band edge or of a tangency) are not proposed.
Dephasing
    Coherent packets only.  At rate gamma (constant or an ``@njit``
    gamma(t, x, k, p)) the pseudospin collapses onto an eigenvector of the
    moving-frame Hamiltonian Hbar = diag(eps_n) + V, V_nm = -[A_k]_nm . (qE)
    for n != m (Tu, Li & Yao, Eqs. 27, 28, 55; A the interband Berry connection,
    the gauge-dependent diagonal dropped), chosen with probability
    |<i|chi>|^2.  The ensemble average is the Lindblad dephasing
    d rho/dt = -i[H, rho] + gamma sum_i (P_i rho P_i - rho/2 - rho/2 ...)
    = gamma (sum_i P_i rho P_i - rho) in that basis (Lindblad pure dephasing:
    the coherences decay at rate gamma).  At E = 0 the basis is the band basis.
Relaxation
    At rate 1/tau_r the packet's momentum and band state are redrawn from the
    equilibrium distribution p(k, i) ~ f(E_i(x, k); mu, T) over the Brillouin
    zone (lattice) or the k window (continuum), in the hybridised energies E_i
    of Hbar at its position (adiabatic: the band energies), by rejection; its
    position and weight are kept, so particle number is conserved and the
    ensemble relaxes as d f/dt = -(f - N p_eq)/tau_r (Tu, Li & Yao, Eqs. A7, 57).
UserChannel
    A user ``@njit`` rate(t, x, k, chi, band, p) and apply(t, x, k, chi, band,
    p, u1, u2, u3, u4) -> new_band, inlined into the kernel; the library does
    the null-collision acceptance and flags NaN / negative rates and majorant
    violations.
"""
import copy
import math

import numba
import numpy as np

from packets import bandgeom, linalg, rng
from packets import scratch as sc
from packets import status as st
from packets.eom import inlined
from packets.jit import kernel
from packets.packet import event_counter

from . import born
from .disorder import Disorder
from .sidejump import coordinate_shift

Q = -1.0
#: random-number stream of the relaxation rejection loop
RELAX_STREAM = 3
#: attempts of the relaxation rejection sampler before the packet is flagged
RELAX_MAX_TRY = 100000


def _states_sample(ctx, nmax=256, seed=0):
    """A deterministic subsample of the simulation's packets (host-side checks)."""
    ok = np.flatnonzero(ctx.status == st.OK)
    if ok.size > nmax:
        ok = np.random.default_rng(seed).choice(ok, nmax, replace=False)
    return ok


def _make_hbar_eig(model, field):
    """Kernel ``hbar_eig(t, x, k, P, S, hw, hv) -> None``: hybridised bands at (x, k).

    Diagonalises H(x, k) (eigensystem in S[EV_W], S[EV_V]), builds the
    moving-frame Hamiltonian Hbar = diag(eps) + V, V_nm = -(qE).A_nm in the
    band basis (Tu, Li & Yao, Eqs. 27, 28, 55) and diagonalises it: ``hw`` gets the
    hybridised energies, ``hv`` the hybridised states *in the orbital basis*
    (columns).  Scratch: HM, DHDK, EFIELD, WORK, EV_W, EV_V, EV_HB, EV_MAT,
    EV_DH; ``hw``, ``hv`` may be S[W], S[V].
    """
    nb = model.nbands
    dim = model.dim
    h = inlined(model.h)
    dhdk = inlined(model.dhdk)
    efield = inlined(field.efield)
    eigh = linalg.eigh_for(nb)
    degtol = bandgeom.DEGTOL

    @kernel
    def hbar_eig(t, x, k, P, S, hw, hv):
        hm = S[sc.HM]
        dk = S[sc.DHDK]
        ev = S[sc.EFIELD]
        work = S[sc.WORK]
        w = S[sc.EV_W]
        v = S[sc.EV_V]
        hb = S[sc.EV_HB]
        vb = S[sc.EV_MAT]
        edh = S[sc.EV_DH]
        h(x, k, P[sc.P_MODEL], hm)
        eigh(hm, w, v, work)
        dhdk(x, k, P[sc.P_MODEL], dk, work)
        for a in range(dim):
            linalg.sandwich(v, dk[a], edh[a])
        efield(t, P[sc.P_EFIELD], ev)
        for i in range(nb):
            for j in range(nb):
                if i == j:
                    hb[i, j] = w[i]
                elif abs(w[i] - w[j]) <= degtol:
                    hb[i, j] = 0.0
                else:
                    acc = 0j
                    for a in range(dim):
                        # A^a_ij = i <u_i|dH_a|u_j> / (eps_j - eps_i)
                        acc += 1j * edh[a, i, j] / (w[j] - w[i]) * ev[a]
                    hb[i, j] = -Q * acc
        eigh(hb, hw, vb, work)
        # hybridised states in the orbital basis: hv = v @ vb
        for i in range(nb):
            for j in range(nb):
                acc = 0j
                for l in range(nb):
                    acc += v[i, l] * vb[l, j]
                hv[i, j] = acc

    return hbar_eig


# ----------------------------------------------------------------------------
# Elastic Born scattering
# ----------------------------------------------------------------------------


class ElasticScattering:
    """Elastic scattering by a random potential in the Born approximation.

    Parameters
    ----------
    disorder : scattering.disorder.Disorder
        The correlation spectrum R^(q).
    side_jump : bool
        Apply the gauge-invariant coordinate shift at each event (Sinitsyn, Niu & MacDonald 2006).
    majorant : float, optional
        Null-collision bound on the out-scattering rate; default: estimated
        by :func:`scattering.born.majorant` over the ensemble's states times
        ``safety``, once, when the Simulation is built; the value is then kept
        in its spec (:meth:`with_majorant`), so that resume, streaming and Dask
        tasks use it and give the in-memory run's results bit for bit.  Violations during the run flag the packet
        (status ``majorant_violated``) and are counted — never silently taken.
    safety : float
        Factor on the estimated majorant (default 2: fields move k).
    n_scan : int
        Scan sub-intervals per ray of the on-shell root finder.
    coherence_window : float
        Energy resolution within which bands count as on the same shell for
        coherent packets (default 1e-6 in model energy units).
    """

    name = "elastic"

    def __init__(self, disorder, side_jump=True, majorant=None, safety=2.0, n_scan=born.DEFAULT_N_SCAN,
                 coherence_window=1e-6, center=None, r_max=None):
        if not isinstance(disorder, Disorder):
            raise TypeError("disorder must be a scattering.disorder.Disorder (e.g. WhiteNoiseDisorder(0.05))")
        if majorant is not None and not (np.isfinite(majorant) and majorant > 0):
            raise ValueError(f"majorant must be a positive finite rate, got {majorant!r}")
        if not (np.isfinite(safety) and safety >= 1.0):
            raise ValueError(f"safety must be >= 1, got {safety!r}")
        if int(n_scan) < 4:
            raise ValueError("n_scan must be >= 4")
        if not (coherence_window >= 0.0):
            raise ValueError("coherence_window must be >= 0")
        self.disorder = disorder
        self.side_jump = bool(side_jump)
        self.majorant_value = majorant
        self.safety = float(safety)
        self.n_scan = int(n_scan)
        self.coherence_window = float(coherence_window)
        self.center = center
        self.r_max = r_max
        self._majorant_fixed = None

    def cache_key(self):
        return ("elastic", self.disorder.spectrum, self.side_jump)

    def with_majorant(self, g):
        """This channel with the majorant its run estimated fixed (itself when ``majorant=`` was given).

        ``packets.Simulation`` stores the copy in its spec, so that a resumed run, a streamed run
        and every Dask task use the majorant of the whole run, not one estimated again from the
        packets they hold.  ``majorant_value`` stays the user's setting (None: estimated).
        """
        if self.majorant_value is not None or self._majorant_fixed == g:
            return self
        fixed = copy.copy(self)
        fixed._majorant_fixed = float(g)
        return fixed

    def estimate_majorant(self, ctx):
        idx = _states_sample(ctx, 64)
        if idx.size == 0:
            return 1.0
        ks = ctx.k[idx]
        if ctx.dynamics == "adiabatic":
            bands = ctx.band[idx]
        else:
            w, v = ctx.model.bands(ks, ctx.x[idx])
            bands = np.argmax(np.abs(np.einsum("nij,ni->nj", v.conj(), ctx.chi[idx])) ** 2, axis=1)
        g = 0.0
        for b in np.unique(bands):
            sel = ks[bands == b]
            g = max(g, born.majorant(ctx.model, self.disorder, k=sel, band=int(b), safety=self.safety,
                                    center=self.center, r_max=self.r_max))
        return g

    def build(self, ctx):
        model, field = ctx.model, ctx.field
        self.disorder.check_dim(model.dim)
        if field.has_B:
            raise ValueError("ElasticScattering with a magnetic field is not supported (Landau-level physics)")
        sampler = born.make_born_sampler(model.h, model.dhdk, self.disorder.spectrum)
        geo = born.ray_geometry(model, center=self.center, r_max=self.r_max)
        if self.majorant_value is not None:
            gmax = self.majorant_value
        elif getattr(self, "_majorant_fixed", None) is not None:
            gmax = self._majorant_fixed  # estimated once for the whole run (with_majorant)
        else:
            gmax = self.estimate_majorant(ctx)
        if not (np.isfinite(gmax) and gmax > 0):
            raise ValueError(f"the estimated scattering majorant {gmax!r} is not a positive finite rate; "
                             "give majorant= explicitly")
        pdis = self.disorder.params
        ndis = pdis.size
        params = np.concatenate([pdis, geo, [self.n_scan, gmax, self.coherence_window]])
        nb = model.nbands
        dim = model.dim
        coherent = ctx.dynamics == "coherent"
        if coherent and nb > 64:
            raise ValueError(f"coherent elastic scattering supports at most 64 bands (model has {nb}); "
                             "use an active manifold")
        side = self.side_jump
        propose = sampler.propose
        spectrum = inlined(self.disorder.spectrum)
        textured = model.textured
        h = inlined(model.h)
        dhdk = inlined(model.dhdk)
        efield = inlined(field.efield)
        potential = inlined(field.potential)
        has_u = field.has_potential
        eigh = linalg.eigh_for(nb)
        degtol = bandgeom.DEGTOL
        g0 = ndis
        g1 = ndis + born.GEO_SIZE

        @kernel
        def jump_residual(t, x0, n, wi, vi, dki, ef, E, r, e, m, P, S, geo_):
            # Final state on the ray k' = k0 + r e for the transition (n, k) -> (m, k') in the field ef.
            # k' -> S[EV_K]; eigensystem of H(x0, k') -> S[W], S[V]; dH/dk' -> S[EV_DHDK]; side
            # jump -> S[EV_SHIFT]; jumped position -> S[EV_XJ].  Returns F(r) = eps_m(x0 + dr, k')
            # + U(x0 + dr) - U(x0) - qE.dr - E (zero on the energy shell shifted by the jump) and
            # the slope e . grad_k eps_m (Hellmann-Feynman) for the Newton iteration.
            pm = P[sc.P_MODEL]
            hm = S[sc.HM]
            w = S[sc.W]
            v = S[sc.V]
            work = S[sc.WORK]
            kt = S[sc.EV_K]
            dkt = S[sc.EV_DHDK]
            shift = S[sc.EV_SHIFT]
            xn = S[sc.EV_XJ]
            for a in range(dim):
                kt[a] = geo_[born.G_K0 + a] + r * e[a]
            h(x0, kt, pm, hm)
            eigh(hm, w, v, work)
            dhdk(x0, kt, pm, dkt, work)
            coordinate_shift(wi, vi, dki, n, w, v, dkt, m, degtol, shift)
            du = 0.0
            for a in range(dim):
                du += -Q * ef[a] * shift[a]
                xn[a] = x0[a] + shift[a]
            if has_u:
                gu = S[sc.GRAD_U]
                du += potential(xn, P[sc.P_POTENTIAL], gu) - potential(x0, P[sc.P_POTENTIAL], gu)
            if textured:
                # band energy (and the outgoing state) at the jumped position
                h(xn, kt, pm, hm)
                eigh(hm, w, v, work)
                dhdk(xn, kt, pm, dkt, work)
            g = 0.0
            for a in range(dim):
                g += e[a] * linalg.expectation_at(dkt, a, v[:, m])
            return w[m] + du - E, g

        @kernel
        def final_density(k, kt, vt, m, psi, r, pdis_, geo_, q):
            # R^(k - k') |<u_m(k')|psi>|^2 r^(d-1): the Born integrand along the ray
            # without its energy Jacobian (k' = kt, eigenvectors at k' in vt; q: workspace)
            for a in range(dim):
                q[a] = k[a] - kt[a]
            born.fold_transfer(geo_, q)
            ov = born.overlap_column(vt, m, psi)
            d = spectrum(q, pdis_) * (ov.real * ov.real + ov.imag * ov.imag)
            for _a in range(dim - 1):
                d *= r
            return d

        @kernel
        def apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev):
            pm = P[sc.P_MODEL]
            pdis_ = pc[0:g0]
            geo_ = pc[g0:g1]
            n_scan = int(pc[g1])
            gm = pc[g1 + 1]
            win = pc[g1 + 2]
            u1, u2 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 0))
            u3, u4 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 1))
            u5, u6 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 2))
            wi = S[sc.EV_W]
            vi = S[sc.EV_V]
            psi = S[sc.EV_PSI]
            cin = S[sc.EV_CIN]
            work = S[sc.WORK]
            w_out = S[sc.W]  # eigensystem at the outgoing k'
            v_out = S[sc.V]
            dk_out = S[sc.EV_DHDK]
            # incoming band structure at (x, k); chi in the band basis -> cin
            h(x, k, pm, S[sc.HM])
            eigh(S[sc.HM], wi, vi, work)
            if coherent:
                # energy shell chosen with the Born-rule weights |c_n|^2
                n = nb - 1
                linalg.band_amplitudes(vi, chi, cin)
                acc = 0.0
                for l in range(nb):
                    acc += cin[l].real * cin[l].real + cin[l].imag * cin[l].imag
                target = u6 * acc
                run = 0.0
                for l in range(nb):
                    run += cin[l].real ** 2 + cin[l].imag ** 2
                    if target < run:
                        n = l
                        break
                E = wi[n]
                for i in range(nb):
                    psi[i] = 0.0
                for l in range(nb):
                    if abs(wi[l] - E) <= win:
                        for i in range(nb):
                            psi[i] += vi[i, l] * cin[l]
                nrm = 0.0
                for i in range(nb):
                    nrm += psi[i].real ** 2 + psi[i].imag ** 2
                nrm = math.sqrt(nrm)
                for i in range(nb):
                    psi[i] = psi[i] / nrm
            else:
                n = band
                E = wi[n]
                for i in range(nb):
                    psi[i] = vi[i, n]
            kout = S[sc.EV_K]
            w, m, nroots = propose(x, k, n, E, psi, pm, pdis_, geo_, n_scan, u1, u2, u3, u4,
                                   kout, S[sc.EV_MAT], w_out, v_out, work, S[sc.EV_DH], S[sc.EV_DIR],
                                   S[sc.EV_BITS])
            if w == 0.0:
                return st.OK, False, band
            pairs = S[sc.EV_BITS]
            if coherent:
                # on-shell pairs (l at k) -> (m' at k') of the coherent transfer, decided on
                # the proposed (unshifted) shell: bit l of pairs[m'] is set when
                # |eps_m'(k') - eps_l(k)| <= win (nb <= 64, the length of ebrk)
                for mp in range(nb):
                    bits = 0
                    for l in range(nb):
                        if abs(w_out[mp] - wi[l]) <= win:
                            bits |= 1 << l
                    pairs[mp] = bits
            shifted = False
            dki = S[sc.DHDK]
            shift = S[sc.EV_SHIFT]
            ef = S[sc.EFIELD]
            if side:
                efield(t, P[sc.P_EFIELD], ef)
                shifted = has_u
                for a in range(dim):
                    if ef[a] != 0.0:
                        shifted = True
                dhdk(x, k, pm, dki, work)
                if shifted:
                    # The jump changes the potential energy (-qE.dr, U), so the final
                    # state lies on the shell eps_m(k') = E - du(k'), which depends on k'
                    # through dr.  Move the proposed root along its ray onto that shell
                    # (Newton), and reweight the proposal by the Born integrand over the
                    # Jacobian |dF/dr| of the shifted shell condition, so real events
                    # follow W delta(eps_m(k') - eps_n(k) + du) exactly (rate and final
                    # states); see the module docstring.
                    e = S[sc.EV_DIR]
                    r0 = 0.0
                    for a in range(dim):
                        e[a] = kout[a] - geo_[born.G_K0 + a]
                        r0 += e[a] * e[a]
                    r0 = math.sqrt(r0)
                    if r0 == 0.0:
                        return st.OK, False, band
                    for a in range(dim):
                        e[a] /= r0
                    rmax = born.ray_rmax(geo_, e)
                    f, g = jump_residual(t, x, n, wi, vi, dki, ef, E, r0, e, m, P, S, geo_)
                    d0 = final_density(k, kout, v_out, m, psi, r0, pdis_, geo_, S[sc.EV_Q])
                    if not d0 > 0.0:
                        # only possible for textured models, whose shell energy is taken at the
                        # jumped position: the Born integrand vanishes there, a null event
                        return st.OK, False, band
                    dens = w * abs(g) / d0
                    r = r0
                    ok = False
                    for _it in range(60):
                        if abs(f) <= 1e-12 * (1.0 + abs(E)):
                            ok = True
                            break
                        if g == 0.0:
                            break
                        r = r - f / g
                        if not (r > 0.0 and r < rmax):
                            break
                        f, g = jump_residual(t, x, n, wi, vi, dki, ef, E, r, e, m, P, S, geo_)
                    if not ok:
                        # no final state at the shifted energy near this ray's root
                        # (e.g. below the band edge): zero rate, a null event
                        return st.OK, False, band
                    hr = 1e-4 * r
                    fp, _g = jump_residual(t, x, n, wi, vi, dki, ef, E, r + hr, e, m, P, S, geo_)
                    fm, _g = jump_residual(t, x, n, wi, vi, dki, ef, E, r - hr, e, m, P, S, geo_)
                    jac = abs(fp - fm) / (2.0 * hr)
                    jump_residual(t, x, n, wi, vi, dki, ef, E, r, e, m, P, S, geo_)
                    d1 = final_density(k, kout, v_out, m, psi, r, pdis_, geo_, S[sc.EV_Q])
                    w = math.inf if jac == 0.0 else dens * d1 / jac
            if not (w <= gm):  # also catches NaN / inf weights
                return st.MAJORANT, False, band
            if not (u5 * gm < w):
                return st.OK, False, band
            # real event
            if side:
                if not shifted:
                    dhdk(x, kout, pm, dk_out, work)
                    coordinate_shift(wi, vi, dki, n, w_out, v_out, dk_out, m, degtol, shift)
                for a in range(dim):
                    x[a] += shift[a]
                if textured and not shifted:
                    h(x, kout, pm, S[sc.HM])
                    eigh(S[sc.HM], w_out, v_out, work)
            for a in range(dim):
                k[a] = kout[a]
            if coherent:
                # outgoing state: the on-shell part of the Born amplitude applied to every
                # component of chi, chi' ~ sum_m' u_m'(k') sum_{l on shell} <u_m'(k')|u_l(k)> c_l
                ctr = S[sc.EV_COUT]
                for mp in range(nb):
                    cm = 0j
                    bits = pairs[mp]
                    for l in range(nb):
                        if (bits >> l) & 1:
                            cm += born.overlap_column(v_out, mp, vi[:, l]) * cin[l]
                    ctr[mp] = cm
                nrm = 0.0
                for i in range(nb):
                    acc = 0j
                    for mp in range(nb):
                        acc += v_out[i, mp] * ctr[mp]
                    chi[i] = acc
                    nrm += acc.real * acc.real + acc.imag * acc.imag
                if nrm < 1e-300:
                    for i in range(nb):
                        chi[i] = v_out[i, m]
                else:
                    nrm = math.sqrt(nrm)
                    for i in range(nb):
                        chi[i] = chi[i] / nrm
                return st.OK, True, m
            for i in range(nb):
                chi[i] = v_out[i, m]
            return st.OK, True, m

        return {"apply": apply, "params": params, "majorant": gmax}


# ----------------------------------------------------------------------------
# Dephasing into the hybridised bands
# ----------------------------------------------------------------------------


@numba.njit
def _constant_rate(t, x, k, p):
    return p[0]


class Dephasing:
    """Decoherence of coherent packets into the hybridised bands (Tu, Li & Yao, §III C).

    Parameters
    ----------
    rate : float
        Constant dephasing rate gamma (1/time), or the majorant when
        ``rate_function`` is given.
    rate_function : numba dispatcher, optional
        ``@njit`` gamma(t, x, k, p) (must stay <= ``rate``; checked on the
        ensemble before the run and flagged during it).
    params : array_like
        Parameters ``p`` of ``rate_function``.
    """

    name = "dephasing"

    def __init__(self, rate, rate_function=None, params=()):
        if not (np.isfinite(rate) and rate >= 0):
            raise ValueError(f"dephasing rate must be finite and >= 0, got {rate!r}")
        if rate_function is not None and not isinstance(rate_function, numba.core.registry.CPUDispatcher):
            raise TypeError("rate_function must be an @njit function gamma(t, x, k, p)")
        self.rate = float(rate)
        self.rate_function = rate_function
        self.params = np.atleast_1d(np.asarray(params, dtype=np.float64))
        if not np.all(np.isfinite(self.params)):
            raise ValueError("dephasing rate-function parameters contain NaN or inf")

    def cache_key(self):
        return ("dephasing", self.rate_function)

    def build(self, ctx):
        if ctx.dynamics != "coherent":
            raise ValueError("Dephasing acts on the band pseudospin: use dynamics='coherent'")
        model, field = ctx.model, ctx.field
        nb = model.nbands
        if self.rate_function is None:
            rf = _constant_rate
            rp = np.array([self.rate])
        else:
            rf = self.rate_function
            rp = self.params
            idx = _states_sample(ctx)
            for i in idx:
                g = rf(0.0, ctx.x[i], ctx.k[i], rp)
                if not np.isfinite(g) or g < 0:
                    raise ValueError(f"dephasing rate_function returned {g!r} at k = {ctx.k[i].tolist()}; "
                                     "it must be finite and >= 0")
                if g > self.rate * (1.0 + 1e-12):  # same round-off allowance as the kernel check
                    raise ValueError(f"dephasing rate_function = {g:g} exceeds the majorant rate = {self.rate:g}; "
                                     "raise `rate`")
        rfi = inlined(rf)
        hbar_eig = _make_hbar_eig(model, field)
        np_rate = rp.size

        @kernel
        def apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev):
            gm = pc[np_rate]
            u1, u2 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 0))
            g = rfi(t, x, k, pc[0:np_rate])
            if not (g >= 0.0 and g < 1e308):
                return st.CHANNEL, False, band
            if g > gm * (1.0 + 1e-12):
                return st.MAJORANT, False, band
            if u1 * gm >= g:
                return st.OK, False, band
            hw = S[sc.W]
            hv = S[sc.V]
            hbar_eig(t, x, k, P, S, hw, hv)
            # Born-rule collapse on the hybridised states
            amp = S[sc.EV_PSI]
            linalg.band_amplitudes(hv, chi, amp)
            tot = 0.0
            for i in range(nb):
                tot += amp[i].real * amp[i].real + amp[i].imag * amp[i].imag
            target = u2 * tot
            run = 0.0
            sel = nb - 1
            for i in range(nb):
                run += amp[i].real * amp[i].real + amp[i].imag * amp[i].imag
                if target < run:
                    sel = i
                    break
            ph = amp[sel] / abs(amp[sel]) if abs(amp[sel]) > 0.0 else 1.0 + 0j
            for j in range(nb):
                chi[j] = hv[j, sel] * ph
            return st.OK, True, band

        return {"apply": apply, "params": np.concatenate([rp, [self.rate]]), "majorant": self.rate}


# ----------------------------------------------------------------------------
# Relaxation to local equilibrium
# ----------------------------------------------------------------------------


class Relaxation:
    """Relaxation to the local equilibrium g0 at (mu, T) (Tu, Li & Yao, Eqs. A7, 57).

    Parameters
    ----------
    tau : float
        Relaxation time tau_r (rate 1/tau_r).
    mu, temperature : float
        Chemical potential and temperature of the equilibrium (energy units).
    k_window : float, optional
        Continuum models: radius of the k ball sampled (default
        ``model.k_window``).  Lattice models sample the Brillouin zone.
    """

    name = "relaxation"

    def __init__(self, tau, mu, temperature, k_window=None):
        if not (np.isfinite(tau) and tau > 0):
            raise ValueError(f"relaxation time tau must be positive and finite, got {tau!r}")
        if not np.isfinite(mu):
            raise ValueError("mu must be finite")
        if not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
        self.tau = float(tau)
        self.mu = float(mu)
        self.temperature = float(temperature)
        self.k_window = k_window

    def cache_key(self):
        return ("relaxation",)

    def build(self, ctx):
        model, field = ctx.model, ctx.field
        dim = model.dim
        nb = model.nbands
        coherent = ctx.dynamics == "coherent"
        if model.lattice is not None:
            recip = np.zeros(9)
            recip[:dim * dim] = model.lattice.reciprocal.ravel()
            lattice = 1.0
            kw = 0.0
        else:
            recip = np.zeros(9)
            lattice = 0.0
            kw = self.k_window if self.k_window is not None else model.k_window
            if kw is None or not kw > 0:
                raise ValueError("Relaxation on a continuum model needs k_window (the sampled k ball radius)")
        # check the equilibrium is reachable: some states with f > 1e-6
        params = np.concatenate([[self.mu, self.temperature, lattice, kw], recip])
        hbar_eig = _make_hbar_eig(model, field)
        h = inlined(model.h)
        eigh = linalg.eigh_for(nb)

        @kernel(inline="always")
        def fermi(e, mu, T):
            if T == 0.0:
                if e < mu:
                    return 1.0
                if e > mu:
                    return 0.0
                return 0.5
            z = (e - mu) / T
            if z > 0:
                ez = math.exp(-z)
                return ez / (1.0 + ez)
            return 1.0 / (1.0 + math.exp(z))

        @kernel
        def apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev):
            mu = pc[0]
            T = pc[1]
            lat = pc[2] > 0.5
            kwin = pc[3]
            kk = S[sc.EV_K]
            w = S[sc.W]
            v = S[sc.V]
            for tr in range(RELAX_MAX_TRY):
                c = rng.stream_counter(RELAX_STREAM, ev * 262144 + 2 * tr)
                u1, u2 = rng.uniforms2_53(key0, key1, pid, c)
                u3, u4 = rng.uniforms2_53(key0, key1, pid, c + 1)
                if lat:
                    fr = (u1 - 0.5, u2 - 0.5, u3 - 0.5)
                    for a in range(dim):
                        acc = 0.0
                        for b in range(dim):
                            acc += fr[b] * pc[4 + dim * b + a]
                        kk[a] = acc
                else:
                    # uniform in the ball |k| < kwin
                    if dim == 1:
                        kk[0] = kwin * (2.0 * u1 - 1.0)
                    elif dim == 2:
                        r = kwin * math.sqrt(u1)
                        ph = 2.0 * math.pi * u2
                        kk[0] = r * math.cos(ph)
                        kk[1] = r * math.sin(ph)
                    else:
                        r = kwin * u1 ** (1.0 / 3.0)
                        ct = 2.0 * u2 - 1.0
                        stt = math.sqrt(max(0.0, 1.0 - ct * ct))
                        ph = 2.0 * math.pi * u3
                        kk[0] = r * stt * math.cos(ph)
                        kk[1] = r * stt * math.sin(ph)
                        kk[2] = r * ct
                i = int(u4 * nb)
                if i >= nb:
                    i = nb - 1
                if coherent:
                    hbar_eig(t, x, kk, P, S, w, v)
                    e = w[i]
                else:
                    h(x, kk, P[sc.P_MODEL], S[sc.HM])
                    eigh(S[sc.HM], w, v, S[sc.WORK])
                    e = w[i]
                ua, ub = rng.uniforms2_53(key0, key1, pid, rng.stream_counter(RELAX_STREAM + 1, ev * 262144 + tr))
                if ua < fermi(e, mu, T):
                    for a in range(dim):
                        k[a] = kk[a]
                    for j in range(nb):
                        chi[j] = v[j, i]
                    return st.OK, True, i
            return st.CHANNEL, False, band

        return {"apply": apply, "params": params, "majorant": 1.0 / self.tau}


# ----------------------------------------------------------------------------
# User-defined channels
# ----------------------------------------------------------------------------


class UserChannel:
    """A channel from the user's own ``@njit`` rate and event functions.

    Parameters
    ----------
    rate : numba dispatcher
        ``rate(t, x, k, chi, band, p) -> float`` (1/time), must be finite,
        >= 0 and <= ``majorant``.
    apply : numba dispatcher
        ``apply(t, x, k, chi, band, p, u1, u2, u3, u4) -> new_band``: changes
        the packet's x, k, chi in place given four uniforms in (0, 1).  chi
        must stay normalised (checked after every record interval).
    majorant : float
        Upper bound of ``rate`` over the states the run visits.
    params : array_like
        Parameters ``p`` (float64), passed to both functions.
    name : str
    """

    def __init__(self, rate, apply, majorant, params=(), name="user"):
        for nm, f in (("rate", rate), ("apply", apply)):
            if not isinstance(f, numba.core.registry.CPUDispatcher):
                raise TypeError(f"UserChannel {name!r}: {nm} must be an @numba.njit function")
        if not (np.isfinite(majorant) and majorant > 0):
            raise ValueError(f"UserChannel {name!r}: majorant must be a positive finite rate, got {majorant!r}")
        self.rate = rate
        self.apply = apply
        self.majorant = float(majorant)
        self.params = np.atleast_1d(np.asarray(params, dtype=np.float64))
        if not np.all(np.isfinite(self.params)):
            raise ValueError(f"UserChannel {name!r}: params contain NaN or inf")
        self.name = name

    def cache_key(self):
        return ("user", self.rate, self.apply, self.params.size)

    def _call_alone(self, what, fn, args):
        """Call the user's ``fn`` on its own (numba compiles just it): a short error naming it, not the
        composed kernel's typing errors."""
        try:
            return fn(*args)
        except Exception as exc:  # numba typing errors: their first line names the mismatch
            first = str(exc).strip().splitlines()
            first = next((ln for ln in first if ln.strip()), type(exc).__name__)[:300]
            types = ", ".join(type(a).__name__ if not isinstance(a, np.ndarray) else f"{a.dtype}[{a.size}]"
                              for a in args)
            raise TypeError(f"UserChannel {self.name!r}: {what} failed when called on its own with ({types}): "
                            f"{first}") from None

    def build(self, ctx):
        idx = _states_sample(ctx)
        nb = ctx.model.nbands
        for i in idx:
            g = self._call_alone("rate(t, x, k, chi, band, p)", self.rate,
                                 (0.0, ctx.x[i], ctx.k[i], ctx.chi[i], int(ctx.band[i]), self.params))
            if isinstance(g, (bool, np.bool_)) or not isinstance(g, (float, int, np.floating, np.integer)):
                raise TypeError(f"UserChannel {self.name!r}: rate returned {g!r} ({type(g).__name__}); it must "
                                "return the rate as a float (1/time)")
            if not np.isfinite(g) or g < 0:
                raise ValueError(f"UserChannel {self.name!r}: rate returned {g!r} at packet {i}; it must be finite "
                                 "and >= 0")
            if g > self.majorant * (1.0 + 1e-12):  # same round-off allowance as the kernel check
                raise ValueError(f"UserChannel {self.name!r}: rate {g:g} exceeds the majorant {self.majorant:g} at "
                                 f"packet {i}; raise the majorant")
        if idx.size:
            # apply on a copy of one packet (it changes x, k, chi in place): it must return a band index
            i = idx[0]
            nbnew = self._call_alone("apply(t, x, k, chi, band, p, u1, u2, u3, u4)", self.apply,
                                     (0.0, ctx.x[i].copy(), ctx.k[i].copy(), ctx.chi[i].copy(), int(ctx.band[i]),
                                      self.params, 0.5, 0.5, 0.5, 0.5))
            if isinstance(nbnew, (bool, np.bool_)) or not isinstance(nbnew, (int, np.integer)):
                raise TypeError(f"UserChannel {self.name!r}: apply returned {nbnew!r} ({type(nbnew).__name__}); it "
                                f"must return the packet's new band index, an int in 0..{nb - 1}")
        np_ = self.params.size
        rate = inlined(self.rate)
        user_apply = inlined(self.apply)

        @kernel
        def apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev):
            gm = pc[np_]
            p = pc[0:np_]
            u1, u2 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 0))
            g = rate(t, x, k, chi, band, p)
            if not (g >= 0.0 and g < 1e308):
                return st.CHANNEL, False, band
            if g > gm * (1.0 + 1e-12):
                return st.MAJORANT, False, band
            if u1 * gm >= g:
                return st.OK, False, band
            v1, v2 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 1))
            nbnew = user_apply(t, x, k, chi, band, p, u2, v1, v2, rng.uniforms2_53(key0, key1, pid,
                                                                                  event_counter(ev, 2))[0])
            if nbnew < 0 or nbnew >= nb:
                return st.CHANNEL, True, band
            return st.OK, True, nbnew

        return {"apply": apply, "params": np.concatenate([self.params, [self.majorant]]),
                "majorant": self.majorant}
