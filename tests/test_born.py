"""Disorder models and Born scattering (issue: scattering, disorder + Born machinery).

Every check compares with a closed form derived in the comments, an
independent quadrature (scipy.integrate, closed-form energy shells and
closed-form overlaps, no eigensolver), or, for the Monte Carlo sampler, with
the deterministic rate within 5 standard errors (fixed seeds).

Conventions: hbar = 1, R^(q) = Fourier transform of <V(r)V(r')> (Qi, Wang & Watson,
Eq. 4.2); W = 2 pi R^ |<u'|u>|^2 delta(eps - eps') and 1/tau = int [dk'] W
(Qi, Wang & Watson, Eqs. 4.14-4.15; docs/conventions.md).

Closed forms used (white noise of strength W = n_i V0^2, eps = k^2 / 2m):
  density of final states  rho_d(eps) = int d^dk/(2pi)^d delta(eps - k^2/2m)
    1D: 2 * (1/2pi) * m/k = m/(pi k)      (two points +/-k, |d eps/dk| = k/m)
    2D: (1/(2pi)^2) * 2pi k * m/k = m/(2pi)
    3D: (1/(2pi)^3) * 4pi k^2 * m/k = m k/(2 pi^2)
  1/tau = 2 pi W rho_d:  1D 2 W m/k,  2D W m (energy independent),  3D W m k/pi.
  1D chain eps = -2t cos k: rho = 1/(2 pi t |sin k|), 1/tau = W/(t |sin k|).
  Gaussian R^ = W exp(-q^2 xi^2/2), q^2 = 2k^2(1 - cos theta), a = k^2 xi^2:
    2D parabolic: 1/tau = W m e^{-a} I0(a);  3D: 1/tau = W m k (1 - e^{-2a}) / (2 pi a).
  Massive Dirac (golden rule with the spinor overlap): 1/tau = W (eps^2 + m^2)/(2 v^2 eps), and with the
    overlap average of (1 - cos): 1/tau_tr = W (eps^2 + 3 m^2)/(4 v^2 eps).
"""
import math

import numba
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

import scattering as sc
from packets.models import QWZ, BandModel, Lattice, MassiveDirac

# ----------------------------------------------------------------------------
# Inline test band models.  They share ONE pair of njit fillers, selected by
# p[0], so that the kernel sampler is compiled once for all of them (numba
# specialises the sampler per filler function, ~seconds each).
#   kind 0: parabolic eps = k^2/(2 p[1]), any dim, 1 band
#   kind 1: chain eps = -2 p[1] cos k, 1D lattice, 1 band
#   kind 2: Rashba-like 2D, H = k^2/(2 p[1]) + p[2] sz + p[3] (kx sx + ky sy)
# ----------------------------------------------------------------------------


@numba.njit
def _test_h(x, k, p, out):
    kind = p[0]
    k2 = 0.0
    for a in range(k.shape[0]):
        k2 += k[a] * k[a]
    if kind == 0.0:
        out[0, 0] = k2 / (2.0 * p[1])
    elif kind == 1.0:
        out[0, 0] = -2.0 * p[1] * math.cos(k[0])
    else:
        t = k2 / (2.0 * p[1])
        out[0, 0] = t + p[2]
        out[1, 1] = t - p[2]
        out[0, 1] = complex(p[3] * k[0], -p[3] * k[1])
        out[1, 0] = complex(p[3] * k[0], p[3] * k[1])


@numba.njit
def _test_dhdk(x, k, p, out, work):
    kind = p[0]
    for a in range(k.shape[0]):
        if kind == 0.0:
            out[a, 0, 0] = k[a] / p[1]
        elif kind == 1.0:
            out[a, 0, 0] = 2.0 * p[1] * math.sin(k[0])
        else:
            out[a, 0, 0] = k[a] / p[1]
            out[a, 1, 1] = k[a] / p[1]
            if a == 0:
                out[a, 0, 1] = p[3]
                out[a, 1, 0] = p[3]
            else:
                out[a, 0, 1] = complex(0.0, -p[3])
                out[a, 1, 0] = complex(0.0, p[3])


def parabolic(dim, mass):
    return BandModel("parabolic", dim, 1, [0.0, mass], _test_h, _test_dhdk, k_window=20.0)


def chain(t):
    return BandModel("chain", 1, 1, [1.0, t], _test_h, _test_dhdk, lattice=Lattice([[1.0]]))


