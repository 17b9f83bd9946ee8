"""Born scattering by a static random potential: rates, angular distributions
and an unbiased kernel sampler for null-collision event loops.

Physics
-------
The Born transition rate between Bloch states (Qi, Wang & Watson,
Eqs. 4.14-4.15, the kernel of the collision term; docs/conventions.md),
hbar = 1:

.. math::

    W(n\\mathbf k \\to m\\mathbf k') = 2\\pi\\, \\hat R(\\mathbf k - \\mathbf k')\\,
        |\\langle u_m(\\mathbf k')|u_n(\\mathbf k)\\rangle|^2\\,
        \\delta(\\varepsilon_n(\\mathbf k) - \\varepsilon_m(\\mathbf k')),

intra- and inter-band, and the out-scattering rate
1/tau_n(k) = int [dk'] sum_m W with int [dk'] = int d^dk' / (2 pi)^d.  R^ is
the disorder correlation spectrum (Qi, Wang & Watson, Eq. 4.2, :mod:`scattering.disorder`).

On-shell ray parametrisation (the method of every function here)
----------------------------------------------------------------
Write k' = k0 + r e with a centre k0, a unit direction e on the sphere
S^{d-1} and r >= 0.  Then d^dk' = r^{d-1} dr dOmega_e and the delta function
is resolved along each ray by the roots r_j of eps_m(k0 + r e) = eps:

.. math::

    \\frac{1}{\\tau_n(\\mathbf k)} = \\sum_m \\int_{S^{d-1}} d\\Omega_e \\sum_j
        \\frac{2\\pi \\hat R(\\mathbf k - \\mathbf k'_j)
        |\\langle u_m(\\mathbf k'_j)|u_n(\\mathbf k)\\rangle|^2}{(2\\pi)^d}
        \\frac{r_j^{d-1}}{|\\mathbf e\\cdot\\nabla\\varepsilon_m(\\mathbf k'_j)|}.

* Continuum models: k0 = the origin (or a user-given centre, ideally the band
  extremum inside the Fermi pocket), 0 <= r <= r_max (default: the model's
  ``k_window``).  Every k' of the disc/ball |k' - k0| <= r_max lies on exactly
  one ray.
* Lattice models: k0 = Gamma (or a given centre); rays fill the reciprocal
  parallelogram (parallelepiped) cell centred at k0,
  {k0 + sum_i s_i b_i, |s_i| <= 1/2}; along e the ray ends at
  r_max(e) = pi / max_i |e . a_i| (a_i the direct primitive vectors).  The cell
  is convex and contains k0, so each k' of the cell lies on exactly one ray.
  The momentum transfer k - k' is folded into the cell centred at 0 before R^
  is evaluated, and the overlap is taken in the model's orbital basis (exact
  for models whose orbitals share one site, H(k + G) = H(k), such as QWZ).
* Roots along a ray: sign changes of eps_m(k0 + r e) - eps on ``n_scan``
  equal sub-intervals of [0, r_max], each bracket refined (host: bisection to
  machine precision; kernel: safeguarded Newton with the Hellmann-Feynman
  slope e . grad eps_m = <u_m| e . dH/dk |u_m>, to ~1e-13 r_max).  All roots
  found are summed, so non-star-shaped shells (several crossings per ray)
  are handled.

Deterministic quadrature (:func:`born_rate`, :func:`transport_rate`): the
angular grid is anchored on the direction of k - k0 (2D: Gauss-Legendre in
the angle over one turn starting there; 3D: Gauss-Legendre in cos theta about
that axis x midpoint rule in the azimuth), so the forward direction k' = k,
where spectra such as the 2D screened Coulomb one are not smooth (they depend
on |q|), sits at an end point of the Gauss rule and convergence stays
spectral.

Limits: two roots inside one sub-interval (a shell thinner than
r_max / n_scan along the ray) are missed; a ray that touches the shell
tangentially has |e . grad eps| -> 0, an integrable r^{d-1}/|e.grad eps|
singularity that slows the angular quadrature of the deterministic
functions from spectral to algebraic convergence and makes the kernel
proposal weight unbounded near those directions (majorant violations are
then reported, never hidden).  Choose the centre inside the Fermi pocket(s)
whenever possible so that every ray crosses the shell transversally.

Kernel sampler and null collisions
----------------------------------
:func:`make_born_sampler` builds, for one (model, disorder) triple of njit
functions, kernel-callable functions (docs/architecture.md: no allocation, no
exceptions, all scratch passed in, random numbers passed in as floats in
[0, 1)).  ``propose`` draws a target band m uniformly among the nbands, a
direction e uniformly on S^{d-1} (1D: +/-1) and one of the N roots on that
ray uniformly, and returns the proposal weight

.. math::

    w = n_b\\,|S^{d-1}|\\,N\\,\\frac{2\\pi \\hat R(\\mathbf k - \\mathbf k')
        |\\langle u_m(\\mathbf k')|u_n(\\mathbf k)\\rangle|^2}{(2\\pi)^d}
        \\frac{r^{d-1}}{|\\mathbf e\\cdot\\nabla\\varepsilon_m(\\mathbf k')|},

the integrand over the proposal density, so E[w] = 1/tau_n(k) exactly (rays
without roots give w = 0).  With tentative events at a constant majorant rate
Gamma_max, accepting with probability w / Gamma_max makes real events occur at
exactly 1/tau_n(k) at the packet's current k, with k' distributed exactly
proportionally to W; rejections are null (self-)scattering.  ``w > Gamma_max``
is a majorant violation: ``born_event`` returns ``EVENT_MAJORANT_VIOLATED`` so
the kernel counts it (the estimate is then biased; raise Gamma_max).
"""
import math
import warnings

import numba
import numpy as np

