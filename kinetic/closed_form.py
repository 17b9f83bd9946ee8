"""Closed-form reference results the Monte Carlo ensembles are compared with.

Conventions (docs/conventions.md): code units hbar = e = 1, carrier
charge q = -1; Berry connection A = i<u|grad_k u>, Berry curvature
Omega_z = -2 Im<d_kx u|d_ky u>; int[dk] = int d^dk/(2 pi)^d; conductivities in
e^2/hbar (multiply by 2 pi for e^2/h); sigma_ab = dj_a/dE_b.  Dirac results are
per valley and spinless; the massive Dirac model is
H_s = v (s k_x sigma_x + k_y sigma_y) + m sigma_z (+ w.k for the tilted
variant), bands +/- E_k with E_k = sqrt(v^2 k^2 + m^2).

White-noise disorder <V(r) V(r')> = nV2 delta(r - r'): ``nV2`` = n_i V0^2 has
units energy^2 x length^d.  Rates are in 1/time = energy (hbar = 1).

Every function validates its arguments on the host and raises ``ValueError``
saying what to change.  Scalars in give scalars out; array arguments are
broadcast where stated.
"""
import math

import numpy as np
from scipy import integrate, special

__all__ = [
    "dirac_energy",
    "dirac_berry_curvature",
    "dirac_orbital_moment",
    "dirac_intrinsic_hall",
    "dirac_density",
    "dirac_born_rate",
    "dirac_transport_rate",
    "parabolic_born_rate",
    "drude_conductivity",
    "dirac_drude_conductivity",
    "landau_zener_probability",
    "bloch_period",
    "cyclotron_period",
    "qwz_chern",
    "qwz_hall",
    "lindblad_dephasing_coherence",
    "tilted_dirac_berry_curvature_dipole",
    "nonlinear_hall_chi",
    "berry_dipole_nonlinear_hall_current",
]

#: carrier charge in units of e (docs/conventions.md)
Q = -1.0


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------


def _finite(name, x):
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return a


def _positive(name, x):
    a = _finite(name, x)
    if np.any(a <= 0):
        raise ValueError(f"{name} must be > 0, got {x!r}")
    return a


def _nonnegative(name, x):
    a = _finite(name, x)
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0 (a rate or variance cannot be negative), got {x!r}")
    return a


def _valley(s):
    if s not in (1, -1, 1.0, -1.0):
        raise ValueError(f"valley index s must be +1 or -1, got {s!r}")
    return float(s)


def _band(band):
    if band not in (1, -1, 1.0, -1.0):
        raise ValueError(f"band must be +1 (conduction) or -1 (valence), got {band!r}")
    return float(band)


def _out(a):
    """0-d arrays back to Python floats."""
    a = np.asarray(a)
    return a[()] if a.ndim == 0 else a


def _k_array(k):
    k = _finite("k", k)
    if k.shape[-1:] != (2,):
        raise ValueError(f"k must have shape (..., 2) (k_x, k_y), got shape {k.shape}")
    return k


# ----------------------------------------------------------------------------
# massive Dirac: band geometry (Wong & Tserkovnyak 2021, Sec. III A, in our signs)
# ----------------------------------------------------------------------------


def dirac_energy(k, v, m):
    """E_k = sqrt(v^2 |k|^2 + m^2) of the massive Dirac model (Wong & Tserkovnyak 2021, Eq. 41).

    Parameters
    ----------
    k : array_like, shape (..., 2)
        Wave vector (1/length).
    v : float
        Dirac velocity (energy x length, hbar = 1), > 0.
    m : float
        Mass (energy).

    Returns
    -------
    float or ndarray, shape (...)
        E_k (energy); the bands are +/- E_k (untilted).
    """
    k = _k_array(k)
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    return _out(np.sqrt(v * v * np.sum(k * k, axis=-1) + m * m))


