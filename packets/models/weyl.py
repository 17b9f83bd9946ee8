"""Single three-dimensional Weyl node, optionally tilted (continuum).

.. math::

    H(\\mathbf k) = \\chi \\hbar v\\, \\mathbf k \\cdot \\boldsymbol\\sigma
                  + \\hbar\\, \\mathbf w \\cdot \\mathbf k\\, \\mathbb 1

Chirality chi = +/-1, Fermi velocity v > 0, tilt velocity w with |w| < v
(type I).  Bands eps_+/- = hbar w.k +/- hbar v |k|.  Berry curvature (our
convention, docs/conventions.md, Omega_c = (1/2) eps_abc Omega_ab with
Omega_ab = -2 Im<d_a u|d_b u>): Omega_+/- = -/+ chi k / (2 |k|^3), so the
lower band carries a monopole of flux +2 pi chi through a sphere around the
node (upper band -2 pi chi); the tilt changes neither.  Used for the chiral
(ABJ) anomaly check of Wong & Tserkovnyak 2021 (Sec. III C).
"""
import numba
import numpy as np

from . import _validate
from .base import BandModel

# parameter layout: p = [v, chi, wx, wy, wz]


@numba.njit
def weyl_h(x, k, p, out):
    """H(k) = chi v k.sigma + w.k."""
    cv = p[1] * p[0]
    t = p[2] * k[0] + p[3] * k[1] + p[4] * k[2]
    out[0, 0] = t + cv * k[2]
    out[1, 1] = t - cv * k[2]
    out[0, 1] = complex(cv * k[0], -cv * k[1])
    out[1, 0] = complex(cv * k[0], cv * k[1])


@numba.njit
def weyl_dhdk(x, k, p, out, work):
    """dH/dk_a = chi v sigma_a + w_a."""
    cv = p[1] * p[0]
    for a in range(3):
        out[a, 0, 0] = p[2 + a]
        out[a, 1, 1] = p[2 + a]
        out[a, 0, 1] = 0.0
        out[a, 1, 0] = 0.0
    out[0, 0, 1] = cv
    out[0, 1, 0] = cv
    out[1, 0, 1] = complex(0.0, -cv)
    out[1, 1, 0] = complex(0.0, cv)
    out[2, 0, 0] += cv
    out[2, 1, 1] -= cv


class Weyl(BandModel):
    """3D Weyl node H = chi hbar v k.sigma + hbar w.k.

    Parameters
    ----------
    velocity : float
        v > 0 (energy x length, hbar = 1).
    chirality : {+1, -1}
        chi, the monopole charge sign.
    tilt : (float, float, float)
        Tilt velocity w; |w| < v (an over-tilted type-II node has no bounded
        Fermi sea and is rejected).
    k_window : float, optional
        Momentum cut-off for samplers; default 10 / v (energy 10 on the cone).

    Notes
    -----
    Omega_+/- = -/+ chi k/(2|k|^3) (module docstring); the node is at k = 0.
    """

    def __init__(self, velocity=1.0, chirality=+1, tilt=(0.0, 0.0, 0.0), k_window=None):
        v = _validate.real("velocity", velocity, positive=True)
        chi = _validate.sign("chirality", chirality)
        w = _validate.vector("tilt", tilt, 3)
        if np.linalg.norm(w) >= v:
            raise ValueError(f"parameter 'tilt': |w| = {np.linalg.norm(w):g} >= velocity {v:g} gives an "
                             "over-tilted (type-II) node; use |w| < v")
        k_window = 10.0 / v if k_window is None else _validate.real("k_window", k_window, positive=True)
        super().__init__("Weyl node", 3, 2, [v, chi, w[0], w[1], w[2]], weyl_h, weyl_dhdk,
                         param_names=("v", "chi", "wx", "wy", "wz"), k_window=k_window)

    @property
    def velocity(self):
        return self.params[0]

    @property
    def chirality(self):
        return int(self.params[1])