from packets import compile_cache, linalg

from .disorder import Disorder, evaluate_spectrum

__all__ = ["EVENT_NULL", "EVENT_REAL", "EVENT_MAJORANT_VIOLATED", "GEO_SIZE", "DEFAULT_N_SCAN",
           "overlap", "overlap_column", "unit_direction", "ray_rmax", "fold_transfer", "sphere_area",
           "make_born_sampler", "ray_geometry", "born_rate", "transport_rate", "angular_distribution",
           "majorant", "sample_many", "BornSamples", "shell_points"]

#: ``born_event`` status: tentative event rejected (null / self-scattering).
EVENT_NULL = 0
#: ``born_event`` status: real scattering event, k -> kout, band -> m.
EVENT_REAL = 1
#: ``born_event`` status: w > Gamma_max, the majorant is violated (event accepted, must be counted).
EVENT_MAJORANT_VIOLATED = 2

#: Layout of the float64 ray-geometry array ``geo`` built by :func:`ray_geometry`:
#: geo[0] lattice flag (0/1), geo[1] r_max (continuum), geo[2:5] centre k0,
#: geo[5:14] direct primitive vectors a_i as rows (stride 3),
#: geo[14:23] reciprocal vectors b_i as rows (stride 3); unused entries are 0.
GEO_SIZE = 23
_G_LAT, _G_RMAX, _G_K0, _G_A, _G_B = 0, 1, 2, 5, 14
#: offset of the ray centre k0 in the geometry array (used by channels moving roots along a ray)
G_K0 = _G_K0

#: Default number of scan sub-intervals per ray.
DEFAULT_N_SCAN = 64
#: Iteration cap of the safeguarded Newton refinement (bisection alone needs < 60).
ROOT_MAX_ITER = 100
#: Root tolerance relative to r_max.
ROOT_RTOL = 1e-13

_TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------
# Generic kernel helpers (independent of the model)
# ----------------------------------------------------------------------------


@numba.njit
def overlap(u_m, u_n):
    """<u_m|u_n> = sum_i conj(u_m[i]) u_n[i] (complex); kernel-callable."""
    acc = 0j
    for i in range(u_m.shape[0]):
        acc += u_m[i].conjugate() * u_n[i]
    return acc


@numba.njit
def overlap_column(v, m, u_n):
    """<v[:, m]|u_n> for an eigenvector matrix ``v`` (columns = bands); kernel-callable."""
    acc = 0j
    for i in range(v.shape[0]):
        acc += v[i, m].conjugate() * u_n[i]
    return acc


@compile_cache.host_kernel
def sphere_area(dim):
    """|S^{dim-1}|: 2 (1D, the two directions +/-), 2 pi (2D), 4 pi (3D)."""
    if dim == 1:
        return 2.0
    if dim == 2:
        return _TWO_PI
    return 4.0 * math.pi


@numba.njit
def unit_direction(dim, u2, u3, e):
    """Uniform direction on S^{dim-1} from two uniforms in [0, 1), written to ``e``.

    1D: e = +1 if u2 < 1/2 else -1.  2D: angle 2 pi u2.  3D: cos(theta) =
    1 - 2 u2, azimuth 2 pi u3 (Archimedes: uniform in cos theta is uniform on
    the sphere).  Returns |S^{dim-1}| (the inverse proposal density).
    """
    if dim == 1:
        e[0] = 1.0 if u2 < 0.5 else -1.0
    elif dim == 2:
        ph = _TWO_PI * u2
        e[0] = math.cos(ph)
        e[1] = math.sin(ph)
    else:
        c = 1.0 - 2.0 * u2
        s = math.sqrt(max(0.0, 1.0 - c * c))
        ph = _TWO_PI * u3
        e[0] = s * math.cos(ph)
        e[1] = s * math.sin(ph)
        e[2] = c
    return sphere_area(dim)


@numba.njit
def ray_rmax(geo, e):
    """Length of the ray k0 + r e inside the scan domain (see module docstring).

    Continuum: geo[1].  Lattice: pi / max_i |e . a_i|, the distance from the
    centre to the boundary of the parallelogram cell |s_i| <= 1/2, where
    s_i = (k' - k0) . a_i / (2 pi).
    """
    if geo[_G_LAT] == 0.0:
        return geo[_G_RMAX]
    best = 0.0
    for i in range(e.shape[0]):
        s = 0.0
        for a in range(e.shape[0]):
            s += e[a] * geo[_G_A + 3 * i + a]
        s = abs(s)
        if s > best:
            best = s
    return math.pi / best


@numba.njit
def fold_transfer(geo, q):
    """Fold a momentum transfer into the reciprocal cell centred at 0 (lattice models only).

    q -> sum_i (s_i - round(s_i)) b_i with s_i = q . a_i / (2 pi); continuum
    models leave q unchanged.
    """
    if geo[_G_LAT] == 0.0:
        return
    dim = q.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for i in range(dim):
        s = 0.0
        for a in range(dim):
            s += q[a] * geo[_G_A + 3 * i + a]
        s = s / _TWO_PI
        s = s - math.floor(s + 0.5)
        if i == 0:
            s0 = s
        elif i == 1:
            s1 = s
        else:
            s2 = s
    for a in range(dim):
        q[a] = s0 * geo[_G_B + a] + s1 * geo[_G_B + 3 + a] + s2 * geo[_G_B + 6 + a]


# ----------------------------------------------------------------------------
# Kernel factory
# ----------------------------------------------------------------------------

_SAMPLER_CACHE = {}


