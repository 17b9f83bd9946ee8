"""External fields acting on the packets: uniform E(t), uniform B, scalar U(x).

Conventions (docs/conventions.md): carrier charge q = -1 (hbar = e = 1), so the
Lorentz force is hbar dk/dt = qE + q (dx/dt) x B and a static uniform E enters
the Hamiltonian as the potential energy -qE.x.  B is B_z in 2D (the packet
plane is xy) and a 3-vector in 3D; there is no B in 1D.

Time dependence of E is a user (or built-in) ``@njit`` function
``efield(t, p, out)`` filling ``out[dim]`` at time t from its float64
parameters ``p``; it is inlined into the kernels (docs/architecture.md), so AC,
pulsed or ramped fields cost nothing extra.  The scalar potential U(x)
(energy) is an ``@njit`` function ``potential(x, p, grad) -> U`` that returns
U and fills ``grad[dim]`` with dU/dx; it must vary slowly on the scale of the
packet (semiclassical validity is the user's responsibility).
"""
import math

import numba
import numpy as np

from . import compile_cache


@numba.njit
def efield_constant(t, p, out):
    """E(t) = p[0:dim] (static uniform field)."""
    for a in range(out.shape[0]):
        out[a] = p[a]


@numba.njit
def efield_ac(t, p, out):
    """E(t) = E_dc + E_ac cos(omega t + phase).

    Parameter layout: p = [E_dc (dim), E_ac (dim), omega, phase].
    """
    d = out.shape[0]
    c = math.cos(p[2 * d] * t + p[2 * d + 1])
    for a in range(d):
        out[a] = p[a] + p[d + a] * c


@numba.njit
def potential_none(x, p, grad):
    """U(x) = 0."""
    for a in range(grad.shape[0]):
        grad[a] = 0.0
    return 0.0


# library defaults called from Python (Field.E_at, checks): cached on disk like the engine's entry points
for _f in (efield_constant, efield_ac, potential_none):
    compile_cache.enable(_f)


