"""Closed-form references and the single-k master equation (issue: kinetic references, part 1).

Every closed form is checked against an independent calculation: numerical
eigenvectors of the packets models (random gauge), numerical quadrature of
the defining integral, a discretised Boltzmann equation, a lattice
(Fukui-Hatsugai-Suzuki) Chern number, or an ODE integration.  Conventions:
hbar = e = 1, q = -1 (docs/conventions.md).
"""
import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

import kinetic as K
from kinetic import closed_form as cf
from packets.models.dirac import MassiveDirac
from packets.models.qwz import QWZ

Q = -1.0


def _rand_herm(rng, n):
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    return 0.5 * (a + a.conj().T)


def _rand_rho(rng, n):
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    r = a @ a.conj().T
    return r / np.trace(r).real


def _rand_unitary(rng, n):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    return q


def _eig_random_gauge(model, k, rng):
    """Eigenpairs by numpy (not the kernel solver), each vector with a random phase."""
    w, v = np.linalg.eigh(model.hamiltonian(np.asarray(k, float)))
    return w, v * np.exp(2j * np.pi * rng.random(v.shape[-1]))


# ----------------------------------------------------------------------------
# master equation (Lindblad dephasing)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("method", ["expm", "ode"])
def test_dephasing_eigenbasis_closed_form(n, method):
    rng = np.random.default_rng(10 + n)
    H = _rand_herm(rng, n)
    rho0 = _rand_rho(rng, n)
    gamma = 0.7
    t = np.linspace(0.0, 5.0, 11)
    rho = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma, method=method)
    e, V = np.linalg.eigh(H)
    rho_eig = np.einsum("ji,tjk,kl->til", V.conj(), rho, V)
    exact = K.lindblad_dephasing_coherence(V.conj().T @ rho0 @ V, e, gamma, t)
    assert np.abs(rho_eig - exact).max() < 1e-9
    # populations constant, trace and Hermiticity preserved
    pops = np.einsum("tii->ti", rho_eig).real
    assert np.abs(pops - pops[0]).max() < 1e-9
    assert np.abs(np.einsum("tii->t", rho) - 1.0).max() < 1e-11
    assert np.abs(rho - np.conj(np.swapaxes(rho, 1, 2))).max() < 1e-11
    # coherences really decayed (the test is not trivially satisfied)
    assert abs(rho_eig[-1, 0, 1]) < math.exp(-gamma * t[-1]) * abs(rho_eig[0, 0, 1]) * (1 + 1e-8)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_dephasing_rotated_basis(n):
    rng = np.random.default_rng(20 + n)
    H = _rand_herm(rng, n)
    rho0 = _rand_rho(rng, n)
    B = _rand_unitary(rng, n)
    gamma = 0.7
    t = np.linspace(0.0, 4.0, 9)
    r_expm = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma, basis=B, method="expm")
    r_ode = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma, basis=B, method="ode")
    assert np.abs(r_expm - r_ode).max() < 1e-9
    for r in (r_expm, r_ode):
        assert np.abs(np.einsum("tii->t", r) - 1.0).max() < 1e-10
        assert np.abs(r - np.conj(np.swapaxes(r, 1, 2))).max() < 1e-10
        assert np.linalg.eigvalsh(r).min() > -1e-10
    # eigenbasis populations now change (dephasing basis != eigenbasis)
    V = np.linalg.eigh(H)[1]
    pops = np.einsum("ji,tjk,ki->ti", V.conj(), r_expm, V).real
    assert np.abs(pops[-1] - pops[0]).max() > 1e-3
    # unital dissipator not commuting with H: the only steady state is 1/N
    late = K.lindblad_evolve(H, rho0, [0.0, 1500.0], dephasing_rate=gamma, basis=B)[-1]
    assert np.abs(late - np.eye(n) / n).max() < 1e-8