def rashba(mass, delta, lam):
    return BandModel("rashba", 2, 2, [2.0, mass, delta, lam], _test_h, _test_dhdk, k_window=10.0)


def test_inline_models_are_consistent():
    for mdl in (parabolic(1, 0.7), parabolic(2, 0.7), parabolic(3, 0.7), chain(1.3), rashba(1.0, 0.3, 0.5)):
        mdl.check()


# ----------------------------------------------------------------------------
# Deterministic rates against closed forms
# ----------------------------------------------------------------------------

def dirac_rate(w, v, m, eps):
    return w * (eps ** 2 + m ** 2) / (2 * v ** 2 * eps)


@pytest.mark.parametrize("v,m,s,eps,phi", [(1.0, 1.0, 1, 2.0, 0.0), (0.7, 0.4, -1, 1.1, 2.3)])
def test_dirac_born_rate_closed_form(v, m, s, eps, phi):
    model = MassiveDirac(velocity=v, mass=m, valley=s)
    dis = sc.WhiteNoiseDisorder(0.1)
    kf = math.sqrt(eps ** 2 - m ** 2) / v
    k = kf * np.array([math.cos(phi), math.sin(phi)])
    rate, per = sc.born_rate(model, dis, k, 1, per_band=True)
    exact = dirac_rate(0.1, v, m, eps)
    assert abs(rate / exact - 1) < 1e-8
    assert per[0] == 0.0  # no valence states at eps > |m|
    if (v, m, eps) == (1.0, 1.0, 2.0):
        assert abs(1 / rate - 8.0) < 8e-8  # v = m = 1, eps = 2, W = 0.1: tau = 8
    tr = sc.transport_rate(model, dis, k, 1)
    assert abs(tr / (0.1 * (eps ** 2 + 3 * m ** 2) / (4 * v ** 2 * eps)) - 1) < 1e-8


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_parabolic_born_rate_closed_form(dim):
    mass, w = 0.7, 0.3
    model = parabolic(dim, mass)
    dis = sc.WhiteNoiseDisorder(w)
    for kmag in (0.8, 2.1):
        k = np.zeros(dim)
        k[-1] = kmag
        rate = sc.born_rate(model, dis, k, 0)
        exact = {1: 2 * w * mass / kmag, 2: w * mass, 3: w * mass * kmag / math.pi}[dim]
        assert abs(rate / exact - 1) < 1e-8, (dim, kmag, rate, exact)
        # isotropic white-noise scattering off a parabolic band: tau_tr = tau
        assert abs(sc.transport_rate(model, dis, k, 0) / exact - 1) < 1e-8


def test_chain_born_rate_closed_form():
    t, w = 1.3, 0.2
    model = chain(t)
    for k in (0.4, 2.0, -1.1):
        exact = w / (t * abs(math.sin(k)))
        assert abs(sc.born_rate(model, sc.WhiteNoiseDisorder(w), [k], 0) / exact - 1) < 1e-8


def test_dirac_angular_distribution():
    v, m, eps, w, phi = 1.0, 1.0, 2.0, 0.1, 0.7
    model = MassiveDirac(velocity=v, mass=m)
    kf = math.sqrt(eps ** 2 - m ** 2) / v
    k = kf * np.array([math.cos(phi), math.sin(phi)])
    ang = np.linspace(0, 2 * np.pi, 37)
    got = sc.angular_distribution(model, sc.WhiteNoiseDisorder(w), k, 1, ang)
    c = m / eps
    # (2 pi W / (2 pi)^2) * k/|d eps/dk| * |<u_k'|u_k>|^2, k/|d eps/dk| = eps / v^2
    exact = (2 * np.pi * w / (2 * np.pi) ** 2) * (eps / v ** 2) * 0.5 * (1 + c ** 2 + (1 - c ** 2) * np.cos(ang - phi))
    assert np.max(np.abs(got - exact)) < 1e-10 * exact.max()


