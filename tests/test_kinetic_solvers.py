"""Deterministic kinetic solvers (issue: kinetic-equation references, items 1-4 and 7).

Every check compares with a closed form (kinetic.closed_form: massive Dirac,
Born lifetimes, Sinitsyn et al. 2007), an independent discretisation of the same
equation, or a conservation law.  Conventions: hbar = e = 1, q = -1
(docs/conventions.md).
"""
import math

import numpy as np
import pytest

from kinetic import boltzmann as B
from kinetic import closed_form as cf
from kinetic import nonadiabatic as N
from kinetic.coherence import CoherenceTransport
from kinetic.compare import compare
from packets.models import BHZ, QWZ, MassiveDirac, Parabolic
from packets.result import Result
from scattering import born
from scattering.disorder import GaussianDisorder, WhiteNoiseDisorder

Q = -1.0


# ----------------------------------------------------------------------------
# 1. linearised Boltzmann equation
# ----------------------------------------------------------------------------


def test_drude_parabolic_white_noise():
    # Drude sigma = n tau / m*, Born 1/tau = nV2 m* (isotropic: tau_tr = tau)
    mstar, nV2, mu = 0.7, 0.05, 1.3
    r = B.linear_response(Parabolic(mstar), mu, WhiteNoiseDisorder(nV2), n_angles=16)
    n = 2.0 * mstar * mu / (4.0 * math.pi)
    ref = cf.drude_conductivity(n, 1.0 / cf.parabolic_born_rate(mstar, nV2), mstar)
    assert r.drude[0, 0] == pytest.approx(ref, rel=1e-6)
    assert r.drude[1, 1] == pytest.approx(ref, rel=1e-6)
    assert abs(r.drude[0, 1]) < 1e-12 * ref and abs(r.drude[1, 0]) < 1e-12 * ref
    assert np.allclose(r.tau_out, 1.0 / cf.parabolic_born_rate(mstar, nV2), rtol=1e-10)


@pytest.mark.parametrize("s", [1, -1])
def test_dirac_born_lifetime_drude_and_anomalous(s):
    v, m, nV2 = 1.0, 1.0, 0.1
    model = MassiveDirac(v, m, s)
    for mu in (1.5, 3.0):
        kf = math.sqrt(mu * mu - m * m) / v
        r = B.linear_response(model, mu, WhiteNoiseDisorder(nV2), n_angles=24,
                              intrinsic_options=dict(k_max=60.0, n=60, k_breaks=[kf]))
        # Born lifetime (white noise) and transport-time conductivity (closed_form)
        assert np.allclose(r.tau_out, 1.0 / cf.dirac_born_rate(mu, v, m, nV2), rtol=1e-10)
        ref = cf.dirac_drude_conductivity(mu, v, m, nV2)
        assert r.drude[0, 0] == pytest.approx(ref, rel=1e-6)
        assert r.drude[1, 1] == pytest.approx(ref, rel=1e-6)
        # relaxation-time mode with tau = tau_tr is the exact solution for the isotropic band
        rta = B.linear_response(model, mu, tau=1.0 / cf.dirac_transport_rate(mu, v, m, nV2), n_angles=24,
                                intrinsic=False)
        assert rta.drude[0, 0] == pytest.approx(ref, rel=1e-9)
        # intrinsic: disc |k| < 60 plus the analytic valence tail -(s m)/(4 pi E(k_max)) (Omega ~ 1/E^3)
        tail = -s * m / (4.0 * math.pi * math.hypot(v * 60.0, m))
        s_int = cf.dirac_intrinsic_hall(mu, m, s)
        assert r.intrinsic[0, 1] + tail == pytest.approx(s_int, rel=1e-6)
        # side jump and anomalous distribution: Sinitsyn, Niu & MacDonald PRB 75, 045315 (2007), white noise:
        # sigma_sj = sigma_adist = sigma_int 2 (mu^2 - m^2)/(mu^2 + 3 m^2), same sign as sigma_int
        expect = s_int * 2.0 * (mu * mu - m * m) / (mu * mu + 3.0 * m * m)
        assert r.side_jump[0, 1] == pytest.approx(expect, rel=1e-8)
        assert r.adist[0, 1] == pytest.approx(expect, rel=1e-8)
        assert r.side_jump[1, 0] == pytest.approx(-expect, rel=1e-8)
        assert abs(r.side_jump[0, 0]) < 1e-12 and abs(r.adist[1, 1]) < 1e-12
        assert np.all(r.skew == 0.0)
        assert r.sigma[0, 1] == pytest.approx(r.intrinsic[0, 1] + 2 * expect, rel=1e-12)


