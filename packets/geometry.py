"""Band geometry of any :class:`~packets.models.BandModel`: vectorised host API.

Berry connection and curvature (k-k, k-x and x-x components), quantum metric,
orbital magnetic moment, Berry connection polarizability, non-Abelian
curvature of a band manifold, Chern numbers and the intrinsic Hall
conductivity.  Every per-point number is computed by the kernel-callable
functions of :mod:`packets.bandgeom` inside an ``@njit`` loop over points (the
CPU twin of what the GPU kernels do), so this module and the simulation use
one implementation of each formula.

Conventions (docs/conventions.md)
---------------------------------
* Units: hbar = e = 1, e > 0, carrier charge q = -1.  Energies and lengths
  are the model's own; k is in inverse length.
* Phase space ``lambda = (x_1..x_d, k_1..k_d)`` (Tu, Li & Yao, Eq. 13).  The
  ``kind`` argument picks the two derivative directions of a tensor:
  ``"kk"`` (both momentum), ``"kx"`` (first k, second x), ``"xk"``,
  ``"xx"``.  x-derivatives use the model's ``dhdx`` (zero for untextured
  models).
* Velocity matrix ``M^a_nm = <u_n| dH/dk_a |u_m>`` (Tu, Li & Yao, Eq. 11).
* Berry connection ``A^a_nm = i<u_n|d_a u_m>``; only the interband part
  (n != m) is returned: the diagonal is gauge dependent and set to 0.
* Berry curvature ``Omega_n^{ab} = d_a A^b_nn - d_b A^a_nn
  = -2 Im<d_a u_n|d_b u_n>`` (Tu, Li & Yao, Eq. 44).  In 2D the pseudo-scalar is
  ``Omega_z = Omega^{k_x k_y}``, in 3D ``Omega_c = eps_abc Omega^{ab}/2``.
  Massive Dirac: ``Omega_+/- = -/+ s m v^2 / (2 E^3)`` (Wong & Tserkovnyak
  2021, Sec. III A, in our signs).
* Quantum metric ``g_n^{ab} = Re<d_a u_n|(1 - P_n)|d_b u_n>``.
* Orbital moment ``m_n = -i (e/2hbar)<grad u_n| x (H - eps_n)|grad u_n>``
  for carriers of charge -e (energy shift ``-m.B``); massive Dirac:
  ``m_z = -s m v^2/(2 E^2)`` in both bands (Wong & Tserkovnyak 2021, Sec. III A).
* Berry connection polarizability ``G_n^{ab} = 2 Re sum_{m!=n}
  A^a_nm A^b_mn/(eps_n - eps_m)`` (field-induced connection
  ``A'_a = G_ab E_b``, Lu & Zhou 2016, §4.2 / Gao-Yang-Niu 2014); for two bands
  ``G = +/- (d_a dhat . d_b dhat)/(4|d|)``, + for the upper band.
* Non-Abelian curvature of a manifold [lo, hi) (Tu, Li & Yao, Eqs. 40-41), the
  remote-band contribution written in the manifold's eigenbasis;
  ``F_nn = Omega_n`` for a single band; its trace is gauge invariant.
* Chern number ``C_n = (1/2pi) int_BZ Omega_n,z d^2k``; intrinsic Hall
  conductivity ``sigma_xy = -int[dk] sum_n f(eps_n) Omega_n,z`` in e^2/hbar,
  so a filled band set of Chern number C gives ``sigma_xy = -C/(2pi)``.

Degenerate rule
---------------
Band pairs with ``|eps_n - eps_m| <= degtol`` (default
:data:`packets.bandgeom.DEGTOL` = 1e-10, absolute, model energy units)
contribute zero to every sum over states.  Inside a degenerate multiplet the
single-band quantities are not defined (the eigenvectors can be rotated
freely); the rule makes them the contribution of the non-degenerate bands
only, finite and free of NaN/inf.  At a point where bands touch (massive
Dirac with m = 0 at k = 0) the single-band curvature, metric, moment and
BCP are therefore 0 there (they diverge as 1/gap^p on approach).  For a
degenerate multiplet use :func:`nonabelian_curvature` with the multiplet as
the manifold, or :func:`chern_number` with the whole set of bands.
"""
import math
import warnings

