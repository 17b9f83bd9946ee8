"""Disorder models: correlation spectra of a static random potential.

A disorder model describes a real, mean-zero, statistically homogeneous random
potential V(r) through its two-point correlation (Qi, Wang & Watson, Eq. 4.2;
docs/conventions.md)

.. math::

    \\langle V(\\mathbf r) V(\\mathbf r') \\rangle = R(\\mathbf r - \\mathbf r'),
    \\qquad \\hat R(\\mathbf q) = \\int d^d r\\, e^{-i\\mathbf q\\cdot\\mathbf r} R(\\mathbf r),

and enters the Born transition rate (Qi, Wang & Watson, Eqs. 4.14-4.15;
docs/conventions.md)

.. math::

    W(n\\mathbf k \\to m\\mathbf k') = 2\\pi \\hat R(\\mathbf k - \\mathbf k')
        |\\langle u_m(\\mathbf k')|u_n(\\mathbf k)\\rangle|^2
        \\delta(\\varepsilon_n(\\mathbf k) - \\varepsilon_m(\\mathbf k'))

(hbar = 1).  Units: R^ has units energy^2 x length^d (d = spatial dimension),
so that int[dk'] W is a rate (energy, hbar = 1).

Every model carries a kernel-callable spectrum ``spectrum(q, p) -> float``: a
plain ``@numba.njit`` function without signature (docs/architecture.md) taking the
momentum transfer ``q`` (float64 array of length dim) and the float64
parameter array ``p``; parameters travel in ``p`` so changing a number does not
recompile a kernel.  ``spectrum`` must return a finite value >= 0 for every q
(a power spectrum is non-negative by Bochner's theorem).

Lattice models
--------------
For lattice models the Born machinery evaluates R^ at the momentum transfer
folded into the reciprocal cell centred at 0 (see :mod:`scattering.born`).
This is the spectrum of the lattice-sampled potential when the correlation
length is longer than the lattice constant (the dominant mu = 0 term of the
sum over reciprocal vectors in Qi, Wang & Watson, Eq. 4.14); for on-site (Anderson)
disorder of variance w^2 per site, white noise of strength w^2 x cell volume
reproduces the usual on-site Born rate.
"""
import math

import numba
import numpy as np

from packets import compile_cache

try:  # numba >= 0.49
    from numba.core.dispatcher import Dispatcher as _Dispatcher
except ImportError:  # pragma: no cover - very old numba
    from numba.dispatcher import Dispatcher as _Dispatcher

__all__ = ["Disorder", "WhiteNoiseDisorder", "GaussianDisorder", "ScreenedCoulombDisorder", "UserDisorder",
           "white_noise_spectrum", "gaussian_spectrum", "screened_coulomb_spectrum"]


# ----------------------------------------------------------------------------
# Kernel spectra
# ----------------------------------------------------------------------------


@numba.njit
def white_noise_spectrum(q, p):
    """R^(q) = p[0] = n_i V0^2 (white noise, docs/conventions.md)."""
    return p[0]


@numba.njit
def gaussian_spectrum(q, p):
    """R^(q) = p[0] exp(-q^2 p[1]^2 / 2): Gaussian correlations, p = [W, xi]."""
    q2 = 0.0
    for a in range(q.shape[0]):
        q2 += q[a] * q[a]
    return p[0] * math.exp(-0.5 * q2 * p[1] * p[1])


@numba.njit
def screened_coulomb_spectrum(q, p):
    """R^(q) = n_i |V_q|^2 of screened Coulomb impurities, p = [n_i, Z, eps_r, q_TF, dim].

    2D: V_q = 2 pi Z / (eps_r (|q| + q_TF));  3D: V_q = 4 pi Z / (eps_r (q^2 + q_TF^2))
    (Gaussian units with e = 1).
    """
    q2 = 0.0
    for a in range(q.shape[0]):
        q2 += q[a] * q[a]
    if p[4] == 2.0:
        vq = 2.0 * math.pi * p[1] / (p[2] * (math.sqrt(q2) + p[3]))
    else:
        vq = 4.0 * math.pi * p[1] / (p[2] * (q2 + p[3] * p[3]))
    return p[0] * vq * vq


