"""Two-dimensional Dirac model with a position-dependent mass (spatial texture).

.. math::

    H(\\mathbf x, \\mathbf k) = \\hbar v (s k_x \\sigma_x + k_y \\sigma_y)
                                + m(\\mathbf x) \\sigma_z

valley s = +/-1, velocity v (energy x length, hbar = 1), mass profile m(x)
(energy) with x = (x_1, x_2) in length units.  This is the textured model of
Tu, Li & Yao (§II and the moiré / domain-wall examples quoted there): at
fixed x it is the massive Dirac model (Wong & Tserkovnyak 2021, Eq. 41) with
m = m(x), so the bands are
+/- sqrt(v^2 k^2 + m(x)^2) and Omega^{kk}_+/- = -/+ s m(x) v^2 / (2 E^3);
the texture adds the mixed curvatures Omega^{k x} through dH/dx =
(dm/dx_a) sigma_z, which is exact here (the analytic derivative of the
profile, never a finite difference).

Built-in profiles (parameters in the order they are stored in ``params``):

``"domain_wall"``  m(x) = m_bar + m0 tanh((x_1 - x0) / width)
    parameters m0, width (> 0), m_bar, x0.  m -> m_bar +/- m0 far from the
    wall; the mass changes sign at the wall when |m0| > |m_bar|, which binds
    chiral (Jackiw-Rebbi) modes.
``"moire"``  m(x) = m0 + m1 sum_{j=1..3} cos(G_j . x)
    with G_1 = G (1, 0), G_2 = G (-1/2, sqrt3/2), G_3 = G (-1/2, -sqrt3/2):
    the lowest harmonic of a C3-symmetric triangular moiré superlattice of
    period L_M = 4 pi / (sqrt3 G).  Parameters m0, m1, G (> 0); m ranges over
    [m0 - 3 |m1| / 2, m0 + 3 |m1|] (for m1 > 0; mirrored for m1 < 0), so the
    mass changes sign inside the moiré cell when -3 m1 < m0 < 3 m1 / 2.
``"square"``  m(x) = m0 + m1 [cos(G x_1) + cos(G x_2)]
    square superlattice of period 2 pi / G; parameters m0, m1, G (> 0).

A user profile is an ``@numba.njit`` function ``mass(x, p) -> (m, dm_dx1,
dm_dx2)`` (or ``mass(x, p) -> m`` together with ``mass_gradient(x, p) ->
(dm_dx1, dm_dx2)``).  ``p`` is the model's whole parameter array; the user's
profile parameters are its first entries ``p[0], p[1], ...`` (velocity and
valley are stored after them, at ``p[-2]`` and ``p[-1]``).  The function is
called from the model's fillers (a closure built by a factory), so it is
inlined into the kernels and must follow the kernel rules of
docs/architecture.md.
"""
import math

import numba
import numpy as np

from . import _validate
from .base import BandModel

_S3 = math.sqrt(3.0)


# ----------------------------------------------------------------------------
# built-in profiles: mass(x, p) -> (m, dm/dx1, dm/dx2)
# ----------------------------------------------------------------------------


@numba.njit
def domain_wall_mass(x, p):
    """m = m_bar + m0 tanh((x_1 - x0)/width); p = [m0, width, m_bar, x0, ...]."""
    th = math.tanh((x[0] - p[3]) / p[1])
    # d tanh(u)/du = 1 - tanh^2 (= sech^2), exact to round-off
    return p[2] + p[0] * th, p[0] * (1.0 - th * th) / p[1], 0.0


@numba.njit
def moire_mass(x, p):
    """m = m0 + m1 sum_j cos(G_j.x), triangular G_j (module docstring); p = [m0, m1, G, ...]."""
    g = p[2]
    # G_j . x for G_1 = G(1, 0), G_2 = G(-1/2, sqrt3/2), G_3 = G(-1/2, -sqrt3/2)
    a1 = g * x[0]
    a2 = g * (-0.5 * x[0] + 0.5 * _S3 * x[1])
    a3 = g * (-0.5 * x[0] - 0.5 * _S3 * x[1])
    s1 = math.sin(a1)
    s2 = math.sin(a2)
    s3 = math.sin(a3)
    m = p[0] + p[1] * (math.cos(a1) + math.cos(a2) + math.cos(a3))
    f = -p[1] * g
    d1 = f * (s1 - 0.5 * s2 - 0.5 * s3)
    d2 = f * (0.5 * _S3 * s2 - 0.5 * _S3 * s3)
    return m, d1, d2