import numba
import numpy as np
from scipy.special import expit

from . import bandgeom, compile_cache, linalg
from .bandgeom import DEGTOL

__all__ = ["DEGTOL", "bands", "velocity_matrix", "berry_connection", "berry_curvature", "berry_curvature_tensor",
           "quantum_metric", "orbital_moment", "berry_connection_polarizability", "nonabelian_curvature",
           "chern_number", "chern_number_integrated", "intrinsic_hall_conductivity", "fermi"]

_KINDS = ("kk", "kx", "xk", "xx")

# ----------------------------------------------------------------------------
# njit drivers: loops over points calling the kernel functions
# ----------------------------------------------------------------------------


@numba.njit
def _prepare_many(hfun, dkfun, dxfun, want_x, xx, kk, p, w, mk, mx):
    """Energies and band-basis derivative matrices at many points.

    ``w[i]`` eigenvalues, ``mk[i, a] = V^dag dH/dk_a V`` and (when
    ``want_x``) ``mx[i, a] = V^dag dH/dx_a V`` at point i.  Scratch is
    allocated once per call, as the CPU simulation driver does per chunk.
    """
    npts = w.shape[0]
    nb = w.shape[1]
    d = kk.shape[1]
    hm = np.empty((nb, nb), dtype=np.complex128)
    vv = np.empty((nb, nb), dtype=np.complex128)
    work = np.empty((nb, nb), dtype=np.complex128)
    dh = np.empty((d, nb, nb), dtype=np.complex128)
    for i in range(npts):
        hfun(xx[i], kk[i], p, hm)
        linalg.eigh(hm, w[i], vv, work)
        dkfun(xx[i], kk[i], p, dh, work)
        bandgeom.band_derivative_matrices(vv, dh, mk[i])
        if want_x:
            dxfun(xx[i], kk[i], p, dh, work)
            bandgeom.band_derivative_matrices(vv, dh, mx[i])


@numba.njit
def _pair_tensor_many(fun, w, ma, mb, degtol, out):
    """out[i, n, a, b] = fun(w[i], ma[i, a], mb[i, b], n, degtol)."""
    for i in range(w.shape[0]):
        for n in range(w.shape[1]):
            for a in range(ma.shape[1]):
                for b in range(mb.shape[1]):
                    out[i, n, a, b] = fun(w[i], ma[i, a], mb[i, b], n, degtol)


@numba.njit
def _orbital_many(w, mk, degtol, out):
    """out[i, n, c]: 2D -> only c = z (index 0); 3D -> (a, b, c) cyclic."""
    d = mk.shape[1]
    for i in range(w.shape[0]):
        for n in range(w.shape[1]):
            if d == 2:
                out[i, n, 0] = bandgeom.orbital_moment(w[i], mk[i, 0], mk[i, 1], n, degtol)
            else:
                for c in range(3):
                    out[i, n, c] = bandgeom.orbital_moment(w[i], mk[i, (c + 1) % 3], mk[i, (c + 2) % 3], n, degtol)


@numba.njit
def _connection_many(w, mk, degtol, out):
    """out[i, a, n, m] = A^a_nm (interband; 0 on the diagonal)."""
    nb = w.shape[1]
    for i in range(w.shape[0]):
        for a in range(mk.shape[1]):
            for n in range(nb):
                for m in range(nb):
                    out[i, a, n, m] = bandgeom.interband_connection(w[i], mk[i, a], n, m, degtol)


@numba.njit
def _nonabelian_many(w, ma, mb, lo, hi, degtol, out):
    """out[i, n-lo, m-lo, a, b] = F^{ab}_nm for n, m in [lo, hi)."""
    for i in range(w.shape[0]):
        for n in range(lo, hi):
            for m in range(lo, hi):
                for a in range(ma.shape[1]):
                    for b in range(mb.shape[1]):
                        out[i, n - lo, m - lo, a, b] = bandgeom.nonabelian_curvature(
                            w[i], ma[i, a], mb[i, b], lo, hi, n, m, degtol)


