"""Generic tight-binding model from lattice vectors, orbital positions and hoppings.

Bloch basis with the orbital positions in the phases (the convention in which
Berry connection and curvature are the physical, position-operator ones):

    |j, k> = N^-1/2 sum_R e^{i k.(R + tau_j)} |j, R>,
    H_ij(k) = eps_i delta_ij + sum_R t_ij(R) e^{i k.(R + tau_j - tau_i)},

with t_ij(R) = <i, 0|H|j, R> the amplitude to hop from orbital j in cell R to
orbital i in cell 0 (R = sum_a n_a a_a, n_a integers).  Then
H(k + G) = U_G H(k) U_G^dagger with U_G = diag(e^{-i G.tau_j}), and

    dH_ij/dk_a = sum_R i (R + tau_j - tau_i)_a t_ij(R) e^{i k.(R + tau_j - tau_i)}.

Hermitian conjugates are added automatically: each listed hop (i, j, n, t)
contributes t e^{i k.d} to H_ij and conj(t) e^{-i k.d} to H_ji
(d = R + tau_j - tau_i), i.e. it also adds the reverse hop j -> i at -R with
amplitude conj(t).  Do not list both a hop and its conjugate.

Parameter layout (all float64 so the filler is compiled once, whatever the
number of orbitals, dimension or hoppings; docs/architecture.md):

    p = [nhop, eps_0 .. eps_{nb-1}, then per hop: i, j, d_1 .. d_dim, Re t, Im t]

where d = R + tau_j - tau_i is the Cartesian hop vector precomputed on the
host.
"""
import math

import numba
import numpy as np

from . import _validate
from .base import BandModel, Lattice


@numba.njit
def tb_h(x, k, p, out):
    """H(k) from the packed hopping list (module docstring)."""
    nb = out.shape[0]
    dim = k.shape[0]
    nhop = int(p[0])
    for i in range(nb):
        for j in range(nb):
            out[i, j] = 0.0
        out[i, i] = p[1 + i]
    rec = 4 + dim
    base = 1 + nb
    for n in range(nhop):
        o = base + n * rec
        i = int(p[o])
        j = int(p[o + 1])
        ph = 0.0
        for a in range(dim):
            ph += k[a] * p[o + 2 + a]
        t = complex(p[o + 2 + dim], p[o + 3 + dim])
        c = t * complex(math.cos(ph), math.sin(ph))
        out[i, j] += c
        out[j, i] += c.conjugate()


@numba.njit
def tb_dhdk(x, k, p, out, work):
    """dH/dk_a = sum_hops i d_a t e^{i k.d} (+ conjugate); analytic."""
    dim = out.shape[0]
    nb = out.shape[1]
    nhop = int(p[0])
    for a in range(dim):
        for i in range(nb):
            for j in range(nb):
                out[a, i, j] = 0.0
    rec = 4 + dim
    base = 1 + nb
    for n in range(nhop):
        o = base + n * rec
        i = int(p[o])
        j = int(p[o + 1])
        ph = 0.0
        for a in range(dim):
            ph += k[a] * p[o + 2 + a]
        t = complex(p[o + 2 + dim], p[o + 3 + dim])
        c = t * complex(math.cos(ph), math.sin(ph))
        for a in range(dim):
            dc = complex(0.0, p[o + 2 + a]) * c
            out[a, i, j] += dc
            out[a, j, i] += dc.conjugate()


