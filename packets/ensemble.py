"""The packet ensemble: structure-of-arrays state of many wave packets.

An :class:`Ensemble` holds the phase-space centres, band pseudospins and
statistical weights of ``n`` semiclassical wave packets (docs/conventions.md),
with packets along axis 0 so that the CPU and GPU drivers can read and write
them in place:

=========  ======================  ==============================================
attribute  dtype, shape            meaning
=========  ======================  ==============================================
``x``      float64[n, dim]         packet centre in real space (length)
``k``      float64[n, dim]         crystal momentum of the centre (1/length)
``chi``    complex128[n, nbands]   pseudospin amplitudes in the model's
                                   *orbital* basis, |chi| = 1 (Tu, Li & Yao, Eq. 10)
``band``   int64[n]                band index (adiabatic dynamics), or the band
                                   the packet was initialised in (coherent)
``weight`` float64[n]              statistical weight (see below)
``status`` int32[n]                0 = ok; other codes, see :data:`STATUS`
``pid``    int64[n]                packet ids, unique; key of the random stream
=========  ======================  ==============================================

The pseudospin is stored in the orbital basis, not the band basis: a packet
"in band n" has ``chi = u_n(x, k)``, the band-n eigenvector returned by
:meth:`packets.models.BandModel.bands`.  The coherent dynamics evolves chi in
this basis, so no Berry gauge has to be fixed along a trajectory
(docs/architecture.md, "Dynamics").

Weights convention
------------------
Ensemble sums are *densities*:

.. math::

    \\sum_i w_i\\, O_i \\;\\approx\\; \\int [dk] \\sum_n f_n(\\mathbf k)\\, O_n(\\mathbf k),
    \\qquad \\int [dk] = \\int \\frac{d^d k}{(2\\pi)^d},

per unit length/area/volume of the sample (one spin species, one valley —
the model's own degrees of freedom), with f_n the Fermi function of Tu, Li & Yao,
Eq. 46b.  So ``weight.sum()`` is the carrier density, and with O = -v the
weighted sum is the current density j = q sum_n int[dk] f_n v_n (Tu, Li & Yao,
Eq. 47, q = -1).  :meth:`Ensemble.gaussian_packet` and the default of
:meth:`Ensemble.from_arrays` instead give total weight 1 (one particle), so
their sums are single-particle expectation values.

Units: hbar = e = 1 (:mod:`packets.units`); energies and lengths in model units.
"""
import copy
import enum
import math

import numpy as np

from .state import ENSEMBLE as ENSEMBLE_COMPONENTS

__all__ = ["Ensemble", "STATUS", "STATUS_OK", "fermi", "model_signature", "DEFAULT_WINDOW_KT"]


def _status_codes():
    """Status codes {NAME: int} from :mod:`packets.status` (the registry the kernels use)."""
    try:
        from . import status as _status
    except ImportError:  # pragma: no cover - the registry module is part of the package
        return {"OK": 0}
    codes = {name: int(v) for name, v in vars(_status).items()
             if name.isupper() and isinstance(v, int) and not isinstance(v, bool) and not name.startswith("SOURCE_")}
    codes.setdefault("OK", 0)
    return codes


#: Per-packet status codes stored in ``Ensemble.status`` (int32), as an
#: IntEnum mirroring :mod:`packets.status` (where new codes are added).
#: ``STATUS.OK = 0`` means the packet is healthy; nonzero codes are set by the
#: dynamics kernels (docs/architecture.md: errors inside kernels are status codes,
#: never exceptions).  ``STATUS.OK`` and ``STATUS["OK"]`` both work; kernels
#: use the plain ints of :mod:`packets.status`.
STATUS = enum.IntEnum("STATUS", _status_codes(), module=__name__)

#: Plain-int alias of ``STATUS.OK`` for use inside kernels.
STATUS_OK = 0

#: Default half-width of the Fermi-surface window in units of k_B T: the
#: neglected tail of -df/d eps outside |eps - mu| < 20 T is ~ 2e-9 of its weight.
DEFAULT_WINDOW_KT = 20.0

# Attempts per packet and absolute floor for the rejection loop of
# Ensemble.fermi_surface (overridable with max_attempts=).
_MAX_ATTEMPTS_PER_PACKET = 1000
_MAX_ATTEMPTS_FLOOR = 10_000_000
_MAX_BATCH = 1 << 20


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def fermi(eps, mu, temperature):
    """Fermi-Dirac occupation f = 1 / (exp((eps - mu)/T) + 1) (Tu, Li & Yao, Eq. 46b).

    Evaluated as ``exp(-logaddexp(0, (eps - mu)/T))``, which neither overflows
    nor loses relative accuracy in either tail.  At ``temperature == 0`` the
    step function is returned, with f = 1/2 exactly at eps = mu.

    Parameters
    ----------
    eps : array_like
        Band energies (energy units).
    mu : float
        Chemical potential (energy units).
    temperature : float
        k_B T (energy units, k_B = 1), >= 0.

    Returns
    -------
    ndarray of float64, same shape as ``eps``.
    """
    eps = np.asarray(eps, dtype=np.float64)
    if temperature == 0.0:
        return np.where(eps < mu, 1.0, np.where(eps > mu, 0.0, 0.5))
    return np.exp(-np.logaddexp(0.0, (eps - mu) / temperature))