# ----------------------------------------------------------------------------
# host-side helpers (validation, reshaping)
# ----------------------------------------------------------------------------


def _check_kind(kind):
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS} (first letter: derivative of the bra, second: of the ket; "
                         f"'k' = momentum, 'x' = position), got {kind!r}")
    return kind


def _check_band(model, band, what="band"):
    if isinstance(band, (bool, np.bool_)) or not isinstance(band, (int, np.integer)):
        raise ValueError(f"{what} must be an integer band index in 0..{model.nbands - 1}, got {band!r}")
    if not 0 <= int(band) < model.nbands:
        raise ValueError(f"unknown {what} index {band}: model {model.name!r} has {model.nbands} bands "
                         f"(valid indices 0..{model.nbands - 1}, ascending in energy)")
    return int(band)


def _band_set(model, bands):
    """Validate an int or a sequence of band indices; return a sorted list."""
    if isinstance(bands, (int, np.integer)) and not isinstance(bands, (bool, np.bool_)):
        return [_check_band(model, bands)]
    try:
        lst = list(bands)
    except TypeError:
        raise ValueError(f"bands must be a band index or a sequence of band indices, got {bands!r}") from None
    if not lst:
        raise ValueError("bands is empty; give at least one band index")
    out = sorted({_check_band(model, b, "band") for b in lst})
    if len(out) != len(lst):
        raise ValueError(f"bands contains repeated indices: {lst}")
    return out


def _check_degtol(degtol):
    degtol = float(degtol)
    if not (degtol >= 0.0 and math.isfinite(degtol)):
        raise ValueError(f"degtol must be a finite non-negative energy, got {degtol}")
    return degtol


def _prepare(model, k, x, want_x):
    """Evaluate energies and band-basis derivative matrices at all points."""
    shape, kk, xx = model._points(k, x)
    npts, nb, d = kk.shape[0], model.nbands, model.dim
    w = np.empty((npts, nb))
    mk = np.empty((npts, d, nb, nb), dtype=np.complex128)
    mx = np.empty((npts if want_x else 0, d, nb, nb), dtype=np.complex128)
    compile_cache.specialise(_prepare_many, hfun=model.h, dkfun=model.dhdk, dxfun=model.dhdx)(
        bool(want_x), xx, kk, model.params, w, mk, mx)
    return shape, w, mk, mx


def _pair_tensor(fun, model, k, x, kind, degtol):
    kind = _check_kind(kind)
    degtol = _check_degtol(degtol)
    shape, w, mk, mx = _prepare(model, k, x, "x" in kind)
    ma = mk if kind[0] == "k" else mx
    mb = mk if kind[1] == "k" else mx
    out = np.empty((w.shape[0], model.nbands, model.dim, model.dim))
    compile_cache.specialise(_pair_tensor_many, fun=fun)(w, ma, mb, degtol, out)
    return out.reshape(shape + out.shape[1:])


def _select_band(model, arr, band, axis_from_end):
    """Pick one band out of an array whose band axis is ``-axis_from_end``."""
    if band is None:
        return arr
    b = _check_band(model, band)
    return np.take(arr, b, axis=arr.ndim - axis_from_end)


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------


def bands(model, k, x=None):
    """Band energies and eigenvectors, ``model.bands(k, x)``.

    Parameters
    ----------
    model : BandModel
    k : array_like, shape (..., dim)
        Crystal momenta (inverse length).
    x : array_like, shape (..., dim) or (dim,), optional
        Positions (textured models); default 0.

    Returns
    -------
    energies : ndarray, shape (..., nb), ascending (energy units)
    vectors : ndarray, shape (..., nb, nb), column n is band n (arbitrary gauge)
    """
    return model.bands(k, x)


def velocity_matrix(model, k, x=None):
    """Velocity matrix ``M^a_nm = <u_n| dH/dk_a |u_m>`` (hbar = 1).

    Tu, Li & Yao, Eq. (11); the diagonal is the group velocity ``d eps_n/dk_a``.
    Gauge covariant (off-diagonal elements carry the eigenvector phases).

    Returns
    -------
    ndarray, complex128, shape (..., dim, nb, nb)
        Velocity units (energy x length).
    """
    shape, w, mk, _ = _prepare(model, k, x, False)
    return mk.reshape(shape + mk.shape[1:])


