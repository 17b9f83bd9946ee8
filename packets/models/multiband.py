"""Four-band BHZ-type lattice model: a nearly degenerate active pair with remote bands.

Basis (|E up>, |H up>, |E down>, |H down>), Pauli matrices sigma on the
orbital (E, H) and s on the spin index, square lattice with a = 1 and all four
orbitals at the origin of the cell:

.. math::

    H(\\mathbf k) = \\begin{pmatrix} h(\\mathbf k) + Z & \\Delta\\,(-i\\sigma_y) \\\\
                                    \\Delta\\,(i\\sigma_y) & h^*(-\\mathbf k) - Z \\end{pmatrix}
                  = s_z\\!\\otimes\\!\\sigma_x \\sin k_x + \\sigma_y \\sin k_y
                    + d_z(\\mathbf k)\\, \\sigma_z + Z s_z + \\Delta\\, s_y\\!\\otimes\\!\\sigma_y,

h(k) = sin k_x sigma_x + sin k_y sigma_y + d_z(k) sigma_z with
d_z = u + cos k_x + cos k_y (the Qi-Wu-Zhang block, docs/models.md), and its
time-reversed partner h*(-k) = -sin k_x sigma_x + sin k_y sigma_y + d_z sigma_z
for spin down (the lattice Bernevig-Hughes-Zhang model).  Z is a Zeeman
splitting, Delta the bulk-inversion-asymmetry (BIA) coupling of the two spin
blocks.

Spectrum: for Delta = 0 the bands are -E - |Z|, -E + |Z|, E - |Z|, E + |Z|
with E(k) = sqrt(sin^2 k_x + sin^2 k_y + d_z^2) >= min_k E
(= 1 at u = +/-1).  For Z = 0 the bands are Kramers-degenerate at the four
time-reversal-invariant momenta, with energies -/+ sqrt(d_z^2 + Delta^2).

Why this model (see docs/models.md): the two lower bands (indices 0, 1, the
default active manifold) are split only by the small Z and Delta, so
intra-manifold transitions are non-adiabatic already at weak fields
(Tu, Li & Yao, §II, Eqs. 19-21, 34); the two upper bands (2, 3) are remote, across
a gap ~2 (min E - |Z|), and contribute the non-Abelian Berry curvature of the
active manifold (Tu, Li & Yao, Eqs. 40-42).  At Z = Delta = 0 the active pair is
exactly degenerate (the U(2) case), and each spin block carries its QWZ lower
band curvature (Chern number -1 and +1 for 0 < u < 2), all of it from the
remote partner band; Delta mixes the blocks and makes the curvature
non-Abelian.
"""
import math

import numba

from . import _validate
from .base import BandModel, Lattice

# parameter layout: p = [u, Z, Delta]


@numba.njit
def bhz_h(x, k, p, out):
    """H(k) of the four-band BHZ-type model (module docstring)."""
    u = p[0]
    z = p[1]
    dl = p[2]
    sx = math.sin(k[0])
    sy = math.sin(k[1])
    dz = u + math.cos(k[0]) + math.cos(k[1])
    for i in range(4):
        for j in range(4):
            out[i, j] = 0.0
    # spin-up block h(k) + Z
    out[0, 0] = dz + z
    out[1, 1] = -dz + z
    out[0, 1] = complex(sx, -sy)
    out[1, 0] = complex(sx, sy)
    # spin-down block h*(-k) - Z
    out[2, 2] = dz - z
    out[3, 3] = -dz - z
    out[2, 3] = complex(-sx, -sy)
    out[3, 2] = complex(-sx, sy)
    # BIA coupling Delta s_y sigma_y: upper-right block -i Delta sigma_y = Delta [[0, -1], [1, 0]]
    out[0, 3] = -dl
    out[3, 0] = -dl
    out[1, 2] = dl
    out[2, 1] = dl


@numba.njit
def bhz_dhdk(x, k, p, out, work):
    """dH/dk_a: the k-dependent entries of bhz_h differentiated."""
    cx = math.cos(k[0])
    cy = math.cos(k[1])
    szx = -math.sin(k[0])
    szy = -math.sin(k[1])
    for a in range(2):
        for i in range(4):
            for j in range(4):
                out[a, i, j] = 0.0
    # d/dk_x
    out[0, 0, 0] = szx
    out[0, 1, 1] = -szx
    out[0, 2, 2] = szx
    out[0, 3, 3] = -szx
    out[0, 0, 1] = cx
    out[0, 1, 0] = cx
    out[0, 2, 3] = -cx
    out[0, 3, 2] = -cx
    # d/dk_y
    out[1, 0, 0] = szy
    out[1, 1, 1] = -szy
    out[1, 2, 2] = szy
    out[1, 3, 3] = -szy
    out[1, 0, 1] = complex(0.0, -cy)
    out[1, 1, 0] = complex(0.0, cy)
    out[1, 2, 3] = complex(0.0, -cy)
    out[1, 3, 2] = complex(0.0, cy)


class BHZ(BandModel):
    """Four-band BHZ-type model with Zeeman and BIA terms (module docstring).

    Parameters
    ----------
    u : float
        Mass parameter of the QWZ blocks (energy, hopping = 1); quantum spin
        Hall for 0 < |u| < 2.  The remote gap is set by min_k E(k) (= 1 at
        |u| = 1).
    zeeman : float
        Z (energy): splits the active pair by 2|Z| where Delta = 0.
    bia : float
        Delta (energy): inversion-asymmetric coupling of the spin blocks.
    active : tuple of int
        Band indices (ascending energy) forming the active manifold; a
        contiguous, increasing run of indices in range(4).  Default (0, 1), the
        two lower bands; the other bands are ``remote``.

    Attributes
    ----------
    active : tuple of int
    remote : tuple of int
    """

    def __init__(self, u=1.0, zeeman=0.02, bia=0.05, active=(0, 1)):
        u = _validate.real("u", u)
        z = _validate.real("zeeman", zeeman)
        dl = _validate.real("bia", bia)
        self.active = _active_bands(active, 4)
        self.remote = tuple(i for i in range(4) if i not in self.active)
        super().__init__("BHZ four-band", 2, 4, [u, z, dl], bhz_h, bhz_dhdk,
                         lattice=Lattice([[1.0, 0.0], [0.0, 1.0]], orbitals=[[0.0, 0.0]] * 4),
                         param_names=("u", "Z", "Delta"))

    def describe(self):
        d = super().describe()
        d["active"] = list(self.active)
        return d


def _active_bands(active, nbands):
    """Validate an active-manifold index tuple (contiguous, increasing, in range)."""
    try:
        act = tuple(int(i) for i in active)
    except (TypeError, ValueError):
        raise ValueError(f"parameter 'active' must be a tuple of band indices, got {active!r}") from None
    if any(i != j for i, j in zip(act, active)) or not act:
        raise ValueError(f"parameter 'active' must be a non-empty tuple of integer band indices, got {active!r}")
    bad = [i for i in act if not 0 <= i < nbands]
    if bad:
        raise ValueError(f"parameter 'active': band index {bad[0]} does not exist; bands are 0..{nbands - 1}")
    if list(act) != list(range(act[0], act[0] + len(act))):
        raise ValueError(f"parameter 'active' must be a contiguous increasing run of band indices, got {act}")
    return act