def test_gaussian_disorder_against_direct_quadrature():
    w, xi = 0.25, 0.6
    dis = sc.GaussianDisorder(w, xi)
    # 2D parabolic: closed form W m e^{-a} I0(a)
    mass = 0.8
    for kmag in (0.5, 1.7):
        a = (kmag * xi) ** 2
        got = sc.born_rate(parabolic(2, mass), dis, [kmag, 0.0], 0)
        assert abs(got / (w * mass * special.i0e(a)) - 1) < 1e-9
    # 3D parabolic: closed form W m k (1 - e^{-2a}) / (2 pi a)
    kmag = 1.3
    a = (kmag * xi) ** 2
    got = sc.born_rate(parabolic(3, mass), dis, [0.0, 0.0, kmag], 0, n_angles=64)
    assert abs(got / (w * mass * kmag * (1 - math.exp(-2 * a)) / (2 * math.pi * a)) - 1) < 1e-9
    # massive Dirac: scipy quad over the closed-form circular shell
    v, m, eps, phi = 1.2, 0.5, 1.4, 0.3
    model = MassiveDirac(velocity=v, mass=m)
    kf = math.sqrt(eps ** 2 - m ** 2) / v
    c = m / eps

    def integrand(p2):
        q2 = 2 * kf ** 2 * (1 - math.cos(p2 - phi))
        ov2 = 0.5 * (1 + c ** 2 + (1 - c ** 2) * math.cos(p2 - phi))
        return 2 * math.pi * w * math.exp(-0.5 * q2 * xi ** 2) * ov2 * (eps / v ** 2) / (2 * math.pi) ** 2

    ref = integrate.quad(integrand, 0, 2 * math.pi, epsabs=0, epsrel=1e-13)[0]
    got = sc.born_rate(model, dis, kf * np.array([math.cos(phi), math.sin(phi)]), 1)
    assert abs(got / ref - 1) < 1e-9


def test_screened_coulomb_against_direct_quadrature():
    n_i, z, lam, eps_r, mass = 0.05, 1.0, 2.0, 3.0, 0.6
    for dim in (2, 3):
        dis = sc.ScreenedCoulombDisorder(n_i, z, lam, eps_r, dim=dim)
        kmag = 1.1

        def rhat(q):
            if dim == 2:
                return n_i * (2 * math.pi * z / (eps_r * (q + 1 / lam))) ** 2
            return n_i * (4 * math.pi * z / (eps_r * (q * q + 1 / lam ** 2))) ** 2

        if dim == 2:  # 1/tau = (m / 2 pi) int dtheta R^(2 k sin(theta/2))
            ref = mass / (2 * math.pi) * integrate.quad(lambda t: rhat(2 * kmag * math.sin(t / 2)), 0, 2 * math.pi,
                                                        epsabs=0, epsrel=1e-13)[0]
            k = [kmag, 0.0]
        else:  # 1/tau = (m k / 2 pi) int_{-1}^{1} dc R^(k sqrt(2(1-c)))
            ref = mass * kmag / (2 * math.pi) * integrate.quad(lambda c: rhat(kmag * math.sqrt(2 * (1 - c))), -1, 1,
                                                               epsabs=0, epsrel=1e-13)[0]
            k = [0.0, 0.0, kmag]
        got = sc.born_rate(parabolic(dim, mass), dis, k, 0, n_angles=256 if dim == 2 else 96)
        assert abs(got / ref - 1) < 1e-7, (dim, got, ref)


def _qwz_d(kx, ky, u):
    return np.array([np.sin(kx), np.sin(ky), u + np.cos(kx) + np.cos(ky)])


def _qwz_shell_k(u, eps, kx, sign=1.0):
    """Closed-form ky on the QWZ shell |d| = eps at given kx (see test below)."""
    a = u + math.cos(kx)
    c = (eps ** 2 - 2 - u * u - 2 * u * math.cos(kx)) / (2 * a)
    return sign * math.acos(c)