def test_linear_response_grid_convergence():
    # forward-peaked Gaussian disorder (xi k_F = 3): the periodic trapezoid rule converges
    # exponentially.  Observed relative errors at N = 8, 12, 16 angles: ~0.47, 1.3e-2, 1.4e-4,
    # i.e. rate -d ln(err)/dN ~ 0.9 -> 1.1 per angle (accelerating: faster than any power).
    model, dis, mu = Parabolic(1.0), GaussianDisorder(0.05, 1.5), 2.0
    ref = B.linear_response(model, mu, dis, n_angles=48).drude[0, 0]
    ns = np.array([8, 12, 16])
    err = np.array([abs(B.linear_response(model, mu, dis, n_angles=n).drude[0, 0] / ref - 1) for n in ns])
    rates = -np.diff(np.log(err)) / np.diff(ns)
    print(f"grid errors {err}, exponential rates per angle {rates}")
    assert np.all(rates > 0.6)  # err(N) ~ exp(-rate N), at least a factor 11 per 4 angles
    assert rates[1] >= rates[0]  # super-geometric (spectral) convergence
    assert err[-1] < 1e-3


def test_lattice_contour_against_bz_grid():
    # QWZ metal (lattice: contour points from rays in the reciprocal cell).  Relaxation-time mode at T > 0
    # against an independent Fermi-sea Cartesian BZ sum (nonadiabatic.adiabatic_current, E -> 0), and the
    # Born solution: C4 symmetry sigma_xx = sigma_yy, symmetric tensor (no skew in Born), and
    # spectral convergence in the number of rays (contour does not touch the cell boundary).
    model = QWZ(1.0)
    mu, t, tau = 2.0, 0.05, 5.0  # upper band spans [1, 3]: the thermal window (+/- 20 T) stays inside it
    rta = B.linear_response(model, mu, tau=tau, temperature=t, n_angles=64, n_energy=40, intrinsic=False)
    grid = N.k_grid(model, n=192)
    # the x current of adiabatic_current is exactly linear in E_x (RTA delta f, anomalous part along y)
    sigma_grid = N.adiabatic_current(model, (1.0, 0.0), mu, t, tau, grid=grid)[0]
    assert rta.drude[0, 0] == pytest.approx(sigma_grid, rel=1e-7)
    mu = 1.5
    dis = WhiteNoiseDisorder(0.05)
    r32 = B.linear_response(model, mu, dis, n_angles=32, intrinsic=False, side_jump=False)
    r64 = B.linear_response(model, mu, dis, n_angles=64, intrinsic=False, side_jump=False)
    assert r64.drude[0, 0] == pytest.approx(r64.drude[1, 1], rel=1e-10)
    assert abs(r64.drude[0, 1] - r64.drude[1, 0]) < 1e-10 * r64.drude[0, 0]
    assert r32.drude[0, 0] == pytest.approx(r64.drude[0, 0], rel=1e-6)


# ----------------------------------------------------------------------------
# 2. time-dependent Boltzmann equation
# ----------------------------------------------------------------------------


