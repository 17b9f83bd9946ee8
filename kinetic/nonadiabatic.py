"""Non-adiabatic steady state of Tu, Li & Yao (Eqs. 54-63): hybridised bands at finite field.

Homogeneous system (no spatial texture), static field E, charge q = -1
(hbar = e = 1, docs/conventions.md).  At every k:

* Eq. (54)-(55), (27): the moving-frame Hamiltonian in the band basis
  Hbar_nm = eps_n delta_nm + V_nm (n != m), V_nm = -(q E) . A_nm with the
  interband Berry connection A_nm = i<u_n|grad_k u_m>
  (:func:`packets.geometry.berry_connection`; seed: V = -R_k . (-e E),
  hbar k_dot = -e E = q E).  Its eigenvectors eta^(i) (components on the
  original bands) and eigenvalues E_i are the hybridised bands.
* Eq. (57) (relaxation-time form, homogeneous: the x-gradient and force
  F~ terms vanish): g_i = g0_i + delta g_i, g0_i = f(E_i),
  delta g_i = -tau (d g0_i/dk) . (q E) = -tau f'(E_i) (q E . grad_k E_i).
  grad_k E_i is the gradient of the hybridised energy (central finite
  differences of the gauge-invariant eigenvalues, step ``fd_step``).
* Eq. (58a), (62c): v~_i = <u_i| dH/dk |u_i> = sum_nm eta_n^* M_nm eta_m with
  M the velocity matrix <u_n|dH/dk|u_m> (:func:`packets.geometry.velocity_matrix`).
* Eq. (60): J = q sum_i int[dk] g_i v~_i (seed: -e sum_i int dk g_i v~_i;
  int[dk] = int d^2k/(2 pi)^2 here).

Active manifold with remote bands (Eqs. 61-63): Hbar_a, the block of Hbar
on the active bands, is diagonalised exactly (all orders in E), and the
coupling to the remote bands is first-order perturbation theory, which
gives Eq. (62a) v~_i,a = v~0_i,a + (e/hbar) sum_b <F^{k_a k_b}>_a^(i) E_b
= v~0_i,a - q sum_b <F^{ab}>^(i) E_b, with F the remote-band (non-Abelian)
curvature of the manifold, seed Eqs. (40)-(41)
(:func:`packets.geometry.nonabelian_curvature`) and
<F>^(i) = eta^(i)dag F eta^(i) (Eq. 63).  Only the active hybridised bands
carry current in this mode (other manifolds are separate, seed §II B).

Weak-field limit (derived here): first-order perturbation theory in V gives
eta^(n) = e_n + sum_{m != n} V_mn/(eps_n - eps_m) e_m, so
v~_n = v_n + 2 Re sum_m M_nm V_mn/(eps_n - eps_m) = v_n - q E_b Omega_n^{ab}
(A_mn = i M_mn/(eps_n - eps_m), Omega^{ab}_n = -2 Im sum_m M^a_nm M^b_mn /
(eps_n - eps_m)^2), the anomalous velocity; E_i = eps_i + O(E^2), so
delta g = RTA Boltzmann.  Hence J = sigma_int E + sigma_Drude(tau) E + O(E^2):
the adiabatic (intrinsic + Drude in the relaxation-time approximation)
result of :func:`adiabatic_current`.  The first non-adiabatic corrections
(hybridisation energy shifts ~ (E A)^2/gap and the second-order change of
v~) are O(E^2); they cancel for a model with inversion symmetry (e.g. the
untilted massive Dirac valley, H(-k) = sigma_z H(k) sigma_z), where J is odd
in E and the correction is O(E^3).

Grids: lattice models use the n x n midpoint grid of the Brillouin zone;
continuum models a polar grid over |k| < k_max (Gauss-Legendre, order 8, on
``n`` radial panels plus ``k_breaks``, ``n_theta`` uniform angles), the tail
|k| > k_max left out (as in packets.geometry.intrinsic_hall_conductivity).
T > 0 is required (the Fermi derivative of Eq. 57c is not smeared
otherwise).
"""
import math
from dataclasses import dataclass

import numpy as np

from packets import geometry

__all__ = ["k_grid", "NonadiabaticResult", "nonadiabatic_current", "adiabatic_current", "hybridised_bands"]

Q = -1.0
_TWO_PI = 2.0 * math.pi


