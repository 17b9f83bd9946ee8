"""The band-model abstraction shared by every part of the simulator.

A :class:`BandModel` is a Bloch Hamiltonian H(x, k) of ``nbands`` bands in
``dim`` dimensions.  It is defined by three *kernel fillers*, plain
``@numba.njit`` functions without signatures that follow the kernel rules of
docs/architecture.md (no allocation, no exceptions), so that the CPU driver
and numba-cuda inline them into per-packet kernels:

``h(x, k, p, out)``
    fill ``out[nb, nb]`` (complex128) with H(x, k);
``dhdk(x, k, p, out, work)``
    fill ``out[dim, nb, nb]`` with dH/dk_a;
``dhdx(x, k, p, out, work)``
    fill ``out[dim, nb, nb]`` with dH/dx_a.

``x`` and ``k`` are float64 arrays of length ``dim``, ``p`` is the model's
float64 parameter array and ``work`` a complex128[nb, nb] scratch matrix that
fillers computing derivatives by finite differences may use (built-in models
ignore it).  Fillers may modify ``x``/``k`` temporarily but must restore them
bit for bit before returning.

Units: hbar = e = 1 (see :mod:`packets.units`).  Energies and lengths are in
the model's own units; k in inverse length.
"""
import numba
import numpy as np

from .. import compile_cache, linalg

# ----------------------------------------------------------------------------
# Lattice
# ----------------------------------------------------------------------------


class Lattice:
    """Bravais lattice with orbital positions.

    Parameters
    ----------
    vectors : array_like, shape (dim, dim)
        Primitive vectors a_i as rows (length units).
    orbitals : array_like, shape (nbands, dim), optional
        Cartesian positions tau_j of the orbitals in the unit cell.  They
        enter the Bloch-basis convention of tight-binding models (see
        :class:`packets.models.TightBinding`).
    """

    def __init__(self, vectors, orbitals=None):
        a = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"lattice vectors must be a square (dim, dim) array, got shape {a.shape}")
        if abs(np.linalg.det(a)) < 1e-12:
            raise ValueError("lattice vectors are linearly dependent (zero cell volume)")
        self.vectors = a
        self.dim = a.shape[0]
        self.orbitals = None if orbitals is None else np.atleast_2d(np.asarray(orbitals, dtype=np.float64))
        if self.orbitals is not None and self.orbitals.shape[1] != self.dim:
            raise ValueError(f"orbital positions must have shape (norb, {self.dim}), got {self.orbitals.shape}")

    @property
    def reciprocal(self):
        """Reciprocal primitive vectors b_i as rows, a_i . b_j = 2 pi delta_ij."""
        return 2.0 * np.pi * np.linalg.inv(self.vectors).T

    @property
    def cell_volume(self):
        """Unit-cell volume (area in 2D, length in 1D)."""
        return abs(np.linalg.det(self.vectors))

    @property
    def bz_volume(self):
        """Brillouin-zone volume (2 pi)^d / cell volume."""
        return (2.0 * np.pi) ** self.dim / self.cell_volume

    def bz_grid(self, n):
        """Uniform grid of ``n**dim`` k points covering the BZ parallelepiped.

        Returns an array of shape (n, ..., n, dim): point (i, j, ...) is
        sum_a (i_a / n) b_a.  Periodic in each index.
        """
        idx = np.stack(np.meshgrid(*([np.arange(n)] * self.dim), indexing="ij"), axis=-1) / n
        return idx @ self.reciprocal

    def __repr__(self):
        return f"Lattice(vectors={self.vectors.tolist()}, orbitals={None if self.orbitals is None else self.orbitals.tolist()})"


# ----------------------------------------------------------------------------
# Helper fillers
# ----------------------------------------------------------------------------


@numba.njit
def zero_derivative(x, k, p, out, work):
    """dH/dx (or dH/dk) filler for a Hamiltonian that does not depend on it."""
    for a in range(out.shape[0]):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                out[a, i, j] = 0.0


# ----------------------------------------------------------------------------
# The model class
# ----------------------------------------------------------------------------