def berry_connection(model, k, x=None, degtol=DEGTOL):
    """Interband Berry connection ``A^a_nm = i<u_n|d_{k_a} u_m>``, n != m.

    ``A^a_nm = i M^a_nm/(eps_m - eps_n)`` (Tu, Li & Yao, Eq. 13).  The diagonal
    (intraband) connection is gauge dependent and is set to 0; degenerate
    pairs (``|eps_n - eps_m| <= degtol``) are 0 as well.  Gauge covariant:
    it refers to the eigenvectors of :func:`bands` at the same points.

    Returns
    -------
    ndarray, complex128, shape (..., dim, nb, nb)
        Length units.
    """
    degtol = _check_degtol(degtol)
    shape, w, mk, _ = _prepare(model, k, x, False)
    out = np.empty_like(mk)
    _connection_many(w, mk, degtol, out)
    return out.reshape(shape + out.shape[1:])


def berry_curvature_tensor(model, k, x=None, kind="kk", degtol=DEGTOL):
    """Abelian Berry curvature tensor ``Omega_n^{ab}`` of every band.

    ``Omega_n^{ab} = -2 Im<d_a u_n|d_b u_n>`` (Tu, Li & Yao, Eq. 44;
    docs/conventions.md), with ``a`` a k component and ``b`` an x component for
    ``kind="kx"`` (and so on).  Sum-over-states form, see
    :func:`packets.bandgeom.curvature`.

    Parameters
    ----------
    kind : {"kk", "kx", "xk", "xx"}
        Directions of the two derivatives; x components use ``dhdx``.

    Returns
    -------
    ndarray, float64, shape (..., nb, dim, dim)
        Units: length^2 (kk), length x 1/length = 1 (kx, xk), 1/length^2 (xx).
    """
    return _pair_tensor(bandgeom.curvature, model, k, x, kind, degtol)


def berry_curvature(model, k, x=None, band=None, kind="kk", degtol=DEGTOL):
    """Berry curvature pseudo-vector of each band (Tu, Li & Yao, Eq. 44; docs/conventions.md).

    2D: ``Omega_z = Omega^{k_x k_y} = -2 Im<d_kx u|d_ky u>``.
    3D: ``Omega_c = eps_abc Omega^{ab}/2`` (``Omega = curl_k A``).

    Parameters
    ----------
    model : BandModel (2D or 3D)
    k : array_like, shape (..., dim)
    x : array_like, optional
    band : int, optional
        Return one band only (default: all bands).
    kind : {"kk", "xx"}
        ``"xx"`` gives the real-space curvature pseudo-vector of a textured
        model.  The mixed components are not antisymmetric: use
        :func:`berry_curvature_tensor` for them.

    Returns
    -------
    ndarray
        2D: shape (..., nb), or (...) with ``band``; 3D: (..., nb, 3) or
        (..., 3).  Units length^2 for kk.
    """
    if kind not in ("kk", "xx"):
        raise ValueError(f"berry_curvature returns the antisymmetric pseudo-vector; kind must be 'kk' or 'xx', "
                         f"got {kind!r}. Use berry_curvature_tensor(model, k, x, kind) for mixed k-x components")
    if model.dim == 1:
        raise ValueError("a 1D model has no antisymmetric curvature pseudo-vector; "
                         "use berry_curvature_tensor(model, k, x, kind='kx') for the k-x component")
    if band is not None:
        _check_band(model, band)
    t = berry_curvature_tensor(model, k, x, kind, degtol)
    if model.dim == 2:
        out = t[..., 0, 1]
        return _select_band(model, out, band, 1)
    out = np.stack([t[..., 1, 2], t[..., 2, 0], t[..., 0, 1]], axis=-1)
    return _select_band(model, out, band, 2)