def model_signature(model):
    """Hashable identity of a band model, used to match ensembles to models.

    Returns a tuple ``(class name, model name, dim, nbands, params,
    lattice vectors or None, Hamiltonian filler)``; two models with the same
    signature have the same H(x, k).
    """
    h = getattr(model.h, "py_func", model.h)
    hname = f"{getattr(h, '__module__', '?')}.{getattr(h, '__qualname__', repr(h))}"
    lat = None if model.lattice is None else tuple(np.asarray(model.lattice.vectors, dtype=float).ravel().tolist())
    return (type(model).__name__, str(model.name), int(model.dim), int(model.nbands),
            tuple(float(p) for p in np.asarray(model.params).ravel()), lat, hname)


_SIGNATURE_FIELDS = ("model class", "model name", "dim", "nbands", "params", "lattice", "Hamiltonian filler")


def _new_seedsequence(seed):
    """SeedSequence from a user seed; its entropy (an int) is what we record."""
    if isinstance(seed, np.random.SeedSequence):
        ss = seed
    else:
        if seed is not None:
            if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
            seed = int(seed)
        ss = np.random.SeedSequence(seed)
    if not isinstance(ss.entropy, (int, np.integer)):
        raise ValueError("seed must be a single non-negative int (a sequence of ints cannot be recorded as one seed)")
    return ss, int(ss.entropy)


def _check_scalar(name, value, positive=False, nonneg=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v:g}")
    if nonneg and v < 0:
        raise ValueError(f"{name} must be >= 0, got {v:g}")
    return v


def _check_count(n, minimum=1, what="n"):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        else:
            raise ValueError(f"{what} must be an integer number of packets, got {n!r}")
    n = int(n)
    if n < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {n}")
    return n


def _check_bands(model, bands):
    """Validate a band selection; return a sorted int64 array."""
    nb = model.nbands
    if bands is None:
        return np.arange(nb, dtype=np.int64)
    b = np.atleast_1d(np.asarray(bands))
    if b.ndim != 1 or b.size == 0 or not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"bands must be an int or a non-empty list of band indices in 0..{nb - 1}, got {bands!r}")
    bad = b[(b < 0) | (b >= nb)]
    if bad.size:
        raise ValueError(f"band index {int(bad[0])} out of range: this model has {nb} bands, valid indices "
                         f"are 0..{nb - 1}")
    if np.unique(b).size != b.size:
        raise ValueError(f"bands contains duplicates: {b.tolist()}")
    return np.sort(b).astype(np.int64)


def _check_band_index(model, band):
    nb = model.nbands
    if isinstance(band, (bool, np.bool_)) or not isinstance(band, (int, np.integer)):
        raise ValueError(f"band must be an integer band index in 0..{nb - 1}, got {band!r}")
    if not 0 <= band < nb:
        raise ValueError(f"band index {band} out of range: this model has {nb} bands, valid indices are 0..{nb - 1}")
    return int(band)


def _as_vector(name, value, dim):
    """A point of length dim (a scalar is accepted in 1D)."""
    a = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if a.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},) for this {dim}-D model, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a.tolist()}")
    return a