def dirac_berry_curvature(k, v, m, s, band=+1):
    """Berry curvature of the massive Dirac model (Wong & Tserkovnyak 2021, Sec. III A).

    Omega_+/- (k) = -/+ s m v^2 / (2 E_k^3),  E_k = sqrt(v^2 k^2 + m^2),

    with Omega_z = -2 Im<d_kx u|d_ky u> (docs/conventions.md; Wong &
    Tserkovnyak's B_k = m/E_k^3 at v = 1 is 2|Omega|).  A tilt w.k does not
    change it.  Example: v = s = m = 1 gives Omega_+(0) = -1/2.

    Parameters
    ----------
    k : array_like, shape (..., 2)
        Wave vector (1/length).
    v : float
        Dirac velocity (> 0).
    m : float
        Mass (energy); at m = 0 the curvature is 0 for k != 0 and the k = 0
        point is singular (a ValueError is raised there).
    s : {+1, -1}
        Valley index.
    band : {+1, -1}
        +1 conduction, -1 valence.

    Returns
    -------
    float or ndarray, shape (...)
        Omega_z (length^2).
    """
    k = _k_array(k)
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    s = _valley(s)
    band = _band(band)
    e = np.sqrt(v * v * np.sum(k * k, axis=-1) + m * m)
    if np.any(e == 0):
        raise ValueError("Berry curvature of the massless Dirac cone is singular at k = 0; use m != 0 or k != 0")
    return _out(-band * s * m * v * v / (2.0 * e ** 3))


def dirac_orbital_moment(k, v, m, s):
    """Orbital magnetic moment of the massive Dirac model (Wong & Tserkovnyak 2021, Sec. III A).

    m_z(k) = -s e m hbar v^2 / (2 E_k^2), the same for both bands, in code
    units -s m v^2 / (2 E_k^2) (energy / magnetic field).  It is the
    Xiao-Chang-Niu moment m = -i (e/2hbar) <grad u| x (H - eps) |grad u> for
    a carrier of charge -e; for two bands it equals E_k Omega_+ (derivation:
    insert H - eps_+ = -2 E_k |-><-| and compare with
    Omega_+ = -2 Im <d_x u|-><-|d_y u>).

    Parameters
    ----------
    k : array_like, shape (..., 2)
    v : float
        Dirac velocity (> 0).
    m : float
        Mass (energy).
    s : {+1, -1}
        Valley index.

    Returns
    -------
    float or ndarray, shape (...)
    """
    k = _k_array(k)
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    s = _valley(s)
    e2 = v * v * np.sum(k * k, axis=-1) + m * m
    if np.any(e2 == 0):
        raise ValueError("orbital moment of the massless Dirac cone is singular at k = 0; use m != 0 or k != 0")
    return _out(-s * m * v * v / (2.0 * e2))