def quantum_metric(model, k, x=None, kind="kk", degtol=DEGTOL):
    """Quantum metric ``g_n^{ab} = Re<d_a u_n|(1 - P_n)|d_b u_n>``.

    Sum-over-states form, :func:`packets.bandgeom.metric`.  For two bands
    ``g^{ab} = (d_a dhat . d_b dhat)/4`` in both bands.

    Returns
    -------
    ndarray, float64, shape (..., nb, dim, dim)
        Length^2 for kk.
    """
    return _pair_tensor(bandgeom.metric, model, k, x, kind, degtol)


def orbital_moment(model, k, x=None, band=None, degtol=DEGTOL):
    """Orbital magnetic moment of each band, carriers of charge -e.

    ``m_n = -i (e/2hbar)<grad_k u_n| x (H - eps_n)|grad_k u_n>`` (energy
    shift ``-m.B``; Wong & Tserkovnyak 2021, Eq. 35), :func:`packets.bandgeom.orbital_moment`.
    Massive Dirac: ``m_z = -s m v^2/(2E^2)`` for both bands (Wong & Tserkovnyak
    2021, Sec. III A).

    Returns
    -------
    ndarray, float64
        2D: m_z, shape (..., nb) (or (...) with ``band``); 3D: (..., nb, 3).
        Code units e x energy x length^2 / hbar.
    """
    if model.dim == 1:
        raise ValueError("the orbital moment is a pseudo-vector m_c = eps_abc(...); it needs dim 2 or 3, "
                         f"model {model.name!r} is 1D")
    if band is not None:
        _check_band(model, band)
    degtol = _check_degtol(degtol)
    shape, w, mk, _ = _prepare(model, k, x, False)
    nc = 1 if model.dim == 2 else 3
    out = np.empty((w.shape[0], model.nbands, nc))
    _orbital_many(w, mk, degtol, out)
    if model.dim == 2:
        out = out[..., 0].reshape(shape + (model.nbands,))
        return _select_band(model, out, band, 1)
    out = out.reshape(shape + (model.nbands, 3))
    return _select_band(model, out, band, 2)


def berry_connection_polarizability(model, k, x=None, kind="kk", degtol=DEGTOL):
    """Berry connection polarizability ``G_n^{ab}`` (e = 1).

    ``G_n^{ab} = 2 Re sum_{m!=n} A^a_nm A^b_mn/(eps_n - eps_m)``
    (Lu & Zhou 2016, §4.2; Gao, Yang & Niu, PRL 112, 166601 (2014)), so that a
    uniform field induces the connection ``A'_a = G_ab E_b`` and the Stark
    shift ``(1/2) G_ab E_a E_b``; :func:`packets.bandgeom.bcp`.  For two bands
    ``G = +(d_a dhat . d_b dhat)/(4|d|)`` in the upper band and minus that in
    the lower band.

    Returns
    -------
    ndarray, float64, shape (..., nb, dim, dim)
        Length^3 / energy for kk.
    """
    return _pair_tensor(bandgeom.bcp, model, k, x, kind, degtol)


def nonabelian_curvature(model, k, manifold, x=None, kind="kk", degtol=DEGTOL):
    """Non-Abelian Berry curvature of the band manifold ``[lo, hi)``.

    Tu, Li & Yao, Eqs. (40)-(41): the remote-band contribution
    ``F^{ab}_nm = i<d_a u_n|Q_r|d_b u_m> - i<d_b u_n|Q_r|d_a u_m>``, r = bands
    outside the manifold, in the manifold's eigenbasis (the eigenvectors of
    :func:`bands`); :func:`packets.bandgeom.nonabelian_curvature`.  Covariant
    (``U^dag F U`` under a basis rotation U of the manifold); its trace over
    the manifold is gauge invariant and, for a one-band manifold,
    ``F_nn = Omega_n``.  Works through degeneracies inside the manifold.

    Parameters
    ----------
    manifold : (int, int)
        Band range ``(lo, hi)``, 0 <= lo < hi <= nb.

    Returns
    -------
    ndarray, complex128, shape (..., na, na, dim, dim), na = hi - lo
        ``F[..., n, m, a, b]`` for bands ``lo + n``, ``lo + m``; Hermitian in
        (n, m), antisymmetric in (a, b) for kk and xx.
    """
    kind = _check_kind(kind)
    degtol = _check_degtol(degtol)
    try:
        lo, hi = (int(manifold[0]), int(manifold[1]))
        if len(manifold) != 2:
            raise TypeError
    except (TypeError, IndexError, ValueError):
        raise ValueError(f"manifold must be a pair (lo, hi) of band indices, got {manifold!r}") from None
    if not 0 <= lo < hi <= model.nbands:
        raise ValueError(f"manifold (lo, hi) = ({lo}, {hi}) must satisfy 0 <= lo < hi <= nbands = {model.nbands}")
    shape, w, mk, mx = _prepare(model, k, x, "x" in kind)
    ma = mk if kind[0] == "k" else mx
    mb = mk if kind[1] == "k" else mx
    na = hi - lo
    out = np.empty((w.shape[0], na, na, model.dim, model.dim), dtype=np.complex128)
    _nonabelian_many(w, ma, mb, lo, hi, degtol, out)
    return out.reshape(shape + out.shape[1:])


