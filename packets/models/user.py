"""A band model from the user's own ``@numba.njit`` Hamiltonian filler.

The user writes ``h(x, k, p, out)`` following the filler contract of
:mod:`packets.models.base` (fill every entry of the complex128
``out[nbands, nbands]`` with H(x, k); ``p`` is the float64 parameter array;
kernel rules of docs/architecture.md: no allocation, no raise, no signature).  The
derivative fillers ``dhdk`` / ``dhdx`` may be supplied; when they are not, a
factory closing over ``h`` builds them from the fourth-order central finite
difference

    dH/dk_a ~ [-H(k + 2h e_a) + 8 H(k + h e_a) - 8 H(k - h e_a) + H(k - 2h e_a)] / (12 h),

evaluating each H into the caller's ``work`` scratch matrix and shifting
``k[a]`` in place (restored bit for bit from a saved copy).  Error: truncation
(h^4 / 30) max|d^5 H/dk^5| plus round-off ~ 1.5 eps max|H| / h; with the
default h = 1e-3 (in the units of k, resp. x) and H varying on a scale of order
one this is ~ 1e-12 max|H|, i.e. ~ 1e-11 relative or better.  If H varies on
a scale L (in k or x), use a step ~ 1e-3 L.
"""
import numba
import numpy as np

from . import _validate
from .base import BandModel, Lattice


def make_fd_dhdk(h, step):
    """Fourth-order finite-difference dH/dk filler closing over the njit filler ``h``."""
    inv = 1.0 / (12.0 * step)

    @numba.njit
    def dhdk(x, k, p, out, work):
        dim = out.shape[0]
        nb = out.shape[1]
        for a in range(dim):
            k0 = k[a]
            for i in range(nb):
                for j in range(nb):
                    out[a, i, j] = 0.0
            for s in range(4):
                # stencil points k0 + 2h, k0 + h, k0 - h, k0 - 2h with weights -1, 8, -8, 1
                if s == 0:
                    k[a] = k0 + 2.0 * step
                    c = -1.0
                elif s == 1:
                    k[a] = k0 + step
                    c = 8.0
                elif s == 2:
                    k[a] = k0 - step
                    c = -8.0
                else:
                    k[a] = k0 - 2.0 * step
                    c = 1.0
                h(x, k, p, work)
                for i in range(nb):
                    for j in range(nb):
                        out[a, i, j] += c * work[i, j]
            k[a] = k0
            for i in range(nb):
                for j in range(nb):
                    out[a, i, j] *= inv

    return dhdk


def make_fd_dhdx(h, step):
    """Fourth-order finite-difference dH/dx filler closing over the njit filler ``h``."""
    inv = 1.0 / (12.0 * step)

    @numba.njit
    def dhdx(x, k, p, out, work):
        dim = out.shape[0]
        nb = out.shape[1]
        for a in range(dim):
            x0 = x[a]
            for i in range(nb):
                for j in range(nb):
                    out[a, i, j] = 0.0
            for s in range(4):
                if s == 0:
                    x[a] = x0 + 2.0 * step
                    c = -1.0
                elif s == 1:
                    x[a] = x0 + step
                    c = 8.0
                elif s == 2:
                    x[a] = x0 - step
                    c = -8.0
                else:
                    x[a] = x0 - 2.0 * step
                    c = 1.0
                h(x, k, p, work)
                for i in range(nb):
                    for j in range(nb):
                        out[a, i, j] += c * work[i, j]
            x[a] = x0
            for i in range(nb):
                for j in range(nb):
                    out[a, i, j] *= inv

    return dhdx


class _ReadRecorder(np.ndarray):
    """ndarray view that records the largest non-negative integer index read."""

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)) and idx >= 0:
            self.max_read = max(getattr(self, "max_read", -1), int(idx))
        return np.ndarray.__getitem__(self, idx)