def k_grid(model, n=None, k_max=None, n_theta=64, k_breaks=()):
    """Quadrature grid (k (P, 2), weights (P,)) with sum w F = int d^2k F / (2 pi)^2.

    Lattice: n x n midpoint grid of the BZ (default n = 96).  Continuum: polar
    Gauss-Legendre grid over |k| < k_max (default model.k_window), ``n``
    radial panels (default 48) plus edges at ``k_breaks``, ``n_theta`` angles.
    """
    if model.dim != 2:
        raise ValueError(f"only 2D models are supported; model {model.name!r} is {model.dim}-D")
    if model.is_lattice:
        n = 96 if n is None else int(n)
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        b = model.lattice.reciprocal
        t = (np.arange(n) + 0.5) / n
        k = (t[:, None, None] * b[0] + t[None, :, None] * b[1]).reshape(-1, 2)
        w = np.full(k.shape[0], abs(np.linalg.det(b)) / n ** 2 / _TWO_PI ** 2)
        return k, w
    n = 48 if n is None else int(n)
    k_max = model.k_window if k_max is None else float(k_max)
    if k_max is None or not (k_max > 0):
        raise ValueError("continuum model: give k_max > 0")
    br = np.asarray(k_breaks, float).ravel()
    if np.any(br <= 0) or np.any(br >= k_max):
        raise ValueError(f"k_breaks must lie in (0, k_max = {k_max})")
    edges = np.unique(np.concatenate([np.linspace(0.0, k_max, n + 1), br]))
    t, wt = np.polynomial.legendre.leggauss(8)
    lo, hi = edges[:-1, None], edges[1:, None]
    r = (0.5 * (hi - lo) * t + 0.5 * (hi + lo)).ravel()
    wr = (0.5 * (hi - lo) * wt).ravel()
    th = _TWO_PI * np.arange(int(n_theta)) / int(n_theta)
    k = np.stack([r[:, None] * np.cos(th), r[:, None] * np.sin(th)], axis=-1).reshape(-1, 2)
    w = np.repeat(r * wr * (_TWO_PI / int(n_theta)), int(n_theta)) / _TWO_PI ** 2
    return k, w


def _manifold(model, manifold):
    if manifold is None:
        return 0, model.nbands
    lo, hi = int(manifold[0]), int(manifold[1])
    if not 0 <= lo < hi <= model.nbands:
        raise ValueError(f"manifold (lo, hi) = {manifold} must satisfy 0 <= lo < hi <= nbands = {model.nbands}")
    return lo, hi


def hybridised_bands(model, k, E, manifold=None, remote="perturbative", x=None):
    """Hybridised energies E_i, velocities v~_i and eta vectors at points k (Tu, Li & Yao, Eqs. 54-55, 58, 61-63).

    Parameters
    ----------
    model : BandModel (2D)
    k : array (P, 2)
    E : (Ex, Ey)
        Electric field.
    manifold : (lo, hi), optional
        Active bands [lo, hi); None: all bands (full-band Eq. 54).
    remote : {"perturbative", "none"}
        With a manifold: add the remote-band term of Eq. (62a) or not.

    Returns
    -------
    energies (P, na), velocities (P, na, 2), eta (P, na, na) (columns = hybridised states in the
    band basis of the manifold)
    """
    E = np.asarray(E, float).reshape(2)
    lo, hi = _manifold(model, manifold)
    if remote not in ("perturbative", "none"):
        raise ValueError(f"remote must be 'perturbative' or 'none', got {remote!r}")
    en = model.energies(k, x)
    mk = geometry.velocity_matrix(model, k, x)  # (P, 2, nb, nb)
    ak = geometry.berry_connection(model, k, x)  # (P, 2, nb, nb)
    h = np.zeros((k.shape[0], model.nbands, model.nbands), complex)
    idx = np.arange(model.nbands)
    h[:, idx, idx] = en
    h -= Q * np.einsum("a,paij->pij", E, ak)  # V = -(qE).A (off-diagonal: A's diagonal is 0)
    ha = h[:, lo:hi, lo:hi]
    ea, eta = np.linalg.eigh(ha)
    ma = mk[:, :, lo:hi, lo:hi]
    vt = np.einsum("pni,panm,pmi->pia", eta.conj(), ma, eta).real
    if manifold is not None and remote == "perturbative" and (lo > 0 or hi < model.nbands):
        f = geometry.nonabelian_curvature(model, k, (lo, hi), x)  # (P, na, na, 2, 2)
        fi = np.einsum("pni,pnmab,pmi->piab", eta.conj(), f, eta).real
        vt = vt - Q * np.einsum("piab,b->pia", fi, E)
    return ea, vt, eta


def _hyb_energies(model, k, E, manifold, x):
    lo, hi = _manifold(model, manifold)
    en = model.energies(k, x)
    ak = geometry.berry_connection(model, k, x)
    h = np.zeros((k.shape[0], model.nbands, model.nbands), complex)
    idx = np.arange(model.nbands)
    h[:, idx, idx] = en
    h -= Q * np.einsum("a,paij->pij", E, ak)
    return np.linalg.eigvalsh(h[:, lo:hi, lo:hi])