class BornSampler:
    """Namespace of the kernel-callable Born functions built for one model/disorder.

    Attributes (all plain ``@numba.njit`` functions, kernel rules)
    ----------------------------------------------------------------
    shell_offset(x, geo, e, r, m, eps, p_model, kt, hm, wev, vev, work) -> float
        eps_m(k0 + r e) - eps; leaves k0 + r e in ``kt`` and the eigensystem
        at that point in ``wev``, ``vev``.
    ray_slope(x, kt, e, m, p_model, vev, dh, work) -> float
        e . grad eps_m at ``kt`` (Hellmann-Feynman, needs ``vev`` at ``kt``).
    scan_ray(x, geo, e, m, eps, p_model, n_scan, rmax, target, kt, hm, wev, vev, work, brk) -> (int, int)
        Number of sign changes on the ray and the sub-interval index of
        bracket number ``target`` (-1 if none); the first ``len(brk)`` bracket
        indices are stored in ``brk``.
    refine(x, geo, e, m, eps, p_model, a, b, kt, hm, wev, vev, work, dh, tol) -> float
        Root in the bracket [a, b] (safeguarded Newton, capped iterations).
    propose(...) -> (w, m, nroots)
        See :func:`make_born_sampler`.
    born_event(...) -> (status, m, w, nroots)
        Null-collision acceptance on top of ``propose``.
    sample_loop(...)
        Host-level njit loop over many proposals (allocates; not a kernel).
    """