def dirac_intrinsic_hall(mu, m, s, temperature=0.0):
    """Intrinsic (Berry-curvature) Hall conductivity of one massive Dirac valley.

    sigma_xy = -(q^2/hbar) int[dk] sum_n f_n Omega_n (docs/conventions.md), in e^2/hbar.

    T = 0 (Streda formula, Wong & Tserkovnyak 2021, Eqs. 45-47, in our signs):
    sigma_xy = -(1/4 pi) s m / max(|mu|, |m|)
    (= -(e^2/2h) s m / max(|mu|, |m|)).

    Finite T (derived here): with 2 pi k dk/(2 pi)^2 = E dE/(2 pi v^2) and
    Omega_+/- = -/+ s m v^2/(2E^3) the v dependence drops out,

        sigma_xy = -(s m / 4 pi) int_|m|^inf dE [f(-E) - f(E)] / E^2,

    f the Fermi function at chemical potential mu and temperature T
    (k_B = 1).  It is evaluated with scipy quad on [|m|, L], L = max(|m|,
    |mu| + 60 T) (in the variable ln E), plus the tail int_L^inf = 1/L - int_L^inf [f(E) + 1 - f(-E)]
    /E^2 (the last integrand is < 2 e^-60, also integrated).  At T = 0 it
    reduces to the closed form above.

    Parameters
    ----------
    mu : float
        Chemical potential (energy), measured from the Dirac point.
    m : float
        Mass (energy).  m = 0 gives 0 except at mu = T = 0 (the
        half-quantised value then depends on the sign of an infinitesimal
        mass: ValueError).
    s : {+1, -1}
        Valley index.
    temperature : float
        k_B T (energy), >= 0.

    Returns
    -------
    float
        sigma_xy in e^2/hbar.
    """
    mu = float(_finite("mu", mu))
    m = float(_finite("m", m))
    s = _valley(s)
    t = float(_nonnegative("temperature", temperature))
    if t == 0.0:
        if m == 0.0 and mu == 0.0:
            raise ValueError("massless Dirac at mu = 0, T = 0: sigma_xy is undefined (depends on the sign of an "
                             "infinitesimal mass); use m != 0, mu != 0 or temperature > 0")
        return -s * m / (4.0 * math.pi * max(abs(mu), abs(m)))
    if m == 0.0:
        return 0.0  # Omega = 0 for k != 0; the finite-T integral -> 0 continuously as m -> 0
    am = abs(m)

    b = abs(mu) / t

    def occ_diff(e):
        # f(-E) - f(E) = sinh(a)/(cosh(a) + cosh(b)), a = E/T, b = |mu|/T, written without overflow and
        # without the cancellation of a difference of two Fermi functions at E << T
        a = e / t
        if a >= b:
            return -math.expm1(-2.0 * a) / (1.0 + math.exp(-2.0 * a) + math.exp(b - a) + math.exp(-a - b))
        r = math.exp(a - b)
        return r * -math.expm1(-2.0 * a) / (r + math.exp(-a - b) + 1.0 + math.exp(-2.0 * b))

    def tail(e):
        # f(E) + [1 - f(-E)]: electrons above, holes below; decays like exp(-(E - |mu|)/T)
        return special.expit((mu - e) / t) + special.expit(-(e + mu) / t)

    lcut = max(am, abs(mu) + 60.0 * t)
    inner = 0.0
    if lcut > am:
        # x = ln E keeps the integrand smooth when |m| << T (int dE/E^2 ~ int dx e^-x)
        pts = [math.log(abs(mu))] if am < abs(mu) < lcut else None
        inner = integrate.quad(lambda x: occ_diff(math.exp(x)) * math.exp(-x), math.log(am), math.log(lcut),
                               points=pts, epsabs=0.0, epsrel=1e-11, limit=500)[0]
    outer = 1.0 / lcut - integrate.quad(lambda e: tail(e) / e ** 2, lcut, np.inf, epsabs=1e-300, epsrel=1e-10,
                                        limit=200)[0]
    return -s * m / (4.0 * math.pi) * (inner + outer)


def dirac_density(mu, v, m):
    """Carrier density of one partially filled Dirac band at T = 0 (per valley, spinless).

    n = k_F^2 / (4 pi) = (mu^2 - m^2) / (4 pi v^2) for |mu| > |m| (electrons
    for mu > 0, holes for mu < 0), 0 in the gap.  From n = pi k_F^2 / (2 pi)^2.

    Parameters
    ----------
    mu : float or array
        Chemical potential (energy).
    v : float
        Dirac velocity (> 0).
    m : float
        Mass (energy).

    Returns
    -------
    float or ndarray
        n (1/length^2).
    """
    mu = _finite("mu", mu)
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    return _out(np.where(np.abs(mu) > abs(m), (mu * mu - m * m) / (4.0 * math.pi * v * v), 0.0))


# ----------------------------------------------------------------------------
# Born lifetimes (white-noise disorder, Fermi golden rule) and Drude conductivities
# ----------------------------------------------------------------------------


def _dirac_shell(eps, v, m, nV2):
    eps = _finite("eps", eps)
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    nV2 = float(_nonnegative("nV2", nV2))
    a = np.abs(eps)
    if np.any(a < abs(m)) or np.any(a == 0):
        raise ValueError(f"eps = {eps!r} must lie in a band, |eps| >= |m| = {abs(m)} and eps != 0 "
                         "(there are no states in the gap)")
    return a, v, m, nV2