@dataclass
class NonadiabaticResult:
    """J (2,) = J_eq + J_neq: q int[dk] sum_i g0_i v~_i and q int[dk] sum_i delta g_i v~_i (Eq. 60)."""

    J: np.ndarray
    J_eq: np.ndarray
    J_neq: np.ndarray
    E: np.ndarray
    mu: float
    temperature: float
    tau: float

    def __str__(self):
        return (f"NonadiabaticResult(E={self.E.tolist()}, mu={self.mu:g}, T={self.temperature:g}, tau={self.tau:g}): "
                f"J = {self.J.tolist()} (equilibrium part {self.J_eq.tolist()}, delta g part {self.J_neq.tolist()})")


def _check(mu, temperature, tau):
    t = float(temperature)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be > 0 (Eq. 57c needs a smooth Fermi derivative on the grid), got {t}")
    tau = float(tau)
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be > 0, got {tau}")
    mu = float(mu)
    if not math.isfinite(mu):
        raise ValueError("mu must be finite")
    return mu, t, tau


def nonadiabatic_current(model, E, mu, temperature, tau, manifold=None, remote="perturbative", grid=None,
                         fd_step=1e-5, x=None, **grid_options):
    """Steady-state current of Tu, Li & Yao, Eqs. (57)-(60) on a k grid at finite field (module docstring).

    Parameters
    ----------
    model : BandModel (2D)
    E : (Ex, Ey)
        Static field (energy / (e length)).
    mu, temperature : float
        Chemical potential and k_B T > 0.
    tau : float
        Relaxation time of Eq. (57c).
    manifold : (lo, hi), optional
        Active manifold (Eq. 61); None: full bands (Eq. 54).
    remote : {"perturbative", "none"}
        Remote-band term of Eq. (62a) with a manifold.
    grid : (k, w), optional
        Quadrature grid (default :func:`k_grid` with ``grid_options``).
    fd_step : float
        Finite-difference step for grad_k E_i (inverse length).

    Returns
    -------
    NonadiabaticResult
    """
    mu, t, tau = _check(mu, temperature, tau)
    E = np.asarray(E, float).reshape(2)
    k, w = grid if grid is not None else k_grid(model, **grid_options)
    ea, vt, _ = hybridised_bands(model, k, E, manifold, remote, x)
    grad = np.zeros(ea.shape + (2,))
    for a in range(2):
        dk = np.zeros(2)
        dk[a] = fd_step
        grad[..., a] = (_hyb_energies(model, k + dk, E, manifold, x)
                        - _hyb_energies(model, k - dk, E, manifold, x)) / (2 * fd_step)
    g0 = np.asarray(geometry.fermi(ea, mu, t))
    mdf = g0 * (1.0 - g0) / t
    dg = tau * mdf * (Q * np.einsum("pia,a->pi", grad, E))  # -tau f' (qE.grad E_i)
    j_eq = Q * np.einsum("p,pi,pia->a", w, g0, vt)
    j_neq = Q * np.einsum("p,pi,pia->a", w, dg, vt)
    return NonadiabaticResult(j_eq + j_neq, j_eq, j_neq, E, mu, t, tau)


def adiabatic_current(model, E, mu, temperature, tau, bands=None, grid=None, x=None, **grid_options):
    """Adiabatic (single-band semiclassics) current on the same kind of grid.

    J = q sum_n int[dk] [f(eps_n) + delta f_n] (v_n - q E x Omega_n),
    delta f_n = -tau f'(eps_n) q E . v_n (relaxation-time Boltzmann): the
    intrinsic + Drude-in-RTA result (plus the Berry-dipole term at second
    order), Tu, Li & Yao, Eqs. (46)-(47).

    Returns
    -------
    ndarray (2,)
    """
    mu, t, tau = _check(mu, temperature, tau)
    E = np.asarray(E, float).reshape(2)
    k, w = grid if grid is not None else k_grid(model, **grid_options)
    en = model.energies(k, x)
    mk = geometry.velocity_matrix(model, k, x)
    v = np.real(np.diagonal(mk, axis1=2, axis2=3)).transpose(0, 2, 1)  # group velocities (P, nb, 2)
    om = geometry.berry_curvature(model, k, x) if model.nbands > 1 else np.zeros_like(en)
    sel = list(range(model.nbands)) if bands is None else list(bands)
    f = np.asarray(geometry.fermi(en, mu, t))
    mdf = f * (1.0 - f) / t
    df = tau * mdf * (Q * np.einsum("pna,a->pn", v, E))
    occ = (f + df)[:, sel]
    # r_dot = v - q E x Omega z^ = v - q Omega (E_y, -E_x)
    rdot = v[:, sel, :] - Q * om[:, sel, None] * np.array([E[1], -E[0]])[None, None, :]
    return Q * np.einsum("p,pn,pna->a", w, occ, rdot)