class BandModel:
    """A band model: Hamiltonian fillers plus metadata.

    Parameters
    ----------
    name : str
        Human-readable name.
    dim : int
        Spatial dimension (1, 2 or 3).
    nbands : int
        Number of bands (size of H).
    params : array_like of float
        Parameter vector passed to the fillers as ``p`` (float64).  Changing
        values does not recompile kernels.
    h, dhdk, dhdx : numba dispatchers
        The kernel fillers described in the module docstring.
    lattice : Lattice or None
        Bravais lattice for lattice models; ``None`` for continuum models.
    param_names : sequence of str, optional
        Names of the entries of ``params`` (for reports and provenance).
    textured : bool
        True when H depends on x (dH/dx not identically zero).  Kernel
        factories compile the texture terms out when it is False.
    k_window : float, optional
        For continuum models, a natural k cut-off used by samplers and
        integrators (|k| beyond it is outside the model's validity).
    """

    def __init__(self, name, dim, nbands, params, h, dhdk, dhdx=None, *, lattice=None,
                 param_names=None, textured=False, k_window=None):
        if dim not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {dim}")
        if int(nbands) < 1:
            raise ValueError(f"nbands must be >= 1, got {nbands}")
        p = np.ascontiguousarray(np.atleast_1d(np.asarray(params, dtype=np.float64)))
        if p.ndim != 1:
            raise ValueError(f"params must be a 1-D float array, got shape {p.shape}")
        if not np.all(np.isfinite(p)):
            bad = [param_names[i] if param_names else str(i) for i in np.flatnonzero(~np.isfinite(p))]
            raise ValueError(f"model {name!r}: parameters {bad} are NaN or infinite; give finite values")
        if param_names is not None and len(param_names) != p.size:
            raise ValueError(f"model {name!r}: {len(param_names)} parameter names for {p.size} parameters")
        if lattice is not None and lattice.dim != dim:
            raise ValueError(f"model {name!r}: lattice is {lattice.dim}-D but the model is {dim}-D")
        self.name = name
        self.dim = int(dim)
        self.nbands = int(nbands)
        self.params = p
        self.h = h
        self.dhdk = dhdk
        self.dhdx = zero_derivative if dhdx is None else dhdx
        self.lattice = lattice
        self.param_names = tuple(param_names) if param_names is not None else tuple(f"p{i}" for i in range(p.size))
        self.textured = bool(textured) and dhdx is not None
        self.k_window = k_window

    # -- metadata -------------------------------------------------------------
    @property
    def is_lattice(self):
        """True for lattice models (periodic in k)."""
        return self.lattice is not None

    def param_dict(self):
        """Parameters as an ordered {name: value} dict (provenance)."""
        return dict(zip(self.param_names, self.params.tolist()))

    def describe(self):
        """Dictionary describing the model for result files."""
        return {"name": self.name, "class": type(self).__name__, "dim": self.dim, "nbands": self.nbands,
                "params": self.param_dict(), "lattice": None if self.lattice is None else self.lattice.vectors.tolist(),
                "textured": self.textured}

    def __repr__(self):
        ps = ", ".join(f"{k}={v:g}" for k, v in self.param_dict().items())
        return f"{type(self).__name__}({ps})"

    # -- vectorised NumPy conveniences ----------------------------------------
    def _points(self, k, x):
        """Flatten k (and broadcast x) to contiguous (npts, dim) arrays."""
        k = np.asarray(k, dtype=np.float64)
        if self.dim == 1 and (k.ndim == 0 or k.shape[-1] != 1):
            k = k[..., None]
        if k.ndim == 0 or k.shape[-1] != self.dim:
            raise ValueError(f"k must have a last axis of length dim={self.dim}, got shape {k.shape}")
        shape = k.shape[:-1]
        kk = np.array(k.reshape(-1, self.dim), dtype=np.float64, order="C")  # a writable copy
        if x is None:
            xx = np.zeros_like(kk)
        else:
            x = np.asarray(x, dtype=np.float64)
            if self.dim == 1 and (x.ndim == 0 or x.shape[-1] != 1):
                x = x[..., None]
            if x.shape[-1] != self.dim:
                raise ValueError(f"x must have a last axis of length dim={self.dim}, got shape {x.shape}")
            try:
                xx = np.array(np.broadcast_to(x, shape + (self.dim,)).reshape(-1, self.dim), dtype=np.float64,
                              order="C")  # fillers may shift x in place
            except ValueError:
                raise ValueError(f"x of shape {x.shape} does not broadcast against k of shape {k.shape}") from None
        if not (np.all(np.isfinite(kk)) and np.all(np.isfinite(xx))):
            raise ValueError("k and x must be finite (found NaN or inf)")
        return shape, kk, xx

    def hamiltonian(self, k, x=None):
        """H(x, k) at an array of points.

        Parameters
        ----------
        k : array_like, shape (..., dim)
        x : array_like, shape (..., dim) or (dim,), optional (default 0)

        Returns
        -------
        ndarray, complex128, shape (..., nbands, nbands)
        """
        shape, kk, xx = self._points(k, x)
        out = np.empty((kk.shape[0], self.nbands, self.nbands), dtype=np.complex128)
        compile_cache.specialise(_fill_h_many, hfun=self.h)(xx, kk, self.params, out)
        return out.reshape(shape + (self.nbands, self.nbands))

    def dhdk_matrices(self, k, x=None):
        """dH/dk_a at an array of points, shape (..., dim, nbands, nbands)."""
        shape, kk, xx = self._points(k, x)
        out = np.empty((kk.shape[0], self.dim, self.nbands, self.nbands), dtype=np.complex128)
        compile_cache.specialise(_fill_d_many, dfun=self.dhdk)(xx, kk, self.params, out)
        return out.reshape(shape + (self.dim, self.nbands, self.nbands))

    def dhdx_matrices(self, k, x=None):
        """dH/dx_a at an array of points, shape (..., dim, nbands, nbands)."""
        shape, kk, xx = self._points(k, x)
        out = np.empty((kk.shape[0], self.dim, self.nbands, self.nbands), dtype=np.complex128)
        compile_cache.specialise(_fill_d_many, dfun=self.dhdx)(xx, kk, self.params, out)
        return out.reshape(shape + (self.dim, self.nbands, self.nbands))

    def bands(self, k, x=None):
        """Band energies and Bloch eigenvectors at an array of points.

        Uses the same kernel eigensolver as the simulation (closed form for
        two bands, Jacobi otherwise).

        Returns
        -------
        energies : ndarray, shape (..., nbands), ascending
        vectors : ndarray, shape (..., nbands, nbands); column n is band n
        """
        shape, kk, xx = self._points(k, x)
        w = np.empty((kk.shape[0], self.nbands))
        v = np.empty((kk.shape[0], self.nbands, self.nbands), dtype=np.complex128)
        compile_cache.specialise(_bands_many, hfun=self.h)(xx, kk, self.params, w, v)
        return w.reshape(shape + (self.nbands,)), v.reshape(shape + (self.nbands, self.nbands))

    def energies(self, k, x=None):
        """Band energies only, shape (..., nbands)."""
        return self.bands(k, x)[0]

    def check(self, n=16, seed=0, tol=1e-10):
        """Validate the fillers at random points; raise ValueError on failure.

        Checks that H is finite and Hermitian, and that dH/dk (and dH/dx for
        textured models) agree with a fourth-order central finite difference
        of H to a relative ``1e-5`` (which catches sign and factor errors).
        Called by the library before a model is used in a simulation.
        """
        rng = np.random.default_rng(seed)
        kscale = 1.0 if self.lattice is None else np.pi
        if self.k_window is not None:
            kscale = min(kscale, 0.5 * self.k_window)
        k = rng.uniform(-kscale, kscale, size=(n, self.dim))
        x = rng.uniform(-1.0, 1.0, size=(n, self.dim))
        hm = self.hamiltonian(k, x)
        if not np.all(np.isfinite(hm)):
            raise ValueError(f"model {self.name!r}: the Hamiltonian filler produced NaN/inf at finite (x, k); "
                             "check the parameters and the filler function")
        err = np.max(np.abs(hm - np.conj(np.swapaxes(hm, -1, -2))))
        scale = max(1.0, np.max(np.abs(hm)))
        if err > tol * scale:
            raise ValueError(f"model {self.name!r}: H(x, k) is not Hermitian (max |H - H^dagger| = {err:.3e}); "
                             "the filler must write both H[i, j] and H[j, i] = conj(H[i, j])")
        for which, fd_axis in (("dhdk", "k"), ("dhdx", "x")):
            if which == "dhdx" and not self.textured:
                continue
            d = (self.dhdk_matrices if which == "dhdk" else self.dhdx_matrices)(k, x)
            fd = _fd_derivative(self, k, x, fd_axis)
            derr = np.max(np.abs(d - fd))
            dscale = max(1.0, np.max(np.abs(fd)))
            if not np.isfinite(derr) or derr > 1e-5 * dscale:
                raise ValueError(f"model {self.name!r}: {which} disagrees with a finite difference of H "
                                 f"(max error {derr:.3e}); check the derivative filler")