def make_born_sampler(hfun, dhdkfun, spectrum):
    """Build the kernel-callable Born sampler for one model and one disorder spectrum.

    The returned functions close over the njit fillers ``hfun(x, k, p, out)``,
    ``dhdkfun(x, k, p, out, work)`` (:mod:`packets.models.base`) and the
    disorder ``spectrum(q, p)`` (:mod:`scattering.disorder`), so those are
    inlined and parameters travel as float64 arrays (no recompilation when a
    number changes).  Results are cached per triple of functions, so a
    process compiles each variant once (several seconds per variant).

    Cost per tentative event: n_scan + 1 eigen-decompositions for the scan
    plus a few (typically 5-10) for the Newton refinement and the final
    evaluation; a closed-form shell for isotropic dispersions would avoid the
    scan but is not implemented.

    The main entry point is

    ``propose(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, u1, u2, u3, u4,
    kout, hm, wev, vev, work, dh, edir, brk) -> (w, m, nroots)``

    Parameters of ``propose``
    -------------------------
    x, k : float64[dim]
        Packet position and crystal momentum (k is not modified).
    n : int
        Current band (only documents the caller's state; the overlap uses ``u_n``).
    eps : float
        Band energy eps_n(k) (energy); the shell is eps_m(k') = eps.
    u_n : complex128[nb]
        Bloch state at k in the model's orbital basis (the overlap is
        <u_m(k')|u_n>, so any normalised state may be passed, e.g. the
        pseudospin state of a coherent packet).
    p_model, p_dis : float64 arrays
        Model and disorder parameters.
    geo : float64[GEO_SIZE]
        Ray geometry from :func:`ray_geometry`.
    n_scan : int
        Number of scan sub-intervals per ray.
    u1, u2, u3, u4 : float in [0, 1)
        Random numbers: band, direction (two), root.
    kout : float64[dim]
        Output k' (must not be the same array as ``k``: it is the ray scratch).
    hm, work : complex128[nb, nb]; wev : float64[nb]; vev : complex128[nb, nb];
    dh : complex128[dim, nb, nb]; edir : float64[dim]; brk : int64[cap], cap >= 1
        Scratch.  On return with nroots > 0, ``wev``/``vev`` hold the
        eigenvalues/eigenvectors (columns) of H(x, k'), so the new band's
        state is ``vev[:, m]``; ``edir`` holds the folded transfer k - k'.

    Returns
    -------
    w : float
        Proposal weight (rate units, energy with hbar = 1); 0 when the ray
        has no root (then ``kout`` = k); +inf if the slope vanishes at the root.
    m : int
        Proposed target band.
    nroots : int
        Roots found on the proposed ray of band m.

    ``born_event(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, gamma_max,
    u1, u2, u3, u4, u5, kout, hm, wev, vev, work, dh, edir, brk) -> (status, m, w, nroots)``
    accepts with probability w / gamma_max using ``u5`` and returns
    ``EVENT_NULL``, ``EVENT_REAL`` or ``EVENT_MAJORANT_VIOLATED`` (w > gamma_max
    or w not finite; the event is then taken, but the caller must count it).
    """
    key = (hfun, dhdkfun, spectrum)
    if key in _SAMPLER_CACHE:
        return _SAMPLER_CACHE[key]

    @numba.njit
    def shell_offset(x, geo, e, r, m, eps, p_model, kt, hm, wev, vev, work):
        for a in range(kt.shape[0]):
            kt[a] = geo[_G_K0 + a] + r * e[a]
        hfun(x, kt, p_model, hm)
        linalg.eigh(hm, wev, vev, work)
        return wev[m] - eps

    @numba.njit
    def ray_slope(x, kt, e, m, p_model, vev, dh, work):
        # Hellmann-Feynman: d eps_m / dk_a = <u_m| dH/dk_a |u_m>
        dhdkfun(x, kt, p_model, dh, work)
        nb = vev.shape[0]
        g = 0.0
        for a in range(kt.shape[0]):
            if e[a] == 0.0:
                continue
            acc = 0.0
            for i in range(nb):
                ci = vev[i, m].conjugate()
                for j in range(nb):
                    acc += (ci * dh[a, i, j] * vev[j, m]).real
            g += e[a] * acc
        return g

    @numba.njit
    def scan_ray(x, geo, e, m, eps, p_model, n_scan, rmax, target, kt, hm, wev, vev, work, brk):
        # Count the sign changes of eps_m(k0 + r e) - eps on n_scan equal
        # sub-intervals; store the first len(brk) bracket indices, and return
        # the index of bracket number ``target`` (-1 if target < 0 or absent).
        cap = brk.shape[0]
        h = rmax / n_scan
        s0 = shell_offset(x, geo, e, 0.0, m, eps, p_model, kt, hm, wev, vev, work) >= 0.0
        count = 0
        found = -1
        for j in range(1, n_scan + 1):
            s1 = shell_offset(x, geo, e, j * h, m, eps, p_model, kt, hm, wev, vev, work) >= 0.0
            if s1 != s0:
                if count < cap:
                    brk[count] = j - 1
                if count == target:
                    found = j - 1
                count += 1
            s0 = s1
        return count, found

    @numba.njit
    def refine(x, geo, e, m, eps, p_model, a, b, kt, hm, wev, vev, work, dh, tol):
        fa = shell_offset(x, geo, e, a, m, eps, p_model, kt, hm, wev, vev, work)
        if fa == 0.0:
            return a
        pa = fa > 0.0
        r = 0.5 * (a + b)
        dx_old = b - a
        for _it in range(ROOT_MAX_ITER):
            f = shell_offset(x, geo, e, r, m, eps, p_model, kt, hm, wev, vev, work)
            if f == 0.0:
                return r
            if (f > 0.0) == pa:
                a = r
            else:
                b = r
            g = ray_slope(x, kt, e, m, p_model, vev, dh, work)
            # Newton step if it stays inside the bracket and halves the step
            # (rtsafe-type safeguard), else bisection: convergence is guaranteed
            # within the iteration cap.
            rn = 0.5 * (a + b)
            if g != 0.0:
                cand = r - f / g
                if cand > a and cand < b and abs(cand - r) < 0.5 * abs(dx_old):
                    rn = cand
            dx_old = rn - r
            r = rn
            if abs(dx_old) <= tol or (b - a) <= tol:
                break
        return r

    @numba.njit
    def propose(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, u1, u2, u3, u4,
                kout, hm, wev, vev, work, dh, edir, brk):
        dim = k.shape[0]
        nb = hm.shape[0]
        m = int(u1 * nb)
        if m >= nb:
            m = nb - 1
        sarea = unit_direction(dim, u2, u3, edir)
        rmax = ray_rmax(geo, edir)
        nroots, _f = scan_ray(x, geo, edir, m, eps, p_model, n_scan, rmax, -1, kout, hm, wev, vev, work, brk)
        if nroots == 0:
            for a in range(dim):
                kout[a] = k[a]
            return 0.0, m, 0
        j = int(u4 * nroots)
        if j >= nroots:
            j = nroots - 1
        if j < brk.shape[0]:
            ib = brk[j]
        else:
            # more roots than the bracket buffer holds: rescan for bracket j
            _c, ib = scan_ray(x, geo, edir, m, eps, p_model, n_scan, rmax, j, kout, hm, wev, vev, work, brk)
        h = rmax / n_scan
        r = refine(x, geo, edir, m, eps, p_model, ib * h, (ib + 1) * h, kout, hm, wev, vev, work, dh,
                   ROOT_RTOL * rmax)
        # final evaluation at the root: eigensystem at k' stays in wev/vev for the caller
        shell_offset(x, geo, edir, r, m, eps, p_model, kout, hm, wev, vev, work)
        g = abs(ray_slope(x, kout, edir, m, p_model, vev, dh, work))
        ov = overlap_column(vev, m, u_n)
        ov2 = ov.real * ov.real + ov.imag * ov.imag
        for a in range(dim):
            edir[a] = k[a] - kout[a]
        fold_transfer(geo, edir)
        rq = spectrum(edir, p_dis)
        if g == 0.0:
            return math.inf, m, nroots
        jac = 1.0
        for _a in range(dim - 1):
            jac *= r
        w = nb * sarea * nroots * _TWO_PI * rq * ov2 * jac / g
        for _a in range(dim):
            w /= _TWO_PI
        return w, m, nroots

    @numba.njit
    def born_event(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, gamma_max, u1, u2, u3, u4, u5,
                   kout, hm, wev, vev, work, dh, edir, brk):
        w, m, nroots = propose(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, u1, u2, u3, u4,
                               kout, hm, wev, vev, work, dh, edir, brk)
        if not (w <= gamma_max):  # also catches NaN / inf weights
            return EVENT_MAJORANT_VIOLATED, m, w, nroots
        if u5 * gamma_max < w:
            return EVENT_REAL, m, w, nroots
        return EVENT_NULL, m, w, nroots

    @numba.njit
    def sample_loop(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, gamma_max, cap, rnd,
                    kouts, ws, ms, nrs, status, vouts):
        # host-level driver (allocates its scratch once)
        nb = u_n.shape[0]
        dim = k.shape[0]
        hm = np.empty((nb, nb), dtype=np.complex128)
        work = np.empty((nb, nb), dtype=np.complex128)
        vev = np.empty((nb, nb), dtype=np.complex128)
        wev = np.empty(nb)
        dh = np.empty((dim, nb, nb), dtype=np.complex128)
        edir = np.empty(dim)
        brk = np.empty(cap, dtype=np.int64)
        for i in range(rnd.shape[0]):
            # one call path only (compile time); gamma_max = inf means proposals only
            st, m, w, nr = born_event(x, k, n, eps, u_n, p_model, p_dis, geo, n_scan, gamma_max,
                                      rnd[i, 0], rnd[i, 1], rnd[i, 2], rnd[i, 3], rnd[i, 4],
                                      kouts[i], hm, wev, vev, work, dh, edir, brk)
            status[i] = st
            ws[i] = w
            ms[i] = m
            nrs[i] = nr
            for a in range(nb):
                vouts[i, a] = vev[a, m]

    ns = BornSampler()
    ns.shell_offset = shell_offset
    ns.ray_slope = ray_slope
    ns.scan_ray = scan_ray
    ns.refine = refine
    ns.propose = propose
    ns.born_event = born_event
    ns.sample_loop = sample_loop
    _SAMPLER_CACHE[key] = ns
    return ns