def dirac_born_rate(eps, v, m, nV2):
    """Born (golden-rule) out-scattering rate of massive Dirac states, white noise.

    1/tau = nV2 (eps^2 + m^2) / (2 hbar^3 v^2 |eps|)

    = 2 pi nV2 D(eps) <|<u_k'|u_k>|^2>_phi with D(eps) = |eps|/(2 pi v^2) per
    valley and the angle-averaged overlap (1 + cos^2 theta)/2,
    cos theta = m/eps.  The valence band (eps < -|m|) has the same rate at
    |eps| by particle-hole symmetry.  Example: v = m = 1, eps = 2, nV2 = 0.1
    gives tau = 8.

    Parameters
    ----------
    eps : float or array
        Energy (|eps| >= |m|, eps != 0).
    v : float
        Dirac velocity (> 0).
    m : float
        Mass (energy).
    nV2 : float
        n_i V0^2 (energy^2 length^2), >= 0.

    Returns
    -------
    float or ndarray
        1/tau (energy = 1/time).
    """
    a, v, m, nV2 = _dirac_shell(eps, v, m, nV2)
    return _out(nV2 * (a * a + m * m) / (2.0 * v * v * a))


def dirac_transport_rate(eps, v, m, nV2):
    """Transport (momentum-relaxation) rate of massive Dirac states, white noise.

    1/tau_tr = int[dk'] W_kk' (1 - cos(phi - phi')) = nV2 (eps^2 + 3 m^2) / (4 v^2 |eps|).

    Derivation (here; from the Born rate of docs/conventions.md):
    W = 2 pi nV2 |<u_k'|u_k>|^2 delta(eps - eps'), overlap
    (1 + cos^2 theta + sin^2 theta cos phi)/2 with phi = phi' - phi_k,
    cos theta = m/eps.  Angle average of overlap x (1 - cos phi):
    (1 + cos^2 theta)/2 - sin^2 theta/4 = (1 + 3 cos^2 theta)/4; times
    2 pi D(eps) = |eps|/v^2.  For m = 0 this is half the out-scattering rate
    (tau_tr = 2 tau, absence of backscattering); at the band edge it equals
    1/tau.  For an isotropic band with elastic scattering, tau_tr is the exact
    solution of the linearised Boltzmann equation.

    Parameters
    ----------
    eps, v, m, nV2 : as in :func:`dirac_born_rate`.

    Returns
    -------
    float or ndarray
        1/tau_tr (energy = 1/time).
    """
    a, v, m, nV2 = _dirac_shell(eps, v, m, nV2)
    return _out(nV2 * (a * a + 3.0 * m * m) / (4.0 * v * v * a))


def parabolic_born_rate(mstar, nV2, dim=2, eps=None):
    """Born out-scattering rate of a parabolic band eps = hbar^2 k^2 / 2m*, white noise.

    1/tau = 2 pi nV2 D(eps) with D the density of states per spin
    (Born rate of docs/conventions.md; the overlap is 1 for a single band):

    - dim = 2 (the textbook result): D = m*/(2 pi), 1/tau = nV2 m* / hbar^3,
      energy independent (``eps`` not needed).
    - dim = 1 (derived): D = m*/(pi k), 1/tau = nV2 sqrt(2 m* / eps)
      (= 2 nV2 m*/k); this counts both final states k' = +/-k; the transport
      (backscattering) rate is half of it.
    - dim = 3 (derived): D = m* k/(2 pi^2), 1/tau = nV2 m* k / pi with
      k = sqrt(2 m* eps).

    Parameters
    ----------
    mstar : float
        Effective mass (> 0; energy^-1 length^-2 with hbar = 1).
    nV2 : float
        n_i V0^2 (energy^2 length^dim), >= 0.
    dim : {1, 2, 3}
    eps : float or array, optional
        Kinetic energy (> 0); required for dim = 1 and 3, ignored for dim = 2.

    Returns
    -------
    float or ndarray
        1/tau (energy = 1/time).
    """
    mstar = float(_positive("mstar", mstar))
    nV2 = float(_nonnegative("nV2", nV2))
    if dim not in (1, 2, 3):
        raise ValueError(f"dim must be 1, 2 or 3, got {dim!r}")
    if dim == 2:
        return nV2 * mstar
    if eps is None:
        raise ValueError(f"the {dim}D parabolic Born rate depends on energy: pass eps > 0")
    eps = _positive("eps", eps)
    k = np.sqrt(2.0 * mstar * eps)
    if dim == 1:
        return _out(2.0 * nV2 * mstar / k)
    return _out(nV2 * mstar * k / math.pi)