@numba.njit
def square_mass(x, p):
    """m = m0 + m1 [cos(G x_1) + cos(G x_2)]; p = [m0, m1, G, ...]."""
    g = p[2]
    m = p[0] + p[1] * (math.cos(g * x[0]) + math.cos(g * x[1]))
    return m, -p[1] * g * math.sin(g * x[0]), -p[1] * g * math.sin(g * x[1])


# ----------------------------------------------------------------------------
# fillers
# ----------------------------------------------------------------------------


@numba.njit
def textured_dirac_dhdk(x, k, p, out, work):
    """dH/dk_a = v s sigma_x (a = x), v sigma_y (a = y); v = p[-2], s = p[-1]."""
    n = p.shape[0]
    v = p[n - 2]
    s = p[n - 1]
    out[0, 0, 0] = 0.0
    out[0, 1, 1] = 0.0
    out[0, 0, 1] = v * s
    out[0, 1, 0] = v * s
    out[1, 0, 0] = 0.0
    out[1, 1, 1] = 0.0
    out[1, 0, 1] = complex(0.0, -v)
    out[1, 1, 0] = complex(0.0, v)


def make_textured_fillers(mass):
    """Build ``(h, dhdx)`` fillers closing over the njit profile ``mass(x, p)``.

    The closure makes numba inline ``mass`` into every kernel that calls the
    fillers (docs/architecture.md: factories close over user functions).
    """

    @numba.njit
    def h(x, k, p, out):
        n = p.shape[0]
        v = p[n - 2]
        s = p[n - 1]
        r = mass(x, p)
        m = r[0]
        out[0, 0] = m
        out[1, 1] = -m
        out[0, 1] = complex(v * s * k[0], -v * k[1])
        out[1, 0] = complex(v * s * k[0], v * k[1])

    @numba.njit
    def dhdx(x, k, p, out, work):
        r = mass(x, p)
        for a in range(2):
            g = r[1 + a]
            out[a, 0, 0] = g
            out[a, 1, 1] = -g
            out[a, 0, 1] = 0.0
            out[a, 1, 0] = 0.0

    return h, dhdx


def _combine(mfun, gfun):
    """Profile ``(m, dm1, dm2)`` from separate ``m(x, p)`` and ``grad(x, p)`` njit functions."""

    @numba.njit
    def mass(x, p):
        g = gfun(x, p)
        return mfun(x, p), g[0], g[1]

    return mass


# name -> (mass function, parameter names, defaults, validation flags)
PROFILES = {
    "domain_wall": (domain_wall_mass, ("m0", "width", "m_bar", "x0"), (0.1, 1.0, 0.0, 0.0),
                    {"width": "positive"}),
    "moire": (moire_mass, ("m0", "m1", "G"), (0.0, 0.1, 1.0), {"G": "positive"}),
    "square": (square_mass, ("m0", "m1", "G"), (0.0, 0.1, 1.0), {"G": "positive"}),
}

# fillers of the built-in profiles, built once per process so every model
# with the same profile shares the compiled code
_BUILTIN_FILLERS = {name: make_textured_fillers(spec[0]) for name, spec in PROFILES.items()}


