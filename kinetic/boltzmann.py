"""Deterministic Boltzmann solvers for spatially homogeneous 2D systems.

Two solvers share the band structure (``model.bands``, ``model.dhdk_matrices``),
the Born kernel and the disorder spectrum (``disorder(q)``) with the Monte
Carlo, so a disagreement is physics or statistics, never a different model:

:func:`linear_response`
    Exact solution of the linearised Boltzmann equation with the full Born
    kernel (intra- and inter-band, any disorder spectrum) on the Fermi
    contour(s), plus the anomalous contributions: intrinsic (Fermi-sea Berry
    curvature), side jump and anomalous distribution (Sinitsyn's scheme), and
    a relaxation-time mode.
:class:`TimeDependentBoltzmann`
    f_n(k, t) under a time-dependent field E(t): drift in k plus the Born (or
    relaxation-time) collision integral on a polar pseudo-spectral grid, all
    orders in E, with the band-velocity and anomalous (-k_dot x Omega)
    currents.

Conventions (docs/conventions.md): hbar = e = 1, carrier charge q = -1,
k_dot = q E, Born rate W(nk -> mk') = 2 pi R^(k - k') |<u_m(k')|u_n(k)>|^2
delta(eps_n(k) - eps_m(k')), int[dk] = int d^2k/(2 pi)^2, j = q sum_n int[dk]
f_n r_dot_n, sigma_ab = dj_a/dE_b in e^2/hbar.  Only 2D models are supported
(a 3D shell would need a 2D angular grid per Fermi surface; not implemented).

Fermi-contour discretisation (linearised solver)
------------------------------------------------
The linearised equation at T = 0 involves only the Fermi contour(s).  They
are found exactly as the Monte Carlo's Born sampler finds final states
(:func:`scattering.born.shell_points`): rays k0 + r e from a centre k0
(origin / Gamma, or ``center``) at N uniformly spaced angles
phi_i = 2 pi (i + 1/2)/N, every root of eps_m(k0 + r e) = mu on every ray
(several roots per ray and several bands are summed), bisection to machine
precision.  A contour point carries the weight

    w = (2 pi / N) r / |e . grad eps_m| / (2 pi)^2,

so that int[dk] delta(eps_m(k) - mu) F(k) = sum_points w F (periodic
trapezoid rule in the angle: spectral for smooth contours).  Lattice models
use rays filling the reciprocal cell around Gamma (momentum transfers folded
as in the Monte Carlo); where a contour crosses the cell boundary the
integrand has a kink and convergence becomes algebraic.  Finite temperature
uses an energy grid: elastic scattering does not couple energies, so
sigma(T) = int d eps (-f0'(eps)) sigma_{T=0}(mu -> eps), with
x = (eps - mu)/T = pi sinh(s), |x| <= 36, and the trapezoid rule in s
((-f0') d eps = sech^2(x/2) dx/4; exponential convergence for smooth
sigma_{T=0}(eps)); shells in a gap contribute 0 (a band
edge inside the window makes the integrand non-smooth and the convergence
algebraic).
"""
import math
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy import linalg as sla

from packets import compile_cache, geometry
from packets.bandgeom import DEGTOL
from scattering import born
from scattering.disorder import Disorder
from scattering.sidejump import coordinate_shift

__all__ = ["FermiContour", "fermi_contour", "born_kernel", "LinearResponse", "linear_response",
           "TimeDependentBoltzmann", "TDResult"]

#: carrier charge in units of e (docs/conventions.md)
Q = -1.0
_TWO_PI = 2.0 * math.pi
#: half-width of the finite-T energy window in units of T (-f0' < 1e-15 T^-1 outside)
_ENERGY_WINDOW = 36.0


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------


def _check_model_2d(model, what):
    if getattr(model, "dim", None) != 2:
        raise ValueError(f"{what} supports 2D band models only; model {getattr(model, 'name', model)!r} is "
                         f"{getattr(model, 'dim', '?')}-D")


def _check_disorder(disorder, model):
    if not isinstance(disorder, Disorder):
        raise ValueError(f"disorder must be a scattering.disorder.Disorder (e.g. WhiteNoiseDisorder(0.1)), got "
                         f"{type(disorder).__name__}")
    disorder.check_dim(model.dim)