def drude_conductivity(density, tau, mstar):
    """Drude conductivity sigma = n e^2 tau / m* (one spin species), in e^2/hbar (code units).

    Parameters
    ----------
    density : float or array
        Carrier density n (1/length^d), >= 0.
    tau : float or array
        Transport time (1/energy), > 0.
    mstar : float
        Effective mass (> 0).

    Returns
    -------
    float or ndarray
        sigma_xx (e^2/hbar x length^(2-d)); the sign of q drops out (q^2).
    """
    n = _nonnegative("density", density)
    tau = _positive("tau", tau)
    mstar = _positive("mstar", mstar)
    return _out(n * tau / mstar)


def dirac_drude_conductivity(mu, v, m, nV2):
    """Boltzmann conductivity of one massive Dirac valley, white noise, T = 0.

    sigma_xx = e^2 D(mu) v_F^2 tau_tr / 2
             = (mu^2 - m^2) tau_tr / (4 pi |mu|)
             = (e^2/hbar) v^2 (mu^2 - m^2) / (pi nV2 (mu^2 + 3 m^2)),

    derived from sigma_xx = e^2 int[dk] (-df/de) v_x^2 tau_tr with
    D = |mu|/(2 pi v^2) per valley, v_F = v^2 k_F/|mu|, k_F^2 v^2 = mu^2 - m^2
    and tau_tr from :func:`dirac_transport_rate` (exact Boltzmann solution for
    the isotropic band).  Equivalently Drude n tau_tr/m_c with the cyclotron
    mass m_c = k_F/v_F = |mu|/v^2.  Massless limit: v^2/(pi nV2).

    Parameters
    ----------
    mu : float or array
        Chemical potential (energy), |mu| > |m| (a metal; holes for mu < 0).
    v : float
        Dirac velocity (> 0).
    m : float
        Mass (energy).
    nV2 : float
        n_i V0^2 (energy^2 length^2), > 0.

    Returns
    -------
    float or ndarray
        sigma_xx in e^2/hbar.
    """
    mu = _finite("mu", mu)
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    nV2 = float(_positive("nV2", nV2))
    if np.any(np.abs(mu) <= abs(m)):
        raise ValueError(f"mu = {mu!r} must lie in a band (|mu| > |m| = {abs(m)}); the Boltzmann conductivity "
                         "in the gap is zero and at the band edge the formula is not a metal any more")
    return _out(v * v * (mu * mu - m * m) / (math.pi * nV2 * (mu * mu + 3.0 * m * m)))


# ----------------------------------------------------------------------------
# Landau-Zener formula, Bloch and cyclotron periods
# ----------------------------------------------------------------------------


def landau_zener_probability(m, v, F, ky=0.0):
    """Landau-Zener interband probability through the Dirac anticrossing (Landau-Zener formula).

    P = exp[-pi (m^2 + hbar^2 v^2 k_y^2) / (hbar v F)]

    for a packet driven by the force F = |qE| along x across the whole
    anticrossing (sweep from k_x = -inf to +inf), at fixed k_y.  In the
    standard LZ form H = (beta t/2) sigma + g sigma' it is
    exp(-2 pi g^2/beta) with beta = 2 v F, g^2 = m^2 + v^2 k_y^2.
    Example: v = m = F = 1, k_y = 0 gives P = exp(-pi) = 0.043214.

    Parameters
    ----------
    m : float
        Mass (energy).
    v : float
        Dirac velocity (> 0).
    F : float
        Force |qE| (energy/length), > 0.
    ky : float or array
        Transverse wave vector (1/length).

    Returns
    -------
    float or ndarray
        Probability to end in the other band.
    """
    m = float(_finite("m", m))
    v = float(_positive("v", v))
    F = float(_positive("F (= |qE|)", F))
    ky = _finite("ky", ky)
    return _out(np.exp(-math.pi * (m * m + v * v * ky * ky) / (v * F)))