class TexturedDirac(BandModel):
    """2D Dirac model with a position-dependent mass m(x) (module docstring).

    Parameters
    ----------
    profile : {"domain_wall", "moire", "square"} or numba dispatcher
        Built-in profile name, or a user ``@numba.njit`` function
        ``mass(x, p) -> (m, dm_dx1, dm_dx2)`` (see module docstring).
    velocity : float
        Dirac velocity v > 0 (energy x length).
    valley : {+1, -1}
        Valley index s.
    k_window : float, optional
        Momentum cut-off for samplers; default 10 max(1, m_scale) / v with
        m_scale the largest |m| the profile reaches (|m(0)| for a user profile).
    mass_params : array_like, optional
        User profile only: the profile's own parameters, stored first in
        ``params`` so the profile reads them as ``p[0], p[1], ...``.
    mass_param_names : sequence of str, optional
        User profile only: names of ``mass_params``.
    mass_gradient : numba dispatcher, optional
        User profile only: ``grad(x, p) -> (dm_dx1, dm_dx2)``; when given,
        ``profile(x, p)`` must return the mass m alone.
    **profile_params
        Built-in profile parameters by name (module docstring), e.g.
        ``TexturedDirac("domain_wall", m0=0.2, width=3.0)``.

    Notes
    -----
    ``params = [profile parameters..., v, s]``.  Kernels get dH/dx from the
    analytic profile gradient; the user's gradient is checked against a finite
    difference of m on construction (``model.check()``).
    """

    def __init__(self, profile="domain_wall", velocity=1.0, valley=+1, k_window=None, *, mass_params=None,
                 mass_param_names=None, mass_gradient=None, **profile_params):
        v = _validate.real("velocity", velocity, positive=True)
        s = _validate.sign("valley", valley)
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown mass profile {profile!r}; choose one of {sorted(PROFILES)} "
                                 "or pass an @numba.njit function mass(x, p) -> (m, dm_dx1, dm_dx2)")
            if mass_params is not None or mass_param_names is not None or mass_gradient is not None:
                raise ValueError("mass_params, mass_param_names and mass_gradient are for a user profile "
                                 f"function; the built-in profile {profile!r} takes its parameters by name: "
                                 f"{PROFILES[profile][1]}")
            mfun, names, defaults, flags = PROFILES[profile]
            unknown = set(profile_params) - set(names)
            if unknown:
                raise ValueError(f"unknown parameter(s) {sorted(unknown)} for mass profile {profile!r}; "
                                 f"its parameters are {names}")
            vals = []
            for nm, dflt in zip(names, defaults):
                vals.append(_validate.real(nm, profile_params.get(nm, dflt), positive=flags.get(nm) == "positive"))
            h, dhdx = _BUILTIN_FILLERS[profile]
            if profile == "domain_wall":
                mscale = abs(vals[0]) + abs(vals[2])
            else:
                mscale = abs(vals[0]) + 3.0 * abs(vals[1])
            self.profile = profile
        else:
            if profile_params:
                raise ValueError(f"unknown keyword(s) {sorted(profile_params)}: a user profile takes its "
                                 "parameters as mass_params=[...]")
            _validate.njit_function("profile (the mass function)", profile)
            mfun = profile
            if mass_gradient is not None:
                _validate.njit_function("mass_gradient", mass_gradient)
                mfun = _combine(profile, mass_gradient)
            vals = [] if mass_params is None else list(np.atleast_1d(np.asarray(mass_params, dtype=np.float64)))
            names = (tuple(f"mass_p{i}" for i in range(len(vals))) if mass_param_names is None
                     else tuple(mass_param_names))
            if len(names) != len(vals):
                raise ValueError(f"{len(names)} mass_param_names for {len(vals)} mass_params")
            for nm, val in zip(names, vals):
                _validate.real(nm, val)
            p = np.array(vals + [v, s])
            r = _call_profile(mfun, p, two=mass_gradient is not None)
            mscale = abs(r[0])
            h, dhdx = make_textured_fillers(mfun)
            self.profile = "user"
        self.mass_function = mfun
        if k_window is None:
            k_window = 10.0 * max(1.0, mscale) / v
        else:
            k_window = _validate.real("k_window", k_window, positive=True)
        super().__init__(f"textured Dirac ({self.profile})", 2, 2, list(vals) + [v, s], h, textured_dirac_dhdk,
                         dhdx, param_names=tuple(names) + ("v", "s"), textured=True, k_window=k_window)
        if self.profile == "user":
            self.check()

    @property
    def velocity(self):
        return self.params[-2]

    @property
    def valley(self):
        return int(self.params[-1])

    def mass(self, x):
        """Profile m(x) and its gradient at points ``x`` (shape (..., 2)); returns (m, grad)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != 2:
            raise ValueError(f"x must have a last axis of length 2, got shape {x.shape}")
        flat = np.ascontiguousarray(x.reshape(-1, 2))
        m = np.empty(flat.shape[0])
        g = np.empty((flat.shape[0], 2))
        _mass_many(self.mass_function, flat, self.params, m, g)
        return m.reshape(x.shape[:-1]), g.reshape(x.shape)


def _call_profile(mfun, p, two):
    """Call a user profile once on the host and check what it returns."""
    what = "profile(x, p) with mass_gradient given" if two else "profile(x, p)"
    try:
        r = mfun(np.zeros(2), p)
    except Exception as exc:  # numba typing errors: tell the user which function failed
        raise ValueError(f"calling the user mass {what} failed: {type(exc).__name__}: {exc}") from None
    if not (isinstance(r, tuple) and len(r) == 3):
        if two:
            raise ValueError("mass_gradient(x, p) must return a tuple (dm_dx1, dm_dx2) and the profile the "
                             "mass m alone")
        raise ValueError(f"the user mass profile must return a tuple (m, dm_dx1, dm_dx2), got {r!r}; "
                         "or return m alone and pass mass_gradient=")
    if not all(np.isfinite(float(c)) for c in r):
        raise ValueError(f"the user mass profile returned NaN/inf at x = 0: {r}; check mass_params")
    return r


@numba.njit
def _mass_many(mfun, xx, p, m, g):
    for i in range(xx.shape[0]):
        r = mfun(xx[i], p)
        m[i] = r[0]
        g[i, 0] = r[1]
        g[i, 1] = r[2]
