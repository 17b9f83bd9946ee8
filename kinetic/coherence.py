"""Coherence-matrix radiative transport of a homogeneous two-band system (Qi, Wang & Watson, Eqs. 4.14-4.16).

The band-basis coherence matrix sigma_jl(p, t) (j, l band indices, p on a
polar grid around the crossing) obeys, for a spatially homogeneous state
(the x-gradient term of Eq. 4.15 drops), hbar = 1 and the semiclassical
parameter ``eps`` (1 in physical units):

    d sigma_jl/dt = -(i/eps) (E_j - E_l) sigma_jl + C[sigma]_jl(p)

(Qi, Wang & Watson: (i/eps)(E_l - E_j) sigma_jl, the same term).  Overlaps
O_jm(p, q) = <u_j(p)|u_m(q)> (the seed's conj(A_jm(p, q)) with
A_mj(q, p) = <u_j(p)|u_m(q)>), R^ the disorder spectrum of the Monte Carlo
(:mod:`scattering.disorder`), int[dq] = int d^2q/(2 pi)^2.

Two collision operators are implemented:

``form="seed"`` -- Qi, Wang & Watson, Eq. (4.15) literally:
    C_jl = 2 pi int[dq] R^(p - q) sum_{m m'} delta(E_l(p) - E_m(q))
           [O_jm sigma_mm'(q) O_lm'^* - O_jm O_m'm^* sigma_m'l(p)]
    (the seed's 1/(2 pi)^(d-1) int dq = 2 pi int[dq]).  All energy deltas
    refer to the column band l, so the operator does not preserve the
    Hermiticity of sigma when E_j != E_l; the seed derives it for momenta
    within O(eps) of the crossing, where the bands are (nearly) degenerate.

``form="born-markov"`` (default) -- the Hermitian second-order Born-Markov
    (Redfield, secular-free) operator derived here from
    d rho/dt = -int_0^inf dt' <[V, [V(-t'), rho]]> with the principal parts
    (energy renormalisation) dropped, which keeps the seed's structure and
    splits each delta symmetrically between the two indices:
    C_jl = pi int[dq] R^ { sum_{m m'} O_jm sigma_mm'(q) O_lm'^*
                 [delta(E_m'(q) - E_l(p)) + delta(E_m(q) - E_j(p))]
           - sum_{n m} [O_jm O_nm^* delta(E_m(q) - E_n(p)) sigma_nl(p)
                        + sigma_jn(p) O_nm O_lm^* delta(E_m(q) - E_n(p))] }.
    For diagonal sigma both forms reduce to the Boltzmann equation with the
    Born rate W = 2 pi R^ |<u_m(q)|u_l(p)>|^2 delta(...) (docs/conventions.md),
    and near the crossing (E_j = E_l) they coincide.

``secular=True`` keeps only the terms that couple components with equal
Bohr frequencies (E_j - E_l = E_a - E_b, the rotating-wave/secular
approximation): populations then obey the Boltzmann equation exactly and a
coherence decays at the mean of the two band out-scattering rates.

Discretisation
--------------
Polar grid p = k_r (cos phi_i, sin phi_i), phi_i = 2 pi i / N, on the given
radii k_r ("shells").  The energy delta is resolved exactly on the grid
rays with :func:`scattering.born.shell_points` (the Monte Carlo's root
finder): a final state on ray i' at radius r carries the weight
(2 pi/N) r / |e . grad E_m| / (2 pi)^2 (trapezoid rule in the angle;
spectral for smooth integrands, exact for trigonometric polynomials such as
the white-noise Dirac overlaps).  Every on-shell final state must lie on a
grid shell (true for isotropic bands, e.g. the massive and massless Dirac
cones, where elastic scattering keeps |q| = |p|); otherwise a ValueError
says so.  The Liouvillian is a dense (4 N n_shells)^2 complex matrix;
evolution uses its matrix exponential, the steady state its null space.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg as sla

from scattering import born
from scattering.disorder import Disorder

__all__ = ["CoherenceTransport", "CoherenceEvolution"]

_TWO_PI = 2.0 * math.pi


@dataclass
class CoherenceEvolution:
    """sigma(t): ``sigma`` has shape (nt, n_shells, n_phi, 2, 2) (band basis of model.bands)."""

    times: np.ndarray
    sigma: np.ndarray

    @property
    def populations(self):
        """(nt, n_shells, n_phi, 2): sigma_jj."""
        return np.real(np.diagonal(self.sigma, axis1=-2, axis2=-1))

    @property
    def coherence(self):
        """(nt, n_shells, n_phi): sigma_01 (lower-upper band coherence)."""
        return self.sigma[..., 0, 1]


class CoherenceTransport:
    """Born collision dynamics of the 2x2 coherence matrix on a polar grid (module docstring).

    Parameters
    ----------
    model : BandModel
        A 2D two-band continuum model (e.g. MassiveDirac, massless with mass=0).
    disorder : Disorder
    radii : sequence of float
        Grid shells |p| = k_r > 0 (inverse length).
    n_phi : int
        Angles per shell (>= 4).
    form : {"born-markov", "seed"}
    secular : bool
        Secular (rotating-wave) approximation.
    eps : float
        Semiclassical parameter of the coherent term (1 in physical units).
    n_scan : int
        Root bracketing of the shell finder.
    """

    def __init__(self, model, disorder, radii, n_phi=64, form="born-markov", secular=False, eps=1.0,
                 n_scan=born.DEFAULT_N_SCAN, x=None, r_max=None):
        if model.dim != 2 or model.nbands != 2 or model.is_lattice:
            raise ValueError("CoherenceTransport needs a 2D two-band continuum model (e.g. MassiveDirac)")
        if not isinstance(disorder, Disorder):
            raise ValueError("disorder must be a scattering.disorder.Disorder")
        if form not in ("born-markov", "seed"):
            raise ValueError(f"form must be 'born-markov' or 'seed', got {form!r}")
        radii = np.atleast_1d(np.asarray(radii, float))
        if radii.ndim != 1 or np.any(radii <= 0) or not np.all(np.isfinite(radii)):
            raise ValueError("radii must be positive finite numbers")
        n_phi = int(n_phi)
        if n_phi < 4:
            raise ValueError("n_phi must be >= 4")
        eps = float(eps)
        if not eps > 0:
            raise ValueError("eps must be > 0")
        self.model, self.disorder, self.radii, self.n_phi = model, disorder, radii, n_phi
        self.form, self.secular, self.eps = form, bool(secular), eps
        self.x = np.zeros(2) if x is None else np.asarray(x, float).reshape(2)
        self.phi = _TWO_PI * np.arange(n_phi) / n_phi
        self.dirs = np.stack([np.cos(self.phi), np.sin(self.phi)], axis=1)
        self.k = (radii[:, None, None] * self.dirs[None]).reshape(-1, 2)
        self.npts = self.k.shape[0]
        self.energies, self.vecs = model.bands(self.k, self.x)
        if r_max is None:
            r_max = max(model.k_window or 0.0, 1.5 * radii.max())
        self.geo = born.ray_geometry(model, None, r_max)
        self.n_scan = int(n_scan)
        self.L = self._build()

    # -- construction -------------------------------------------------------------
    def _targets(self, energy):
        """On-shell grid states at ``energy``: list of (point index array, band array, weight array)."""
        shells = born.shell_points(self.model, energy, self.dirs, x=self.x, n_scan=self.n_scan, geo=self.geo)
        idx, bands, ws = [], [], []
        for m, sh in enumerate(shells):
            if sh["r"].size == 0:
                continue
            ir = np.argmin(np.abs(sh["r"][:, None] - self.radii[None, :]), axis=1)
            if np.any(np.abs(sh["r"] - self.radii[ir]) > 1e-8 * self.radii[ir]):
                raise ValueError(f"on-shell final states at energy {energy:g} (band {m}, |q| = {sh['r']}) are not on "
                                 "the grid shells: the coherence solver needs an isotropic two-band model (elastic "
                                 "scattering keeps |q| on the grid); add the radius to `radii`")
            idx.append(ir * self.n_phi + sh["ray"])
            bands.append(np.full(sh["r"].size, m))
            ws.append((_TWO_PI / self.n_phi) * sh["r"] / np.abs(sh["slope"]) / _TWO_PI ** 2)
        if not idx:
            return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
        return np.concatenate(idx), np.concatenate(bands), np.concatenate(ws)

    def _build(self):
        n = self.npts
        L = np.zeros((4 * n, 4 * n), complex)
        cache = {}
        U = self.vecs  # (P, 2 orbitals, 2 bands)

        def I(i, a, b):
            return 4 * i + 2 * a + b

        for i in range(n):
            e_i = self.energies[i]
            for a in range(2):
                for b in range(2):
                    L[I(i, a, b), I(i, a, b)] += -1j * (e_i[a] - e_i[b]) / self.eps
            for s in range(2):  # the band whose energy defines the shell
                key = round(float(e_i[s]), 12)
                if key not in cache:
                    cache[key] = self._targets(float(e_i[s]))
                qs, ms, ws = cache[key]
                if qs.size == 0:
                    continue
                rq = self.disorder(self.k[i][None, :] - self.k[qs])
                ov = np.einsum("ij,tik->tjk", U[i].conj(), U[qs])  # O[t, j, m] = <u_j(p)|u_m(q_t)>
                for t in range(qs.size):
                    q, mt, g = qs[t], ms[t], ws[t] * rq[t]
                    o = ov[t]
                    if self.form == "seed":
                        # shell delta(E_l(p) - E_m(q)) with l = s, m = mt
                        for j in range(2):
                            for mp in range(2):
                                L[I(i, j, s), I(q, mt, mp)] += _TWO_PI * g * o[j, mt] * np.conj(o[s, mp])
                                L[I(i, j, s), I(i, mp, s)] -= _TWO_PI * g * o[j, mt] * np.conj(o[mp, mt])
                    else:
                        for j in range(2):
                            for l in range(2):
                                # gain, delta(E_m'(q) - E_l(p)): l = s, m' = mt
                                if l == s:
                                    for m in range(2):
                                        L[I(i, j, l), I(q, m, mt)] += math.pi * g * o[j, m] * np.conj(o[l, mt])
                                # gain, delta(E_m(q) - E_j(p)): j = s, m = mt
                                if j == s:
                                    for mp in range(2):
                                        L[I(i, j, l), I(q, mt, mp)] += math.pi * g * o[j, mt] * np.conj(o[l, mp])
                                # loss terms, n = s, m = mt
                                L[I(i, j, l), I(i, s, l)] -= math.pi * g * o[j, mt] * np.conj(o[s, mt])
                                L[I(i, j, l), I(i, j, s)] -= math.pi * g * o[s, mt] * np.conj(o[l, mt])
        if self.secular:
            w = (self.energies[:, :, None] - self.energies[:, None, :]).reshape(-1)  # Bohr frequency per component
            scale = max(1.0, np.max(np.abs(w)))
            keep = np.abs(w[:, None] - w[None, :]) <= 1e-9 * scale
            L = np.where(keep, L, 0.0)
        return L

    # -- dynamics -----------------------------------------------------------------
    def _vec(self, sigma):
        s = np.asarray(sigma, complex)
        if s.shape != (len(self.radii), self.n_phi, 2, 2):
            raise ValueError(f"sigma must have shape ({len(self.radii)}, {self.n_phi}, 2, 2)")
        return s.reshape(-1)

    def point_state(self, shell, angle_index, state):
        """sigma with a pure state |state><state| (band-basis amplitudes) at one grid point, zero elsewhere."""
        s = np.zeros((len(self.radii), self.n_phi, 2, 2), complex)
        c = np.asarray(state, complex).reshape(2)
        c = c / np.linalg.norm(c)
        s[shell, angle_index] = np.outer(c, c.conj())
        return s

    def evolve(self, times, sigma0):
        """sigma(t) at the (increasing) ``times`` from sigma0 at times[0] (matrix exponential)."""
        times = np.asarray(times, float)
        if times.ndim != 1 or np.any(np.diff(times) <= 0):
            raise ValueError("times must be a 1-D increasing array")
        y = self._vec(sigma0)
        out = np.empty((times.size, y.size), complex)
        out[0] = y
        props = {}
        for it in range(1, times.size):
            dt = times[it] - times[it - 1]
            key = round(dt, 14)
            if key not in props:
                props[key] = sla.expm(self.L * dt)
            y = props[key] @ y
            out[it] = y
        return CoherenceEvolution(times, out.reshape((times.size, len(self.radii), self.n_phi, 2, 2)))

    def steady_state(self, sigma0):
        """Long-time limit of sigma0: the projection R (Lam^dag R)^-1 Lam^dag y onto the null space of the
        Liouvillian (R, Lam: right and left null vectors from SVDs; assumes the zero eigenvalue is
        semisimple and every other eigenvalue has a negative real part)."""
        y = self._vec(sigma0)
        u, sv, vh = np.linalg.svd(self.L)
        tol = 1e-10 * max(1.0, sv[0])
        r = vh[sv <= tol].conj().T
        lam = u[:, sv <= tol]
        out = r @ np.linalg.solve(lam.conj().T @ r, lam.conj().T @ y)
        return out.reshape((len(self.radii), self.n_phi, 2, 2))

    def total_population(self, sigma):
        """sum over grid points and bands of sigma_jj (conserved by the collision operator)."""
        return float(np.real(np.trace(np.asarray(sigma), axis1=-2, axis2=-1)).sum())
