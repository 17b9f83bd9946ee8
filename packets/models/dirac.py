"""Massive two-dimensional Dirac model (one valley, spinless).

.. math::

    H_s(\\mathbf k) = \\hbar v (s k_x \\sigma_x + k_y \\sigma_y) + m \\sigma_z
                    + \\hbar (\\mathbf w \\cdot \\mathbf k)\\, \\mathbb 1

with valley index s = +/-1 and optional tilt velocity w (Wong & Tserkovnyak
2021, Eq. 41, whose mass term m v^2 is our m, with a valley index; the tilt
term is the standard type-I tilt).  Bands
eps_+/- = hbar w.k +/- sqrt(hbar^2 v^2 k^2 + m^2).  Units: hbar = 1, so v is a
velocity (energy x length), m an energy, k an inverse length.
"""
import numba
import numpy as np

from .base import BandModel

# parameter layout: p = [v, m, s, wx, wy]


@numba.njit
def dirac_h(x, k, p, out):
    """H_s(k) of the massive Dirac model (Wong & Tserkovnyak 2021, Eq. 41), tilt included."""
    v = p[0]
    m = p[1]
    s = p[2]
    t = p[3] * k[0] + p[4] * k[1]
    out[0, 0] = t + m
    out[1, 1] = t - m
    out[0, 1] = complex(v * s * k[0], -v * k[1])
    out[1, 0] = complex(v * s * k[0], v * k[1])


@numba.njit
def dirac_dhdk(x, k, p, out, work):
    """dH_s/dk_a: v s sigma_x + w_x (a = x), v sigma_y + w_y (a = y)."""
    v = p[0]
    s = p[2]
    out[0, 0, 0] = p[3]
    out[0, 1, 1] = p[3]
    out[0, 0, 1] = v * s
    out[0, 1, 0] = v * s
    out[1, 0, 0] = p[4]
    out[1, 1, 1] = p[4]
    out[1, 0, 1] = complex(0.0, -v)
    out[1, 1, 0] = complex(0.0, v)


class MassiveDirac(BandModel):
    """Massive 2D Dirac model with valley index and optional tilt.

    Parameters
    ----------
    velocity : float
        Dirac velocity v (hbar v in energy x length; hbar = 1).
    mass : float
        Mass m (energy); the gap is 2|m|.
    valley : {+1, -1}
        Valley index s.
    tilt : (float, float), optional
        Tilt velocity w = (w_x, w_y), adds hbar w.k to both bands.
    k_window : float, optional
        Momentum cut-off used by samplers of this continuum model
        (default 10 |m|/v or 10/v when m = 0).

    Notes
    -----
    Berry curvature Omega_+/- = -/+ s m v^2 / (2 E_k^3) and orbital moment
    m_z = -s m v^2 / (2 E_k^2) (Wong & Tserkovnyak 2021, Sec. III A, in our
    signs, e = hbar = 1); the tilt changes
    neither.
    """

    def __init__(self, velocity=1.0, mass=0.1, valley=+1, tilt=(0.0, 0.0), k_window=None):
        if valley not in (1, -1):
            raise ValueError(f"valley must be +1 or -1, got {valley!r}")
        if velocity <= 0:
            raise ValueError(f"velocity must be positive, got {velocity}")
        tilt = tuple(float(t) for t in tilt)
        if len(tilt) != 2:
            raise ValueError("tilt must be a pair (w_x, w_y)")
        if np.hypot(*tilt) >= velocity:
            raise ValueError(f"tilt |w| = {np.hypot(*tilt):g} >= v = {velocity:g} gives an over-tilted "
                             "(type-II) cone with no Fermi-sea bound; use |w| < v")
        if k_window is None:
            k_window = 10.0 * max(abs(mass), 1.0) / velocity
        super().__init__("massive Dirac", 2, 2, [velocity, mass, valley, tilt[0], tilt[1]],
                         dirac_h, dirac_dhdk, param_names=("v", "m", "s", "wx", "wy"), k_window=k_window)

    @property
    def velocity(self):
        return self.params[0]

    @property
    def mass(self):
        return self.params[1]

    @property
    def valley(self):
        return int(self.params[2])