def test_dephasing_equals_projector_jump_operators():
    """gamma sum_i D[P_i] with L_i = sqrt(gamma) P_i is the same equation (normalisation check)."""
    rng = np.random.default_rng(3)
    n = 3
    H, rho0, B = _rand_herm(rng, n), _rand_rho(rng, n), _rand_unitary(rng, n)
    gamma = 0.4
    t = np.linspace(0, 3, 7)
    jumps = [math.sqrt(gamma) * np.outer(B[:, i], B[:, i].conj()) for i in range(n)]
    a = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma, basis=B)
    b = K.lindblad_evolve(H, rho0, t, jump_ops=jumps)
    c = K.lindblad_evolve(H, rho0, t, jump_ops=jumps, method="ode")
    assert np.abs(a - b).max() < 1e-12
    assert np.abs(a - c).max() < 1e-9


def test_amplitude_damping_closed_form():
    """L = sqrt(G) sigma_-: rho_ee = rho_ee(0) e^{-G t}, rho_eg = rho_eg(0) e^{-i D t - G t/2} (standard result)."""
    rng = np.random.default_rng(4)
    delta, G = 1.3, 0.25
    H = 0.5 * delta * np.diag([1.0, -1.0])  # |e> = index 0
    sm = np.array([[0, 0], [1, 0]], complex)  # |g><e|
    rho0 = _rand_rho(rng, 2)
    t = np.linspace(0, 6, 13)
    for method in ("expm", "ode"):
        r = K.lindblad_evolve(H, rho0, t, jump_ops=[math.sqrt(G) * sm], method=method)
        assert np.abs(r[:, 0, 0] - rho0[0, 0] * np.exp(-G * t)).max() < 1e-9
        assert np.abs(r[:, 0, 1] - rho0[0, 1] * np.exp(-1j * delta * t - 0.5 * G * t)).max() < 1e-9


@pytest.mark.parametrize("case", ["eigenbasis", "rotated", "time-dependent"])
def test_bloch_equations_match_lindblad(case):
    rng = np.random.default_rng(5)
    h = rng.normal(size=3)
    r0 = rng.normal(size=3)
    r0 *= 0.9 / np.linalg.norm(r0)
    gamma = 0.3
    t = np.linspace(0, 6, 13)
    sig = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
    H = np.einsum("a,aij->ij", h, sig) + 0.37 * np.eye(2)  # h0 must drop out
    rho0 = K.density_from_bloch(r0)
    if case == "eigenbasis":
        rho = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma)
        r = K.bloch_equations(h, r0, t, dephasing_rate=gamma)
    elif case == "rotated":
        n = rng.normal(size=3)
        n /= np.linalg.norm(n)
        B = np.linalg.eigh(np.einsum("a,aij->ij", n, sig))[1]  # projectors (1 +/- n.sigma)/2
        rho = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma, basis=B)
        r = K.bloch_equations(h, r0, t, dephasing_rate=gamma, axis=n)
    else:
        def ht(tt):
            return np.array([0.5 * tt - 1.0, 0.0, 0.0])

        rho = K.lindblad_evolve(H, rho0, t, dephasing_rate=gamma, basis="instantaneous",
                                H_t=lambda tt: np.einsum("a,aij->ij", ht(tt), sig))
        r = K.bloch_equations(h, r0, t, dephasing_rate=gamma, h_t=ht)
    assert np.abs(K.bloch_vector(rho) - r).max() < 1e-8


@pytest.mark.parametrize("ky", [0.0, 0.3])
def test_landau_zener_sweep(ky):
    """Coherent sweep k_x = F t through the Dirac anticrossing reproduces the Landau-Zener formula.

    Finite sweep [-T, T]: at each end the adiabatic-basis amplitude carries a
    boundary term a ~ (dtheta/dt)/(2 gap) = g v F/(4 E^3) ~ g/(4 v^2 F^2 T^3)
    (g^2 = m^2 + v^2 k_y^2), so |P(T) - P| <~ 4 sqrt(P) a + 4 a^2 ~ 3e-6 at
    T = 40 (observed 1e-6).  Tolerance 2e-5: a wrong exponent (e.g. pi ->
    3.14, a 7e-5 change) is still caught.
    """
    v, m, F, T = 1.0, 1.0, 1.0, 40.0
    sx = np.array([[0, 1], [1, 0]], complex)
    sy = np.array([[0, -1j], [1j, 0]])
    sz = np.diag([1.0, -1.0]).astype(complex)

    def H(t):
        return v * (F * t) * sx + v * ky * sy + m * sz

    _, V0 = np.linalg.eigh(H(-T))
    rho0 = np.outer(V0[:, 0], V0[:, 0].conj())  # lower band
    rho = K.lindblad_evolve(np.zeros((2, 2)), rho0, [-T, T], H_t=H)[-1]
    _, V1 = np.linalg.eigh(H(T))
    p_upper = (V1[:, 1].conj() @ rho @ V1[:, 1]).real
    exact = K.landau_zener_probability(m, v, F, ky)
    assert abs(p_upper - exact) < 2e-5
    assert abs(np.trace(rho) - 1) < 1e-9 and abs(np.trace(rho @ rho).real - 1) < 1e-8  # unitary


