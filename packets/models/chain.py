"""One-dimensional nearest-neighbour tight-binding chain (lattice).

.. math::

    \\varepsilon(k) = \\varepsilon_0 - 2 t \\cos(k a)

One orbital per cell at the origin, lattice constant a.  Bloch oscillations
with the Bloch-oscillation period T_B = 2 pi hbar / (|q E| a).
"""
import math

import numba

from . import _validate
from .base import BandModel, Lattice

# parameter layout: p = [t, a, e0]


@numba.njit
def chain_h(x, k, p, out):
    """H(k) = e0 - 2 t cos(k a) (1x1)."""
    out[0, 0] = p[2] - 2.0 * p[0] * math.cos(k[0] * p[1])


@numba.njit
def chain_dhdk(x, k, p, out, work):
    """dH/dk = 2 t a sin(k a)."""
    out[0, 0, 0] = 2.0 * p[0] * p[1] * math.sin(k[0] * p[1])


class Chain(BandModel):
    """1D tight-binding chain eps(k) = eps_0 - 2 t cos(k a).

    Parameters
    ----------
    hopping : float
        t (energy); the band width is 4|t|.  t > 0 puts the band minimum at
        k = 0.
    lattice_constant : float
        a > 0 (length); the Brillouin zone is [-pi/a, pi/a).
    onsite : float
        eps_0 (energy), the band centre.

    Notes
    -----
    Same as :class:`TightBinding` with one orbital and the single hop
    (0, 0, R=1, -t); group velocity 2 t a sin(k a), effective mass at the band
    bottom 1/(2 t a^2).
    """

    def __init__(self, hopping=1.0, lattice_constant=1.0, onsite=0.0):
        t = _validate.real("hopping", hopping)
        a = _validate.real("lattice_constant", lattice_constant, positive=True)
        e0 = _validate.real("onsite", onsite)
        super().__init__("tight-binding chain", 1, 1, [t, a, e0], chain_h, chain_dhdk,
                         lattice=Lattice([[a]], orbitals=[[0.0]]), param_names=("t", "a", "e0"))

    @property
    def hopping(self):
        return self.params[0]

    @property
    def lattice_constant(self):
        return self.params[1]