def test_qwz_born_rate_independent_quadrature():
    """QWZ upper band, white noise, against an eigensolver-free quadrature.

    eps^2 = |d|^2 = sin^2 kx + sin^2 ky + (A + cos ky)^2, A = u + cos kx, is
    linear in cos ky: cos ky = (eps^2 - 2 - u^2 - 2u cos kx)/(2A).  So
    1/tau = (W/2pi) int dkx sum_{ky = +/-} |<u'|u>|^2 eps / |A sin ky| with the
    two-band overlap |<u'|u>|^2 = (1 + d^.d^')/2; the kx range ends where
    |cos ky| = 1 (inverse-square-root turning points removed by kx = kx* sin t).
    """
    u, eps, w = 1.0, 2.5, 0.3
    model = QWZ(u)
    kx0 = 0.4
    k = np.array([kx0, _qwz_shell_k(u, eps, kx0)])
    assert abs(np.linalg.norm(_qwz_d(*k, u)) - eps) < 1e-12
    dk = _qwz_d(*k, u) / eps
    cosky = lambda kx: (eps ** 2 - 2 - u * u - 2 * u * math.cos(kx)) / (2 * (u + math.cos(kx)))
    kxs = optimize.brentq(lambda kx: cosky(kx) - 1.0, 0.0, 3.0, xtol=1e-15)

    def integrand(t):
        kx = kxs * math.sin(t)
        a = u + math.cos(kx)
        acc = 0.0
        for sgn in (1.0, -1.0):
            ky = sgn * math.acos(min(1.0, cosky(kx)))
            d2 = _qwz_d(kx, ky, u) / eps
            acc += 0.5 * (1 + dk @ d2) * eps / abs(a * math.sin(ky)) if math.sin(ky) != 0 else 0.0
        return acc * kxs * math.cos(t)

    ref = w / (2 * math.pi) * integrate.quad(integrand, -math.pi / 2, math.pi / 2, epsabs=0, epsrel=1e-12,
                                             limit=200)[0]
    got = sc.born_rate(model, sc.WhiteNoiseDisorder(w), k, 1)
    assert abs(got / ref - 1) < 1e-8, (got, ref)


def test_rashba_interband_rates_closed_form():
    """Two bands on shell: per-band Born rates of H = k^2/2m + D sz + lam (k.sigma).

    d = (lam kx, lam ky, D); band s = +/-1 has spinor along s d^, so
    |<u_s'(k')|u_s(k)>|^2 = (1 + s s' d^.d^')/2, whose azimuthal average is
    (1 + s s' c c')/2 with c = D/|d|.  Hence
    Gamma_{s -> s'} = W k_s'/|v_s'| (1 + s s' c_s c_s')/2,
    v_s = k/m + s lam^2 k/|d|, k_s' the root of eps_s'(k) = eps.
    """
    mass, delta, lam, w, eps = 1.0, 0.3, 0.5, 0.2, 1.0
    model = rashba(mass, delta, lam)
    dn = lambda k: math.sqrt(delta ** 2 + (lam * k) ** 2)
    en = lambda k, s: k * k / (2 * mass) + s * dn(k)
    kroot = {s: optimize.brentq(lambda k: en(k, s) - eps, 0.0, 5.0, xtol=1e-15) for s in (-1, 1)}
    vel = {s: kroot[s] / mass + s * lam ** 2 * kroot[s] / dn(kroot[s]) for s in (-1, 1)}
    cth = {s: delta / dn(kroot[s]) for s in (-1, 1)}
    for n, s in ((0, -1), (1, 1)):
        k = np.array([0.0, kroot[s]])
        _, per = sc.born_rate(model, sc.WhiteNoiseDisorder(w), k, n, per_band=True)
        for m, sp in ((0, -1), (1, 1)):
            exact = w * kroot[sp] / abs(vel[sp]) * 0.5 * (1 + s * sp * cth[s] * cth[sp])
            assert abs(per[m] / exact - 1) < 1e-9, (n, m, per[m], exact)
        assert per.min() > 0.05 * per.max()  # genuine inter-band scattering


# ----------------------------------------------------------------------------
# Kernel sampler: unbiasedness, acceptance distribution, majorant violations
# ----------------------------------------------------------------------------

def _assert_within(mc, se, exact, nsig=5.0, systematic=1e-10):
    """|mc - exact| < 5 sigma + systematic; the systematic relative tolerance
    covers the root-finding precision (~1e-13 r_max) for zero-variance weights."""
    assert abs(mc - exact) < nsig * se + systematic * abs(exact), (mc, se, exact, (mc - exact) / max(se, 1e-300))