def _require_lattice_2d(model, what):
    if model.lattice is None:
        raise ValueError(f"{what} needs a lattice model (a closed Brillouin zone); model {model.name!r} is a continuum "
                         "model whose curvature integral is not quantised. Integrate berry_curvature(model, k) over "
                         "a k grid yourself, or use intrinsic_hall_conductivity(model, mu, k_max=...)")
    if model.dim != 2:
        raise ValueError(f"{what} is defined for 2D models; model {model.name!r} is {model.dim}D "
                         "(for 3D, evaluate on 2D slices of the BZ)")


def _check_grid(n, what="n"):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{what} must be an integer >= 2 (grid points per direction), got {n!r}")
    return int(n)


def chern_number(model, bands, n=64, x=None):
    """Chern number of a band or a set of bands, Fukui-Hatsugai-Suzuki method.

    Lattice (plaquette) method (Fukui, Hatsugai & Suzuki, JPSJ 74, 1674
    (2005)) on the ``(n+1) x (n+1)`` grid ``k = (i b_1 + j b_2)/n``,
    i, j = 0..n.  For a set S of bands the link variables are
    ``U = det[<u_s(k)|u_t(k')>]_{s,t in S}/|det|`` (the overlap matrix of the
    set), which is gauge invariant under U(|S|) rotations of the set, so it
    works through degeneracies inside S.  The flux of each plaquette is
    ``-arg(U_1 U_2 U_3 U_4)`` (``<u(k)|u(k+dk)> ~ exp(-i A.dk)``), and
    ``C = (1/2pi) sum flux``, oriented so that
    ``C = (1/2pi) int_BZ Omega_z d^2k`` (docs/conventions.md).  Closing the grid at
    ``k + b`` instead of wrapping indices makes it correct also for
    tight-binding conventions where ``H(k + G)`` is only unitarily
    equivalent to ``H(k)``.

    The result is an integer up to round-off once the grid resolves the
    curvature (each plaquette flux below pi); it is returned as a float, not
    rounded, so that an unconverged grid is visible.  A RuntimeWarning is
    emitted when some link is nearly zero (set not separated from the other
    bands by a gap, or grid too coarse).

    Parameters
    ----------
    model : BandModel
        2D lattice model.
    bands : int or sequence of int
        Band index or indices (ascending energy, 0-based).
    n : int
        Grid points per reciprocal direction.
    x : array_like, optional
        Position of the local Hamiltonian (textured models).

    Returns
    -------
    float
    """
    _require_lattice_2d(model, "chern_number")
    idx = _band_set(model, bands)
    n = _check_grid(n)
    b = model.lattice.reciprocal
    t = np.arange(n + 1) / n
    grid = t[:, None, None] * b[0] + t[None, :, None] * b[1]
    _, v = model.bands(grid, x)
    u = v[..., idx]  # (n+1, n+1, nb, ns)
    uh = np.conj(np.swapaxes(u, -1, -2))
    l1 = np.linalg.det(uh[:-1, :] @ u[1:, :])  # (i,j) -> (i+1,j), shape (n, n+1)
    l2 = np.linalg.det(uh[:, :-1] @ u[:, 1:])  # (i,j) -> (i,j+1), shape (n+1, n)
    if min(np.abs(l1).min(), np.abs(l2).min()) < 1e-3:
        warnings.warn("chern_number: a link overlap is nearly zero; the band set is not separated from the other "
                      "bands by a gap somewhere, or the grid n is too coarse", RuntimeWarning, stacklevel=2)
    loop = l1[:, :-1] * l2[1:, :] * np.conj(l1[:, 1:]) * np.conj(l2[:-1, :])
    flux = -np.angle(loop)
    orient = np.sign(np.linalg.det(b))
    return float(orient * flux.sum() / (2.0 * np.pi))


