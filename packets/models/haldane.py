"""Haldane model on the honeycomb lattice (F. D. M. Haldane, PRL 61, 2015 (1988)).

Geometry (nearest-neighbour distance a): primitive vectors
a_1 = a (sqrt3, 0), a_2 = a (sqrt3/2, 3/2); orbital A at tau_A = (0, 0),
orbital B at tau_B = (0, a).  Nearest-neighbour vectors from A to B
delta_1 = a (0, 1), delta_2 = a (-sqrt3/2, -1/2), delta_3 = a (sqrt3/2, -1/2);
next-nearest-neighbour vectors b_1 = delta_2 - delta_3 = -a_1,
b_2 = delta_3 - delta_1 = a_1 - a_2, b_3 = delta_1 - delta_2 = a_2.

Bloch basis with the orbital positions in the phases,
|j, k> = N^-1/2 sum_R e^{i k.(R + tau_j)} |j, R>, so that
H_ij(k) = sum_R t_ij(R) e^{i k.(R + tau_j - tau_i)}:

.. math::

    H(\\mathbf k) = 2 t_2 \\cos\\phi \\sum_i \\cos(\\mathbf k\\cdot\\mathbf b_i)
        + t_1 \\sum_j [\\cos(\\mathbf k\\cdot\\boldsymbol\\delta_j) \\sigma_x
                      - \\sin(\\mathbf k\\cdot\\boldsymbol\\delta_j) \\sigma_y]
        + [M - 2 t_2 \\sin\\phi \\sum_i \\sin(\\mathbf k\\cdot\\mathbf b_i)] \\sigma_z

(sigma acting on (A, B)).  In this basis H(k + G) = U_G H(k) U_G^dagger with
U_G = diag(e^{-i G.tau_j}); Berry curvature and connection are the physical
(position-operator) ones.  Dirac points K = (4 pi / (3 sqrt3 a), 0) and
K' = -K; at K the gap is 2 |M - 3 sqrt3 t2 sin phi|, at K' it is
2 |M + 3 sqrt3 t2 sin phi|, and the band centre is -3 t2 cos phi.

Chern number of the lower band in our convention (docs/conventions.md,
Omega_z = -2 Im<d_kx u|d_ky u>):

    C_lower = [sgn(M - 3 sqrt3 t2 sin phi) - sgn(M + 3 sqrt3 t2 sin phi)] / 2,

i.e. C_lower = -sgn(t2 sin phi) for |M| < 3 sqrt3 |t2 sin phi| and 0 beyond.
"""
import math

import numba

from . import _validate
from .base import BandModel, Lattice

# parameter layout: p = [t1, t2, phi, M, a]

_S3 = math.sqrt(3.0)


@numba.njit
def haldane_h(x, k, p, out):
    """H(k) of the Haldane model (module docstring), orbital-position Bloch basis."""
    t1 = p[0]
    t2 = p[1]
    phi = p[2]
    m = p[3]
    a = p[4]
    kx = k[0] * a
    ky = k[1] * a
    # k.b_i / a and k.delta_j / a
    kb1 = -_S3 * kx
    kb2 = 0.5 * _S3 * kx - 1.5 * ky
    kb3 = 0.5 * _S3 * kx + 1.5 * ky
    kd1 = ky
    kd2 = -0.5 * _S3 * kx - 0.5 * ky
    kd3 = 0.5 * _S3 * kx - 0.5 * ky
    haa = m + 2.0 * t2 * (math.cos(kb1 + phi) + math.cos(kb2 + phi) + math.cos(kb3 + phi))
    hbb = -m + 2.0 * t2 * (math.cos(kb1 - phi) + math.cos(kb2 - phi) + math.cos(kb3 - phi))
    re = t1 * (math.cos(kd1) + math.cos(kd2) + math.cos(kd3))
    im = t1 * (math.sin(kd1) + math.sin(kd2) + math.sin(kd3))
    out[0, 0] = haa
    out[1, 1] = hbb
    out[0, 1] = complex(re, im)
    out[1, 0] = complex(re, -im)