def test_sampler_dirac_unbiased_and_angular_distribution():
    v, m, eps, w, phi = 1.0, 1.0, 2.0, 0.1, 0.7
    model = MassiveDirac(velocity=v, mass=m)
    dis = sc.WhiteNoiseDisorder(w)
    kf = math.sqrt(eps ** 2 - m ** 2) / v
    k = kf * np.array([math.cos(phi), math.sin(phi)])
    exact = dirac_rate(w, v, m, eps)
    s = sc.sample_many(model, dis, k, 1, 40000, seed=11, n_scan=32)
    _assert_within(*s.rate(), exact)
    on = s.nroots > 0
    assert np.all(s.band[on] == 1) and np.all(s.nroots[s.band == 1] == 1)
    assert np.max(np.abs(np.linalg.norm(s.k[on], axis=1) - kf)) < 1e-12  # k' on the shell
    # the returned state is the target-band eigenvector of H(k') at energy eps
    hk = model.hamiltonian(s.k[on][:200])
    vec = s.state[on][:200]
    assert np.max(np.abs(np.einsum("pij,pj->pi", hk, vec) - eps * vec)) < 1e-11

    gmax = sc.majorant(model, dis, k=k[None, :], band=1)
    acc = sc.sample_many(model, dis, k, 1, 40000, seed=12, n_scan=32, gamma_max=gmax)
    assert acc.violations == 0
    # real-event rate = gamma_max * P(accept): binomial error
    pa = acc.accepted.mean()
    _assert_within(gmax * pa, gmax * math.sqrt(pa * (1 - pa) / acc.accepted.size), exact)
    # accepted k' angles follow |<u_k'|u_k>|^2 = (1 + c^2 + s^2 cos(phi' - phi))/2
    ang = np.mod(np.arctan2(acc.k[acc.accepted, 1], acc.k[acc.accepted, 0]), 2 * np.pi)
    edges = np.linspace(0, 2 * np.pi, 25)
    c = m / eps
    cum = lambda a: 0.5 * ((1 + c * c) * a + (1 - c * c) * np.sin(a - phi))
    prob = np.diff(cum(edges)) / (np.pi * (1 + c * c))
    obs = np.histogram(ang, edges)[0]
    p = stats.chisquare(obs, prob * obs.sum()).pvalue
    assert p > 1e-3, p


def test_sampler_qwz_unbiased_with_folding():
    """QWZ with Gaussian disorder: MC mean = born_rate, also for k shifted by a
    reciprocal vector (the kernel must fold k - k' into the cell)."""
    u, eps = 1.0, 2.5
    model = QWZ(u)
    dis = sc.GaussianDisorder(0.3, 0.7)
    k = np.array([0.4, _qwz_shell_k(u, eps, 0.4)])
    exact = sc.born_rate(model, dis, k, 1)
    assert abs(sc.born_rate(model, dis, k + [2 * np.pi, -2 * np.pi], 1) / exact - 1) < 1e-10
    s = sc.sample_many(model, dis, k + [2 * np.pi, 0.0], 1, 30000, seed=21, n_scan=32)
    _assert_within(*s.rate(), exact)
    on = s.nroots > 0
    assert np.max(np.abs(model.energies(s.k[on])[:, 1] - eps)) < 1e-12
    assert np.all(np.abs(s.k[on]) <= np.pi + 1e-12)  # k' in the cell centred at Gamma


def test_sampler_parabolic_3d():
    mass, w, kmag = 0.7, 0.3, 1.2
    model = parabolic(3, mass)
    k = np.array([0.0, kmag, 0.0])
    exact = w * mass * kmag / math.pi
    s = sc.sample_many(model, sc.WhiteNoiseDisorder(w), k, 0, 30000, seed=31, n_scan=32)
    _assert_within(*s.rate(), exact)
    # white noise + parabolic band: the proposal weight is constant (no variance)
    assert np.std(s.weight) < 1e-10 * exact
    gmax = sc.majorant(model, sc.WhiteNoiseDisorder(w), energies=[kmag ** 2 / (2 * mass)], band=0)
    acc = sc.sample_many(model, sc.WhiteNoiseDisorder(w), k, 0, 30000, seed=32, n_scan=32, gamma_max=gmax)
    assert acc.violations == 0
    # isotropic: cos(theta') of accepted k' is uniform on [-1, 1]
    ct = acc.k[acc.accepted, 2] / kmag
    obs = np.histogram(ct, np.linspace(-1, 1, 11))[0]
    assert stats.chisquare(obs).pvalue > 1e-3


def test_sampler_chain_1d():
    t, w, k = 1.3, 0.2, 0.9
    model = chain(t)
    exact = w / (t * abs(math.sin(k)))
    s = sc.sample_many(model, sc.WhiteNoiseDisorder(w), [k], 0, 20000, seed=41, n_scan=32)
    _assert_within(*s.rate(), exact)
    # the two final states are +/- k (forward and backward), equally likely
    assert np.allclose(np.abs(s.k[:, 0]), k, atol=1e-12)