def chern_number_integrated(model, band, n=128, x=None, degtol=DEGTOL):
    """Chern number from the integral of the Berry curvature over the BZ.

    ``C = (1/2pi) int_BZ Omega_z d^2k`` (docs/conventions.md) by the midpoint rule
    on the ``n x n`` grid ``k = ((i + 1/2) b_1 + (j + 1/2) b_2)/n``, which
    converges exponentially for a gapped (smooth, periodic) curvature.  For
    a set of bands the curvatures are summed; a set with internal
    degeneracies should use :func:`chern_number` (see the degenerate rule in
    the module docstring).

    Parameters
    ----------
    band : int or sequence of int
    n : int
        Grid points per reciprocal direction.

    Returns
    -------
    float
    """
    _require_lattice_2d(model, "chern_number_integrated")
    idx = _band_set(model, band)
    n = _check_grid(n)
    b = model.lattice.reciprocal
    t = (np.arange(n) + 0.5) / n
    grid = t[:, None, None] * b[0] + t[None, :, None] * b[1]
    om = berry_curvature(model, grid, x, degtol=degtol)[..., idx]
    dk2 = abs(np.linalg.det(b)) / n ** 2
    return float(om.sum() * dk2 / (2.0 * np.pi))


def fermi(eps, mu, temperature):
    """Fermi-Dirac occupation ``f = 1/(exp((eps - mu)/T) + 1)`` (k_B = 1).

    Evaluated as the logistic function ``expit(-(eps - mu)/T)``, which keeps
    full relative precision in both tails and never overflows.  At
    ``temperature = 0`` it is the step function with ``f = 1/2`` at
    ``eps == mu``.

    Parameters
    ----------
    eps : array_like
        Energies (energy units).
    mu : float
        Chemical potential.
    temperature : float
        k_B T in energy units, >= 0.

    Returns
    -------
    ndarray (or float for scalar input)
    """
    temperature = float(temperature)
    if not (temperature >= 0.0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite k_B T >= 0 (energy units), got {temperature}")
    eps = np.asarray(eps, dtype=np.float64)
    if temperature == 0.0:
        f = np.where(eps < mu, 1.0, np.where(eps > mu, 0.0, 0.5))
    else:
        f = expit(-(eps - mu) / temperature)
    return f if f.ndim else float(f)


def _gauss_panels(edges, order):
    """Gauss-Legendre nodes and weights on consecutive panels [e_j, e_j+1]."""
    t, wt = np.polynomial.legendre.leggauss(order)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = 0.5 * (hi - lo) * t + 0.5 * (hi + lo)
    weights = 0.5 * (hi - lo) * wt
    return nodes.ravel(), weights.ravel()


def intrinsic_hall_conductivity(model, mu, temperature=0.0, n=None, k_max=None, n_theta=64, k_breaks=(),
                                x=None, degtol=DEGTOL):
    """Intrinsic (Berry-curvature) Hall conductivity of a 2D model.

    ``sigma_xy = -(q^2/hbar) int[dk] sum_n f(eps_n(k)) Omega_n,z(k)``,
    ``int[dk] = int d^2k/(2pi)^2`` (docs/conventions.md), in units of e^2/hbar.  A
    filled band set of Chern number C gives ``-C/(2pi)``.

    * Lattice models: midpoint rule on the ``n x n`` BZ grid (default
      n = 128).  Exponentially accurate when mu lies in a gap at T = 0; with
      a Fermi surface the T = 0 step makes the error O(1/n) (use T > 0 or a
      finer grid).
    * Continuum models: polar grid over the disc ``|k| < k_max`` (default
      ``model.k_window``): Gauss-Legendre (order 8) on ``n`` equal radial
      panels (default n = 64), plus extra panel edges at ``k_breaks``, and
      ``n_theta`` uniform angles.  The result is the integral over the disc
      **only**: the tail ``|k| > k_max`` is left out.  For the massive Dirac
      model with a filled lower band that tail is
      ``(1/2pi)(s m/2)/E(k_max)`` (Omega_- = s m v^2/(2E^3) ~ 1/E^3), so
      choose k_max accordingly or add the tail analytically.  At T = 0 put
      the Fermi momenta in ``k_breaks`` (isotropic bands) so that every panel
      is smooth and the quadrature is accurate to round-off; otherwise the
      step costs O(panel width).

    Parameters
    ----------
    model : BandModel (2D)
    mu : float or array_like
        Chemical potential(s), energy units.  An array gives an array.
    temperature : float
        k_B T, energy units (0: step function).
    n : int, optional
        BZ grid size (lattice) or number of radial panels (continuum).
    k_max : float, optional
        Radial cut-off of continuum models (inverse length).
    n_theta : int
        Angles of the continuum polar grid.
    k_breaks : sequence of float
        Extra radial panel edges in (0, k_max) for continuum models.
    x : array_like, optional
        Position of the local Hamiltonian (textured models).

    Returns
    -------
    float or ndarray
        sigma_xy in e^2/hbar (multiply by 2 pi for e^2/h).
    """
    if model.dim != 2:
        raise ValueError(f"intrinsic_hall_conductivity is for 2D models; model {model.name!r} is {model.dim}D")
    mus = np.asarray(mu, dtype=np.float64)
    if not np.all(np.isfinite(mus)):
        raise ValueError("mu must be finite")
    fermi(0.0, 0.0, temperature)  # validates the temperature
    if model.lattice is not None:
        if k_max is not None or len(k_breaks):
            raise ValueError(f"k_max and k_breaks are for continuum models; model {model.name!r} is a lattice model "
                             "integrated over its Brillouin zone (use n to set the grid)")
        n = _check_grid(128 if n is None else n)
        b = model.lattice.reciprocal
        t = (np.arange(n) + 0.5) / n
        grid = (t[:, None, None] * b[0] + t[None, :, None] * b[1]).reshape(-1, 2)
        weights = np.full(grid.shape[0], abs(np.linalg.det(b)) / n ** 2)
    else:
        n = _check_grid(64 if n is None else n, "n (radial panels)")
        n_theta = _check_grid(n_theta, "n_theta")
        if k_max is None:
            k_max = model.k_window
        if k_max is None or not (float(k_max) > 0 and math.isfinite(float(k_max))):
            raise ValueError(f"continuum model {model.name!r}: give a finite k_max > 0 (the radial cut-off of the "
                             "k integral); the model has no k_window to default to")
        k_max = float(k_max)
        br = np.asarray(k_breaks, dtype=np.float64).ravel()
        if np.any(~np.isfinite(br)) or np.any(br <= 0) or np.any(br >= k_max):
            raise ValueError(f"k_breaks must lie strictly inside (0, k_max = {k_max}), got {br}")
        edges = np.unique(np.concatenate([np.linspace(0.0, k_max, n + 1), br]))
        r, wr = _gauss_panels(edges, 8)
        th = 2.0 * np.pi * np.arange(n_theta) / n_theta
        grid = np.stack([r[:, None] * np.cos(th), r[:, None] * np.sin(th)], axis=-1).reshape(-1, 2)
        weights = np.repeat(r * wr * (2.0 * np.pi / n_theta), n_theta)
    eps = model.energies(grid, x)
    om = berry_curvature(model, grid, x, degtol=degtol)
    wom = om * weights[:, None] / (2.0 * np.pi) ** 2
    flat = np.atleast_1d(mus)
    sig = np.array([-(fermi(eps, m_, temperature) * wom).sum() for m_ in flat])
    return float(sig[0]) if mus.ndim == 0 else sig.reshape(mus.shape)