def _finite(name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {v!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _fermi(eps, mu, t):
    return geometry.fermi(eps, mu, t)


def _mdfermi(eps, mu, t):
    """-df0/deps = f (1 - f)/T (T > 0)."""
    f = np.asarray(geometry.fermi(eps, mu, t))
    return f * (1.0 - f) / t


# ----------------------------------------------------------------------------
# Fermi contour and Born kernel
# ----------------------------------------------------------------------------


@dataclass
class FermiContour:
    """Points of the energy shell eps_n(k) = energy of all bands (module docstring).

    Attributes
    ----------
    energy : float
    k : ndarray (P, 2)        contour points (inverse length)
    band : ndarray (P,)       band index of each point
    weight : ndarray (P,)     w, int[dk] delta(eps - energy) F = sum w F (1/(energy length^2))
    velocity : ndarray (P, 2) group velocity grad eps (energy x length)
    vec : ndarray (P, nb)     Bloch eigenvector (model orbital basis, model.bands gauge)
    ray : ndarray (P,)        index of the ray (angle) the point lies on
    n_angles : int
    geo : ndarray             ray geometry (scattering.born.ray_geometry)
    """

    energy: float
    k: np.ndarray
    band: np.ndarray
    weight: np.ndarray
    velocity: np.ndarray
    vec: np.ndarray
    ray: np.ndarray
    n_angles: int
    geo: np.ndarray

    @property
    def size(self):
        return int(self.k.shape[0])

    @property
    def density_of_states(self):
        """D(energy) = int[dk] sum_n delta(eps_n - energy) (per spin, per valley)."""
        return float(self.weight.sum())


def _uniform_dirs(n_angles, offset=0.5):
    phi = _TWO_PI * (np.arange(n_angles) + offset) / n_angles
    return phi, np.stack([np.cos(phi), np.sin(phi)], axis=1)


def fermi_contour(model, energy, n_angles=128, center=None, r_max=None, n_scan=born.DEFAULT_N_SCAN, x=None,
                  offset=0.5):
    """Discretise the energy shell eps_n(k) = energy of a 2D model (all bands).

    Parameters
    ----------
    model : BandModel (2D)
    energy : float
        Shell energy (the chemical potential at T = 0).
    n_angles : int
        Number of uniformly spaced rays (>= 4).
    center : (float, float), optional
        Ray origin k0 (default origin / Gamma); put it inside the Fermi pockets.
    r_max : float, optional
        Continuum models: ray length (default ``model.k_window``).
    n_scan : int
        Root-bracketing sub-intervals per ray (as in the Monte Carlo sampler).
    x : array_like (2,), optional
        Position (textured models).
    offset : float
        Angles are 2 pi (i + offset)/n_angles.

    Returns
    -------
    FermiContour
    """
    _check_model_2d(model, "fermi_contour")
    n_angles = int(n_angles)
    if n_angles < 4:
        raise ValueError(f"n_angles must be >= 4, got {n_angles}")
    energy = _finite("energy", energy)
    geo = born.ray_geometry(model, center, r_max)
    _, dirs = _uniform_dirs(n_angles, offset)
    shells = born.shell_points(model, energy, dirs, x=x, n_scan=n_scan, geo=geo)
    ks, bands, ws, vs, vecs, rays = [], [], [], [], [], []
    for m, sh in enumerate(shells):
        if sh["r"].size == 0:
            continue
        with np.errstate(divide="ignore"):
            w = (_TWO_PI / n_angles) * sh["r"] / np.abs(sh["slope"]) / _TWO_PI ** 2
        if not np.all(np.isfinite(w)):
            raise ValueError(f"a ray touches the energy shell of band {m} tangentially at energy {energy:g}; "
                             "choose a ray centre inside the Fermi pocket (center=...) or another n_angles")
        ks.append(sh["k"])
        bands.append(np.full(sh["r"].size, m))
        ws.append(w)
        vs.append(sh["grad"])
        vecs.append(sh["vec"])
        rays.append(sh["ray"])
    nb = model.nbands
    if not ks:
        z = np.zeros((0, 2))
        return FermiContour(energy, z, np.zeros(0, int), np.zeros(0), z, np.zeros((0, nb), complex),
                            np.zeros(0, int), n_angles, geo)
    return FermiContour(energy, np.concatenate(ks), np.concatenate(bands), np.concatenate(ws),
                        np.concatenate(vs), np.concatenate(vecs), np.concatenate(rays), n_angles, geo)


def born_kernel(contour, disorder):
    """Born rate density K_ij = 2 pi R^(k_i - k_j) |<u_j|u_i>|^2 between contour points.

    ``K_ij w_j`` is the rate from point i into point j (the Born rate of
    docs/conventions.md; Qi, Wang & Watson, Eq. 4.15), so
    sum_j K_ij w_j = 1/tau_i, the out-scattering rate.  The
    momentum transfer is folded into the reciprocal cell for lattice models,
    exactly as in :mod:`scattering.born`.  Symmetric (K_ij = K_ji).

    Returns
    -------
    ndarray (P, P)
    """
    dk = contour.k[:, None, :] - contour.k[None, :, :]
    dk = born._fold_np(contour.geo, dk.reshape(-1, 2)).reshape(dk.shape)
    rq = disorder(dk)
    ov = contour.vec.conj() @ contour.vec.T
    return _TWO_PI * rq * np.abs(ov) ** 2


# ----------------------------------------------------------------------------
# Linearised Boltzmann equation
# ----------------------------------------------------------------------------


@dataclass
class LinearResponse:
    """Linear conductivities of :func:`linear_response` (e^2/hbar, 2x2 arrays sigma[a, b] = dj_a/dE_b).

    Attributes
    ----------
    drude : band-velocity (Boltzmann / Drude) conductivity, j = q sum int[dk] delta f v
    intrinsic : anomalous-velocity current of the equilibrium Fermi sea (None if not computed)
    side_jump : side-jump velocity of the non-equilibrium distribution (None if not computed)
    adist : band velocity of the anomalous distribution (None if not computed)
    skew : zero: skew scattering needs the third-order (non-Gaussian) or fourth-order
        (intrinsic skew) collision terms, absent from the Born (second-order) kernel with a
        Gaussian / two-point-correlated disorder; reported as zeros, never computed
    mu, temperature : float
    tau : float or None  (relaxation-time mode when given)
    n_points : int       contour points used (T = 0) or the largest shell (T > 0)
    tau_out : ndarray    out-scattering times 1/sum_j K_ij w_j on the (T = 0) contour (Born mode)
    notes : list of str
    """

    drude: np.ndarray
    intrinsic: np.ndarray = None
    side_jump: np.ndarray = None
    adist: np.ndarray = None
    skew: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    mu: float = 0.0
    temperature: float = 0.0
    tau: float = None
    n_points: int = 0
    tau_out: np.ndarray = None
    notes: list = field(default_factory=list)

    @property
    def sigma(self):
        """Total: drude + intrinsic + side_jump + adist (the terms that were computed)."""
        s = self.drude.copy()
        for part in (self.intrinsic, self.side_jump, self.adist):
            if part is not None:
                s = s + part
        return s

    def __getitem__(self, name):
        if name == "total":
            return self.sigma
        if name not in ("drude", "intrinsic", "side_jump", "adist", "skew"):
            raise KeyError(f"unknown mechanism {name!r}; have drude, intrinsic, side_jump, adist, skew, total")
        return getattr(self, name)

    def __str__(self):
        lines = [f"LinearResponse(mu={self.mu:g}, T={self.temperature:g}, "
                 f"{'tau=' + format(self.tau, 'g') if self.tau is not None else 'Born kernel'}), e^2/hbar:"]
        for name in ("drude", "intrinsic", "side_jump", "adist", "skew", "total"):
            s = self[name]
            if s is None:
                continue
            lines.append(f"  {name:10s} xx={s[0, 0]: .6g} xy={s[0, 1]: .6g} yx={s[1, 0]: .6g} yy={s[1, 1]: .6g}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _side_jump_velocity(model, contour, kernel, x, degtol):
    """v^sj_i = sum_j K_ij w_j delta r(i -> j), delta r the MC's coordinate shift (Sinitsyn et al. 2006)."""
    p = contour.size
    xx = np.zeros(2) if x is None else np.asarray(x, float)
    en, vec = model.bands(contour.k, xx)
    dh = model.dhdk_matrices(contour.k, xx)
    dr = np.zeros((p, p, 2))
    _shift_pairs(en, vec, dh, contour.band.astype(np.int64), float(degtol), dr)
    # dr[i, j] = shift for the transition i -> j
    return np.einsum("ij,j,ija->ia", kernel, contour.weight, dr)


@compile_cache.host_kernel
def _shift_pairs(en, vec, dh, band, degtol, out):
    """out[i, j] = coordinate shift for the transition i -> j (host-level njit loop, allocates)."""
    p = en.shape[0]
    tmp = np.zeros(out.shape[2])
    for i in range(p):
        for j in range(p):
            if i == j:
                continue
            coordinate_shift(en[i], vec[i], dh[i], band[i], en[j], vec[j], dh[j], band[j], degtol, tmp)
            for a in range(out.shape[2]):
                out[i, j, a] = tmp[a]


def _solve_collision(kernel, w, rhs):
    """Solve sum_j K_ij w_j (L_j - L_i) = rhs_i for L (columns of rhs), particle-conserving null space removed.

    Multiplying by w_i gives the symmetric system S L = w rhs with
    S = W K W - diag(w_i sum_j K_ij w_j), S 1 = 0.  The right-hand sides are
    orthogonal to the null space (closed contours: sum_i w_i v_i = 0), and
    the null-space component of L (a shift of the chemical potential of a
    disconnected contour) carries no current; the minimum-norm least-squares
    solution is returned.
    """
    kw = kernel * w[None, :]
    s = w[:, None] * kw
    s[np.diag_indices_from(s)] -= w * kw.sum(axis=1)
    b = w[:, None] * rhs
    scale = np.max(np.abs(s)) if s.size else 1.0
    sol, *_ = np.linalg.lstsq(s / scale, b / scale, rcond=1e-13)
    return sol


def _shell_response(model, disorder, energy, tau, n_angles, center, r_max, n_scan, x, side_jump, degtol):
    """T = 0 response of one energy shell: (drude, side_jump, adist, tau_out, npts)."""
    c = fermi_contour(model, energy, n_angles=n_angles, center=center, r_max=r_max, n_scan=n_scan, x=x)
    z = np.zeros((2, 2))
    if c.size == 0:
        return z, (z if side_jump else None), (z if side_jump else None), np.zeros(0), 0
    w, v = c.weight, c.velocity
    if tau is not None:
        lam = Q * tau * v  # g = tau q E.v (relaxation-time approximation)
        kern = None
        tau_out = np.full(c.size, tau)
    else:
        kern = born_kernel(c, disorder)
        tau_out = 1.0 / (kern @ w)
        lam = _solve_collision(kern, w, -Q * v)  # sum_j K w (L_j - L_i) = -q v_b
    drude = Q * np.einsum("i,ia,ib->ab", w, v, lam)
    sj = ad = None
    if side_jump:
        vsj = _side_jump_velocity(model, c, kern, x, degtol)
        sj = Q * np.einsum("i,ia,ib->ab", w, vsj, lam)
        lam_ad = _solve_collision(kern, w, Q * vsj)  # I_0[g_ad] = +q E.v_sj
        ad = Q * np.einsum("i,ia,ib->ab", w, v, lam_ad)
    return drude, sj, ad, tau_out, c.size


def linear_response(model, mu, disorder=None, temperature=0.0, tau=None, n_angles=128, n_energy=40,
                    side_jump=None, intrinsic=True, intrinsic_options=None, center=None, r_max=None,
                    n_scan=born.DEFAULT_N_SCAN, x=None, degtol=DEGTOL):
    """Solve the linearised Boltzmann equation of a homogeneous 2D system exactly (Born kernel).

    Equation (Born rate of docs/conventions.md; static E, k_dot = q E):

        q E . v_n(k) f0'(eps) = sum_m int[dk'] W(nk, mk') [delta f_m(k') - delta f_n(k)]
                                + f0'(eps) q E . v^sj_n(k),

    W symmetric and elastic.  With delta f = -f0'(eps) g at T = 0 the delta
    function cancels and on the Fermi contour (module docstring)

        sum_j K_ij w_j (g_j - g_i) = -q E . v_i          (ordinary part g = E_b Lambda_b)
        sum_j K_ij w_j (g_j - g_i) = +q E . v^sj_i       (anomalous distribution)

    solved as a dense linear system for E along x and along y (no
    relaxation-time approximation).  Currents:

    * ``drude``: sigma_ab = q sum_i w_i v_a Lambda_b (band velocity).
    * ``side_jump``: the side-jump velocity v^sj_i = sum_j W_ij delta r(i -> j),
      delta r the gauge-invariant coordinate shift (Sinitsyn, Niu & MacDonald
      2006) computed
      with the Monte Carlo's :func:`scattering.sidejump.coordinate_shift`,
      carried by the ordinary distribution: sigma_ab = q sum_i w_i v^sj_a Lambda_b.
    * ``adist``: the anomalous distribution.  Derivation (Sinitsyn, Niu &
      MacDonald, PRB 75, 045315 (2007); Sinitsyn, J. Phys.: Condens. Matter
      20, 023201 (2008)): a jump delta r in the potential energy U = -q E . r
      changes the band energy, eps_k' = eps_k + q E . delta r(k -> k') (total
      energy conserved across the jump).  In the collision integral of the
      equilibrium f0(eps) the in- and out-terms then no longer cancel:
      I[f0]_k = sum_k' W_kk' [f0(eps_k + qE.dr) - f0(eps_k)]
      = f0'(eps_k) q E . v^sj_k, which acts as the second source above.
      sigma_ab = q sum_i w_i v_a Lambda^ad_b.
    * ``intrinsic``: -(q^2/hbar) int[dk] sum_n f0 Omega_n (anomalous velocity
      -q E x Omega of the Fermi sea) from
      :func:`packets.geometry.intrinsic_hall_conductivity` (continuum models:
      the disc |k| < k_max only; see there for the tail).
    * ``skew``: absent (zeros): with Gaussian (two-point) disorder the Born
      kernel is symmetric, W_kk' = W_k'k, so the band-velocity tensor is
      symmetric; skew scattering needs third order in V (non-Gaussian
      disorder) or the fourth-order intrinsic skew terms, not in this
      solver.

    Relaxation-time mode (``tau`` given): g = tau q E . v, i.e. sigma_ab =
    q^2 tau int[dk] (-f0') v_a v_b; side jump and adist are not defined then.

    Parameters
    ----------
    model : BandModel (2D)
    mu : float
        Chemical potential (energy).
    disorder : Disorder, optional
        Disorder spectrum (required unless ``tau`` is given).
    temperature : float
        k_B T >= 0.  T > 0 uses the energy grid (module docstring).
    tau : float, optional
        Relaxation time (> 0): relaxation-time mode.
    n_angles : int
        Rays per contour.
    n_energy : int
        Energy nodes at T > 0 (module docstring).
    side_jump : bool, optional
        Compute side-jump and adist terms (default: True in Born mode for
        multi-band models).  Costs O(P^2) coordinate shifts.
    intrinsic : bool
        Compute the intrinsic term.
    intrinsic_options : dict, optional
        Passed to :func:`packets.geometry.intrinsic_hall_conductivity`
        (n, k_max, n_theta, k_breaks).
    center, r_max, n_scan, x :
        Ray geometry, as in :func:`fermi_contour`.

    Returns
    -------
    LinearResponse
    """
    _check_model_2d(model, "linear_response")
    mu = _finite("mu", mu)
    t = _finite("temperature", temperature)
    if t < 0:
        raise ValueError(f"temperature must be >= 0, got {t}")
    if tau is not None:
        tau = _finite("tau", tau)
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if side_jump:
            raise ValueError("side_jump needs the Born kernel: pass disorder and leave tau=None")
        side_jump = False
    else:
        if disorder is None:
            raise ValueError("pass a disorder model (Born kernel) or a relaxation time tau")
        _check_disorder(disorder, model)
        if side_jump is None:
            side_jump = model.nbands > 1
    notes = []
    if t == 0.0:
        dr, sj, ad, tau_out, npts = _shell_response(model, disorder, mu, tau, n_angles, center, r_max, n_scan, x,
                                                    side_jump, degtol)
    else:
        n_energy = int(n_energy)
        if n_energy < 2:
            raise ValueError(f"n_energy must be >= 2, got {n_energy}")
        # x = pi sinh(s), trapezoid in s: the integrand decays double-exponentially in s and is analytic
        # in a strip of half-width ~ pi/2 (Fermi poles at x = +/- i pi), so the rule converges exponentially
        smax = math.asinh(_ENERGY_WINDOW / math.pi)
        sg = np.linspace(-smax, smax, n_energy)
        hs = sg[1] - sg[0]
        xg = math.pi * np.sinh(sg)
        wg = np.full(n_energy, hs) * math.pi * np.cosh(sg)
        wg[[0, -1]] *= 0.5
        eps = mu + t * xg
        wts = wg * 0.25 / np.cosh(0.5 * xg) ** 2  # (-f0') d eps = sech^2(x/2)/4 dx
        dr = np.zeros((2, 2))
        sj = np.zeros((2, 2)) if side_jump else None
        ad = np.zeros((2, 2)) if side_jump else None
        npts = 0
        tau_out = None
        for e_, wt in zip(eps, wts):
            d_, s_, a_, to_, n_ = _shell_response(model, disorder, e_, tau, n_angles, center, r_max, n_scan, x,
                                                  side_jump, degtol)
            dr += wt * d_
            if side_jump:
                sj += wt * s_
                ad += wt * a_
            npts = max(npts, n_)
        notes.append(f"finite T: {n_energy} energies, x = (eps - mu)/T = pi sinh(s), trapezoid in s, "
                     f"|x| <= {_ENERGY_WINDOW:g}")
    intr = None
    if intrinsic:
        opts = dict(intrinsic_options or {})
        sxy = float(geometry.intrinsic_hall_conductivity(model, mu, temperature=t, x=x, **opts))
        intr = np.array([[0.0, sxy], [-sxy, 0.0]])
        if not model.is_lattice:
            notes.append("intrinsic: Fermi sea inside |k| < k_max only (packets.geometry.intrinsic_hall_conductivity)")
    return LinearResponse(drude=dr, intrinsic=intr, side_jump=sj, adist=ad, mu=mu, temperature=t, tau=tau,
                          n_points=npts, tau_out=tau_out, notes=notes)


# ----------------------------------------------------------------------------
# Time-dependent Boltzmann equation on a polar pseudo-spectral grid
# ----------------------------------------------------------------------------


def _cheb(n):
    """Chebyshev points x_j = cos(pi j/n), j = 0..n, and the differentiation matrix (Trefethen)."""
    j = np.arange(n + 1)
    xx = np.cos(np.pi * j / n)
    c = np.where((j == 0) | (j == n), 2.0, 1.0) * (-1.0) ** j
    dx = xx[:, None] - xx[None, :]
    d = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    d -= np.diag(d.sum(axis=1))
    return xx, d


def _clenshaw_curtis(n):
    """Clenshaw-Curtis weights on [-1, 1] for the points cos(pi j/n)."""
    theta = np.pi * np.arange(n + 1) / n
    w = np.zeros(n + 1)
    v = np.ones(n - 1)
    if n % 2 == 0:
        w[0] = w[n] = 1.0 / (n * n - 1)
        for k in range(1, n // 2):
            v -= 2.0 * np.cos(2 * k * theta[1:-1]) / (4 * k * k - 1)
        v -= np.cos(n * theta[1:-1]) / (n * n - 1)
    else:
        w[0] = w[n] = 1.0 / (n * n)
        for k in range(1, (n - 1) // 2 + 1):
            v -= 2.0 * np.cos(2 * k * theta[1:-1]) / (4 * k * k - 1)
    w[1:-1] = 2.0 * v / n
    return w


def _fourier_diff(n):
    """Spectral d/dphi on n (even) equispaced periodic points."""
    h = _TWO_PI / n
    i = np.arange(n)
    d = i[:, None] - i[None, :]
    with np.errstate(divide="ignore"):
        m = 0.5 * (-1.0) ** d / np.tan(0.5 * d * h)
    m[np.diag_indices(n)] = 0.0
    return m


def _bary_row(xnodes, bw, xs):
    """Barycentric interpolation matrix rows: f(xs) = B @ f(xnodes)."""
    diff = xs[:, None] - xnodes[None, :]
    exact = np.isclose(diff, 0.0, rtol=0, atol=1e-14 * max(1.0, np.max(np.abs(xnodes))))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = bw[None, :] / diff
        b = t / t.sum(axis=1, keepdims=True)
    rows = np.any(exact, axis=1)
    if np.any(rows):
        b[rows] = exact[rows].astype(float)
    return b


@dataclass
class TDResult:
    """Output of :meth:`TimeDependentBoltzmann.evolve`.

    Attributes
    ----------
    times : ndarray (nt,)
    E : ndarray (nt, 2)          field at the output times
    current : ndarray (nt, 2)    total j = band + anomalous + intrinsic
    band : ndarray (nt, 2)       q int[dk] sum_n delta f_n v_n
    anomalous : ndarray (nt, 2)  q int[dk] sum_n delta f_n (-q E x Omega_n)
    intrinsic : ndarray (nt, 2)  Fermi-sea part q int[dk] f0 (-q E x Omega) = sigma_int (E_y, -E_x)
    density : ndarray (nt,)      int[dk] sum_n delta f_n (particle conservation check)
    df : ndarray (nt, nunknowns) delta f on the grid (if kept)
    """

    times: np.ndarray
    E: np.ndarray
    current: np.ndarray
    band: np.ndarray
    anomalous: np.ndarray
    intrinsic: np.ndarray
    density: np.ndarray
    df: np.ndarray = None


class TimeDependentBoltzmann:
    """Homogeneous Boltzmann equation for f_n(k, t) in a field E(t), all orders in E (2D continuum models).

    Equation (k_dot = q E(t), docs/conventions.md):

        d(delta f_n)/dt = -q E . grad_k delta f_n - q E . v_n f0'(eps_n) + I[delta f]_n,

    for delta f = f - f0 (f0 the Fermi function at mu, T > 0), with I the
    Born collision integral (docs/conventions.md, W of the Monte Carlo) or
    -delta f/tau (``tau`` given).  The current is
    j = q sum_n int[dk] f_n (v_n - q E x Omega_n) (anomalous velocity
    -k_dot x Omega); the Fermi-sea part of the anomalous term, f0, is the
    intrinsic Hall current (computed once with
    :func:`packets.geometry.intrinsic_hall_conductivity` if ``intrinsic``).

    Discretisation (documented choice)
    ----------------------------------
    * Polar pseudo-spectral grid on the annulus k_lo < |k - k0| < k_hi that
      contains the thermal shell |eps_n - mu| < ``window`` T of each
      included band (delta f is exponentially small outside; it is set to 0
      at the two circles, Dirichlet, and not tracked outside).  Radial:
      Chebyshev points (``n_r`` + 1, interior ones are unknowns); angular:
      ``n_phi`` (even) equispaced points.  Drift: spectral derivatives,
      d/dk_x = cos(phi) d/dr - sin(phi)/r d/dphi (and y).  Quadrature:
      Clenshaw-Curtis x trapezoid.
    * Born collisions: for a grid point of energy eps the final states are
      the on-shell points eps_m(k0 + r e_j) = eps on the grid rays e_j,
      found with :func:`scattering.born.shell_points` (the Monte Carlo's
      root finder), so the energy delta function is resolved exactly, not
      smeared; delta f at the on-shell radius is obtained by Chebyshev
      (barycentric) interpolation along the ray.  The out-scattering rate
      uses every on-shell state; in-scattering only those inside the annulus
      (states outside carry delta f = 0 by construction).  For isotropic
      bands the on-shell radius is a grid radius, and particle number is
      conserved to round-off.
    * Time integration: for a static field the linear system
      d(delta f)/dt = L delta f + s is integrated exactly with matrix
      exponentials (augmented-matrix form); for a time-dependent field with
      DOP853 (rtol 1e-10).

    Parameters
    ----------
    model : BandModel (2D continuum)
    mu, temperature : float
        Chemical potential and k_B T (> 0: the T = 0 step is not resolvable
        on a grid).
    disorder : Disorder, optional
        Born kernel (or give ``tau``).
    tau : float, optional
        Relaxation-time mode.
    n_r, n_phi : int
        Grid sizes (n_phi even).
    k_range : (float, float), optional
        Annulus (default: from the thermal shell, ``window`` T, padded 5 %).
    bands : sequence of int, optional
        Bands that carry delta f (default: those with states in the window).
    window : float
        Thermal window in units of T (default 36: f0' < 1e-15 outside).
    intrinsic : bool
        Compute the intrinsic Fermi-sea Hall conductivity (continuum: disc
        |k| < k_max, see packets.geometry).
    intrinsic_options : dict, optional
    center : (float, float), optional
        Grid centre k0 (inside the Fermi pocket).
    """

    def __init__(self, model, mu, temperature, disorder=None, tau=None, n_r=24, n_phi=32, k_range=None, bands=None,
                 window=30.0, intrinsic=False, intrinsic_options=None, center=None, n_scan=born.DEFAULT_N_SCAN,
                 x=None, radial_focus=None):
        _check_model_2d(model, "TimeDependentBoltzmann")
        if model.is_lattice:
            raise ValueError("TimeDependentBoltzmann uses a polar grid around one centre and supports continuum "
                             "models only; for lattice models use linear_response")
        self.model = model
        self.mu = _finite("mu", mu)
        self.temperature = _finite("temperature", temperature)
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (the T = 0 Fermi step cannot be represented on the "
                             "pseudo-spectral grid; use linear_response for T = 0)")
        if tau is None and disorder is None:
            raise ValueError("pass a disorder model (Born kernel) or a relaxation time tau")
        if tau is not None:
            tau = _finite("tau", tau)
            if tau <= 0:
                raise ValueError(f"tau must be > 0, got {tau}")
        else:
            _check_disorder(disorder, model)
        self.tau = tau
        self.disorder = disorder
        n_r, n_phi = int(n_r), int(n_phi)
        if n_r < 4 or n_phi < 4 or n_phi % 2:
            raise ValueError(f"n_r must be >= 4 and n_phi even and >= 4, got n_r={n_r}, n_phi={n_phi}")
        self.n_r, self.n_phi = n_r, n_phi
        self.x = np.zeros(2) if x is None else np.asarray(x, float).reshape(2)
        self.geo = born.ray_geometry(model, center, None)
        self.k0 = self.geo[2:4].copy()
        self.n_scan = int(n_scan)
        self.window = float(window)
        self.phi, self.dirs = _uniform_dirs(n_phi, 0.0)
        wt = self.window * self.temperature
        if k_range is None:
            k_range = self._auto_range(self.mu - wt, self.mu + wt, bands)
        a, b = (float(k_range[0]), float(k_range[1]))
        if not (0 < a < b):
            raise ValueError(f"k_range must satisfy 0 < k_lo < k_hi, got {k_range}")
        self.k_lo, self.k_hi = a, b
        if radial_focus is None:
            radial_focus = self._auto_focus(bands)
        self._set_radial_map(radial_focus)
        # radial Chebyshev grid in xi, mapped to r (module docstring: tan map)
        xc, dc = _cheb(n_r)
        xi = -xc  # ascending
        self._xi_all = xi
        r_all = self._r_of_xi(xi)
        self.r_all = r_all
        self._dr_all = (-dc) / self._drdxi(xi)[:, None]  # d/dr = (1/r'(xi)) d/dxi; d/dxi for ascending xi is -D
        self._bw = np.where((np.arange(n_r + 1) == 0) | (np.arange(n_r + 1) == n_r), 0.5, 1.0) * (-1.0) ** np.arange(
            n_r + 1)
        self.r = r_all[1:-1]
        cc = _clenshaw_curtis(n_r) * self._drdxi(xi)
        self._wr = cc[1:-1]
        nri = n_r - 1
        kk = self.k0 + self.r[:, None, None] * self.dirs[None, :, :]  # (nri, nphi, 2)
        self.kgrid = kk.reshape(-1, 2)
        en, vec = model.bands(self.kgrid, self.x)
        dh = model.dhdk_matrices(self.kgrid, self.x)
        vel = np.einsum("pin,paij,pjn->pna", vec.conj(), dh, vec).real  # (P, nb, 2) group velocities
        om = geometry.berry_curvature(model, self.kgrid, self.x) if model.nbands > 1 else np.zeros_like(en)
        if bands is None:
            bands = [n for n in range(model.nbands) if np.any(np.abs(en[:, n] - self.mu) < wt)]
            if not bands:
                raise ValueError(f"no band has states within {self.window:g} T of mu = {self.mu:g} on the annulus "
                                 f"{k_range}; give k_range or bands")
        self.bands = [int(n) for n in bands]
        self.nb_inc = len(self.bands)
        self.npg = nri * n_phi
        self.size = self.nb_inc * self.npg
        sel = np.array(self.bands)
        self.eps = en[:, sel].T.reshape(-1)  # unknown ordering (band, r, phi)
        self.vel = vel[:, sel, :].transpose(1, 0, 2).reshape(-1, 2)
        self.omega = np.asarray(om)[:, sel].T.reshape(-1)
        self.vecs = vec[:, :, sel].transpose(2, 0, 1).reshape(-1, model.nbands)
        wq = (self.r * self._wr)[:, None] * np.full(n_phi, _TWO_PI / n_phi)[None, :] / _TWO_PI ** 2
        self.wq = np.tile(wq.reshape(-1), self.nb_inc)
        self.f0 = np.asarray(_fermi(self.eps, self.mu, self.temperature))
        self.mdf0 = _mdfermi(self.eps, self.mu, self.temperature)
        edge = np.concatenate([_mdfermi(en[:, n].reshape(nri, n_phi)[[0, -1]], self.mu, self.temperature).ravel()
                               for n in self.bands])
        self.edge_weight = float(np.max(edge) * self.temperature) if edge.size else 0.0
        if self.edge_weight > 1e-9:
            raise ValueError(f"T (-f0') = {self.edge_weight:.2e} on the annulus boundary: the thermal shell is cut "
                             f"by k_range = ({a:g}, {b:g}) (or reaches the band extremum); widen k_range, lower the "
                             "temperature or move mu away from the band edge")
        # drift operators d/dk_x, d/dk_y on one band block
        dr_int = self._dr_all[1:-1, 1:-1]
        dphi = _fourier_diff(n_phi)
        ddr = np.kron(dr_int, np.eye(n_phi))
        ddp = np.kron(np.eye(nri), dphi)
        c = np.tile(np.cos(self.phi), nri)
        s = np.tile(np.sin(self.phi), nri)
        rr = np.repeat(self.r, n_phi)
        dx = c[:, None] * ddr - (s / rr)[:, None] * ddp
        dy = s[:, None] * ddr + (c / rr)[:, None] * ddp
        self.dkx = sla.block_diag(*([dx] * self.nb_inc))
        self.dky = sla.block_diag(*([dy] * self.nb_inc))
        # sources -q E.v f0'  (f0' = -mdf0)
        self.src = Q * self.vel * self.mdf0[:, None]  # (N, 2): s_a
        self.coll = self._collision()
        self.sigma_int = 0.0
        if intrinsic:
            self.sigma_int = float(geometry.intrinsic_hall_conductivity(model, self.mu, self.temperature, x=self.x,
                                                                        **dict(intrinsic_options or {})))

    # -- construction helpers ---------------------------------------------------
    def _auto_range(self, elo, ehi, bands):
        rs = []
        _, dirs = _uniform_dirs(64, 0.0)
        for e in np.linspace(elo, ehi, 9):
            sh = born.shell_points(self.model, e, dirs, x=self.x, n_scan=self.n_scan, geo=self.geo)
            for n, s in enumerate(sh):
                if bands is not None and n not in bands:
                    continue
                rs.extend(s["r"].tolist())
        if not rs:
            raise ValueError(f"no states with energy in [{elo:g}, {ehi:g}] within the model's k_window; give k_range")
        lo, hi = min(rs), max(rs)
        pad = 0.05 * (hi - lo) + 1e-3 * hi
        if lo - pad <= 0:
            raise ValueError(f"the thermal window [{elo:g}, {ehi:g}] reaches the band extremum at the grid centre "
                             "(|k - k0| -> 0, where polar coordinates are singular); lower the temperature, raise "
                             "|mu| or give k_range")
        return lo - pad, hi + pad

    def _auto_focus(self, bands):
        """(c, delta) of the tan map: mean Fermi radius and thermal width + half the spread of the radii."""
        _, dirs = _uniform_dirs(64, 0.0)
        sh = born.shell_points(self.model, self.mu, dirs, x=self.x, n_scan=self.n_scan, geo=self.geo)
        rs, vs = [], []
        for n, s in enumerate(sh):
            if bands is not None and n not in bands:
                continue
            rs.extend(s["r"].tolist())
            vs.extend(np.abs(s["slope"]).tolist())
        if not rs:
            return None
        rs = np.array(rs)
        if np.any(rs < self.k_lo) or np.any(rs > self.k_hi):
            return None
        width = 2.0 * self.temperature / max(min(vs), 1e-300) + 0.5 * (rs.max() - rs.min())
        return float(0.5 * (rs.max() + rs.min())), float(width)

    def _set_radial_map(self, focus):
        """Radial map r(xi), xi in [-1, 1]: linear, or r = c + delta tan(lam xi + th0) (points cluster at c)."""
        a, b = self.k_lo, self.k_hi
        if focus is None:
            self.radial_focus = None
            self._r_of_xi = lambda xi: a + (b - a) * (np.asarray(xi) + 1.0) / 2.0
            self._drdxi = lambda xi: np.full(np.shape(xi), (b - a) / 2.0)
            self._xi_of_r = lambda r: 2.0 * (np.asarray(r) - a) / (b - a) - 1.0
            return
        c, dl = float(focus[0]), float(focus[1])
        if not (a < c < b and dl > 0):
            raise ValueError(f"radial_focus (c, delta) needs k_lo < c < k_hi and delta > 0, got {focus}")
        ta, tb = math.atan((a - c) / dl), math.atan((b - c) / dl)
        th0, lam = 0.5 * (ta + tb), 0.5 * (tb - ta)
        self.radial_focus = (c, dl)
        self._r_of_xi = lambda xi: c + dl * np.tan(lam * np.asarray(xi) + th0)
        self._drdxi = lambda xi: dl * lam / np.cos(lam * np.asarray(xi) + th0) ** 2
        self._xi_of_r = lambda r: (np.arctan((np.asarray(r) - c) / dl) - th0) / lam

    def _collision(self):
        n = self.size
        if self.tau is not None:
            return -np.eye(n) / self.tau
        model, dis = self.model, self.disorder
        cmat = np.zeros((n, n))
        nri, nphi = self.n_r - 1, self.n_phi
        cache = {}
        band_pos = {b: i for i, b in enumerate(self.bands)}
        for i in range(n):
            e = self.eps[i]
            key = round(e, 12)
            if key not in cache:
                cache[key] = born.shell_points(model, e, self.dirs, x=self.x, n_scan=self.n_scan, geo=self.geo)
            shells = cache[key]
            ui = self.vecs[i]
            ki = self.kgrid[i % self.npg]
            gamma = 0.0
            for m, sh in enumerate(shells):
                if sh["r"].size == 0:
                    continue
                with np.errstate(divide="ignore"):
                    w = (_TWO_PI / nphi) * sh["r"] / np.abs(sh["slope"]) / _TWO_PI ** 2
                rq = dis(ki[None, :] - sh["k"])
                ov2 = np.abs(sh["vec"].conj() @ ui) ** 2
                c = _TWO_PI * rq * ov2 * w
                gamma += c.sum()
                if m not in band_pos:
                    continue
                inside = (sh["r"] >= self.k_lo) & (sh["r"] <= self.k_hi)
                if not np.any(inside):
                    continue
                brow = _bary_row(self._xi_all, self._bw, self._xi_of_r(sh["r"][inside]))[:, 1:-1]  # (t, nri)
                cols = band_pos[m] * self.npg + np.arange(nri)[None, :] * nphi + sh["ray"][inside][:, None]
                np.add.at(cmat[i], cols.ravel(), (c[inside][:, None] * brow).ravel())
            cmat[i, i] -= gamma
        return cmat

    # -- observables --------------------------------------------------------------
    def observables(self, df, E):
        """(band, anomalous, intrinsic, density) currents of delta f at field E (2D vectors)."""
        E = np.asarray(E, float)
        band = Q * np.einsum("i,i,ia->a", self.wq, df, self.vel)
        s = Q * Q * np.dot(self.wq * df, self.omega)
        # -q E x Omega z^ = -q Omega (E_y, -E_x); times q
        anom = -s * np.array([E[1], -E[0]])
        intr = self.sigma_int * np.array([E[1], -E[0]])
        return band, anom, intr, float(np.dot(self.wq, df))

    def operator(self, E):
        """L(E) = I_coll - q (E_x d/dk_x + E_y d/dk_y) and source s(E) = -q E.v f0'."""
        E = np.asarray(E, float)
        lmat = self.coll - Q * (E[0] * self.dkx + E[1] * self.dky)
        return lmat, self.src @ E

    def initial(self, f_init):
        """delta f on the grid from a callable f_init(k, band) -> occupation (k of shape (P, 2))."""
        out = np.empty(self.size)
        for bi, n in enumerate(self.bands):
            sl = slice(bi * self.npg, (bi + 1) * self.npg)
            out[sl] = np.asarray(f_init(self.kgrid, n), float) - self.f0[sl]
        return out

    def steady_state(self, E):
        """Stationary delta f for a static field E: solve L(E) delta f = -s(E) (relaxation-time mode).

        Only the relaxation-time mode has a steady state at all orders: the
        Born collisions are elastic, so a field heats the carriers without
        bound (the shell-averaged part of f diffuses in energy at a rate
        ~ (q E v)^2 tau and is stopped only by the artificial boundary of the
        annulus).  In Born mode use :meth:`linear_steady_state` (the
        linear-order stationary state, reached after a few transport times)
        or :meth:`evolve` for times tau << t << the heating time.
        """
        if self.tau is None:
            raise ValueError("Born (elastic) collisions give no all-orders steady state (Joule heating is not "
                             "relaxed); use linear_steady_state(E), evolve(), or the relaxation-time mode (tau=...)")
        lmat, s = self.operator(E)
        return np.linalg.solve(lmat, -s)

    def linear_steady_state(self, E):
        """Linear-order stationary delta f: I[delta f_1] = q E.v f0' (minimum-norm least squares).

        The elastic collision operator conserves the particle number of
        every energy shell (its null space); the source has no component
        there, and the null-space part of delta f_1 carries no current.
        """
        _, s = self.operator(E)
        sol, *_ = np.linalg.lstsq(self.coll, -s, rcond=1e-12)
        return sol

    def steady_current(self, E):
        """Stationary (band, anomalous, intrinsic) current vectors for a static field E."""
        df = self.steady_state(E) if self.tau is not None else self.linear_steady_state(E)
        b, a, i, _ = self.observables(df, E)
        return b, a, i

    def evolve(self, times, field=(0.0, 0.0), df0=None, f_init=None, keep_df=False):
        """Integrate delta f from t = times[0] and record the currents at ``times``.

        Parameters
        ----------
        times : array_like (nt,)
            Increasing output times; the initial state is at times[0].
        field : (Ex, Ey) or callable t -> (Ex, Ey)
            Electric field (energy/(e length)).
        df0 : ndarray, optional
            Initial delta f on the grid (default 0, or from ``f_init``).
        f_init : callable, optional
            f_init(k, band) -> occupation, see :meth:`initial`.
        keep_df : bool
            Keep delta f at every output time.

        Returns
        -------
        TDResult
        """
        times = np.asarray(times, float)
        if times.ndim != 1 or times.size < 1 or np.any(np.diff(times) <= 0):
            raise ValueError("times must be a 1-D increasing array")
        if df0 is None:
            df0 = self.initial(f_init) if f_init is not None else np.zeros(self.size)
        df = np.asarray(df0, float).copy()
        if df.shape != (self.size,):
            raise ValueError(f"df0 must have shape ({self.size},)")
        static = not callable(field)
        fld = (lambda t: np.asarray(field, float)) if static else (lambda t: np.asarray(field(t), float))
        nt = times.size
        out = {k: np.zeros((nt, 2)) for k in ("band", "anomalous", "intrinsic")}
        dens = np.zeros(nt)
        dfs = np.zeros((nt, self.size)) if keep_df else None
        if static:
            lmat, s = self.operator(fld(0.0))
            aug = np.zeros((self.size + 1, self.size + 1))
            aug[:-1, :-1] = lmat
            aug[:-1, -1] = s
            props = {}
            for it in range(nt):
                if it > 0:
                    dt = times[it] - times[it - 1]
                    key = round(dt, 14)
                    if key not in props:
                        props[key] = sla.expm(aug * dt)
                    p = props[key]
                    df = p[:-1, :-1] @ df + p[:-1, -1]
                b, a, i, d = self.observables(df, fld(times[it]))
                out["band"][it], out["anomalous"][it], out["intrinsic"][it], dens[it] = b, a, i, d
                if keep_df:
                    dfs[it] = df
        else:
            from scipy.integrate import solve_ivp

            def rhs(t, y):
                e = fld(t)
                return self.coll @ y - Q * (e[0] * (self.dkx @ y) + e[1] * (self.dky @ y)) + self.src @ e

            sol = solve_ivp(rhs, (times[0], times[-1]), df, method="DOP853", t_eval=times, rtol=1e-10, atol=1e-14)
            if not sol.success:
                raise RuntimeError(f"time integration failed: {sol.message}")
            for it in range(nt):
                y = sol.y[:, it]
                b, a, i, d = self.observables(y, fld(times[it]))
                out["band"][it], out["anomalous"][it], out["intrinsic"][it], dens[it] = b, a, i, d
                if keep_df:
                    dfs[it] = y
        E_t = np.array([fld(t) for t in times])
        total = out["band"] + out["anomalous"] + out["intrinsic"]
        return TDResult(times, E_t, total, out["band"], out["anomalous"], out["intrinsic"], dens, dfs)