def test_sampler_interband_per_band():
    mass, delta, lam, w = 1.0, 0.3, 0.5, 0.2
    model = rashba(mass, delta, lam)
    eps = 1.0
    dn = lambda kk: math.sqrt(delta ** 2 + (lam * kk) ** 2)
    kp = optimize.brentq(lambda kk: kk * kk / 2 + dn(kk) - eps, 0, 5, xtol=1e-15)
    k = np.array([kp * 0.6, kp * 0.8])
    dis = sc.WhiteNoiseDisorder(w)
    _, per = sc.born_rate(model, dis, k, 1, per_band=True)
    s = sc.sample_many(model, dis, k, 1, 30000, seed=51, n_scan=32)
    for m in (0, 1):
        _assert_within(*s.rate(band=m), per[m])
    _assert_within(*s.rate(), per.sum())


def test_two_roots_per_ray_mexican_hat():
    """Non-star-shaped shell: the lower Rashba band with a strong coupling is a
    Mexican hat, so below eps(0) = -D the shell is an annulus and every ray from
    the origin crosses it twice (inner and outer circle).  Closed form as in
    test_rashba_interband_rates_closed_form, summed over both circles:
    Gamma = W sum_j k_j/|v_j| (1 + c c_j)/2.  The sampler is run with a bracket
    buffer of length 1 so that the rescan path for the second root is used."""
    mass, delta, lam, w, eps = 1.0, 0.1, 1.0, 0.2, -0.3
    model = rashba(mass, delta, lam)
    dn = lambda kk: math.sqrt(delta ** 2 + (lam * kk) ** 2)
    f = lambda kk: kk * kk / (2 * mass) - dn(kk) - eps
    kmin = math.sqrt((mass * lam ** 2) ** 2 - delta ** 2) / lam  # bottom of the hat
    roots = [optimize.brentq(f, 0.0, kmin, xtol=1e-15), optimize.brentq(f, kmin, 5.0, xtol=1e-15)]
    vel = [kk / mass - lam ** 2 * kk / dn(kk) for kk in roots]
    cj = [delta / dn(kk) for kk in roots]
    k = roots[0] * np.array([math.cos(1.0), math.sin(1.0)])
    exact = sum(w * kk / abs(v) * 0.5 * (1 + cj[0] * c) for kk, v, c in zip(roots, vel, cj))
    dis = sc.WhiteNoiseDisorder(w)
    rate, per = sc.born_rate(model, dis, k, 0, per_band=True)
    assert per[1] == 0.0
    assert abs(rate / exact - 1) < 1e-9, (rate, exact)
    s = sc.sample_many(model, dis, k, 0, 20000, seed=71, n_scan=32, cap=1)
    assert np.all(s.nroots[s.band == 0] == 2)
    _assert_within(*s.rate(), exact)
    kk = np.linalg.norm(s.k[s.band == 0], axis=1)
    inner = np.abs(kk - roots[0]) < 1e-10
    assert np.all(inner | (np.abs(kk - roots[1]) < 1e-10))
    assert 0.45 < inner.mean() < 0.55  # root chosen uniformly among the two


def test_majorant_violation_is_reported():
    model = MassiveDirac(velocity=1.0, mass=1.0)
    dis = sc.WhiteNoiseDisorder(0.1)
    k = np.array([math.sqrt(3.0), 0.0])
    gtrue = sc.majorant(model, dis, k=k[None, :], band=1, safety=1.0)
    small = 0.5 * gtrue
    s = sc.sample_many(model, dis, k, 1, 2000, seed=61, n_scan=32, gamma_max=small)
    viol = s.status == sc.EVENT_MAJORANT_VIOLATED
    assert s.violations > 0
    assert np.all(s.weight[viol] > small) and np.all(s.weight[~viol] <= small)
    # a sufficient majorant reports none, a null event is never a violation
    s2 = sc.sample_many(model, dis, k, 1, 2000, seed=61, n_scan=32, gamma_max=1.5 * gtrue)
    assert s2.violations == 0 and np.any(s2.status == sc.EVENT_NULL) and np.any(s2.status == sc.EVENT_REAL)


def test_overlap_kernel():
    rng = np.random.default_rng(3)
    a = rng.normal(size=3) + 1j * rng.normal(size=3)
    b = rng.normal(size=3) + 1j * rng.normal(size=3)
    assert abs(sc.overlap(a, b) - np.vdot(a, b)) < 1e-14
    v = np.stack([a, b], axis=1)
    assert abs(sc.overlap_column(v, 1, a) - np.vdot(b, a)) < 1e-14