@numba.njit
def _spectrum_many(spectrum, qs, p, out):
    for i in range(qs.shape[0]):
        out[i] = spectrum(qs[i], p)


def evaluate_spectrum(disorder, q):
    """Evaluate ``disorder.spectrum`` at an array of momentum transfers (host helper).

    Parameters
    ----------
    disorder : Disorder
    q : array_like, shape (..., dim)
        Momentum transfers (inverse length).

    Returns
    -------
    ndarray, shape (...): R^(q) (energy^2 x length^dim).
    """
    q = np.asarray(q, dtype=np.float64)
    shape = q.shape[:-1]
    qq = np.ascontiguousarray(q.reshape(-1, q.shape[-1]))
    out = np.empty(qq.shape[0])
    compile_cache.specialise(_spectrum_many, spectrum=disorder.spectrum)(qq, disorder.params, out)
    return out.reshape(shape)


# ----------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------


def _nonneg(name, value, owner, allow_zero=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{owner}: {name} must be finite, got {v}")
    if v < 0 or (v == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be {need}, got {v}")
    return v


# ----------------------------------------------------------------------------
# Classes
# ----------------------------------------------------------------------------


class Disorder:
    """Base class of the disorder models.

    Attributes
    ----------
    spectrum : numba dispatcher
        Kernel-callable ``spectrum(q, p) -> float``: R^(q) (energy^2 length^d).
    params : ndarray, float64
        Parameter array passed as ``p``.
    param_names : tuple of str
        Names of the entries of ``params``.
    dim : int or None
        Spatial dimension the spectrum is defined for (None: any).
    """

    spectrum = None
    dim = None

    def __init__(self, spectrum, params, param_names, dim=None):
        self.spectrum = spectrum
        self.params = np.ascontiguousarray(np.atleast_1d(np.asarray(params, dtype=np.float64)))
        self.param_names = tuple(param_names)
        self.dim = None if dim is None else int(dim)

    def param_dict(self):
        """Parameters as an ordered {name: value} dict (provenance)."""
        return dict(zip(self.param_names, self.params.tolist()))

    def describe(self):
        """Dictionary describing the disorder model for result files."""
        return {"class": type(self).__name__, "params": self.param_dict(), "dim": self.dim,
                "spectrum": getattr(self.spectrum, "__name__", repr(self.spectrum))}

    def __call__(self, q):
        """R^(q) on the host, q of shape (..., dim)."""
        return evaluate_spectrum(self, q)

    def check_dim(self, dim):
        """Raise ValueError when the model is used in a space of the wrong dimension."""
        if self.dim is not None and self.dim != dim:
            raise ValueError(f"{type(self).__name__} is defined for dim={self.dim} but the band model is "
                             f"{dim}-D; construct it with dim={dim}")

    def __repr__(self):
        ps = ", ".join(f"{k}={v:g}" for k, v in self.param_dict().items())
        return f"{type(self).__name__}({ps})"


class WhiteNoiseDisorder(Disorder):
    """Delta-correlated disorder, <V(r)V(r')> = n_i V0^2 delta(r - r') (docs/conventions.md).

    Parameters
    ----------
    strength : float
        W = n_i V0^2 = R^(q) for all q (energy^2 x length^d).  For on-site
        lattice disorder of variance w^2 per site, W = w^2 x cell volume.
    """

    def __init__(self, strength):
        w = _nonneg("strength", strength, "WhiteNoiseDisorder")
        super().__init__(white_noise_spectrum, [w], ("strength",))

    @property
    def strength(self):
        return self.params[0]


class GaussianDisorder(Disorder):
    """Gaussian-correlated disorder.

    Defined by its spectrum (Qi, Wang & Watson, Eq. 4.2)

    .. math:: \\hat R(\\mathbf q) = W \\exp(-q^2 \\xi^2 / 2),

    i.e. in real space R(r) = W (2 pi xi^2)^(-d/2) exp(-r^2 / (2 xi^2)).
    ``strength`` W = R^(0) = int d^d r R(r) has the same meaning and units
    (energy^2 x length^d) as n_i V0^2 of white noise, in every dimension, so
    xi -> 0 recovers ``WhiteNoiseDisorder(W)``.  The on-site variance
    <V^2> = R(0) = W / (2 pi xi^2)^(d/2) depends on d (see :meth:`variance`).

    Parameters
    ----------
    strength : float
        W >= 0 (energy^2 x length^d).
    corr_length : float
        xi >= 0 (length).
    """

    def __init__(self, strength, corr_length):
        w = _nonneg("strength", strength, "GaussianDisorder")
        xi = _nonneg("corr_length", corr_length, "GaussianDisorder")
        super().__init__(gaussian_spectrum, [w, xi], ("strength", "corr_length"))

    @property
    def strength(self):
        return self.params[0]

    @property
    def corr_length(self):
        return self.params[1]

    def variance(self, dim):
        """<V(r)^2> = R(0) = W / (2 pi xi^2)^(dim/2) (energy^2); infinite for xi = 0."""
        xi = self.corr_length
        if xi == 0.0:
            return math.inf
        return self.strength / (2.0 * math.pi * xi * xi) ** (dim / 2.0)


class ScreenedCoulombDisorder(Disorder):
    """Randomly placed screened Coulomb impurities (Thomas-Fermi screening).

    Uncorrelated impurities of density n_i and charge Z e give
    R^(q) = n_i |V_q|^2 with, in Gaussian units and e = 1,

    * 2D: V_q = 2 pi Z / (eps_r (|q| + q_TF)),
    * 3D: V_q = 4 pi Z / (eps_r (q^2 + q_TF^2)),

    q_TF = 1 / screening_length.  With e = 1 the Coulomb coupling e^2 is one
    unit of energy x length of the band model; to use other units absorb the
    conversion into ``dielectric`` (e.g. energies in eV and lengths in nm:
    e^2/(4 pi eps0) = 1.44 eV nm, so pass dielectric = eps_r / 1.44).

    Parameters
    ----------
    density : float
        n_i >= 0 (length^-d).
    charge : float
        Z (units of e; the sign does not matter in Born approximation).
    screening_length : float
        lambda > 0 (length).
    dielectric : float
        eps_r > 0.
    dim : {2, 3}
    """

    def __init__(self, density, charge, screening_length, dielectric=1.0, dim=2):
        owner = "ScreenedCoulombDisorder"
        if dim not in (2, 3):
            raise ValueError(f"{owner}: dim must be 2 or 3, got {dim!r}")
        n = _nonneg("density", density, owner)
        try:
            z = float(charge)
        except (TypeError, ValueError):
            raise ValueError(f"{owner}: charge must be a real number, got {charge!r}") from None
        if not math.isfinite(z):
            raise ValueError(f"{owner}: charge must be finite, got {z}")
        lam = _nonneg("screening_length", screening_length, owner, allow_zero=False)
        eps = _nonneg("dielectric", dielectric, owner, allow_zero=False)
        super().__init__(screened_coulomb_spectrum, [n, z, eps, 1.0 / lam, float(dim)],
                         ("density", "charge", "dielectric", "q_TF", "dim"), dim=dim)


class UserDisorder(Disorder):
    """Disorder defined by the user's own kernel spectrum.

    Parameters
    ----------
    spectrum_njit : numba dispatcher
        ``@numba.njit`` function (no signature, kernel rules of docs/architecture.md)
        ``spectrum(q, p) -> float`` returning R^(q) >= 0 (energy^2 x
        length^d) for a float64 array q of length dim.  It is inlined into
        the scattering kernels.
    params : array_like of float
        Parameters passed as ``p``.
    dim : int or None
        Dimension the spectrum is written for; None means it must work for
        q of any length 1, 2, 3 (e.g. it depends on |q| through a loop).

    Raises
    ------
    ValueError
        If the function is not an njit dispatcher, or returns NaN, inf or a
        negative value on a test grid of q (including q = 0 and |q| up to
        1e4 along several directions).
    """

    _GRID = (0.0, 1e-8, 1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1e4)

    def __init__(self, spectrum_njit, params=(), dim=None, name=None):
        if not isinstance(spectrum_njit, _Dispatcher):
            raise ValueError("UserDisorder: spectrum must be a numba @njit function spectrum(q, p) -> float "
                             f"(decorate it with @numba.njit, without a signature); got {spectrum_njit!r}")
        if getattr(spectrum_njit, "_can_compile", True) is False:
            raise ValueError("UserDisorder: the spectrum was compiled with an explicit signature; define it with "
                             "plain @numba.njit (no signature) so that it can be inlined into CPU and CUDA kernels")
        if dim is not None and dim not in (1, 2, 3):
            raise ValueError(f"UserDisorder: dim must be 1, 2, 3 or None, got {dim!r}")
        p = np.atleast_1d(np.asarray(params, dtype=np.float64)) if np.size(params) else np.zeros(1)
        if p.ndim != 1 or not np.all(np.isfinite(p)):
            raise ValueError("UserDisorder: params must be a 1-D array of finite floats")
        names = tuple(f"p{i}" for i in range(p.size))
        super().__init__(spectrum_njit, p, names, dim=dim)
        self.name = name or getattr(spectrum_njit, "__name__", "user")
        self._validate()

    def _validate(self):
        rng = np.random.default_rng(12345)
        for d in ((1, 2, 3) if self.dim is None else (self.dim,)):
            dirs = [np.eye(d)[0], np.ones(d) / math.sqrt(d)] + [u / np.linalg.norm(u) for u in
                                                                 rng.normal(size=(3, d))]
            qs = np.array([s * g * e for e in dirs for g in self._GRID for s in (1.0, -1.0)])
            # the user's function on its own first: a mistake in it gives one line naming it,
            # not the typing errors of the loop that evaluates it
            try:
                v0 = self.spectrum(np.ascontiguousarray(qs[0]), self.params)
            except Exception as exc:
                first = next((ln for ln in str(exc).strip().splitlines() if ln.strip()), type(exc).__name__)
                raise ValueError(f"UserDisorder: calling spectrum(q, p) on its own with q a float64 array of length "
                                 f"{d} and p a float64 array of length {self.params.size} failed: "
                                 f"{first[:300]}") from None
            if isinstance(v0, (bool, np.bool_)) or not isinstance(v0, (float, int, np.floating, np.integer)):
                raise ValueError(f"UserDisorder: spectrum(q, p) returned {v0!r} ({type(v0).__name__}); it must return "
                                 "R^(q) as a float")
            try:
                vals = evaluate_spectrum(self, qs)
            except Exception as exc:  # compilation or typing error of the user's function
                raise ValueError(f"UserDisorder: calling spectrum(q, p) with q a float64 array of length {d} "
                                 f"failed: {exc}") from exc
            bad = ~np.isfinite(vals)
            if np.any(bad):
                q = qs[np.argmax(bad)]
                raise ValueError(f"UserDisorder {self.name!r}: spectrum returned NaN/inf at q = {q.tolist()}; "
                                 "R^(q) must be finite for every momentum transfer (include q = 0)")
            if np.any(vals < 0):
                i = int(np.argmin(vals))
                raise ValueError(f"UserDisorder {self.name!r}: spectrum returned a negative value {vals[i]:g} at "
                                 f"q = {qs[i].tolist()}; a correlation spectrum R^(q) is non-negative")

    def describe(self):
        d = super().describe()
        d["name"] = self.name
        return d