def test_master_equation_validation():
    H = np.diag([0.0, 1.0])
    rho = np.diag([0.5, 0.5])
    with pytest.raises(ValueError, match="dephasing_rate"):
        K.lindblad_evolve(H, rho, [0, 1], dephasing_rate=-0.1)
    with pytest.raises(ValueError, match="Hermitian"):
        K.lindblad_evolve(np.array([[0, 1], [0, 0]]), rho, [0, 1])
    with pytest.raises(ValueError, match="unit trace"):
        K.lindblad_evolve(H, 2 * rho, [0, 1])
    with pytest.raises(ValueError, match="degenerate"):
        K.lindblad_evolve(np.eye(2), rho, [0, 1], dephasing_rate=0.1)
    with pytest.raises(ValueError, match="non-decreasing"):
        K.lindblad_evolve(H, rho, [1, 0])
    with pytest.raises(ValueError, match="orthonormal"):
        K.lindblad_evolve(H, rho, [0, 1], dephasing_rate=0.1, basis=np.ones((2, 2)))
    with pytest.raises(ValueError, match="expm"):
        K.lindblad_evolve(H, rho, [0, 1], H_t=lambda t: H, method="expm")
    with pytest.raises(ValueError, match="gamma"):
        K.lindblad_dephasing_coherence(rho, [0, 1], -1.0, 1.0)


# ----------------------------------------------------------------------------
# massive Dirac band geometry (Wong & Tserkovnyak 2021, Sec. III A)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("s,m", [(1, 1.0), (-1, 0.6), (1, -0.8)])
def test_dirac_curvature_plaquette(s, m):
    """Closed-form Omega against the Berry phase of a small plaquette of numpy eigenvectors in a random gauge."""
    rng = np.random.default_rng(6)
    v = 1.3
    model = MassiveDirac(velocity=v, mass=m, valley=s)
    h = 1e-3
    for k in [(0.0, 0.0), (0.4, -0.7), (-1.1, 0.3)]:
        k = np.asarray(k)
        corners = [k + h * np.array(c) for c in [(-.5, -.5), (.5, -.5), (.5, .5), (-.5, .5)]]  # counterclockwise
        vecs = [_eig_random_gauge(model, c, rng)[1] for c in corners]
        for band, idx in ((+1, 1), (-1, 0)):
            u = [vv[:, idx] for vv in vecs]
            prod = np.prod([np.vdot(u[i], u[(i + 1) % 4]) for i in range(4)])
            omega_num = -np.angle(prod) / h ** 2  # <u|u+d> ~ exp(-i A.d) with A = i<u|grad u>
            omega = K.dirac_berry_curvature(k, v, m, s, band)
            assert abs(omega_num - omega) < 1e-5 * abs(omega)
    assert K.dirac_berry_curvature((0.0, 0.0), 1.0, 1.0, 1) == -0.5  # hbar = v = s = m = 1: Omega_+(0) = -1/2