# ----------------------------------------------------------------------------
# Disorder models: definitions and bad input
# ----------------------------------------------------------------------------


@numba.njit
def _user_gauss(q, p):
    q2 = 0.0
    for a in range(q.shape[0]):
        q2 += q[a] * q[a]
    return p[0] * math.exp(-0.5 * q2 * p[1] * p[1])


@numba.njit
def _user_nan(q, p):
    if q[0] == 0.0:
        return math.nan  # NaN at q = 0 only
    return p[0]


@numba.njit
def _user_negative(q, p):
    return p[0] * math.cos(q[0])  # negative for some q


def test_disorder_spectra_definitions():
    q = np.array([[0.0, 0.0], [0.3, -0.4], [2.0, 1.0]])
    qa = np.linalg.norm(q, axis=1)
    assert np.allclose(sc.WhiteNoiseDisorder(0.2)(q), 0.2, rtol=0, atol=0)
    assert np.allclose(sc.GaussianDisorder(0.2, 0.5)(q), 0.2 * np.exp(-qa ** 2 * 0.25 / 2), rtol=1e-15)
    assert abs(sc.GaussianDisorder(0.2, 0.5).variance(2) - 0.2 / (2 * np.pi * 0.25)) < 1e-15
    c2 = sc.ScreenedCoulombDisorder(0.1, 2.0, 0.5, 4.0, dim=2)
    assert np.allclose(c2(q), 0.1 * (2 * np.pi * 2.0 / (4.0 * (qa + 2.0))) ** 2, rtol=1e-14)
    c3 = sc.ScreenedCoulombDisorder(0.1, 2.0, 0.5, 4.0, dim=3)
    q3 = np.array([[0.1, 0.2, 0.3]])
    assert np.allclose(c3(q3), 0.1 * (4 * np.pi * 2.0 / (4.0 * (0.14 + 4.0))) ** 2, rtol=1e-14)
    ud = sc.UserDisorder(_user_gauss, [0.2, 0.5])
    assert np.allclose(ud(q), sc.GaussianDisorder(0.2, 0.5)(q), rtol=1e-15)
    assert ud.describe()["name"] == "_user_gauss"


@pytest.mark.parametrize("make,word", [
    (lambda: sc.WhiteNoiseDisorder(-0.1), "strength"),
    (lambda: sc.WhiteNoiseDisorder(float("nan")), "strength"),
    (lambda: sc.GaussianDisorder(0.1, -1.0), "corr_length"),
    (lambda: sc.GaussianDisorder(float("nan"), 1.0), "strength"),
    (lambda: sc.ScreenedCoulombDisorder(-1.0, 1.0, 1.0), "density"),
    (lambda: sc.ScreenedCoulombDisorder(1.0, 1.0, 0.0), "screening_length"),
    (lambda: sc.ScreenedCoulombDisorder(1.0, 1.0, 1.0, dielectric=-2.0), "dielectric"),
    (lambda: sc.ScreenedCoulombDisorder(1.0, 1.0, 1.0, dim=1), "dim"),
    (lambda: sc.UserDisorder(_user_nan, [1.0]), "NaN"),
    (lambda: sc.UserDisorder(_user_negative, [1.0]), "negative"),
    (lambda: sc.UserDisorder(lambda q, p: 1.0, [1.0]), "njit"),
])
def test_bad_disorder_input(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_bad_born_input():
    model = MassiveDirac(1.0, 1.0)
    k = [1.0, 0.0]
    with pytest.raises(ValueError, match="dim=3"):
        sc.born_rate(model, sc.ScreenedCoulombDisorder(1.0, 1.0, 1.0, dim=3), k, 1)
    with pytest.raises(ValueError, match="band"):
        sc.born_rate(model, sc.WhiteNoiseDisorder(0.1), k, 2)
    with pytest.raises(ValueError, match="dim=2"):
        sc.born_rate(model, sc.WhiteNoiseDisorder(0.1), [1.0, 0.0, 0.0], 1)
    with pytest.raises(ValueError, match="r_max"):
        sc.born_rate(QWZ(1.0), sc.WhiteNoiseDisorder(0.1), k, 1, r_max=2.0)
    with pytest.raises(ValueError, match="no on-shell"):
        sc.majorant(model, sc.WhiteNoiseDisorder(0.0), k=[k], band=1)