def bloch_period(E, a):
    """Bloch-oscillation period T_B = 2 pi hbar / (|q E| a) of a tight-binding chain.

    Parameters
    ----------
    E : float
        Electric field along the chain (energy / (e length)), != 0; its sign
        does not matter.
    a : float
        Lattice constant (> 0).

    Returns
    -------
    float
        T_B (1/energy = time).
    """
    E = float(_finite("E", E))
    if E == 0:
        raise ValueError("the Bloch period is infinite at E = 0; pass a non-zero field")
    a = float(_positive("a", a))
    return 2.0 * math.pi / (abs(Q * E) * a)


def cyclotron_period(mstar, B):
    """Cyclotron period T_c = 2 pi m* / (|q| |B|) of a parabolic band (hbar = e = 1).

    From hbar dk/dt = q v x B with v = hbar k/m*: the circular orbit has
    angular frequency omega_c = |q B|/m*.

    Parameters
    ----------
    mstar : float
        Effective mass (> 0).
    B : float
        Magnetic field (hbar/(e length^2)), != 0.

    Returns
    -------
    float
        T_c (time).
    """
    mstar = float(_positive("mstar", mstar))
    B = float(_finite("B", B))
    if B == 0:
        raise ValueError("the cyclotron period is infinite at B = 0; pass a non-zero field")
    return 2.0 * math.pi * mstar / abs(Q * B)


# ----------------------------------------------------------------------------
# Qi-Wu-Zhang model (docs/models.md, "QWZ")
# ----------------------------------------------------------------------------


def qwz_chern(u):
    """Lower-band Chern number of the Qi-Wu-Zhang model (closed form).

    C = [sgn(u + 2) + sgn(u - 2) - 2 sgn(u)] / 2: -1 for 0 < u < 2, +1 for
    -2 < u < 0, 0 for |u| > 2, with C = (1/2 pi) int Omega (docs/conventions.md).

    Parameters
    ----------
    u : float
        Staggered mass; u in {-2, 0, 2} closes the gap (ValueError).

    Returns
    -------
    int
    """
    u = float(_finite("u", u))
    if u in (-2.0, 0.0, 2.0):
        raise ValueError(f"the QWZ gap closes at u = {u}; the Chern number is undefined there (use u not in "
                         "{-2, 0, 2})")
    sgn = lambda z: (z > 0) - (z < 0)  # noqa: E731
    return (sgn(u + 2) + sgn(u - 2) - 2 * sgn(u)) // 2


def qwz_hall(u):
    """Hall conductivity of the QWZ insulator with mu in the gap: -C/(2 pi) e^2/hbar (docs/conventions.md).

    (= -C e^2/h; +1/(2 pi) at u = 1.)
    """
    return -qwz_chern(u) / (2.0 * math.pi)


# ----------------------------------------------------------------------------
# Lindblad pure dephasing in the eigenbasis
# ----------------------------------------------------------------------------


def lindblad_dephasing_coherence(rho0, energies, gamma, t):
    """Closed-form solution of eigenbasis (pure) dephasing of the Lindblad equation.

    For d rho/dt = -i[H, rho] + gamma sum_i (P_i rho P_i - {P_i, rho}/2),
    P_i = |i><i| the eigenprojectors of H (sum_i P_i = 1):
    rho_ii(t) = rho_ii(0), rho_ij(t) = rho_ij(0) exp(-i(e_i - e_j) t - gamma t)
    for i != j.

    Parameters
    ----------
    rho0 : array_like, shape (N, N)
        Density matrix at t = 0 in the eigenbasis of H.
    energies : array_like, shape (N,)
        Eigenvalues e_i (energy).
    gamma : float
        Dephasing rate (>= 0).
    t : float or array_like, shape (nt,)
        Times (>= 0; the dissipative evolution is not invertible).

    Returns
    -------
    ndarray, shape (N, N) for scalar t, else (nt, N, N)
        rho(t) in the eigenbasis.
    """
    rho0 = np.asarray(rho0, dtype=np.complex128)
    e = _finite("energies", energies)
    if rho0.ndim != 2 or rho0.shape[0] != rho0.shape[1]:
        raise ValueError(f"rho0 must be a square (N, N) matrix, got shape {rho0.shape}")
    if e.shape != (rho0.shape[0],):
        raise ValueError(f"energies must have shape ({rho0.shape[0]},) to match rho0, got {e.shape}")
    gamma = float(_nonnegative("gamma", gamma))
    t = _finite("t", t)
    if np.any(t < 0):
        raise ValueError("t must be >= 0 (dephasing cannot be run backwards)")
    scalar = t.ndim == 0
    tt = np.atleast_1d(t)[:, None, None]
    de = e[:, None] - e[None, :]
    off = 1.0 - np.eye(len(e))
    out = rho0[None] * np.exp(-1j * de[None] * tt - gamma * off[None] * tt)
    return out[0] if scalar else out