def test_td_displaced_fermi_sea_relaxes_at_transport_rate():
    # Parabolic band, white noise: every energy shell's cos(phi) harmonic decays at 1/tau_tr = nV2 m*
    # (energy independent), so the current of any displaced sea decays as exp(-t/tau_tr) exactly.
    mstar, nV2, mu, t = 1.0, 0.05, 1.0, 0.025
    td = B.TimeDependentBoltzmann(Parabolic(mstar), mu, t, disorder=WhiteNoiseDisorder(nV2), n_r=24, n_phi=16)
    shift = np.array([0.02, 0.01])

    def f_init(k, n):
        kk = k - shift
        return 1.0 / (np.exp(((kk ** 2).sum(1) / (2 * mstar) - mu) / t) + 1.0)

    tau = 1.0 / cf.parabolic_born_rate(mstar, nV2)
    times = np.linspace(0.0, 3.0 * tau, 7)
    res = td.evolve(times, (0.0, 0.0), f_init=f_init)
    decay = np.exp(-times / tau)[:, None]
    assert np.allclose(res.band, res.band[0] * decay, rtol=1e-9, atol=0)
    # current of the displaced sea: j = q n shift / m*  (n = mstar mu/(2 pi) at T << mu, T^2 corrections
    # vanish for a constant density of states)
    assert res.band[0] == pytest.approx(Q * mstar * mu / (2 * math.pi) * shift / mstar, rel=1e-6)
    assert np.allclose(res.density, res.density[0], rtol=0, atol=1e-13)  # particle conservation


def test_td_weak_field_matches_linearised_solver():
    # Massive Dirac, Gaussian-correlated disorder, T > 0: the linear-order stationary state of the
    # time-dependent solver (polar pseudo-spectral grid) against the linearised contour solver
    # (energy grid); and the state reached by time evolution at t = 30 tau.
    model, dis, mu, t = MassiveDirac(1.0, 1.0, 1), GaussianDisorder(0.1, 0.8), 2.0, 0.03
    td = B.TimeDependentBoltzmann(model, mu, t, disorder=dis, n_r=24, n_phi=16)
    lr = B.linear_response(model, mu, dis, temperature=t, n_angles=16, n_energy=32, side_jump=False,
                           intrinsic=False)
    E = 1e-5
    band, _, _ = td.steady_current([E, 0.0])
    assert band[0] / E == pytest.approx(lr.drude[0, 0], rel=1e-6)
    assert abs(band[1]) < 1e-10 * abs(band[0])
    # effective transport time sigma / (q^2 int[dk] (-f0') v_x^2) (Gaussian disorder suppresses backscattering,
    # so it is longer than the white-noise one); run for 40 of them.  E = 1e-7: the nonlinear (E^3 and
    # Joule-heating E^3 t) corrections, 1.4e-5 relative at E = 1e-5, are then < 1e-8
    tau_tr = lr.drude[0, 0] / np.dot(td.wq, td.mdf0 * td.vel[:, 0] ** 2)
    E = 1e-7
    res = td.evolve([0.0, 40.0 * tau_tr], (0.0, E))
    assert res.band[-1, 1] / E == pytest.approx(lr.drude[1, 1], rel=1e-6)


def test_td_berry_dipole_nonlinear_hall_rta():
    # Tilted massive Dirac, relaxation-time mode: second-order anomalous current (E -> -E symmetrised)
    # against closed_form.berry_dipole_nonlinear_hall_current with the finite-T dipole
    # D(mu, T) = int d eps (-f0') D_{T=0}(eps) (exact convolution, f0 = int (-f0') Theta).
    # Tolerance 2e-5: E^4 terms ~ 2e-6 at E = 1e-4 (observed 1.3e-4 at E = 1e-3) plus grid error.
    mu, t, tau, w = 2.0, 0.03, 10.0, (0.3, 0.0)
    model = MassiveDirac(1.0, 1.0, 1, tilt=w)
    kc = (-mu * w[0] / (1.0 - w[0] ** 2), 0.0)  # centre of the tilted Fermi ellipse
    td = B.TimeDependentBoltzmann(model, mu, t, tau=tau, n_r=24, n_phi=24, center=kc)
    E = np.array([1e-4, 0.5e-4])
    jp = td.steady_current(E)[1]
    jm = td.steady_current(-E)[1]
    j2 = 0.5 * (jp + jm)
    u, wu = np.polynomial.legendre.leggauss(60)
    eps = mu + 2 * t * np.arctanh(u)
    D = sum(0.5 * ww * cf.tilted_dirac_berry_curvature_dipole(e, 1.0, 1.0, 1, w) for e, ww in zip(eps, wu))
    ref = cf.berry_dipole_nonlinear_hall_current(E, D, tau)
    assert np.allclose(j2, ref, rtol=2e-5, atol=0)