# ----------------------------------------------------------------------------
# Host helpers: geometry, validation
# ----------------------------------------------------------------------------


def ray_geometry(model, center=None, r_max=None):
    """Float64 ray-geometry array ``geo`` (layout: :data:`GEO_SIZE`) for a model.

    Parameters
    ----------
    model : BandModel
    center : array_like (dim,), optional
        Ray origin k0 (inverse length).  Default: the origin (continuum; put it
        inside the Fermi pocket, e.g. at the band extremum) or Gamma (lattice).
    r_max : float, optional
        Continuum models only: ray length (default ``model.k_window``).  Every
        on-shell k' must satisfy |k' - k0| < r_max.
    """
    dim = model.dim
    geo = np.zeros(GEO_SIZE)
    k0 = np.zeros(dim) if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
    if k0.shape != (dim,) or not np.all(np.isfinite(k0)):
        raise ValueError(f"center must be a finite array of length dim={dim}, got {center!r}")
    geo[_G_K0:_G_K0 + dim] = k0
    if model.is_lattice:
        if r_max is not None:
            raise ValueError("r_max is only used for continuum models; lattice rays end at the cell boundary")
        geo[_G_LAT] = 1.0
        a = model.lattice.vectors
        b = model.lattice.reciprocal
        for i in range(dim):
            geo[_G_A + 3 * i:_G_A + 3 * i + dim] = a[i]
            geo[_G_B + 3 * i:_G_B + 3 * i + dim] = b[i]
    else:
        if r_max is None:
            r_max = model.k_window
        if r_max is None:
            raise ValueError(f"model {model.name!r} has no k_window; pass r_max (the largest |k' - center| "
                             "of the on-shell states)")
        r_max = float(r_max)
        if not (math.isfinite(r_max) and r_max > 0):
            raise ValueError(f"r_max must be positive and finite, got {r_max}")
        geo[_G_RMAX] = r_max
    return geo


def _check_inputs(model, disorder, band, n_scan):
    if not isinstance(disorder, Disorder):
        raise ValueError(f"disorder must be a scattering Disorder model, got {type(disorder).__name__}")
    disorder.check_dim(model.dim)
    if not (0 <= int(band) < model.nbands):
        raise ValueError(f"band must be in 0..{model.nbands - 1}, got {band}")
    if int(n_scan) < 1:
        raise ValueError(f"n_scan must be >= 1, got {n_scan}")


def _as_k(model, k):
    k = np.asarray(k, dtype=np.float64).reshape(-1)
    if k.shape != (model.dim,) or not np.all(np.isfinite(k)):
        raise ValueError(f"k must be a finite array of length dim={model.dim}, got {k!r}")
    return k


def _as_x(model, x):
    if x is None:
        return np.zeros(model.dim)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.shape != (model.dim,) or not np.all(np.isfinite(x)):
        raise ValueError(f"x must be a finite array of length dim={model.dim}, got {x!r}")
    return x


def _ray_rmax_np(geo, dirs):
    if geo[_G_LAT] == 0.0:
        return np.full(dirs.shape[0], geo[_G_RMAX])
    dim = dirs.shape[1]
    a = np.array([geo[_G_A + 3 * i:_G_A + 3 * i + dim] for i in range(dim)])
    return np.pi / np.max(np.abs(dirs @ a.T), axis=1)


def _fold_np(geo, q):
    if geo[_G_LAT] == 0.0:
        return q
    dim = q.shape[-1]
    a = np.array([geo[_G_A + 3 * i:_G_A + 3 * i + dim] for i in range(dim)])
    b = np.array([geo[_G_B + 3 * i:_G_B + 3 * i + dim] for i in range(dim)])
    s = q @ a.T / (2 * np.pi)
    s = s - np.floor(s + 0.5)
    return s @ b