def _as_sigma(name, value, dim):
    """Standard deviation: a scalar (isotropic) or one value per axis, >= 0."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(dim, float(a))
    if a.shape != (dim,):
        raise ValueError(f"{name} must be a scalar or have shape ({dim},), got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {a.tolist()}")
    return a


def _check_x_box(model, x_box):
    """Validate a real-space box [[lo_1, hi_1], ...]; None means x = 0."""
    if x_box is None:
        return None
    b = np.asarray(x_box, dtype=np.float64)
    if model.dim == 1 and b.shape == (2,):
        b = b[None, :]
    if b.shape != (model.dim, 2):
        raise ValueError(f"x_box must have shape ({model.dim}, 2) (rows [lo, hi] per axis), got shape {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 1] < b[:, 0]):
        raise ValueError(f"x_box rows must be finite [lo, hi] with lo <= hi, got {b.tolist()}")
    return b


def _sample_x(rng, model, x_box, m):
    if x_box is None:
        return np.zeros((m, model.dim))
    return x_box[:, 0] + (x_box[:, 1] - x_box[:, 0]) * rng.random((m, model.dim))


class _KRegion:
    """The k region sampled uniformly by the equilibrium samplers.

    Lattice models: the Brillouin-zone parallelepiped spanned by the
    reciprocal vectors, fractional coordinates in [-1/2, 1/2) (centred on
    Gamma), volume (2 pi)^d / V_cell.  Continuum models: the segment, disc
    or ball |k| < k_window centred on k = 0.
    """

    def __init__(self, model, k_window):
        self.dim = model.dim
        if model.is_lattice:
            if k_window is not None:
                raise ValueError("k_window applies to continuum models only; a lattice model is sampled over its "
                                 "whole Brillouin zone (drop k_window)")
            self.recip = np.asarray(model.lattice.reciprocal, dtype=np.float64)
            self.volume = float(abs(np.linalg.det(self.recip)))
            self.k_window = None
        else:
            if k_window is None:
                k_window = model.k_window
            if k_window is None:
                raise ValueError(f"model {model.name!r} is a continuum model without a default k_window; pass "
                                 "k_window= (the radius |k| < k_window that is sampled)")
            self.k_window = _check_scalar("k_window", k_window, positive=True)
            kw = self.k_window
            self.volume = {1: 2.0 * kw, 2: math.pi * kw ** 2, 3: 4.0 * math.pi * kw ** 3 / 3.0}[self.dim]

    def sample(self, rng, m):
        d = self.dim
        if self.k_window is None:
            frac = rng.random((m, d)) - 0.5
            return frac @ self.recip
        kw = self.k_window
        if d == 1:
            return kw * (2.0 * rng.random((m, 1)) - 1.0)
        # uniform in the ball: isotropic direction, radius with density ~ r^(d-1)
        u = rng.random(m)
        if d == 2:
            phi = 2.0 * math.pi * rng.random(m)
            r = kw * np.sqrt(u)
            return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        g = rng.standard_normal((m, 3))
        nrm = np.linalg.norm(g, axis=1)
        nrm[nrm == 0.0] = 1.0  # probability zero; avoids 0/0
        return (kw * np.cbrt(u))[:, None] * g / nrm[:, None]

    def describe(self):
        if self.k_window is None:
            return {"region": "Brillouin zone", "k_volume": self.volume}
        return {"region": "ball |k| < k_window", "k_window": self.k_window, "k_volume": self.volume}


def _band_overlap_argmax(model, x, k, chi):
    """Band with the largest |<u_n(x, k)|chi>|^2, per packet."""
    _, v = model.bands(k, x)
    ov = np.abs(np.einsum("pin,pi->pn", v.conj(), chi)) ** 2
    return np.argmax(ov, axis=1).astype(np.int64)


def _band_vectors(model, x, k, band):
    """chi = u_band(x, k) (column ``band`` of the eigenvector matrix)."""
    _, v = model.bands(k, x)
    return np.ascontiguousarray(v[np.arange(k.shape[0]), :, band])


# ----------------------------------------------------------------------------
# the ensemble
# ----------------------------------------------------------------------------


class Ensemble:
    """State of ``n`` wave packets as a structure of arrays (docs/conventions.md).

    Build one with a constructor: :meth:`fermi_sea` (equilibrium Fermi sea),
    :meth:`fermi_surface` (states in an energy window around mu),
    :meth:`gaussian_packet` (a cloud around one phase-space point) or
    :meth:`from_arrays` (your own arrays, validated).

    Weighted sums over the ensemble are densities per unit length/area/volume,
    sum_i w_i O_i = int[dk] sum_n f_n(k) O_n(k) with int[dk] = int d^dk/(2 pi)^d
    (Tu, Li & Yao, Eqs. 46b-47; see the module docstring), except for
    :meth:`gaussian_packet`, whose weights sum to one.

    Attributes
    ----------
    x, k : float64[n, dim]
        Centres in real space and crystal momenta.
    chi : complex128[n, nbands]
        Pseudospin amplitudes in the model's orbital basis, normalised.
    band : int64[n]
        Band index (initial band for coherent packets).
    weight : float64[n]
        Statistical weights.
    status : int32[n]
        Status codes, :data:`STATUS` (0 = ok).
    pid : int64[n]
        Unique packet ids (0..n-1 for a fresh ensemble; kept by
        :meth:`subset` and :meth:`concatenate`).
    model_signature : tuple
        :func:`model_signature` of the model it was built for.
    model_description : dict
        ``model.describe()`` (provenance).
    seed : int
        Entropy of the :class:`numpy.random.SeedSequence` used to draw it;
        passing it back as ``seed=`` reproduces the ensemble exactly.
    kind : str
        Name of the constructor that built it.
    info : dict
        Constructor parameters and diagnostics (mu, temperature, window, ...).
    """

    #: the per-packet arrays: the ensemble components of the one packet-state schema (packets.state)
    _ARRAYS = ENSEMBLE_COMPONENTS

    def __init__(self, x, k, chi, band, weight, *, status=None, pid=None, model_signature, seed, kind,
                 info=None, model_description=None):
        x = np.ascontiguousarray(x, dtype=np.float64)
        k = np.ascontiguousarray(k, dtype=np.float64)
        chi = np.ascontiguousarray(chi, dtype=np.complex128)
        n = x.shape[0]
        if x.ndim != 2 or k.shape != x.shape:
            raise ValueError(f"x and k must both have shape (n, dim), got {x.shape} and {k.shape}")
        if chi.ndim != 2 or chi.shape[0] != n:
            raise ValueError(f"chi must have shape ({n}, nbands), got {chi.shape}")
        self.x = x
        self.k = k
        self.chi = chi
        self.band = np.ascontiguousarray(band, dtype=np.int64)
        self.weight = np.ascontiguousarray(weight, dtype=np.float64)
        self.status = (np.zeros(n, dtype=np.int32) if status is None
                       else np.ascontiguousarray(status, dtype=np.int32))
        self.pid = np.arange(n, dtype=np.int64) if pid is None else np.ascontiguousarray(pid, dtype=np.int64)
        for name in ("band", "weight", "status", "pid"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        self.model_signature = tuple(model_signature)
        self.model_description = dict(model_description) if model_description is not None else None
        self.seed = int(seed)
        self.kind = str(kind)
        self.info = dict(info) if info is not None else {}

    # -- basic properties --------------------------------------------------------
    @property
    def n(self):
        """Number of packets."""
        return self.x.shape[0]

    @property
    def dim(self):
        """Spatial dimension."""
        return self.x.shape[1]

    @property
    def nbands(self):
        """Number of bands (length of chi)."""
        return self.chi.shape[1]

    def __len__(self):
        return self.n

    @property
    def nbytes_per_packet(self):
        """Bytes of state per packet summed over all per-packet arrays."""
        return int(sum(getattr(self, a).dtype.itemsize * int(np.prod(getattr(self, a).shape[1:]))
                       for a in self._ARRAYS))

    @property
    def nbytes(self):
        """Total bytes of the per-packet arrays."""
        return int(sum(getattr(self, a).nbytes for a in self._ARRAYS))

    def arrays(self):
        """The per-packet arrays as a dict (views, for saving)."""
        return {a: getattr(self, a) for a in self._ARRAYS}

    def __repr__(self):
        return (f"Ensemble(kind={self.kind!r}, n={self.n}, dim={self.dim}, nbands={self.nbands}, "
                f"model={self.model_signature[0]}{self.model_signature[4]}, seed={self.seed})")

    # -- model matching --------------------------------------------------------
    def check_model(self, model):
        """Raise ValueError unless this ensemble was built for ``model``.

        Compares :func:`model_signature` (class, name, dim, nbands, parameter
        values, lattice, Hamiltonian filler) and names every field that differs.
        """
        other = model_signature(model)
        if other == self.model_signature:
            return
        diffs = []
        for name, a, b in zip(_SIGNATURE_FIELDS, self.model_signature, other):
            if a != b:
                if name == "params" and self.model_description is not None and len(a) == len(b):
                    pn = list(self.model_description.get("params", {}).keys())
                    if len(pn) == len(a):
                        a = {p: v for p, v in zip(pn, a)}
                        b = {p: v for p, v in zip(pn, b)}
                diffs.append(f"{name}: ensemble {a!r} vs model {b!r}")
        raise ValueError("this ensemble was built for a different model (" + "; ".join(diffs) + "). Build the "
                         "ensemble with the model you simulate (same class and parameter values).")

    # -- copies, subsets, concatenation ----------------------------------------
    def _replace(self, **arrays):
        kw = {a: arrays.get(a, getattr(self, a)) for a in self._ARRAYS}
        return Ensemble(kw["x"], kw["k"], kw["chi"], kw["band"], kw["weight"], status=kw["status"], pid=kw["pid"],
                        model_signature=self.model_signature, seed=self.seed, kind=self.kind,
                        info=dict(self.info), model_description=self.model_description)

    def copy(self):
        """Deep copy (arrays and info are copied)."""
        new = self._replace(**{a: getattr(self, a).copy() for a in self._ARRAYS})
        new.info = _deepcopy_info(self.info)
        return new

    def subset(self, index):
        """Sub-ensemble of the packets selected by ``index`` (a copy).

        Parameters
        ----------
        index : slice, int array or bool mask of length n
            Which packets to keep.  Packets keep their ``pid`` and weights
            (so a weighted sum over a subset is the partial density of the
            selected packets).
        """
        if isinstance(index, slice):
            sel = index
        else:
            sel = np.asarray(index)
            if sel.dtype == bool:
                if sel.shape != (self.n,):
                    raise ValueError(f"a boolean mask must have shape ({self.n},), got {sel.shape}")
            elif np.issubdtype(sel.dtype, np.integer):
                sel = np.atleast_1d(sel)
                if sel.ndim != 1:
                    raise ValueError(f"index array must be 1-D, got shape {sel.shape}")
                if sel.size and (sel.min() < -self.n or sel.max() >= self.n):
                    raise ValueError(f"packet index out of range 0..{self.n - 1}")
            else:
                raise ValueError("index must be a slice, an integer array or a boolean mask")
        new = self._replace(**{a: np.ascontiguousarray(getattr(self, a)[sel]) for a in self._ARRAYS})
        if np.unique(new.pid).size != new.n:
            raise ValueError("index selects some packets more than once; packet ids must stay unique")
        new.info = _deepcopy_info(self.info)
        return new

    @classmethod
    def concatenate(cls, ensembles, renumber=False):
        """Join ensembles built for the same model into one.

        Weights are kept, so weighted sums add (e.g. an ensemble per band or
        per energy window joined into one).  Packet ids are kept and must be
        unique across the parts (they key each packet's random stream);
        concatenating independently built ensembles, whose ids all start at
        0, therefore needs ``renumber=True``, which assigns 0..n-1 in order.

        The result records the seed of the first part; ``info["parts"]``
        lists (kind, seed, n) of every part.
        """
        ensembles = list(ensembles)
        if not ensembles or not all(isinstance(e, Ensemble) for e in ensembles):
            raise ValueError("concatenate needs a non-empty list of Ensemble objects")
        first = ensembles[0]
        for e in ensembles[1:]:
            if e.model_signature != first.model_signature:
                raise ValueError("cannot concatenate ensembles built for different models "
                                 f"({first.model_signature[:2]} vs {e.model_signature[:2]}, or different parameters)")
        arrays = {a: np.concatenate([getattr(e, a) for e in ensembles]) for a in cls._ARRAYS}
        if renumber:
            arrays["pid"] = np.arange(arrays["x"].shape[0], dtype=np.int64)
        elif np.unique(arrays["pid"]).size != arrays["pid"].size:
            raise ValueError("packet ids would not be unique after concatenation (independently built ensembles "
                             "all number their packets from 0); pass renumber=True to assign fresh ids")
        kinds = {e.kind for e in ensembles}
        info = {"parts": [(e.kind, e.seed, e.n) for e in ensembles]}
        if len(ensembles) == 1:
            info.update(_deepcopy_info(first.info))
        return cls(arrays["x"], arrays["k"], arrays["chi"], arrays["band"], arrays["weight"],
                   status=arrays["status"], pid=arrays["pid"], model_signature=first.model_signature,
                   seed=first.seed, kind=first.kind if len(kinds) == 1 else "concatenate", info=info,
                   model_description=first.model_description)

    # -- constructors ------------------------------------------------------------
    @classmethod
    def fermi_sea(cls, model, mu, temperature, n, seed=None, bands=None, k_window=None, x_box=None):
        """Equilibrium Fermi sea: uniform k samples weighted by the Fermi function.

        Every selected band gets its own independent set of uniformly drawn
        k points; packet i of band b has ``chi = u_b(x_i, k_i)`` and weight

        .. math::

            w_i = f(\\varepsilon_b(\\mathbf k_i); \\mu, T)\\, \\frac{V_k}{(2\\pi)^d\\, n_b},

        with f the Fermi function (Tu, Li & Yao, Eq. 46b), V_k the volume of the
        sampled k region and n_b the number of packets of band b.  Then
        sum_i w_i O_i is an unbiased Monte Carlo estimate of
        int[dk] sum_b f_b O_b per unit length/area/volume.  When all f = 1
        (a filled band), every weight is exactly 1/(V_cell n_b) and the
        density has no statistical error.

        The n packets are split as evenly as possible between the selected
        bands (the first ``n % len(bands)`` bands get one more), stored band
        by band, ids 0..n-1.  Sampling is uniform (no importance sampling):
        every packet is kept, including those with f ~ 0, so the estimator is
        unbiased for any observable.  To spend the packets on the occupied
        states, shrink ``k_window`` (continuum) or choose ``bands``; for
        response carried by the Fermi surface use :meth:`fermi_surface`.

        Parameters
        ----------
        model : BandModel
        mu : float
            Chemical potential (energy units).
        temperature : float
            k_B T (energy units), >= 0; 0 gives the step function.
        n : int
            Number of packets, >= number of selected bands.
        seed : int, optional
            Seed of the numpy SeedSequence; default fresh entropy.  Recorded
            as ``ensemble.seed``.
        bands : int or sequence of int, optional
            Bands to populate (default all).  Bands left out are simply
            absent from the sums (e.g. ``bands=[1]`` gives the conduction-band
            density alone).
        k_window : float, optional
            Continuum models only: radius of the sampled region |k| < k_window
            (segment in 1D, disc in 2D, ball in 3D); default
            ``model.k_window``.  States outside the window are not
            represented, so a band that is filled beyond it (e.g. the Dirac
            valence band) is truncated: choose the window so that the states
            you need are inside.  Lattice models are sampled over the whole
            Brillouin zone (fractional coordinates in [-1/2, 1/2)).
        x_box : array_like, shape (dim, 2), optional
            Draw packet positions uniformly in this box ([lo, hi] per axis)
            and evaluate the bands at each position (textured models).
            Default: all packets at x = 0.  Weights are unchanged, so sums
            are densities averaged over the box.

        Returns
        -------
        Ensemble
            ``kind = "fermi_sea"``; ``info`` has mu, temperature, bands,
            n_per_band, the k region (k_volume, k_window) and x_box.
        """
        mu = _check_scalar("mu", mu)
        temperature = _check_scalar("temperature", temperature, nonneg=True)
        bands = _check_bands(model, bands)
        n = _check_count(n, minimum=bands.size)
        x_box = _check_x_box(model, x_box)
        region = _KRegion(model, k_window)
        ss, seed = _new_seedsequence(seed)
        rng = np.random.default_rng(ss)

        counts = np.full(bands.size, n // bands.size, dtype=np.int64)
        counts[: n % bands.size] += 1
        # draw all k first, then all x, band by band: a fixed order of draws
        ks = [region.sample(rng, int(c)) for c in counts]
        xs = [_sample_x(rng, model, x_box, int(c)) for c in counts]
        x = np.concatenate(xs)
        k = np.concatenate(ks)
        band = np.repeat(bands, counts)
        eps, vec = model.bands(k, x)
        rows = np.arange(n)
        f = fermi(eps[rows, band], mu, temperature)
        weight = f * (region.volume / (2.0 * math.pi) ** model.dim) / np.repeat(counts, counts)
        chi = np.ascontiguousarray(vec[rows, :, band])
        info = {"mu": mu, "temperature": temperature, "bands": bands.tolist(), "n_per_band": counts.tolist(),
                "x_box": None if x_box is None else x_box.tolist(), **region.describe()}
        return cls(x, k, chi, band, weight, model_signature=model_signature(model), seed=seed, kind="fermi_sea",
                   info=info, model_description=model.describe())

    @classmethod
    def fermi_surface(cls, model, mu, temperature, n, window=None, seed=None, bands=None, k_window=None,
                      x_box=None, max_attempts=None):
        """Packets in the energy window |eps - mu| < window, for Fermi-surface problems.

        Trial states (k, b) are drawn uniformly: k uniform over the Brillouin
        zone (lattice) or the ball |k| < k_window (continuum), b uniform among
        ``bands``.  A trial is accepted when |eps_b(k) - mu| < window; the
        draw stops at the n-th acceptance (inverse sampling), after N trials.
        The accepted states are then independent and uniform over the window
        region W of (k, b) space, and p = (n - 1)/(N - 1) is an unbiased
        estimate of its fraction of the sampled (k, b) volume.  Packet i gets
        ``chi = u_b(x_i, k_i)`` and weight

        .. math::

            w_i = f(\\varepsilon_b(\\mathbf k_i); \\mu, T)\\,
                  \\frac{n_{\\rm bands} V_k\\, p}{(2\\pi)^d\\, n},

        so sum_i w_i O_i is an unbiased estimate of
        int[dk] sum_b f_b O_b restricted to the window (Tu, Li & Yao, Eqs. 46b-47).
        ``info["acceptance"]`` (p) and ``info["attempts"]`` (N) give its
        statistical error: relative variance (1 - p)/n from the window volume
        plus var(w)/(n mean(w)^2) from the spread of f.  The factor p is
        common to all packets, so error bars formed from batches of packets
        (batch means, :mod:`packets.result`) do not include its relative
        uncertainty sqrt((1 - p)/n); add it in quadrature when it matters.
        ``info["window_states"]`` = n_bands V_k p/(2 pi)^d is the estimated
        number of states in the window per unit area (the integral of the
        density of states over the window, occupied or not).  At T = 0 the
        packets above mu have f = 0 and hence weight 0.

        The filled background is NOT represented.  States below the window
        (eps <= mu - window, f ~ 1) carry no packets, so weighted sums miss
        their density and everything they carry.  For the Fermi-surface
        (Boltzmann, extrinsic) part of linear response this is what one wants:
        the field-induced deviation f - f0 lives in the window, and the
        equilibrium current of the filled states vanishes.  But intrinsic
        (Fermi-sea) contributions of the filled states below the window, such
        as the anomalous Hall conductivity -q^2 int[dk] sum_n f_n Omega_n
        (docs/conventions.md), are absent and must be added separately, from
        ``packets.geometry.intrinsic_hall_conductivity``, or the problem run
        with a :meth:`fermi_sea` ensemble instead.  ``info["background"]`` records
        that and an unbiased MC estimate of the density below the window
        (from the rejected trials) for bookkeeping.

        Parameters
        ----------
        model : BandModel
        mu : float
            Chemical potential (energy units).
        temperature : float
            k_B T (energy units), >= 0.
        n : int
            Number of packets, >= 2.
        window : float, optional
            Half-width of the energy window (energy units).  Default
            ``DEFAULT_WINDOW_KT * temperature`` (20 T, where -df/deps has
            fallen to 2e-9 of its peak); required at T = 0.
        seed : int, optional
            SeedSequence seed (default fresh entropy), recorded.
        bands : int or sequence of int, optional
            Bands to sample (default all); band index out of range raises.
        k_window : float, optional
            Continuum models: sampled radius (default ``model.k_window``);
            window states beyond it are not represented.
        x_box : array_like, shape (dim, 2), optional
            Box for uniform positions (see :meth:`fermi_sea`).
        max_attempts : int, optional
            Hard cap on trials (default max(1e7, 1000 n)); reaching it raises
            a ValueError saying how many packets were found.

        Returns
        -------
        Ensemble
            ``kind = "fermi_surface"``.
        """
        mu = _check_scalar("mu", mu)
        temperature = _check_scalar("temperature", temperature, nonneg=True)
        if window is None:
            if temperature == 0.0:
                raise ValueError("fermi_surface at temperature 0 needs an explicit energy window= (half-width of "
                                 "|eps - mu| < window)")
            window = DEFAULT_WINDOW_KT * temperature
        window = _check_scalar("window", window, positive=True)
        bands = _check_bands(model, bands)
        n = _check_count(n, minimum=2)
        x_box = _check_x_box(model, x_box)
        region = _KRegion(model, k_window)
        if max_attempts is None:
            max_attempts = max(_MAX_ATTEMPTS_FLOOR, _MAX_ATTEMPTS_PER_PACKET * n)
        max_attempts = _check_count(max_attempts, minimum=n, what="max_attempts")
        ss, seed = _new_seedsequence(seed)
        rng = np.random.default_rng(ss)

        nsel = bands.size
        acc_x, acc_k, acc_b = [], [], []
        n_acc = 0
        attempts = 0
        bg_sum = bg_sq = ab_sum = 0.0   # f over rejected trials below / above the window
        emin = np.full(nsel, np.inf)
        emax = np.full(nsel, -np.inf)
        while n_acc < n:
            if attempts >= max_attempts:
                rng_txt = ", ".join(f"band {b}: [{lo:.4g}, {hi:.4g}]" for b, lo, hi in zip(bands, emin, emax))
                raise ValueError(
                    f"fermi_surface: only {n_acc} of {n} packets found in |eps - mu| < {window:g} around "
                    f"mu = {mu:g} after {attempts} trial states (acceptance ~ {n_acc / max(attempts, 1):.2e}). "
                    f"Sampled energy ranges: {rng_txt}. Widen window, check that mu lies inside a band "
                    f"(within k_window for continuum models), or raise max_attempts.")
            # batch size from the acceptance so far (a deterministic function of
            # the draws, so the same seed always gives the same ensemble)
            need = n - n_acc
            p_est = (n_acc + 1.0) / (attempts + 2.0)
            m = int(min(_MAX_BATCH, max_attempts - attempts, max(4096, math.ceil(1.2 * need / p_est))))
            k = region.sample(rng, m)
            choice = rng.integers(0, nsel, size=m)
            x = _sample_x(rng, model, x_box, m)
            eps_all = model.energies(k, x)
            b = bands[choice]
            e = eps_all[np.arange(m), b]
            np.minimum(emin, eps_all[:, bands].min(axis=0), out=emin)
            np.maximum(emax, eps_all[:, bands].max(axis=0), out=emax)
            inside = np.abs(e - mu) < window
            idx = np.flatnonzero(inside)
            if idx.size >= need:
                # stop at the n-th acceptance: trials after it are discarded
                last = idx[need - 1]
                idx = idx[:need]
                m_used = last + 1
            else:
                m_used = m
            rejected = ~inside[:m_used]
            below = rejected & (e[:m_used] <= mu - window)
            fb = fermi(e[:m_used][below], mu, temperature)
            bg_sum += float(fb.sum())
            bg_sq += float((fb * fb).sum())
            ab_sum += float(fermi(e[:m_used][rejected & ~below], mu, temperature).sum())
            acc_x.append(x[idx])
            acc_k.append(k[idx])
            acc_b.append(b[idx])
            n_acc += idx.size
            attempts += m_used

        x = np.concatenate(acc_x)
        k = np.concatenate(acc_k)
        band = np.concatenate(acc_b).astype(np.int64)
        eps, vec = model.bands(k, x)
        rows = np.arange(n)
        f = fermi(eps[rows, band], mu, temperature)
        p_hat = float((n - 1.0) / (attempts - 1.0)) if attempts > 1 else 1.0
        scale = nsel * region.volume / (2.0 * math.pi) ** model.dim
        weight = f * scale * p_hat / n
        chi = np.ascontiguousarray(vec[rows, :, band])
        # E[sum over failures of g] / (N - 1) is unbiased for E[g 1_fail] under
        # inverse sampling (given N the failures are iid from the rejected set)
        denom = max(attempts - 1.0, 1.0)
        bg_density = float(scale * bg_sum / denom)
        bg_err = scale * math.sqrt(max(bg_sq / denom - (bg_sum / denom) ** 2, 0.0) / denom)
        info = {"mu": mu, "temperature": temperature, "window": window, "bands": bands.tolist(),
                "attempts": int(attempts), "acceptance": p_hat, "max_attempts": int(max_attempts),
                "window_states": scale * p_hat,
                "x_box": None if x_box is None else x_box.tolist(), **region.describe(),
                "background": {
                    "represented": False,
                    "density_below_window": bg_density,
                    "density_below_window_stderr": bg_err,
                    "density_above_window": float(scale * ab_sum / denom),
                    "note": ("states with eps <= mu - window carry no packets: their density and their "
                             "intrinsic (Fermi-sea, Berry-curvature) currents are absent from ensemble sums; "
                             "add them from packets.geometry (e.g. intrinsic_hall_conductivity) or use "
                             "Ensemble.fermi_sea. Densities are MC estimates from the rejected trials, "
                             "restricted to the sampled k region and the selected bands."),
                }}
        return cls(x, k, chi, band, weight, model_signature=model_signature(model), seed=seed,
                   kind="fermi_surface", info=info, model_description=model.describe())

    @classmethod
    def gaussian_packet(cls, model, x0, k0, n, sigma_x, sigma_k, band=None, chi=None, seed=None):
        """A cloud of n packets around one phase-space point.

        x_i ~ N(x0, sigma_x^2) and k_i ~ N(k0, sigma_k^2), independently per
        axis (sigma = 0 puts every packet exactly at x0 / k0).  The pseudospin
        is either the band eigenvector ``u_band(x_i, k_i)`` (give ``band``)
        or a user vector ``chi`` in the orbital basis, normalised here, the
        same for every packet (give ``chi``); then ``band`` records, per
        packet, the band with the largest overlap |<u_n|chi>|^2.  Weights are
        1/n, so weighted sums are single-particle expectation values.

        Parameters
        ----------
        model : BandModel
        x0, k0 : array_like, shape (dim,)
            Centre of the cloud (length, 1/length).
        n : int
            Number of packets.
        sigma_x, sigma_k : float or array_like (dim,)
            Standard deviations of the cloud, >= 0.
        band : int, optional
            Band whose eigenvector initialises chi (0..nbands-1).
        chi : array_like, shape (nbands,), optional
            Initial pseudospin in the orbital basis (any nonzero norm).
        seed : int, optional
            SeedSequence seed (default fresh entropy), recorded.
        """
        if (band is None) == (chi is None):
            raise ValueError("gaussian_packet needs exactly one of band= (start in a band eigenstate) or chi= "
                             "(a pseudospin vector in the orbital basis)")
        x0 = _as_vector("x0", x0, model.dim)
        k0 = _as_vector("k0", k0, model.dim)
        n = _check_count(n)
        sx = _as_sigma("sigma_x", sigma_x, model.dim)
        sk = _as_sigma("sigma_k", sigma_k, model.dim)
        if band is not None:
            band = _check_band_index(model, band)
        else:
            c = np.asarray(chi, dtype=np.complex128)
            if c.shape != (model.nbands,):
                raise ValueError(f"chi must have shape ({model.nbands},) (one amplitude per orbital), got shape "
                                 f"{c.shape}")
            if not np.all(np.isfinite(c)):
                raise ValueError("chi must be finite")
            nrm = np.linalg.norm(c)
            if not nrm > 0.0:
                raise ValueError("chi has zero norm; give a nonzero pseudospin vector")
            chi = c / nrm
        ss, seed = _new_seedsequence(seed)
        rng = np.random.default_rng(ss)
        x = x0 + sx * rng.standard_normal((n, model.dim))
        k = k0 + sk * rng.standard_normal((n, model.dim))
        if band is not None:
            b = np.full(n, band, dtype=np.int64)
            c = _band_vectors(model, x, k, b)
        else:
            c = np.ascontiguousarray(np.broadcast_to(chi, (n, model.nbands)))
            b = _band_overlap_argmax(model, x, k, c)
        info = {"x0": x0.tolist(), "k0": k0.tolist(), "sigma_x": sx.tolist(), "sigma_k": sk.tolist(),
                "band": band, "chi": None if band is not None else chi.tolist()}
        return cls(x, k, c, b, np.full(n, 1.0 / n), model_signature=model_signature(model), seed=seed,
                   kind="gaussian_packet", info=info, model_description=model.describe())

    @classmethod
    def from_arrays(cls, model, x, k, chi=None, band=None, weight=None, seed=None, pid=None, status=None):
        """An ensemble from user arrays, validated.

        Parameters
        ----------
        model : BandModel
        x, k : array_like, shape (n, dim)
            Positions and crystal momenta (shape (n,) accepted in 1D).
        chi : array_like, shape (n, nbands), optional
            Pseudospins in the orbital basis; each must have norm 1 within
            1e-10 (normalise them yourself: this is a check that the state is
            what you meant).  Default: the eigenvector of ``band``.
        band : int or array_like (n,) of int, optional
            Band index per packet, 0..nbands-1.  Default (when chi is given):
            the band with the largest overlap |<u_n(x, k)|chi>|^2.  One of
            chi and band is required.
        weight : array_like (n,), optional
            Finite weights; default 1/n (total weight one).
        seed : int, optional
            Recorded as ``ensemble.seed`` (no random numbers are drawn here);
            default fresh entropy.
        pid, status : array_like (n,), optional
            Packet ids (unique; default 0..n-1) and status codes (default 0).
        """
        dim, nb = model.dim, model.nbands

        def arr(name, value, dtype, shape_txt):
            a = np.asarray(value)
            if np.issubdtype(a.dtype, np.complexfloating) and dtype is np.float64:
                raise ValueError(f"{name} must be real, got complex values")
            try:
                return np.ascontiguousarray(a, dtype=dtype)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a numeric array of shape {shape_txt}") from None

        x = arr("x", x, np.float64, f"(n, {dim})")
        k = arr("k", k, np.float64, f"(n, {dim})")
        if dim == 1:
            x = x.reshape(-1, 1) if x.ndim == 1 else x
            k = k.reshape(-1, 1) if k.ndim == 1 else k
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"x must have shape (n, {dim}) for this {dim}-D model, got shape {x.shape}")
        n = x.shape[0]
        if n == 0:
            raise ValueError("x is empty: an ensemble needs at least one packet")
        if k.shape != (n, dim):
            raise ValueError(f"k must have shape ({n}, {dim}) (same as x), got shape {k.shape}")
        for name, a in (("x", x), ("k", k)):
            bad = np.flatnonzero(~np.all(np.isfinite(a), axis=1))
            if bad.size:
                raise ValueError(f"{name} is NaN or infinite for packet {int(bad[0])} ({bad.size} packets in "
                                 f"total); give finite values")
        if chi is None and band is None:
            raise ValueError("from_arrays needs chi= (pseudospins) or band= (start in band eigenstates)")
        if band is not None:
            b = np.asarray(band)
            if b.ndim == 0:
                b = np.full(n, b)
            if not np.issubdtype(b.dtype, np.integer):
                raise ValueError(f"band must be integer band indices 0..{nb - 1}, got dtype {b.dtype}")
            if b.shape != (n,):
                raise ValueError(f"band must be an int or have shape ({n},), got shape {b.shape}")
            bad = np.flatnonzero((b < 0) | (b >= nb))
            if bad.size:
                raise ValueError(f"band index {int(b[bad[0]])} of packet {int(bad[0])} out of range: this model has "
                                 f"{nb} bands, valid indices are 0..{nb - 1}")
            b = b.astype(np.int64)
        if chi is not None:
            c = np.asarray(chi)
            try:
                c = np.ascontiguousarray(c, dtype=np.complex128)
            except (TypeError, ValueError):
                raise ValueError(f"chi must be a numeric array of shape ({n}, {nb})") from None
            if c.shape != (n, nb):
                raise ValueError(f"chi must have shape ({n}, {nb}) (packets x orbitals), got shape {c.shape}")
            bad = np.flatnonzero(~np.all(np.isfinite(c), axis=1))
            if bad.size:
                raise ValueError(f"chi is NaN or infinite for packet {int(bad[0])}; give finite values")
            nrm = np.linalg.norm(c, axis=1)
            bad = np.flatnonzero(np.abs(nrm - 1.0) > 1e-10)
            if bad.size:
                raise ValueError(f"chi is not normalised: |chi| = {nrm[bad[0]]:.12g} for packet {int(bad[0])} "
                                 f"({bad.size} packets off by more than 1e-10); normalise it, e.g. "
                                 "chi / np.linalg.norm(chi, axis=1, keepdims=True)")
            if band is None:
                b = _band_overlap_argmax(model, x, k, c)
        else:
            c = _band_vectors(model, x, k, b)
        if weight is None:
            w = np.full(n, 1.0 / n)
        else:
            w = arr("weight", weight, np.float64, f"({n},)")
            if w.ndim == 0:
                w = np.full(n, float(w))
            if w.shape != (n,):
                raise ValueError(f"weight must have shape ({n},), got shape {w.shape}")
            bad = np.flatnonzero(~np.isfinite(w))
            if bad.size:
                raise ValueError(f"weight is NaN or infinite for packet {int(bad[0])}; give finite values")
        if pid is not None:
            pid = np.asarray(pid)
            if pid.shape != (n,) or not np.issubdtype(pid.dtype, np.integer):
                raise ValueError(f"pid must be integer ids of shape ({n},), got {pid.dtype} {pid.shape}")
            if np.unique(pid).size != n:
                raise ValueError("pid must be unique (packet ids key the random streams)")
        if status is not None:
            status = np.asarray(status)
            if status.shape != (n,) or not np.issubdtype(status.dtype, np.integer):
                raise ValueError(f"status must be integer codes of shape ({n},), got {status.dtype} {status.shape}")
        _, seed = _new_seedsequence(seed)
        return cls(x, k, c, b, w, status=status, pid=pid, model_signature=model_signature(model), seed=seed,
                   kind="from_arrays", info={}, model_description=model.describe())


def _deepcopy_info(info):
    return copy.deepcopy(info)