# ----------------------------------------------------------------------------
# 3. non-adiabatic steady state (Tu, Li & Yao, Eqs. 54-63)
# ----------------------------------------------------------------------------


def test_nonadiabatic_dirac_weak_field_and_scaling():
    mu, t, tau = 1.5, 0.05, 10.0
    model = MassiveDirac(1.0, 0.5, 1)
    kf = math.sqrt(mu * mu - 0.25)
    breaks = kf + 0.1 * np.arange(-6, 7)  # radial panels of width ~ 2 T/v_F across the thermal shell
    grid = N.k_grid(model, n=32, k_max=12.0, n_theta=64, k_breaks=breaks)
    E = 1e-3
    j = N.nonadiabatic_current(model, (E, 0.0), mu, t, tau, grid=grid).J
    # linear response: intrinsic (same disc) + Drude in the relaxation-time approximation (contour solver)
    lr = B.linear_response(model, mu, tau=tau, temperature=t, n_angles=32, n_energy=32,
                           intrinsic_options=dict(k_max=12.0, n=32, k_breaks=breaks))
    assert j[0] / E == pytest.approx(lr.sigma[0, 0], rel=1e-5)
    assert j[1] / E == pytest.approx(lr.sigma[1, 0], rel=1e-5)
    # non-adiabatic correction J - J_adiabatic: odd in E for the inversion-symmetric valley -> E^3
    d = [N.nonadiabatic_current(model, (e, 0.0), mu, t, tau, grid=grid).J[0]
         - N.adiabatic_current(model, (e, 0.0), mu, t, tau, grid=grid)[0] for e in (E, 2 * E)]
    assert d[1] / d[0] == pytest.approx(8.0, rel=0.02)
    # tilted valley (no inversion): E^2
    mt = MassiveDirac(1.0, 0.5, 1, tilt=(0.3, 0.0))
    d = [N.nonadiabatic_current(mt, (e, 0.0), mu, t, tau, grid=grid).J[0]
         - N.adiabatic_current(mt, (e, 0.0), mu, t, tau, grid=grid)[0] for e in (E, 2 * E)]
    assert d[1] / d[0] == pytest.approx(4.0, rel=0.1)


def test_nonadiabatic_bhz_remote_bands():
    # four-band BHZ, active pair (0, 1) below the remote pair: full-band Eq. (54) vs active manifold with the
    # perturbative remote-band term of Eq. (62a), vs the adiabatic result
    model = BHZ(u=1.0, zeeman=0.02, bia=0.05)
    mu, t, tau = -1.2, 0.02, 20.0
    grid = N.k_grid(model, n=40)
    E = 1e-4
    jf = N.nonadiabatic_current(model, (E, 0.0), mu, t, tau, grid=grid).J
    jp = N.nonadiabatic_current(model, (E, 0.0), mu, t, tau, manifold=(0, 2), grid=grid).J
    jn = N.nonadiabatic_current(model, (E, 0.0), mu, t, tau, manifold=(0, 2), remote="none", grid=grid).J
    ja = N.adiabatic_current(model, (E, 0.0), mu, t, tau, grid=grid)
    assert np.allclose(jf, ja, rtol=1e-5)
    assert np.allclose(jp, ja, rtol=1e-5)
    assert abs(jn[1] - ja[1]) > 0.3 * abs(ja[1])  # the remote-band curvature is a large part of sigma_yx
    # full - perturbative: O(E^3) in the current
    dd = [N.nonadiabatic_current(model, (e, 0.0), mu, t, tau, grid=grid).J[0]
          - N.nonadiabatic_current(model, (e, 0.0), mu, t, tau, manifold=(0, 2), grid=grid).J[0]
          for e in (1e-2, 2e-2)]
    assert dd[1] / dd[0] == pytest.approx(8.0, rel=0.1)