class Field:
    """Uniform electric and magnetic fields and an optional scalar potential.

    Parameters
    ----------
    E : sequence of float, optional
        Static uniform electric field (energy / (e length)), length = dim.
    B : float or sequence of float, optional
        Uniform magnetic field (hbar/(e length^2)): a scalar B_z in 2D, a
        3-vector in 3D.  Not allowed in 1D.
    efield : numba dispatcher, optional
        ``@njit`` function ``efield(t, p, out)`` for a time-dependent E(t);
        ``E`` is then ignored and ``efield_params`` is passed as ``p``.
    efield_params : array_like of float
        Parameters of ``efield``.
    potential : numba dispatcher, optional
        ``@njit`` function ``potential(x, p, grad) -> U`` (energy).
    potential_params : array_like of float
    dim : int, optional
        Dimension; inferred from E when given.

    Examples
    --------
    >>> Field(E=(1e-3, 0.0))                   # static field along x
    >>> Field.ac(E_ac=(1e-3, 0), omega=0.2)     # E(t) = E_ac cos(omega t)
    """

    def __init__(self, E=None, B=None, *, efield=None, efield_params=(), potential=None, potential_params=(),
                 dim=None):
        if E is not None:
            E = np.atleast_1d(np.asarray(E, dtype=np.float64))
            if E.ndim != 1 or E.size not in (1, 2, 3):
                raise ValueError(f"E must be a vector of length 1, 2 or 3, got shape {E.shape}")
            if dim is not None and E.size != dim:
                raise ValueError(f"E has {E.size} components but dim={dim}")
            dim = E.size
        if dim is None:
            raise ValueError("give E (a vector) or dim so the field knows its dimension")
        self.dim = int(dim)
        if efield is not None:
            if not isinstance(efield, numba.core.registry.CPUDispatcher):
                raise TypeError("efield must be a @numba.njit function efield(t, p, out)")
            self.efield = efield
            self.efield_params = np.ascontiguousarray(np.atleast_1d(np.asarray(efield_params, dtype=np.float64)))
            self.static_E = None
        else:
            E = np.zeros(self.dim) if E is None else E
            self.efield = efield_constant
            self.efield_params = np.ascontiguousarray(E.copy())
            self.static_E = E.copy()
        if not np.all(np.isfinite(self.efield_params)):
            raise ValueError("electric-field parameters contain NaN or inf")
        # magnetic field, stored as a 3-vector (only B_z used in 2D)
        Bv = np.zeros(3)
        if B is not None:
            Bv_in = np.atleast_1d(np.asarray(B, dtype=np.float64))
            if self.dim == 1:
                raise ValueError("a magnetic field needs dim >= 2 (the orbital effect of B is undefined in 1D)")
            if self.dim == 2:
                if Bv_in.size != 1:
                    raise ValueError(f"in 2D give B as the scalar B_z, got {Bv_in.size} components")
                Bv[2] = Bv_in[0]
            else:
                if Bv_in.size != 3:
                    raise ValueError(f"in 3D give B as a 3-vector, got {Bv_in.size} components")
                Bv[:] = Bv_in
            if not np.all(np.isfinite(Bv)):
                raise ValueError("B contains NaN or inf")
        self.B = Bv
        if potential is not None and not isinstance(potential, numba.core.registry.CPUDispatcher):
            raise TypeError("potential must be a @numba.njit function potential(x, p, grad) -> U")
        self.potential = potential_none if potential is None else potential
        self.potential_params = np.ascontiguousarray(np.atleast_1d(np.asarray(potential_params, dtype=np.float64)))
        self.has_potential = potential is not None
        self._check_callbacks()

    @classmethod
    def ac(cls, E_ac, omega, phase=0.0, E_dc=None, B=None, **kw):
        """E(t) = E_dc + E_ac cos(omega t + phase) (for nonlinear / harmonic responses)."""
        E_ac = np.atleast_1d(np.asarray(E_ac, dtype=np.float64))
        E_dc = np.zeros_like(E_ac) if E_dc is None else np.atleast_1d(np.asarray(E_dc, dtype=np.float64))
        if E_dc.shape != E_ac.shape:
            raise ValueError("E_dc and E_ac must have the same length")
        p = np.concatenate([E_dc, E_ac, [omega, phase]])
        f = cls(B=B, efield=efield_ac, efield_params=p, dim=E_ac.size, **kw)
        f.ac_info = {"E_ac": E_ac, "E_dc": E_dc, "omega": float(omega), "phase": float(phase)}
        return f

    @property
    def has_B(self):
        return bool(np.any(self.B != 0.0))

    @property
    def time_dependent(self):
        return self.static_E is None

    def E_at(self, t):
        """E(t) evaluated on the host (for reports and conductivities)."""
        out = np.zeros(self.dim)
        self.efield(float(t), self.efield_params, out)
        return out

    def _check_callbacks(self):
        out = np.zeros(self.dim)
        for t in (0.0, 1.0, 10.0):
            self.efield(t, self.efield_params, out)
            if not np.all(np.isfinite(out)):
                raise ValueError(f"efield(t={t}) returned NaN/inf; check the function and its parameters")
        g = np.zeros(self.dim)
        u = self.potential(np.zeros(self.dim), self.potential_params, g)
        if not (np.isfinite(u) and np.all(np.isfinite(g))):
            raise ValueError("potential(x=0) returned NaN/inf; check the function and its parameters")

    def describe(self):
        d = {"dim": self.dim, "B": self.B.tolist(), "efield": getattr(self.efield, "__name__", str(self.efield)),
             "efield_params": self.efield_params.tolist(), "has_potential": self.has_potential,
             "potential": getattr(self.potential, "__name__", str(self.potential)),
             "potential_params": self.potential_params.tolist()}
        return d

    def __repr__(self):
        e = self.static_E.tolist() if self.static_E is not None else f"{self.efield.__name__}(t)"
        return f"Field(E={e}, B={self.B.tolist() if self.has_B else None}, U={'yes' if self.has_potential else None})"