# ----------------------------------------------------------------------------
# Berry-curvature-dipole nonlinear Hall effect (Sodemann & Fu 2015, as on Balents 2025 slides)
# ----------------------------------------------------------------------------


def tilted_dirac_berry_curvature_dipole(mu, v, m, s, tilt):
    """Berry-curvature dipole D_b = int[dk] sum_n f0_n d_kb Omega_n of a tilted massive Dirac valley, T = 0.

    Model H = w.k + v (s k_x sigma_x + k_y sigma_y) + m sigma_z, |w| < v.
    Derivation (here): the valence band is full for mu > 0 (its maximum is
    -|m| sqrt(1 - w^2/v^2)) and int d_b Omega over all k vanishes, so only the
    conduction Fermi sea contributes.  With Omega(k) = -s m v^2/(2 E_k^3)
    isotropic, d_x Omega = Omega'(k) cos phi (w along x); at fixed k the
    occupied angles are w k cos phi < mu - E_k, i.e. cos phi < c(k) =
    (mu - E_k)/(w k), and int_{cos phi < c} cos phi dphi = -2 sqrt(1 - c^2)
    for |c| < 1 (0 otherwise).  Hence, exactly in w,

        D_par = -(1/2 pi^2) int dk k Omega'(k) sqrt(1 - c(k)^2),
        Omega'(k) = 3 s m v^4 k / (2 E_k^5),

    over the shell |mu - E_k| < |w| k, evaluated with scipy quad; D points
    along w (D = D_par w/|w|).  To first order in w (Fermi-surface form
    D_b = int[dk] delta(mu - eps) v_b Omega) D_par = -3 s m |w| (mu^2 - m^2)
    / (8 pi mu^4).

    Parameters
    ----------
    mu : float
        Chemical potential (energy), > 0 (electron doping).
    v : float
        Dirac velocity (> 0).
    m : float
        Mass (energy).
    s : {+1, -1}
        Valley index.
    tilt : (float, float)
        Tilt velocity w, |w| < v.

    Returns
    -------
    ndarray, shape (2,)
        (D_x, D_y) in units of length (Omega ~ length^2, d_k ~ length,
        int[dk] ~ length^-2).
    """
    mu = float(_positive("mu", mu))
    v = float(_positive("v", v))
    m = float(_finite("m", m))
    s = _valley(s)
    w = _finite("tilt", tilt)
    if w.shape != (2,):
        raise ValueError(f"tilt must be a pair (w_x, w_y), got {tilt!r}")
    aw = float(np.hypot(*w))
    if aw >= v:
        raise ValueError(f"|tilt| = {aw:g} must be < v = {v:g} (type-I cone; otherwise the Fermi sea is unbounded)")
    if aw == 0.0 or m == 0.0:
        return np.zeros(2)  # inversion-symmetric Fermi sea, or Omega = 0 away from k = 0
    v2w2 = v * v - aw * aw
    disc = mu * mu * v * v - m * m * v2w2
    if disc <= 0:
        return np.zeros(2)  # mu below the conduction-band bottom: nothing filled
    sq = math.sqrt(disc)
    k_hi = (mu * aw + sq) / v2w2  # E_k - |w| k = mu (c = -1, back of the Fermi sea)
    # lower end: E_k + |w| k = mu (c = +1) when mu > |m| (the sea contains k = 0); for
    # |m| sqrt(1 - w^2/v^2) < mu < |m| the sea is an off-centre pocket and the shell starts at the
    # smaller root of E_k - |w| k = mu instead
    k_lo = max(0.0, (-mu * aw + sq) / v2w2, (mu * aw - sq) / v2w2)
    if k_hi <= k_lo:
        return np.zeros(2)

    def integrand(k):
        e = math.sqrt(v * v * k * k + m * m)
        c = (mu - e) / (aw * k)
        r = max(0.0, 1.0 - c * c)
        return k * (3.0 * s * m * v ** 4 * k / (2.0 * e ** 5)) * math.sqrt(r)

    val = integrate.quad(integrand, k_lo, k_hi, epsabs=0.0, epsrel=1e-11, limit=400)[0]
    d_par = -val / (2.0 * math.pi ** 2)
    return d_par * w / aw