@numba.njit
def haldane_dhdk(x, k, p, out, work):
    """dH/dk_a from the same sums: d/dk_a e^{i k.d} = i d_a e^{i k.d}."""
    t1 = p[0]
    t2 = p[1]
    phi = p[2]
    a = p[4]
    kx = k[0] * a
    ky = k[1] * a
    kb1 = -_S3 * kx
    kb2 = 0.5 * _S3 * kx - 1.5 * ky
    kb3 = 0.5 * _S3 * kx + 1.5 * ky
    kd1 = ky
    kd2 = -0.5 * _S3 * kx - 0.5 * ky
    kd3 = 0.5 * _S3 * kx - 0.5 * ky
    # cartesian components of b_i and delta_j (units of a)
    b1x = -_S3
    b1y = 0.0
    b2x = 0.5 * _S3
    b2y = -1.5
    b3x = 0.5 * _S3
    b3y = 1.5
    d1x = 0.0
    d1y = 1.0
    d2x = -0.5 * _S3
    d2y = -0.5
    d3x = 0.5 * _S3
    d3y = -0.5
    sa1 = math.sin(kb1 + phi)
    sa2 = math.sin(kb2 + phi)
    sa3 = math.sin(kb3 + phi)
    sb1 = math.sin(kb1 - phi)
    sb2 = math.sin(kb2 - phi)
    sb3 = math.sin(kb3 - phi)
    c1 = math.cos(kd1)
    c2 = math.cos(kd2)
    c3 = math.cos(kd3)
    s1 = math.sin(kd1)
    s2 = math.sin(kd2)
    s3 = math.sin(kd3)
    f = -2.0 * t2 * a
    out[0, 0, 0] = f * (b1x * sa1 + b2x * sa2 + b3x * sa3)
    out[1, 0, 0] = f * (b1y * sa1 + b2y * sa2 + b3y * sa3)
    out[0, 1, 1] = f * (b1x * sb1 + b2x * sb2 + b3x * sb3)
    out[1, 1, 1] = f * (b1y * sb1 + b2y * sb2 + b3y * sb3)
    # d/dk_a [t1 sum_j (cos + i sin)(k.delta_j)] = t1 a sum_j delta_ja (-sin + i cos)
    g = t1 * a
    rex = -g * (d1x * s1 + d2x * s2 + d3x * s3)
    imx = g * (d1x * c1 + d2x * c2 + d3x * c3)
    rey = -g * (d1y * s1 + d2y * s2 + d3y * s3)
    imy = g * (d1y * c1 + d2y * c2 + d3y * c3)
    out[0, 0, 1] = complex(rex, imx)
    out[0, 1, 0] = complex(rex, -imx)
    out[1, 0, 1] = complex(rey, imy)
    out[1, 1, 0] = complex(rey, -imy)


class Haldane(BandModel):
    """Haldane Chern insulator on the honeycomb lattice.

    Parameters
    ----------
    t1 : float
        Nearest-neighbour hopping (energy): matrix element <A, 0|H|B, R> = t1.
    t2 : float
        Next-nearest-neighbour hopping magnitude (energy).  The A-A hop along
        b_i carries t2 e^{+i phi}, the B-B hop along b_i carries t2 e^{-i phi}.
        For |t2| < |t1|/3 the bands do not overlap.
    phi : float
        Haldane flux phase (radians).
    M : float
        Sublattice (Semenoff) mass: +M on A, -M on B (energy).
    a : float
        Nearest-neighbour distance (length), > 0.

    Notes
    -----
    Bloch convention, lattice, Dirac points and the Chern number are given in
    the module docstring: C_lower = [sgn(M - 3 sqrt3 t2 sin phi)
    - sgn(M + 3 sqrt3 t2 sin phi)] / 2 in our convention (lower band; the upper
    band has the opposite sign), so with mu in the gap
    sigma_xy = -C_lower e^2/h.
    """

    def __init__(self, t1=1.0, t2=0.1, phi=math.pi / 2, M=0.0, a=1.0):
        t1 = _validate.real("t1", t1, nonzero=True)
        t2 = _validate.real("t2", t2)
        phi = _validate.real("phi", phi)
        M = _validate.real("M", M)
        a = _validate.real("a", a, positive=True)
        lat = Lattice([[a * _S3, 0.0], [0.5 * a * _S3, 1.5 * a]], orbitals=[[0.0, 0.0], [0.0, a]])
        super().__init__("Haldane", 2, 2, [t1, t2, phi, M, a], haldane_h, haldane_dhdk, lattice=lat,
                         param_names=("t1", "t2", "phi", "M", "a"))

    @property
    def K_point(self):
        """Dirac point K = (4 pi / (3 sqrt3 a), 0) (inverse length)."""
        return (4.0 * math.pi / (3.0 * _S3 * self.params[4]), 0.0)

    def gap_at_K(self, valley=+1):
        """Direct gap 2 |M - valley 3 sqrt3 t2 sin phi| at K (valley=+1) or K' = -K (valley=-1)."""
        s = _validate.sign("valley", valley)
        t1, t2, phi, m, a = self.params
        return 2.0 * abs(m - s * 3.0 * _S3 * t2 * math.sin(phi))

    def chern_exact(self):
        """Lower-band Chern number in our convention (module docstring); NaN at a phase boundary."""
        t1, t2, phi, m, a = self.params
        mk = m - 3.0 * _S3 * t2 * math.sin(phi)
        mkp = m + 3.0 * _S3 * t2 * math.sin(phi)
        if mk == 0.0 or mkp == 0.0:
            return float("nan")
        sgn = lambda z: 1.0 if z > 0 else -1.0
        return 0.5 * (sgn(mk) - sgn(mkp))