@pytest.mark.parametrize("s,m", [(1, 0.7), (-1, 0.7), (1, -1.2)])
def test_dirac_orbital_moment_xiao_chang_niu(s, m):
    """m_z = -i (e/2) <grad u| x (H - eps)|grad u> (carrier -e), FD of phase-aligned numpy eigenvectors."""
    rng = np.random.default_rng(7)
    v = 0.9
    model = MassiveDirac(velocity=v, mass=m, valley=s)
    h = 1e-5
    for k in [(0.0, 0.0), (0.5, 0.2), (-0.3, 1.4)]:
        k = np.asarray(k, float)
        Hk = model.hamiltonian(k)
        w, V = _eig_random_gauge(model, k, rng)
        for idx in (0, 1):
            u0 = V[:, idx]
            du = []
            for a in range(2):
                e = np.zeros(2)
                e[a] = h
                up = _eig_random_gauge(model, k + e, rng)[1][:, idx]
                um = _eig_random_gauge(model, k - e, rng)[1][:, idx]
                up = up * np.exp(-1j * np.angle(np.vdot(u0, up)))  # align phases to u0
                um = um * np.exp(-1j * np.angle(np.vdot(u0, um)))
                du.append((up - um) / (2 * h))
            M = Hk - w[idx] * np.eye(2)
            cross = np.vdot(du[0], M @ du[1]) - np.vdot(du[1], M @ du[0])
            mz = (-0.5j * cross).real
            assert abs((-0.5j * cross).imag) < 1e-8
            assert abs(mz - K.dirac_orbital_moment(k, v, m, s)) < 1e-7 * abs(mz)