def nonlinear_hall_chi(dipole, tau):
    """Static second-order Hall tensor chi_abc (j_a = sum_bc chi_abc E_b E_c) from the Berry-curvature dipole.

    Derivation (here, Boltzmann with constant tau, 2D, static field E):
    f1 = -tau q E.grad_k f0; the anomalous velocity -(q E) x Omega gives
    j = q int[dk] f r_dot, whose second-order part is
    j = -q^2 E x z int[dk] f1 Omega = -q^3 tau (E.D) (E x z),
    D_b = int[dk] f0 d_b Omega_z (integration by parts).  So
    chi_abc = -q^3 tau eps_{acz} D_b = -tau eps_{azc} D_b (q = -1), i.e.
    j_x = tau (E.D) E_y, j_y = -tau (E.D) E_x.
    Sodemann & Fu (2015; Balents 2025 slides, slide "Non-linear Hall effect":
    chi^SF_abc = -eps_adc e^3 tau / (2(1 + i omega tau)) int f0 d_b Omega_d,
    for E(t) = Re E e^{i omega t}) agrees: a static field has
    j = j^0 + j^{2 omega} = 2 chi^SF(0) E E, i.e. chi = 2 chi^SF(omega = 0).

    Parameters
    ----------
    dipole : array_like, shape (2,)
        Berry-curvature dipole (D_x, D_y) (e.g. from
        :func:`tilted_dirac_berry_curvature_dipole`).
    tau : float
        Relaxation time (> 0).

    Returns
    -------
    ndarray, shape (2, 2, 2)
        chi[a, b, c] (not symmetrised in b, c) in e^3 tau / hbar^2 code units.
    """
    d = _finite("dipole", dipole)
    if d.shape != (2,):
        raise ValueError(f"dipole must be a pair (D_x, D_y), got {dipole!r}")
    tau = float(_positive("tau", tau))
    # eps_{a z c} in 2D: eps_xzy = -1, eps_yzx = +1
    eps_azc = np.array([[0.0, -1.0], [1.0, 0.0]])
    return Q ** 3 * tau * eps_azc[:, None, :] * d[None, :, None]


def berry_dipole_nonlinear_hall_current(E, dipole, tau):
    """Second-order (Berry-curvature-dipole) current for a static field E, 2D.

    j = -q^3 tau (E.D) (E x z) = tau (E.D) (E_y, -E_x) with q = -1; see
    :func:`nonlinear_hall_chi` for the derivation and the relation to
    Sodemann & Fu (2015; Balents 2025 slides, "Non-linear Hall effect").

    Parameters
    ----------
    E : array_like, shape (2,)
        Static electric field.
    dipole : array_like, shape (2,)
        Berry-curvature dipole.
    tau : float
        Relaxation time (> 0).

    Returns
    -------
    ndarray, shape (2,)
        Current density (e^3 tau/hbar^2 code units).
    """
    E = _finite("E", E)
    if E.shape != (2,):
        raise ValueError(f"E must be a pair (E_x, E_y), got {E!r}")
    chi = nonlinear_hall_chi(dipole, tau)
    return np.einsum("abc,b,c->a", chi, E, E)