def _fd_derivative(model, k, x, axis, h=1e-4):
    """Fourth-order central finite difference of H along k or x (NumPy)."""
    out = np.empty(k.shape[:-1] + (model.dim, model.nbands, model.nbands), dtype=np.complex128)
    for a in range(model.dim):
        e = np.zeros(model.dim)
        e[a] = h
        def H(s):
            if axis == "k":
                return model.hamiltonian(k + s * e, x)
            return model.hamiltonian(k, x + s * e)
        out[..., a, :, :] = (-H(2) + 8 * H(1) - 8 * H(-1) + H(-2)) / (12 * h)
    return out


# loops over points behind the host API; called through compile_cache.specialise with the filler fixed,
# so that they are cached on disk by content (a dispatcher argument would defeat the cache)


@numba.njit
def _fill_h_many(hfun, xx, kk, p, out):
    for i in range(kk.shape[0]):
        hfun(xx[i], kk[i], p, out[i])


@numba.njit
def _fill_d_many(dfun, xx, kk, p, out):
    nb = out.shape[2]
    work = np.empty((nb, nb), dtype=np.complex128)
    for i in range(kk.shape[0]):
        dfun(xx[i], kk[i], p, out[i], work)


@numba.njit
def _bands_many(hfun, xx, kk, p, w, v):
    nb = w.shape[1]
    hm = np.empty((nb, nb), dtype=np.complex128)
    work = np.empty((nb, nb), dtype=np.complex128)
    for i in range(kk.shape[0]):
        hfun(xx[i], kk[i], p, hm)
        linalg.eigh(hm, w[i], v[i], work)
