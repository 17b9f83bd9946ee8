"""Qi-Wu-Zhang model on the square lattice (docs/models.md, "QWZ").

.. math::

    H(\\mathbf k) = \\sin k_x \\sigma_x + \\sin k_y \\sigma_y
                  + (u + \\cos k_x + \\cos k_y) \\sigma_z

lattice constant 1, hopping energy 1.  Lower-band Chern number
C = [sgn(u+2) + sgn(u-2) - 2 sgn(u)]/2: -1 for 0 < u < 2, +1 for -2 < u < 0,
0 for |u| > 2.  With mu in the gap sigma_xy = -C e^2/h.
"""
import math

import numba
import numpy as np

from .base import BandModel, Lattice


@numba.njit
def qwz_h(x, k, p, out):
    """H(k) of the QWZ model; p = [u]."""
    sx = math.sin(k[0])
    sy = math.sin(k[1])
    dz = p[0] + math.cos(k[0]) + math.cos(k[1])
    out[0, 0] = dz
    out[1, 1] = -dz
    out[0, 1] = complex(sx, -sy)
    out[1, 0] = complex(sx, sy)


@numba.njit
def qwz_dhdk(x, k, p, out, work):
    """dH/dk_a = cos k_a sigma_a - sin k_a sigma_z."""
    cx = math.cos(k[0])
    cy = math.cos(k[1])
    szx = -math.sin(k[0])
    szy = -math.sin(k[1])
    out[0, 0, 0] = szx
    out[0, 1, 1] = -szx
    out[0, 0, 1] = cx
    out[0, 1, 0] = cx
    out[1, 0, 0] = szy
    out[1, 1, 1] = -szy
    out[1, 0, 1] = complex(0.0, -cy)
    out[1, 1, 0] = complex(0.0, cy)


class QWZ(BandModel):
    """Qi-Wu-Zhang Chern insulator (docs/models.md, "QWZ").

    Parameters
    ----------
    u : float
        Staggered mass; topological for 0 < |u| < 2.
    """

    def __init__(self, u=1.0):
        super().__init__("Qi-Wu-Zhang", 2, 2, [u], qwz_h, qwz_dhdk, lattice=Lattice([[1.0, 0.0], [0.0, 1.0]]),
                         param_names=("u",))

    @property
    def u(self):
        return self.params[0]

    def chern_exact(self):
        """Closed-form lower-band Chern number C = [sgn(u+2) + sgn(u-2) - 2 sgn(u)]/2."""
        sgn = lambda z: float(np.sign(z))
        u = float(self.u)
        return 0.5 * (sgn(u + 2) + sgn(u - 2) - 2 * sgn(u))