class UserModel(BandModel):
    """Band model from a user ``@numba.njit`` filler ``h(x, k, p, out)``.

    Parameters
    ----------
    h : numba dispatcher
        ``h(x, k, p, out)`` writing H(x, k) (complex128, every entry) into
        ``out[nbands, nbands]``; plain ``@numba.njit`` without a signature.
    dim : {1, 2, 3}
    nbands : int
    params : array_like of float
        Passed to the fillers as ``p`` (float64); change values without
        recompiling by editing ``model.params`` in place.
    dhdk, dhdx : numba dispatchers, optional
        ``f(x, k, p, out, work)`` filling ``out[dim, nbands, nbands]``.
        Missing ones are built by fourth-order finite differences of ``h``
        (module docstring); ``dhdx`` only matters when ``textured``.
    lattice : Lattice or array_like (dim, dim), optional
        Lattice for a lattice model (periodic in k); ``None`` for continuum.
    textured : bool
        True if H depends on x.
    param_names : sequence of str, optional
        One name per entry of ``params``.
    name : str
    k_window : float, optional
        Momentum cut-off for continuum models.
    fd_step, fd_step_x : float
        Finite-difference steps in k (inverse length) and x (length) for the
        derivatives built here; default 1e-3 (``fd_step_x`` defaults to
        ``fd_step``).

    Raises
    ------
    ValueError
        If ``h`` is not an njit function, reads more parameters than given,
        writes outside the matrix, leaves entries unwritten, writes NaN, is not
        Hermitian, or a supplied derivative disagrees with H
        (``model.check()`` runs on construction).
    """

    def __init__(self, h, dim, nbands, params=(), dhdk=None, dhdx=None, lattice=None, textured=False,
                 param_names=None, name="user model", k_window=None, fd_step=1e-3, fd_step_x=None):
        _validate.njit_function("h", h)
        if isinstance(dim, bool) or dim not in (1, 2, 3):
            raise ValueError(f"parameter 'dim' must be 1, 2 or 3, got {dim!r}")
        if isinstance(nbands, bool) or not isinstance(nbands, (int, np.integer)) or nbands < 1:
            raise ValueError(f"parameter 'nbands' must be a positive int, got {nbands!r}")
        dim, nbands = int(dim), int(nbands)
        p = np.ascontiguousarray(np.atleast_1d(np.asarray(params, dtype=np.float64)))
        if p.ndim != 1:
            raise ValueError(f"params must be a 1-D sequence of floats, got shape {p.shape}")
        if param_names is not None and len(param_names) != p.size:
            raise ValueError(f"params must contain {len(param_names)} values (one per name in param_names "
                             f"{tuple(param_names)}), got {p.size}")
        if not np.all(np.isfinite(p)):
            bad = [param_names[i] if param_names else f"params[{i}]" for i in np.flatnonzero(~np.isfinite(p))]
            raise ValueError(f"parameters {bad} are NaN or infinite; give finite values")
        if lattice is not None and not isinstance(lattice, Lattice):
            lattice = Lattice(lattice)
        self.fd_dhdx = bool(textured) and dhdx is None
        if textured and dhdx is None:
            dhdx = make_fd_dhdx(h, _validate.real("fd_step_x", fd_step if fd_step_x is None else fd_step_x,
                                                  positive=True))
        elif dhdx is not None and not textured:
            raise ValueError("dhdx was given but textured=False; pass textured=True if H depends on x, "
                             "otherwise drop dhdx")
        elif dhdx is not None:
            _validate.njit_function("dhdx", dhdx)
        if dhdk is None:
            self.fd_dhdk = True
            dhdk = make_fd_dhdk(h, _validate.real("fd_step", fd_step, positive=True))
        else:
            self.fd_dhdk = False
            _validate.njit_function("dhdk", dhdk)
        if k_window is not None:
            k_window = _validate.real("k_window", k_window, positive=True)
        _precheck(h, dim, nbands, p)
        super().__init__(name, dim, nbands, p, h, dhdk, dhdx, lattice=lattice, param_names=param_names,
                         textured=textured, k_window=k_window)
        self.check()


def _precheck(h, dim, nb, p):
    """Run the filler once as plain Python (bounds-checked) and once compiled (every entry written)."""
    rng = np.random.default_rng(12345)
    x = rng.uniform(-0.5, 0.5, dim)
    k = rng.uniform(-0.5, 0.5, dim)
    # plain Python run: IndexError tells which array was over-indexed
    prec = np.concatenate([p, np.zeros(256)]).view(_ReadRecorder)
    out = np.full((nb, nb), np.nan + 0j)
    try:
        h.py_func(x.copy(), k.copy(), prec, out)
    except IndexError as exc:
        raise ValueError(f"the filler h indexed outside an array ({exc}); check that it writes only "
                         f"out[i, j] with i, j < nbands = {nb} and reads x[a], k[a] with a < dim = {dim}") from None
    except Exception:  # noqa: BLE001 - code valid only under numba; rely on the compiled checks below
        pass
    else:
        used = getattr(prec, "max_read", -1) + 1
        if used > p.size:
            raise ValueError(f"the filler h reads p[{used - 1}] but params has {p.size} values; "
                             f"params must contain {used} values")
    out = np.full((nb, nb), np.nan + 0j)
    try:
        h(x, k, p, out)
    except Exception as exc:  # numba typing errors: say which function failed
        raise ValueError(f"calling the user filler h(x, k, p, out) failed: {type(exc).__name__}: {exc}") from None
    bad = np.argwhere(~np.isfinite(out))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"the filler wrote NaN/inf or left entry H[{i}, {j}] unwritten at x={x.tolist()}, "
                         f"k={k.tolist()}; it must write every entry of out[{nb}, {nb}] with finite values")