# ----------------------------------------------------------------------------
# 4. coherence-matrix transport (Qi, Wang & Watson, Eqs. 4.15-4.16)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["born-markov", "seed"])
def test_coherence_populations_follow_born_rates(form):
    m, nV2, e = 1.0, 0.1, 2.0
    model, dis = MassiveDirac(1.0, m, 1), WhiteNoiseDisorder(nV2)
    k = math.sqrt(e * e - m * m)
    nphi = 16
    ct = CoherenceTransport(model, dis, [k], n_phi=nphi, form=form, secular=True)
    s0 = ct.point_state(0, 0, [0.0, 1.0])  # upper-band population at phi = 0
    ds = (ct.L @ ct._vec(s0)).reshape(nphi, 2, 2)
    # gain into every grid direction = the Monte Carlo's Born angular distribution x d phi
    kvec = np.array([k, 0.0])
    dist = born.angular_distribution(model, dis, kvec, 1, ct.phi) * (2 * math.pi / nphi)
    rate = cf.dirac_born_rate(e, 1.0, m, nV2)
    expect = dist.copy()
    expect[0] -= rate
    assert np.allclose(ds[:, 1, 1].real, expect, rtol=0, atol=1e-12)
    assert np.allclose(ds[:, 0, 0], 0.0, atol=1e-14) and np.allclose(ds[:, 0, 1], 0.0, atol=1e-14)
    # populations over time = Boltzmann master equation with the same rates (secular: exact)
    W = np.array([born.angular_distribution(model, dis, ct.k[i], 1, ct.phi) for i in range(nphi)]) * (
        2 * math.pi / nphi)
    gen = W.T - np.diag(W.sum(axis=1))
    from scipy.linalg import expm
    times = np.array([0.0, 2.0, 5.0])
    ev = ct.evolve(times, s0)
    p0 = np.zeros(nphi)
    p0[0] = 1.0
    for it, tt in enumerate(times):
        assert np.allclose(ev.populations[it, 0, :, 1], expm(gen * tt) @ p0, atol=1e-12)
    assert ct.total_population(ev.sigma[-1]) == pytest.approx(1.0, abs=1e-12)


def test_coherence_decay_massive_and_massless():
    nV2 = 0.1
    dis = WhiteNoiseDisorder(nV2)
    # massive: coherence of (u_- + u_+)/sqrt 2 at one grid point rotates at 2E and decays at the mean of the two
    # band rates, 1/tau = nV2 (E^2 + m^2)/(2 v^2 E) (Born, white noise); the discrete grid adds back-scattering
    # into the same point, O(1/N): the fitted rate converges to 1/tau as N grows.
    m, e = 1.0, 2.0
    model = MassiveDirac(1.0, m, 1)
    k = math.sqrt(e * e - m * m)
    rate = cf.dirac_born_rate(e, 1.0, m, nV2)
    errs, fitted = [], []
    for nphi in (16, 64):
        ct = CoherenceTransport(model, dis, [k], n_phi=nphi)
        times = np.linspace(0.0, 1.0 / rate, 21)
        ev = ct.evolve(times, ct.point_state(0, 0, [1.0, 1.0]))
        c = ev.coherence[:, 0, 0]
        fit = np.polyfit(times, np.log(np.abs(c)), 1)
        errs.append(abs(-fit[0] - rate) / rate)
        fitted.append(-fit[0])
        # Bohr frequency E_0 - E_1 = -2E: sigma_01 ~ exp(+2iEt)
        ph = np.unwrap(np.angle(c))
        assert np.polyfit(times, ph, 1)[0] == pytest.approx(2 * e, rel=1e-3)
        sig = ev.sigma
        assert np.max(np.abs(sig - np.conj(np.swapaxes(sig, -1, -2)))) < 1e-12  # Hermitian
    # observed: 13.8 % (N = 16), 3.6 % (N = 64): error x N ~ 2.2 constant, i.e. O(1/N);
    # the Richardson extrapolation N -> inf recovers the Born rate to 0.2 %
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.15)
    extrap = (64 * fitted[1] - 16 * fitted[0]) / 48
    assert extrap == pytest.approx(rate, rel=0.01)
    # literal seed Eq. (4.15) away from the crossing: the coherence sigma_01 decays at the inter-band overlap
    # rate 2 pi D nV2 <|<u_0(p)|u_0(q)>|^2>... = nV2 E (1 - m^2/E^2)/(2 v^2) (derived; 0.075 here, not 0.125)
    # (exact diagonal element of the Liouvillian for sigma_01 at the grid point; the seed form has no
    # self-gain term because <u_0(p)|u_1(p)> = 0)
    ct = CoherenceTransport(model, dis, [k], n_phi=32, form="seed", secular=True)
    assert ct.L[1, 1].real == pytest.approx(-nV2 * e * (1 - m * m / e / e) / 2, rel=1e-10)
    # massless cone (k > 0): both forms give the Born rate nV2 E/(2 v^2) (the massive rate at m = 0); the
    # Born-Markov form's diagonal element also contains the discrete self-gain 2 pi R^ w of the point itself
    model0 = MassiveDirac(1.0, 0.0, 1)
    r0 = cf.dirac_born_rate(e, 1.0, 0.0, nV2)
    self_gain = 2 * math.pi * nV2 * (2 * math.pi / 32) * e / (2 * math.pi) ** 2
    ct = CoherenceTransport(model0, dis, [e], n_phi=32, form="born-markov", secular=True)
    assert -ct.L[1, 1].real == pytest.approx(r0 - self_gain, rel=1e-10)
    ct = CoherenceTransport(model0, dis, [e], n_phi=32, form="seed", secular=True)
    assert -ct.L[1, 1].real == pytest.approx(r0, rel=1e-10)