class TightBinding(BandModel):
    """Tight-binding model H_ij(k) = eps_i delta_ij + sum_R t_ij(R) e^{i k.(R + tau_j - tau_i)}.

    Parameters
    ----------
    lattice_vectors : array_like, shape (dim, dim), or Lattice
        Primitive vectors a_a as rows (length).  A :class:`Lattice` may be
        given instead; its orbitals are then ignored in favour of ``orbitals``.
    orbitals : array_like, shape (nb, dim)
        Cartesian positions tau_j of the orbitals in the home cell (length).
    hoppings : sequence of (i, j, R, t)
        Orbital indices i, j (0-based), integer cell vector R (length dim, in
        units of the primitive vectors; an int is accepted in 1D) and the
        complex amplitude t = <i, 0|H|j, R> (energy).  Each hop also adds its
        Hermitian conjugate (j -> i at -R, amplitude conj(t)); a list with both
        a hop and its conjugate, the same hop twice, or a self-hop (i, i, 0) is
        rejected (put on-site energies in ``onsite``).
    onsite : array_like, shape (nb,), optional
        Real on-site energies eps_i (default 0).
    name : str
        Model name for reports.

    Notes
    -----
    See the module docstring for the Bloch convention and the parameter
    layout; dH/dk is analytic.  Eigenvalues do not depend on the orbital
    positions, Berry curvature does (choose physical positions).
    """

    def __init__(self, lattice_vectors, orbitals, hoppings, onsite=None, name="tight-binding"):
        if isinstance(lattice_vectors, Lattice):
            vecs = lattice_vectors.vectors
        else:
            vecs = lattice_vectors
        lat0 = Lattice(vecs)
        dim = lat0.dim
        tau = np.asarray(orbitals, dtype=np.float64)
        if tau.ndim == 1 and dim == 1:
            tau = tau[:, None]
        if tau.ndim != 2 or tau.shape[1] != dim or tau.shape[0] < 1:
            raise ValueError(f"orbitals must have shape (nb, {dim}) (Cartesian positions), got {tau.shape}")
        if not np.all(np.isfinite(tau)):
            raise ValueError("orbital positions must be finite")
        nb = tau.shape[0]
        eps = np.zeros(nb) if onsite is None else _validate.vector("onsite", onsite, nb)
        lat = Lattice(lat0.vectors, orbitals=tau)

        seen = {}
        records = []
        clean = []
        for n, hop in enumerate(hoppings):
            try:
                i, j, R, t = hop
            except (TypeError, ValueError):
                raise ValueError(f"hopping #{n} must be a tuple (i, j, R, t), got {hop!r}") from None
            i, j = _orbital_index(i, nb, n, "i"), _orbital_index(j, nb, n, "j")
            R = np.atleast_1d(np.asarray(R))
            if R.shape != (dim,):
                raise ValueError(f"hopping #{n}: cell vector R must have {dim} integer components, got {R.tolist()}")
            if not np.all(np.isfinite(R.astype(float))) or np.any(R != np.round(R)):
                raise ValueError(f"hopping #{n}: cell vector R must be integers (lattice-vector units), got {R.tolist()}")
            R = tuple(int(r) for r in R)
            try:
                t = complex(t)
            except (TypeError, ValueError):
                raise ValueError(f"hopping #{n}: amplitude t must be a number, got {t!r}") from None
            if not (math.isfinite(t.real) and math.isfinite(t.imag)):
                raise ValueError(f"hopping #{n}: amplitude t = {t} is not finite")
            if i == j and not any(R):
                raise ValueError(f"hopping #{n}: self-hop ({i} -> {i} at R = 0) is an on-site energy; "
                                 "pass it in onsite= instead")
            key = (i, j, R)
            conj = (j, i, tuple(-r for r in R))
            if key in seen:
                raise ValueError(f"hopping #{n} {key} is listed twice (also #{seen[key]}); sum the amplitudes")
            if conj in seen:
                raise ValueError(f"hopping #{n} {key} is the Hermitian conjugate of hopping #{seen[conj]} {conj}; "
                                 "conjugates are added automatically, list only one of them")
            seen[key] = n
            d = np.asarray(R, dtype=np.float64) @ lat.vectors + tau[j] - tau[i]
            records.append([i, j, *d, t.real, t.imag])
            clean.append((i, j, R, t))
        self.hoppings = clean
        params = [float(len(records))] + list(eps)
        names = ["nhop"] + [f"onsite_{i}" for i in range(nb)]
        for n, r in enumerate(records):
            params += [float(v) for v in r]
            names += [f"hop{n}_i", f"hop{n}_j"] + [f"hop{n}_d{a}" for a in range(dim)] + [f"hop{n}_re", f"hop{n}_im"]
        super().__init__(name, dim, nb, params, tb_h, tb_dhdk, lattice=lat, param_names=names)

    @property
    def onsite(self):
        return self.params[1:1 + self.nbands].copy()


def _orbital_index(i, nb, n, which):
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise ValueError(f"hopping #{n}: orbital index {which} must be an int, got {i!r}")
    if not 0 <= i < nb:
        raise ValueError(f"hopping #{n}: orbital index {which} = {i} does not exist; orbitals are 0..{nb - 1}")
    return int(i)
