"""Single parabolic band in 1, 2 or 3 dimensions (continuum).

.. math::

    \\varepsilon(\\mathbf k) = \\frac{\\hbar^2 k^2}{2 m^*} + \\varepsilon_0

One band, no Berry curvature.  Used for the Drude (sigma = n e^2 tau/m*) and
white-noise Born-lifetime (1/tau = n_i V0^2 m*/hbar^3 in 2D) checks.  Units:
hbar = 1, so m* is in 1/(energy x length^2) and k^2/(2 m*) is an energy for k
in inverse length.
"""
import math

import numba

from . import _validate
from .base import BandModel

# parameter layout: p = [m*, e0]


@numba.njit
def parabolic_h(x, k, p, out):
    """H(k) = sum_a k_a^2 / (2 m*) + e0 (1x1); any dimension (len(k))."""
    acc = 0.0
    for a in range(k.shape[0]):
        acc += k[a] * k[a]
    out[0, 0] = p[1] + acc / (2.0 * p[0])


@numba.njit
def parabolic_dhdk(x, k, p, out, work):
    """dH/dk_a = k_a / m* (the group velocity, hbar = 1)."""
    for a in range(k.shape[0]):
        out[a, 0, 0] = k[a] / p[0]


class Parabolic(BandModel):
    """Parabolic band eps = hbar^2 k^2 / (2 m*) + eps_0 in ``dim`` dimensions.

    Parameters
    ----------
    effective_mass : float
        m* (hbar = 1 units: energy^-1 length^-2).  Nonzero; a negative value
        gives a hole-like (downward) band.
    dim : {1, 2, 3}
        Spatial dimension.
    offset : float
        Constant energy eps_0 (band bottom).
    k_window : float, optional
        Momentum cut-off for samplers of this continuum model; default
        sqrt(20 |m*|), where the kinetic energy is 10 energy units (the same
        energy scale as the default of :class:`MassiveDirac` with m = 0).

    Notes
    -----
    One band: Berry curvature and orbital moment vanish identically.  Density
    of states per unit area in 2D (one spin species) m*/(2 pi hbar^2).
    """

    def __init__(self, effective_mass=1.0, dim=2, offset=0.0, k_window=None):
        m = _validate.real("effective_mass", effective_mass, nonzero=True)
        e0 = _validate.real("offset", offset)
        if dim not in (1, 2, 3) or isinstance(dim, bool):
            raise ValueError(f"parameter 'dim' must be 1, 2 or 3, got {dim!r}")
        if k_window is None:
            k_window = math.sqrt(20.0 * abs(m))
        else:
            k_window = _validate.real("k_window", k_window, positive=True)
        super().__init__("parabolic band", int(dim), 1, [m, e0], parabolic_h, parabolic_dhdk,
                         param_names=("m_eff", "e0"), k_window=k_window)

    @property
    def effective_mass(self):
        return self.params[0]

    @property
    def offset(self):
        return self.params[1]