def _hall_k_integral(mu, m, s, temperature, v=1.0):
    """sigma_xy = -(q^2) int[dk] sum_n f_n Omega_n by radial quadrature in k with the closed-form curvature."""
    def f(e):
        if temperature == 0:
            return 1.0 if e < mu else 0.0
        return special.expit((mu - e) / temperature)

    def integrand(k, band):
        e = band * math.sqrt(v * v * k * k + m * m)
        return k / (2 * math.pi) * f(e) * K.dirac_berry_curvature((k, 0.0), v, m, s, band)

    pts = []
    if abs(mu) > abs(m):
        pts = [math.sqrt(mu * mu - m * m) / v]
    total = 0.0
    for band in (+1, -1):
        kmax = 50.0 * (abs(mu) + abs(m) + 30 * temperature) / v
        a = integrate.quad(integrand, 0.0, kmax, args=(band,), points=pts or None, epsabs=1e-14, epsrel=1e-12,
                           limit=400)[0]
        b = integrate.quad(integrand, kmax, np.inf, args=(band,), epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        total += a + b
    return -Q ** 2 * total


@pytest.mark.parametrize("mu,m,s", [(2.0, 1.0, 1), (0.3, 1.0, 1), (-1.7, 0.8, -1), (1.5, -0.5, 1)])
def test_dirac_intrinsic_hall_zero_temperature(mu, m, s):
    exact = K.dirac_intrinsic_hall(mu, m, s)
    assert abs(exact - _hall_k_integral(mu, m, s, 0.0)) < 1e-9
    # T -> 0 limit of the finite-T integral (Sommerfeld correction ~ (pi^2/3) T^2 |m|/(4 pi mu^3))
    assert abs(K.dirac_intrinsic_hall(mu, m, s, temperature=1e-3) - exact) < 1e-6
    assert abs(K.dirac_intrinsic_hall(2.0, 1.0, 1) - (-1 / (8 * math.pi))) < 1e-15  # m = s = 1, mu = 2


@pytest.mark.parametrize("mu,m,T", [(2.0, 1.0, 0.3), (0.0, 0.5, 0.4), (-1.0, 0.7, 0.1)])
def test_dirac_intrinsic_hall_finite_temperature(mu, m, T):
    assert abs(K.dirac_intrinsic_hall(mu, m, -1, temperature=T) - _hall_k_integral(mu, m, -1, T)) < 1e-9


# ----------------------------------------------------------------------------
# Born rates (white noise), transport rate, Boltzmann conductivity
# ----------------------------------------------------------------------------


def _fermi_circle(model, eps, idx, phi):
    """k_F(phi) on the numerical band idx and the numerical radial velocity d eps/dk there."""
    def e_of(k):
        return np.linalg.eigvalsh(model.hamiltonian(k * np.array([math.cos(phi), math.sin(phi)])))[idx]

    kf = optimize.brentq(lambda k: e_of(k) - eps, 1e-9, 100.0, xtol=1e-15, rtol=1e-15)
    h = 1e-5
    vr = (e_of(kf + h) - e_of(kf - h)) / (2 * h)
    return kf, vr


def _shell_data(v, m, s, eps, N):
    """Numerical Fermi circle: angles, k_F, radial velocity, DOS, |<u_j|u_i>|^2 (numpy eigenvectors)."""
    model = MassiveDirac(velocity=v, mass=m, valley=s)
    idx = 1 if eps > 0 else 0
    kf, vr = _fermi_circle(model, eps, idx, 0.0)
    phi = 2 * np.pi * np.arange(N) / N
    ks = kf * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    u = np.linalg.eigh(model.hamiltonian(ks))[1][:, :, idx]
    ov = np.abs(np.einsum("ia,ja->ij", u.conj(), u)) ** 2
    dos = kf / (2 * np.pi * abs(vr))
    return model, idx, kf, vr, dos, phi, ov


@pytest.mark.parametrize("eps,m,s", [(2.0, 1.0, 1), (1.3, 0.9, -1), (-1.5, 0.5, 1), (0.8, 0.0, 1)])
def test_dirac_born_and_transport_rates_quadrature(eps, m, s):
    v, nV2 = 1.2, 0.07
    model = MassiveDirac(velocity=v, mass=m, valley=s)
    idx = 1 if eps > 0 else 0
    kf, vr = _fermi_circle(model, eps, idx, 0.0)
    dos = kf / (2 * np.pi * abs(vr))
    u0 = np.linalg.eigh(model.hamiltonian(np.array([kf, 0.0])))[1][:, idx]

    def overlap(phi):
        u = np.linalg.eigh(model.hamiltonian(kf * np.array([math.cos(phi), math.sin(phi)])))[1][:, idx]
        return abs(np.vdot(u, u0)) ** 2

    # 1/tau = int[dk'] 2 pi nV2 |<u'|u>|^2 delta(eps - eps') = 2 pi nV2 D int dphi'/2pi |<u'|u>|^2 (...)
    born = 2 * np.pi * nV2 * dos * integrate.quad(overlap, 0, 2 * np.pi, epsabs=0, epsrel=1e-11)[0] / (2 * np.pi)
    tr = 2 * np.pi * nV2 * dos * integrate.quad(lambda p: overlap(p) * (1 - math.cos(p)), 0, 2 * np.pi,
                                                epsabs=0, epsrel=1e-11)[0] / (2 * np.pi)
    assert abs(K.dirac_born_rate(eps, v, m, nV2) - born) < 1e-8 * born
    assert abs(K.dirac_transport_rate(eps, v, m, nV2) - tr) < 1e-8 * tr


def test_dirac_born_rate_example():
    assert 1.0 / K.dirac_born_rate(2.0, 1.0, 1.0, 0.1) == pytest.approx(8.0, rel=1e-14)  # tau = 8


@pytest.mark.parametrize("mu,m,s", [(2.0, 1.0, 1), (1.1, -1.0, -1), (-1.6, 0.4, 1), (0.9, 0.0, 1)])
def test_dirac_drude_vs_discretised_boltzmann(mu, m, s):
    """sigma_xx from the linearised Boltzmann equation on the numerical Fermi circle (no relaxation-time ansatz).

    q E.v = int[dk'] W (chi - chi'), delta f = (-df0/de) chi, j = q D <v_x chi>_phi;
    the angular grid is periodic, so the trapezoid rule converges exponentially.
    """
    v, nV2, N = 0.8, 0.05, 48
    _, _, kf, vr, dos, phi, ov = _shell_data(v, m, s, mu, N)
    gam = 2 * np.pi * nV2 * dos
    A = gam * (np.diag(ov.sum(axis=1)) - ov) / N
    E = 1.0
    rhs = Q * E * vr * np.cos(phi)  # v(k) = vr k_hat on the isotropic Fermi circle
    chi = np.linalg.lstsq(A, rhs, rcond=None)[0]
    sigma = Q * dos * np.mean(vr * np.cos(phi) * chi) / E
    exact = K.dirac_drude_conductivity(mu, v, m, nV2)
    assert abs(sigma - exact) < 1e-8 * exact
    # Drude form with the cyclotron mass |mu|/v^2 and the transport time
    tau_tr = 1.0 / K.dirac_transport_rate(mu, v, m, nV2)
    assert abs(K.drude_conductivity(K.dirac_density(mu, v, m), tau_tr, abs(mu) / v ** 2) - exact) < 1e-12 * exact


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_parabolic_born_rate_dos(dim):
    """1/tau = 2 pi nV2 D(eps), D = dN/deps from the k-space volume N = V_d k^d/(2 pi)^d (finite difference)."""
    mstar, nV2, eps = 0.7, 0.3, 1.9
    vol = {1: 2.0, 2: math.pi, 3: 4 * math.pi / 3}[dim]

    def count(e):
        return vol * (2 * mstar * e) ** (dim / 2) / (2 * math.pi) ** dim

    h = 1e-4
    dos = (count(eps + h) - count(eps - h)) / (2 * h)
    rate = K.parabolic_born_rate(mstar, nV2, dim=dim, eps=eps)
    assert abs(rate - 2 * math.pi * nV2 * dos) < 1e-8 * rate
    if dim == 2:
        assert K.parabolic_born_rate(mstar, nV2) == pytest.approx(nV2 * mstar, rel=1e-15)


def test_parabolic_drude_fermi_surface():
    """sigma = q^2 int[dk] delta(eps - mu) v_x^2 tau (2D, T = 0) equals n tau/m*."""
    mstar, mu, tau = 0.6, 1.4, 3.0
    kf = math.sqrt(2 * mstar * mu)
    vf = kf / mstar
    # int[dk] delta(...) g(phi) = (k_F / (2 pi)^2 v_F) int dphi g(phi)
    sig = Q ** 2 * kf / ((2 * math.pi) ** 2 * vf) * integrate.quad(lambda p: (vf * math.cos(p)) ** 2 * tau,
                                                                     0, 2 * math.pi)[0]
    n = kf ** 2 / (4 * math.pi)
    assert abs(K.drude_conductivity(n, tau, mstar) - sig) < 1e-12 * sig


# ----------------------------------------------------------------------------
# Landau-Zener, Bloch and cyclotron periods, QWZ
# ----------------------------------------------------------------------------


def test_landau_zener_example():
    assert abs(K.landau_zener_probability(1.0, 1.0, 1.0, 0.0) - 0.043214) < 1e-6  # exp(-pi)


def test_bloch_period_semiclassical_orbit():
    """1D band -2t cos(ka), hbar dk/dt = qE: x returns to its start after T_B and not at T_B/2."""
    t_hop, a, E = 0.8, 1.3, 0.25
    TB = K.bloch_period(E, a)

    def rhs(_, y):
        return [2 * t_hop * a * math.sin(y[1] * a), Q * E]

    sol = integrate.solve_ivp(rhs, (0, TB), [0.0, 0.3], method="DOP853", rtol=1e-12, atol=1e-12,
                              t_eval=[TB / 2, TB])
    assert abs(sol.y[0, -1]) < 1e-9
    assert abs(sol.y[0, 0]) > 1.0  # half period: maximal excursion (4t/|qE|) sin-weighted
    assert abs(sol.y[1, -1] - 0.3 + 2 * math.pi / a) < 1e-9  # k advanced by exactly one reciprocal vector


def test_cyclotron_period_orbit():
    mstar, B = 0.5, 0.8
    Tc = K.cyclotron_period(mstar, B)

    def rhs(_, k):  # hbar dk/dt = q v x B, v = k/m*, B along z
        vx, vy = k / mstar
        return [Q * vy * B, -Q * vx * B]

    k0 = np.array([0.7, 0.2])
    sol = integrate.solve_ivp(rhs, (0, Tc), k0, method="DOP853", rtol=1e-12, atol=1e-12, t_eval=[Tc / 2, Tc])
    assert np.abs(sol.y[:, -1] - k0).max() < 1e-9
    assert np.abs(sol.y[:, 0] + k0).max() < 1e-9


def _fhs_chern(model, n=24):
    """Lattice Chern number of the lower band (Fukui-Hatsugai-Suzuki), numpy eigenvectors."""
    g = 2 * np.pi * np.arange(n) / n
    kk = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    u = np.linalg.eigh(model.hamiltonian(kk))[1][..., 0]
    ux = np.roll(u, -1, axis=0)
    uy = np.roll(u, -1, axis=1)
    uxy = np.roll(ux, -1, axis=1)
    link = lambda a, b: np.sum(a.conj() * b, axis=-1)  # noqa: E731
    prod = link(u, ux) * link(ux, uxy) * link(uxy, uy) * link(uy, u)
    return -np.angle(prod).sum() / (2 * np.pi)  # Omega area = -arg(prod) with A = i<u|grad u>


@pytest.mark.parametrize("u", [-3.0, -1.0, 1.0, 3.0])
def test_qwz_chern_lattice(u):
    c = K.qwz_chern(u)
    assert abs(_fhs_chern(QWZ(u)) - c) < 1e-9
    assert K.qwz_hall(u) == -c / (2 * math.pi)
    assert c == {-3.0: 0, -1.0: 1, 1.0: -1, 3.0: 0}[u]  # QWZ table


# ----------------------------------------------------------------------------
# Berry-curvature dipole nonlinear Hall (Sodemann & Fu 2015, as on Balents 2025 slides)
# ----------------------------------------------------------------------------


def _radial_sea(phi, mu, v, m, w):
    """Occupied radial interval along phi: E_k + c k <= mu, c = w.k_hat (roots of a quadratic), or None."""
    c = w[0] * math.cos(phi) + w[1] * math.sin(phi)
    a, b, d = v * v - c * c, 2 * mu * c, m * m - mu * mu
    disc = b * b - 4 * a * d
    if disc <= 0:
        return None
    r1, r2 = (-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)
    if r2 <= 0:
        return None
    return max(r1, 0.0), r2  # r1 < 0 when mu > |m| (k = 0 is inside the sea)


@pytest.mark.parametrize("mu,m,tilt,s", [(1.7, 0.8, (0.3, 0.0), 1), (1.7, 0.8, (0.2, -0.25), -1),
                                         (0.78, 0.8, (0.4, 0.0), 1)])
def test_berry_dipole_polar_quadrature(mu, m, tilt, s):
    """D_b = int[dk] f0 d_b Omega: Fermi sea in polar coordinates, d_b Omega by FD of the closed form.

    The last case has |m| sqrt(1 - w^2/v^2) < mu < |m|: an off-centre pocket that excludes k = 0.
    """
    v = 1.0
    w = np.asarray(tilt)
    h = 1e-4
    aw, phi_w = np.hypot(*w), math.atan2(w[1], w[0])
    if mu > abs(m):
        lo, hi = 0.0, 2 * np.pi  # sea contains k = 0: every direction
    else:
        # pocket seen from k = 0 under the half-angle delta: disc = 0 at c = -v sqrt(1 - mu^2/m^2)
        delta = math.acos(v * math.sqrt(1 - mu * mu / (m * m)) / aw)
        lo, hi = phi_w + np.pi - delta, phi_w + np.pi + delta

    def radial(phi, b):
        sea = _radial_sea(phi, mu, v, m, w)
        if sea is None:
            return 0.0
        kh = np.array([math.cos(phi), math.sin(phi)])
        e = h * np.eye(2)[b]

        def integrand(k):
            p = k * kh
            return k * (cf.dirac_berry_curvature(p + e, v, m, s) - cf.dirac_berry_curvature(p - e, v, m, s)) / (2 * h)

        return integrate.quad(integrand, *sea, epsabs=1e-13, epsrel=1e-10)[0]

    D = np.array([integrate.quad(radial, lo, hi, args=(b,), epsabs=1e-12, epsrel=1e-9, limit=200)[0]
                  for b in range(2)]) / (2 * np.pi) ** 2
    exact = K.tilted_dirac_berry_curvature_dipole(mu, v, m, s, tilt)
    assert np.abs(D - exact).max() < 1e-6 * np.abs(exact).max()
    assert abs(exact[0] * w[1] - exact[1] * w[0]) < 1e-14  # D parallel to the tilt


def test_berry_dipole_first_order_in_tilt():
    mu, v, m = 1.5, 1.0, 0.6
    for wx in (1e-3, 1e-2):
        D = K.tilted_dirac_berry_curvature_dipole(mu, v, m, 1, (wx, 0.0))
        lin = -3 * m * wx * (mu ** 2 - m ** 2) / (8 * math.pi * mu ** 4)
        assert abs(D[0] / lin - 1) < 5 * (wx / v) ** 2 + 1e-9  # next correction is O(w^2)
    assert np.allclose(K.tilted_dirac_berry_curvature_dipole(mu, v, m, -1, (0.1, 0)),
                       -K.tilted_dirac_berry_curvature_dipole(mu, v, m, 1, (0.1, 0)), rtol=1e-12)


def test_nonlinear_hall_current_fermi_surface_route():
    """j = -q^2 (E x z) int[dk] f1 Omega with f1 = -tau q E.grad f0 (no integration by parts):
    Fermi-surface integral over the numerical tilted-Dirac band (packets model) and its FD velocity."""
    mu, v, m, s, tau = 1.6, 1.0, 0.7, 1, 5.0
    w = np.array([0.25, 0.1])
    E = np.array([0.3, -0.8])
    model = MassiveDirac(velocity=v, mass=m, valley=s, tilt=tuple(w))

    def eps(k):
        return np.linalg.eigvalsh(model.hamiltonian(np.asarray(k)))[1]

    N, h = 128, 1e-5
    acc = 0.0  # int[dk] delta(mu - eps) (E.v) Omega
    for phi in 2 * np.pi * np.arange(N) / N:
        kh = np.array([math.cos(phi), math.sin(phi)])
        kf = optimize.brentq(lambda k: eps(k * kh) - mu, 1e-9, 50.0, xtol=1e-15, rtol=1e-15)
        kp = kf * kh
        grad = np.array([(eps(kp + h * e) - eps(kp - h * e)) / (2 * h) for e in np.eye(2)])
        # int dphi k dk delta(mu - eps)/(2 pi)^2 = int dphi k_F / ((2 pi)^2 |d eps/dk_radial|)
        omega = cf.dirac_berry_curvature(kp, v, m, s)
        acc += kf / (kh @ grad) * (E @ grad) * omega * (2 * np.pi / N) / (2 * np.pi) ** 2
    int_f1_omega = tau * Q * acc  # f1 = -tau q E.grad f0 and grad f0 = -delta(mu - eps) v
    j_route = -Q ** 2 * np.array([E[1], -E[0]]) * int_f1_omega  # E x z = (E_y, -E_x)
    D = K.tilted_dirac_berry_curvature_dipole(mu, v, m, s, tuple(w))
    j = K.berry_dipole_nonlinear_hall_current(E, D, tau)
    assert np.abs(j - j_route).max() < 1e-6 * np.abs(j).max()
    chi = K.nonlinear_hall_chi(D, tau)
    assert np.allclose(np.einsum("abc,b,c->a", chi, E, E), j, rtol=1e-14, atol=0)


# ----------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------


def test_closed_form_validation():
    with pytest.raises(ValueError, match=">= 0"):
        K.dirac_born_rate(2.0, 1.0, 1.0, -0.1)
    with pytest.raises(ValueError, match="in a band"):
        K.dirac_transport_rate(0.5, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="> 0"):
        K.dirac_berry_curvature((0.1, 0.0), -1.0, 1.0, 1)
    with pytest.raises(ValueError, match="singular"):
        K.dirac_berry_curvature((0.0, 0.0), 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="valley"):
        K.dirac_intrinsic_hall(1.0, 1.0, 2)
    with pytest.raises(ValueError, match="undefined"):
        K.dirac_intrinsic_hall(0.0, 0.0, 1)
    with pytest.raises(ValueError, match="in a band"):
        K.dirac_drude_conductivity(0.5, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="eps"):
        K.parabolic_born_rate(1.0, 0.1, dim=3)
    with pytest.raises(ValueError, match="gap closes"):
        K.qwz_chern(2.0)
    with pytest.raises(ValueError, match="non-zero field"):
        K.bloch_period(0.0, 1.0)
    with pytest.raises(ValueError, match="non-zero field"):
        K.cyclotron_period(1.0, 0.0)
    with pytest.raises(ValueError, match="F"):
        K.landau_zener_probability(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="type-I"):
        K.tilted_dirac_berry_curvature_dipole(1.0, 1.0, 0.5, 1, (1.2, 0.0))
    with pytest.raises(ValueError, match="tau"):
        K.nonlinear_hall_chi((0.1, 0.0), -1.0)