def test_coherence_steady_state_uniform():
    model, dis = MassiveDirac(1.0, 1.0, 1), WhiteNoiseDisorder(0.1)
    k = math.sqrt(3.0)
    for secular in (True, False):
        ct = CoherenceTransport(model, dis, [k], n_phi=16, secular=secular)
        s0 = ct.point_state(0, 3, [0.6, 0.8])
        ss = ct.steady_state(s0)
        pops = np.real(np.diagonal(ss, axis1=-2, axis2=-1))[0]
        assert ct.total_population(ss) == pytest.approx(1.0, abs=1e-10)
        # slowest non-zero mode: the shell-uniform coherence, decaying at ~Gamma/10 = 0.0125 -> t = 2500
        late = ct.evolve([0.0, 2500.0], s0).sigma[-1]
        assert np.allclose(late, ss, atol=1e-8)
        if secular:
            # elastic scattering spreads each band's population uniformly over its own shell
            assert np.allclose(pops[:, 0], 0.36 / 16, atol=1e-10)
            assert np.allclose(pops[:, 1], 0.64 / 16, atol=1e-10)
            assert np.allclose(ss[0, :, 0, 1], 0.0, atol=1e-10)
        else:
            # non-secular terms (population <-> coherence, rotating at 2E) move population between the bands
            # by O(Gamma/2E) = 0.031 (observed 0.0096); the distribution is still uniform in angle
            gam = cf.dirac_born_rate(2.0, 1.0, 1.0, 0.1) / (2 * 2.0)
            assert np.allclose(pops, pops[0], atol=1e-10)
            assert abs(pops[:, 0].sum() - 0.36) < gam


# ----------------------------------------------------------------------------
# 7. comparison tool
# ----------------------------------------------------------------------------


def _fake_result(jx_batches, jy_batches, E=(0.01, 0.0)):
    nt, nb, dim = 3, len(jx_batches), 2
    sums = np.zeros((nt, nb, 3 * dim))
    sums[:, :, 0] = jx_batches
    sums[:, :, 1] = jy_batches
    sums[:, :, 2] = jx_batches
    sums[:, :, 3] = jy_batches
    layout = {"current": (0, 3 * dim, [f"{p}_{a}" for p in ("total", "band", "anomalous") for a in "xy"],
                          (3 * dim,))}
    times = np.array([0.0, 1.0, 2.0])
    return Result(times, np.tile(E, (nt, 1)), sums, layout, np.ones((nt, nb)), {"OK": 100}, {})