def _direction_grid(dim, n_angles, axis=None):
    """Quadrature on S^{dim-1}: directions (nd, dim) and weights (sum = |S^{dim-1}|).

    The grid is anchored on ``axis`` (the direction of k - k0): 2D uses
    Gauss-Legendre in the angle over [phi_axis, phi_axis + 2 pi], 3D uses
    Gauss-Legendre in cos(theta) measured from ``axis`` x midpoint rule in the
    azimuth.  Anchoring puts the forward-scattering direction k' = k at an
    end point of the Gauss rule, so spectra that are not smooth at q = 0 (the
    2D screened Coulomb R^ depends on |q|) keep spectral convergence instead
    of the O(h^2) of a periodic rule with a kink inside an interval.
    1D: the two directions +/-1 with weight 1.
    """
    if dim == 1:
        return np.array([[1.0], [-1.0]]), np.ones(2)
    if axis is None or not np.all(np.isfinite(axis)) or np.linalg.norm(axis) == 0:
        axis = np.eye(dim)[0] if dim == 2 else np.eye(dim)[2]
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    if dim == 2:
        t, wt = np.polynomial.legendre.leggauss(int(n_angles))
        phi = math.atan2(axis[1], axis[0]) + np.pi * (t + 1.0)
        return np.stack([np.cos(phi), np.sin(phi)], axis=1), np.pi * wt
    nphi = int(n_angles)
    nth = max(2, nphi // 2)
    c, wc = np.polynomial.legendre.leggauss(nth)
    phi = (np.arange(nphi) + 0.5) * 2 * np.pi / nphi
    C, P = np.meshgrid(c, phi, indexing="ij")
    S = np.sqrt(1 - C ** 2)
    local = np.stack([S * np.cos(P), S * np.sin(P), C], axis=-1).reshape(-1, 3)
    # orthonormal frame (e1, e2, axis)
    helper = np.eye(3)[int(np.argmin(np.abs(axis)))]
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    dirs = local @ np.stack([e1, e2, axis])
    w = (wc[:, None] * np.full(nphi, 2 * np.pi / nphi)[None, :]).reshape(-1)
    return dirs, w


def _axis(model, k, center, r_max):
    geo = ray_geometry(model, center, r_max)
    return _as_k(model, k) - geo[_G_K0:_G_K0 + model.dim]


def shell_points(model, eps, dirs, x=None, n_scan=DEFAULT_N_SCAN, center=None, r_max=None, geo=None,
                 bisect_iter=64):
    """All on-shell points eps_m(k0 + r e) = eps along a set of rays (NumPy reference).

    Sign changes on ``n_scan`` sub-intervals per ray, each refined by
    ``bisect_iter`` vectorised bisection steps (machine precision).

    Returns
    -------
    list (one entry per band m) of dicts with keys
        ``ray`` (int index into dirs), ``r``, ``k`` (k' points, (nroots, dim)),
        ``slope`` (e . grad eps_m), ``grad`` (grad eps_m, (nroots, dim)),
        ``vec`` (eigenvector of band m at k', (nroots, nb)),
        ``nroots_ray`` (roots on each ray, (nd,)).
    """
    if geo is None:
        geo = ray_geometry(model, center, r_max)
    x = _as_x(model, x)
    dim = model.dim
    k0 = geo[_G_K0:_G_K0 + dim]
    dirs = np.asarray(dirs, dtype=np.float64).reshape(-1, dim)
    rmax = _ray_rmax_np(geo, dirs)
    t = np.linspace(0.0, 1.0, int(n_scan) + 1)
    rs = rmax[:, None] * t[None, :]
    en = model.energies(k0 + rs[..., None] * dirs[:, None, :], x)
    out = []
    for m in range(model.nbands):
        f = en[..., m] - eps
        s = f >= 0
        ray, j = np.nonzero(s[:, :-1] != s[:, 1:])
        a = rs[ray, j].copy()
        b = rs[ray, j + 1].copy()
        pa = s[ray, j]
        e = dirs[ray]
        for _ in range(bisect_iter):
            mid = 0.5 * (a + b)
            if mid.size == 0:
                break
            fm = model.energies(k0 + mid[:, None] * e, x)[:, m] - eps
            same = (fm >= 0) == pa
            a = np.where(same, mid, a)
            b = np.where(same, b, mid)
        r = 0.5 * (a + b)
        kp = k0 + r[:, None] * e
        if r.size:
            _, vecs = model.bands(kp, x)
            vm = vecs[..., m]
            dh = model.dhdk_matrices(kp, x)
            grad = np.einsum("pi,paij,pj->pa", vm.conj(), dh, vm).real
        else:
            vm = np.zeros((0, model.nbands), complex)
            grad = np.zeros((0, dim))
        if not model.is_lattice and r.size and np.any(j == int(n_scan) - 1):
            warnings.warn(f"on-shell states found in the last scan interval next to r_max = {rmax[0]:g}: the "
                          "shell may extend beyond r_max; increase r_max (or the model's k_window)",
                          RuntimeWarning, stacklevel=3)
        out.append({"ray": ray, "r": r, "k": kp, "slope": np.einsum("pa,pa->p", grad, e), "grad": grad,
                    "vec": vm, "nroots_ray": np.bincount(ray, minlength=dirs.shape[0])})
    return out


def _state(model, k, band, x):
    en, vec = model.bands(k, x)
    return float(en[band]), vec[:, band].copy()


def _contributions(model, disorder, k, band, x, dirs, n_scan, center, r_max):
    """Per-root integrand 2 pi R^ |<u_m(k')|u_n(k)>|^2 r^{d-1} / |e.grad eps_m| / (2 pi)^d."""
    _check_inputs(model, disorder, band, n_scan)
    k = _as_k(model, k)
    x = _as_x(model, x)
    geo = ray_geometry(model, center, r_max)
    eps, u_n = _state(model, k, band, x)
    shells = shell_points(model, eps, dirs, x=x, n_scan=n_scan, geo=geo)
    d = model.dim
    for sh in shells:
        q = _fold_np(geo, k[None, :] - sh["k"])
        rq = evaluate_spectrum(disorder, q) if q.shape[0] else np.zeros(0)
        ov2 = np.abs(sh["vec"].conj() @ u_n) ** 2
        with np.errstate(divide="ignore"):
            sh["c"] = _TWO_PI * rq * ov2 * sh["r"] ** (d - 1) / np.abs(sh["slope"]) / _TWO_PI ** d
    return eps, u_n, shells


def _default_angles(dim, n_angles):
    if n_angles is not None:
        if int(n_angles) < 2:
            raise ValueError(f"n_angles must be >= 2, got {n_angles}")
        return int(n_angles)
    return {1: 2, 2: 256, 3: 64}[dim]


# ----------------------------------------------------------------------------
# Deterministic references
# ----------------------------------------------------------------------------


def born_rate(model, disorder, k, band, x=None, n_angles=None, n_scan=DEFAULT_N_SCAN, center=None, r_max=None,
              per_band=False):
    """Born out-scattering rate 1/tau_n(k) by deterministic on-shell quadrature.

    Implements 1/tau_n(k) = int [dk'] sum_m W(nk -> mk') with the Born rate
    of Qi, Wang & Watson, Eqs. 4.14-4.15 (docs/conventions.md), using the ray
    parametrisation of the module docstring with a fixed angular quadrature
    anchored on the
    direction of k - k0 (2D: Gauss-Legendre in the angle; 3D: Gauss-Legendre
    in cos theta x midpoint rule in the azimuth; 1D: the two directions).

    Parameters
    ----------
    model : BandModel
    disorder : Disorder
    k : array_like (dim,)
        Crystal momentum (inverse length).
    band : int
        Initial band n (ascending order of the model's bands).
    x : array_like (dim,), optional
        Position (textured models), default 0.
    n_angles : int, optional
        2D: number of angles (default 256); 3D: number of azimuths, with
        n_angles // 2 polar nodes (default 64); ignored in 1D.
    n_scan : int
        Scan sub-intervals per ray (root bracketing resolution).
    center, r_max : optional
        Ray origin and (continuum) ray length, see :func:`ray_geometry`.
    per_band : bool
        Also return the rate into each target band m.

    Returns
    -------
    rate : float
        1/tau (energy units, hbar = 1).
    per_band_rates : ndarray (nbands,), only if ``per_band``.
    """
    dirs, wq = _direction_grid(model.dim, _default_angles(model.dim, n_angles), _axis(model, k, center, r_max))
    _, _, shells = _contributions(model, disorder, k, band, x, dirs, n_scan, center, r_max)
    rates = np.array([np.sum(wq[sh["ray"]] * sh["c"]) for sh in shells])
    total = float(rates.sum())
    return (total, rates) if per_band else total


def transport_rate(model, disorder, k, band, x=None, n_angles=None, n_scan=DEFAULT_N_SCAN, center=None,
                   r_max=None):
    """Transport rate 1/tau_tr = int [dk'] sum_m W (1 - v^_n(k) . v^_m(k')).

    v^ are unit group velocities grad eps / |grad eps|.  For an isotropic band
    and isotropic scattering this is the familiar (1 - cos theta_kk') weight
    and 1/tau_tr is the exact relaxation rate of the linearised Boltzmann
    equation; for anisotropic cases it is only the usual approximation.
    Same quadrature and parameters as :func:`born_rate`.
    """
    dirs, wq = _direction_grid(model.dim, _default_angles(model.dim, n_angles), _axis(model, k, center, r_max))
    kk = _as_k(model, k)
    xx = _as_x(model, x)
    _, _, shells = _contributions(model, disorder, kk, band, xx, dirs, n_scan, center, r_max)
    _, vec = model.bands(kk, xx)
    dh = model.dhdk_matrices(kk, xx)
    u = vec[:, band]
    v = np.einsum("i,aij,j->a", u.conj(), dh, u).real
    vn = np.linalg.norm(v)
    if vn == 0:
        raise ValueError("the group velocity vanishes at k: the transport rate needs a direction")
    total = 0.0
    for sh in shells:
        if sh["r"].size == 0:
            continue
        g = sh["grad"] / np.linalg.norm(sh["grad"], axis=1)[:, None]
        total += np.sum(wq[sh["ray"]] * sh["c"] * (1.0 - g @ (v / vn)))
    return float(total)


def angular_distribution(model, disorder, k, band, angles, x=None, n_scan=DEFAULT_N_SCAN, center=None, r_max=None,
                         per_band=False):
    """2D angular distribution dGamma/dphi' of the scattered states.

    phi' is the polar angle of k' - k0 about the ray centre k0 (origin /
    Gamma by default); int_0^{2pi} dGamma/dphi' dphi' = 1/tau_n(k).  For each
    angle, sum over target bands and over all roots on the ray of
    2 pi R^ |<u_m(k')|u_n(k)>|^2 r / |e . grad eps_m| / (2 pi)^2
    (Qi, Wang & Watson, Eq. 4.15; docs/conventions.md).

    Returns
    -------
    ndarray, shape of ``angles`` (or (nbands,) + that shape if ``per_band``):
        rate per radian (energy units, hbar = 1).
    """
    if model.dim != 2:
        raise ValueError(f"angular_distribution is defined for 2D models, this model is {model.dim}-D")
    ang = np.asarray(angles, dtype=np.float64)
    dirs = np.stack([np.cos(ang.reshape(-1)), np.sin(ang.reshape(-1))], axis=1)
    _, _, shells = _contributions(model, disorder, k, band, x, dirs, n_scan, center, r_max)
    out = np.zeros((model.nbands, dirs.shape[0]))
    for m, sh in enumerate(shells):
        np.add.at(out[m], sh["ray"], sh["c"])
    if per_band:
        return out.reshape((model.nbands,) + ang.shape)
    return out.sum(axis=0).reshape(ang.shape)


def majorant(model, disorder, k=None, band=0, energies=None, x=None, safety=1.5, n_angles=None,
             n_scan=DEFAULT_N_SCAN, center=None, r_max=None, n_k=16):
    """Estimate a majorant Gamma_max for null-collision Born scattering.

    Gamma_max = safety x max of the proposal weight w of ``propose`` (module
    docstring) over the sampled packet states and over a deterministic grid
    of proposals (all target bands, a direction grid, all roots).  The grid
    maximum can underestimate the supremum; ``safety`` covers that, and the
    kernel counts every violation (``EVENT_MAJORANT_VIOLATED``) so an
    insufficient majorant is reported, never hidden.

    Parameters
    ----------
    model, disorder :
    k : array_like (nk, dim), optional
        Packet momenta to bound (with ``band`` an int or an array of nk ints).
    band : int or array of int
    energies : array_like, optional
        Instead of ``k``: energies of the packets in band ``band``; for each,
        ``n_k`` states on its energy shell are used.
    safety : float
        Factor >= 1.
    n_angles, n_scan, center, r_max :
        As in :func:`born_rate` (the direction grid of the proposals).

    Returns
    -------
    float
        Gamma_max (energy units, hbar = 1).
    """
    if not (safety >= 1.0):
        raise ValueError(f"safety must be >= 1, got {safety}")
    if (k is None) == (energies is None):
        raise ValueError("give exactly one of k (packet momenta) or energies")
    x = _as_x(model, x)
    if energies is not None:
        if not np.isscalar(band):
            raise ValueError("with energies, band must be a single int")
        geo = ray_geometry(model, center, r_max)
        # about n_k directions per energy (3D: n_phi x n_phi/2 grid)
        nd = max(2, int(n_k)) if model.dim < 3 else max(2, int(round(math.sqrt(2.0 * n_k))))
        sd, _ = _direction_grid(model.dim, nd)
        ks, bs = [], []
        for e in np.atleast_1d(np.asarray(energies, dtype=np.float64)):
            sh = shell_points(model, e, sd, x=x, n_scan=n_scan, geo=geo)[int(band)]
            ks.extend(sh["k"])
            bs.extend([int(band)] * sh["r"].size)
        if not ks:
            raise ValueError(f"no states of band {band} at the given energies inside the scan domain")
        ks = np.array(ks)
        bs = np.array(bs)
    else:
        ks = np.asarray(k, dtype=np.float64).reshape(-1, model.dim)
        bs = np.broadcast_to(np.asarray(band, dtype=int), (ks.shape[0],))
    dirs, _ = _direction_grid(model.dim, _default_angles(model.dim, n_angles))
    area = sphere_area(model.dim)
    wmax = 0.0
    for kk, b in zip(ks, bs):
        _, _, shells = _contributions(model, disorder, kk, int(b), x, dirs, n_scan, center, r_max)
        for sh in shells:
            if sh["r"].size:
                w = model.nbands * area * sh["nroots_ray"][sh["ray"]] * sh["c"]
                wmax = max(wmax, float(np.max(w)))
    if not np.isfinite(wmax):
        raise ValueError("the proposal weight is unbounded (a ray touches the energy shell tangentially); "
                         "choose a ray centre inside the Fermi pocket")
    if wmax == 0.0:
        raise ValueError("no on-shell final states: the Born rate vanishes for these packets")
    return safety * wmax


# ----------------------------------------------------------------------------
# Host sampling helper
# ----------------------------------------------------------------------------


class BornSamples:
    """Result of :func:`sample_many`.

    Attributes
    ----------
    weight : ndarray (n,)   proposal weights w (E[w] = 1/tau).
    band : ndarray (n,)     proposed target bands.
    nroots : ndarray (n,)   roots found on the proposed ray.
    k : ndarray (n, dim)    proposed k'.
    state : ndarray (n, nb) eigenvector of the target band at k'.
    status : ndarray (n,)   EVENT_* codes when ``gamma_max`` was given, else -1.
    gamma_max : float or None
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def rate(self, band=None):
        """Monte Carlo estimate of 1/tau (or of the rate into ``band``): (mean, standard error)."""
        w = self.weight if band is None else np.where(self.band == band, self.weight, 0.0)
        return float(np.mean(w)), float(np.std(w, ddof=1) / np.sqrt(w.size))

    @property
    def accepted(self):
        """Boolean mask of real events (EVENT_REAL or EVENT_MAJORANT_VIOLATED)."""
        return self.status >= EVENT_REAL

    @property
    def violations(self):
        """Number of majorant violations."""
        return int(np.sum(self.status == EVENT_MAJORANT_VIOLATED))


def sample_many(model, disorder, k, band, n, seed=0, x=None, gamma_max=None, n_scan=DEFAULT_N_SCAN,
                center=None, r_max=None, cap=8, random=None):
    """Draw ``n`` Born proposals (and null-collision decisions) with the kernel sampler.

    Runs :func:`make_born_sampler`'s ``propose`` (or ``born_event`` when
    ``gamma_max`` is given) in an njit loop, with random numbers from
    ``numpy.random.default_rng(seed)`` (or the (n, 5) array ``random``).
    Useful to sample the Born kernel W outside a simulation and to test it.

    Returns
    -------
    BornSamples
    """
    _check_inputs(model, disorder, band, n_scan)
    k = _as_k(model, k)
    x = _as_x(model, x)
    if int(cap) < 1:
        raise ValueError(f"cap (bracket buffer length) must be >= 1, got {cap}")
    if gamma_max is not None and not (gamma_max > 0):
        raise ValueError(f"gamma_max must be positive, got {gamma_max}")
    geo = ray_geometry(model, center, r_max)
    eps, u_n = _state(model, k, band, x)
    if random is None:
        rnd = np.random.default_rng(seed).random((int(n), 5))
    else:
        rnd = np.ascontiguousarray(random, dtype=np.float64)
        if rnd.ndim != 2 or rnd.shape[1] < 5 or np.any((rnd < 0) | (rnd >= 1)):
            raise ValueError("random must be an (n, 5) array of floats in [0, 1)")
    nn = rnd.shape[0]
    s = make_born_sampler(model.h, model.dhdk, disorder.spectrum)
    kouts = np.empty((nn, model.dim))
    ws = np.empty(nn)
    ms = np.empty(nn, dtype=np.int64)
    nrs = np.empty(nn, dtype=np.int64)
    st = np.full(nn, -1, dtype=np.int64)
    vouts = np.empty((nn, model.nbands), dtype=np.complex128)
    s.sample_loop(x, k, band, eps, u_n, model.params, disorder.params, geo, int(n_scan),
                  math.inf if gamma_max is None else float(gamma_max), int(cap), rnd, kouts, ws, ms, nrs, st, vouts)
    if gamma_max is None:
        st[:] = -1
    return BornSamples(weight=ws, band=ms, nroots=nrs, k=kouts, state=vouts, status=st, gamma_max=gamma_max,
                       energy=eps)