def test_compare_table_and_figure(tmp_path):
    rng = np.random.default_rng(3)
    jx = rng.normal(0.01, 0.001, size=8)
    jy = rng.normal(-0.002, 0.0005, size=8)
    res = _fake_result(jx, jy)
    mx, sx = jx.sum(), math.sqrt(8 / 7 * np.sum((jx - jx.mean()) ** 2))
    ref = {"sigma_xx": 7.5, "sigma_yx": lambda p: -1.4, "current[0]": 0.08}
    path = tmp_path / "cmp.png"
    tab = compare(res, ref, path=path)
    rows = {r.quantity: r for r in tab}
    assert rows["sigma_xx"].mc == pytest.approx(mx / 0.01, rel=1e-12)
    assert rows["sigma_xx"].stderr == pytest.approx(sx / 0.01, rel=1e-12)
    assert rows["sigma_xx"].z == pytest.approx((mx / 0.01 - 7.5) / (sx / 0.01), rel=1e-12)
    assert rows["current[0]"].z == pytest.approx((mx - 0.08) / sx, rel=1e-12)
    assert rows["sigma_yx"].reference == -1.4
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sigma_xx" in str(tab) and tab.to_array().shape == (3,)
    # a parameter scan
    res2 = _fake_result(2 * jx, 2 * jy)
    tab2 = compare([res, res2], {"sigma_xx": lambda e: 1000.0 * e}, parameter=[0.01, 0.02], parameter_name="mu",
                   path=tmp_path / "scan.png")
    assert len(tab2) == 2 and (tmp_path / "scan.png").exists()
    assert tab2.rows[1].reference == pytest.approx(20.0)
    # correlated sampling against an E = 0 run: sigma from j(E) - j(0) batch by batch
    zero = _fake_result(jx - 0.5 * jx.mean(), jy, E=(0.0, 0.0))
    tab3 = compare(res, {"sigma_xx": 0.0}, zero_field=zero)
    d = 0.5 * jx.mean() * np.ones(8)
    assert tab3.rows[0].mc == pytest.approx(d.sum() / 0.01, rel=1e-12)
    assert tab3.rows[0].stderr == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="field is along x"):
        compare(res, {"sigma_xy": 0.0})


def test_compare_without_matplotlib_keeps_the_table(tmp_path, monkeypatch):
    """Without matplotlib, compare(path=...) warns naming the extra and still returns every number;
    ComparisonTable.plot raises an ImportError that names it; nothing is written."""
    import sys

    rng = np.random.default_rng(3)
    res = _fake_result(rng.normal(0.01, 0.001, size=8), rng.normal(-0.002, 0.0005, size=8))
    with_plot = compare(res, {"sigma_xx": 7.5})
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    path = tmp_path / "cmp.png"
    with pytest.warns(UserWarning, match=r"packets\[plot\]"):
        tab = compare(res, {"sigma_xx": 7.5}, path=path)
    assert tab.figure is None and not path.exists()
    assert [(r.mc, r.stderr, r.reference) for r in tab] == [(r.mc, r.stderr, r.reference) for r in with_plot]
    with pytest.raises(ImportError, match=r"packets\[plot\]"):
        tab.plot(path)
    assert not path.exists()


def test_example_draw_without_matplotlib(tmp_path, monkeypatch, capsys):
    """examples/compare_kinetic.draw prints what to install instead of losing the printed table."""
    import importlib.util
    import os
    import sys

    spec = importlib.util.spec_from_file_location(
        "compare_kinetic_example", os.path.join(os.path.dirname(__file__), "..", "examples", "compare_kinetic.py"))
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    rng = np.random.default_rng(4)
    tab = compare(_fake_result(rng.normal(0.01, 0.001, size=8), rng.normal(0.0, 0.001, size=8)), {"sigma_xx": 7.5})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert ex.draw(tab, str(tmp_path / "f.png")) is None
    assert "packets[plot]" in capsys.readouterr().out
