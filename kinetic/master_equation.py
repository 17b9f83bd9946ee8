"""Single-k pseudospin master equation: the exact reference for dephasing and coherent band dynamics.

The band pseudospin of one packet (fixed k, or k(t) along a driven path) is
an N-level density matrix obeying the Lindblad equation (dephasing in a basis)

    d rho/dt = -i [H, rho]
               + gamma sum_i (P_i rho P_i - {P_i, rho}/2)
               + sum_j (L_j rho L_j^dag - {L_j^dag L_j, rho}/2),

hbar = 1.  P_i = |b_i><b_i| are the projectors on an orthonormal basis
{b_i} (default: the eigenbasis of H).  Normalisation: since sum_i P_i = 1,
the dephasing term equals gamma (sum_i P_i rho P_i - rho), so in the basis
{b_i} populations are untouched and every coherence decays at the rate gamma
(not gamma/2, not 2 gamma): rho_ij(t) = rho_ij(0) e^{-i(e_i - e_j)t} e^{-gamma t}
when {b_i} is the eigenbasis (pure dephasing;
:func:`kinetic.closed_form.lindblad_dephasing_coherence`).  The general jump
operators L_j carry their rates (L_j = sqrt(Gamma_j) x operator).

Two independent forms are provided: :func:`lindblad_evolve` (density matrix;
exact Liouvillian exponential for static H, DOP853 otherwise) and, for two
levels, :func:`bloch_equations` (Bloch vector ODE, T2 = 1/gamma).
"""
import numpy as np
from scipy import integrate, linalg

__all__ = ["lindblad_evolve", "liouvillian", "bloch_equations", "bloch_vector", "density_from_bloch"]

_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------


def _hermitian(name, a, n=None, tol=1e-10):
    a = np.asarray(a, dtype=np.complex128)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} must be ({n}, {n}) to match the Hamiltonian, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite entries")
    scale = max(1.0, float(np.abs(a).max()))
    if np.abs(a - a.conj().T).max() > tol * scale:
        raise ValueError(f"{name} must be Hermitian (max |A - A^dag| = {np.abs(a - a.conj().T).max():.3g})")
    return 0.5 * (a + a.conj().T)


def _density(rho0, n):
    rho0 = _hermitian("rho0", rho0, n)
    tr = np.trace(rho0).real
    if abs(tr - 1.0) > 1e-8:
        raise ValueError(f"rho0 must have unit trace, got {tr:.12g}; normalise it (rho0 / trace(rho0))")
    lo = np.linalg.eigvalsh(rho0).min()
    if lo < -1e-10:
        raise ValueError(f"rho0 must be positive semidefinite, smallest eigenvalue {lo:.3g}")
    return rho0


def _times(times):
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times must be a non-empty 1D array, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("times must be finite")
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be non-decreasing (rho0 is the state at times[0]; dissipative "
                         "evolution cannot run backwards)")
    return t


def _unitary_basis(basis, n):
    b = np.asarray(basis, dtype=np.complex128)
    if b.shape != (n, n):
        raise ValueError(f"basis must be an ({n}, {n}) matrix whose columns are the basis vectors, got {b.shape}")
    if np.abs(b.conj().T @ b - np.eye(n)).max() > 1e-10:
        raise ValueError("basis columns must be orthonormal (basis^dag basis = 1)")
    return b


def _eigenbasis(h):
    w, v = np.linalg.eigh(h)
    gaps = np.diff(w)
    if gaps.size and gaps.min() < 1e-12 * max(1.0, np.abs(w).max()):
        raise ValueError("the Hamiltonian is degenerate, so its eigenbasis (the default dephasing basis) is "
                         "ambiguous; pass basis= explicitly")
    return v


# ----------------------------------------------------------------------------
# Lindblad equation
# ----------------------------------------------------------------------------


def liouvillian(H, dephasing_rate=0.0, basis=None, jump_ops=()):
    """Liouvillian superoperator L with d vec(rho)/dt = L vec(rho) (row-major vec).

    Uses vec(A rho B) = (A kron B^T) vec(rho) for row-major flattening:
    L = -i (H x 1 - 1 x H^T) + gamma (sum_i P_i x P_i^T - 1 x 1)
        + sum_j [L_j x conj(L_j) - (L_j^dag L_j x 1 + 1 x (L_j^dag L_j)^T)/2].

    Parameters
    ----------
    H : (N, N) Hermitian array
    dephasing_rate : float
        gamma >= 0 (coherences in ``basis`` decay at gamma; see module doc).
    basis : (N, N) array, optional
        Columns b_i of the dephasing basis; default the eigenbasis of H.
    jump_ops : sequence of (N, N) arrays
        L_j, rates included.

    Returns
    -------
    ndarray, shape (N^2, N^2), complex
    """
    H = _hermitian("H", H)
    n = H.shape[0]
    gamma = float(dephasing_rate)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"dephasing_rate must be a finite rate >= 0, got {dephasing_rate!r}")
    one = np.eye(n)
    L = -1j * (np.kron(H, one) - np.kron(one, H.T))
    if gamma > 0:
        b = _eigenbasis(H) if basis is None else _unitary_basis(basis, n)
        acc = np.zeros((n * n, n * n), complex)
        for i in range(n):
            p = np.outer(b[:, i], b[:, i].conj())
            acc += np.kron(p, p.T)
        L += gamma * (acc - np.eye(n * n))
    for j, lj in enumerate(jump_ops or ()):
        lj = np.asarray(lj, dtype=np.complex128)
        if lj.shape != (n, n):
            raise ValueError(f"jump_ops[{j}] must be an ({n}, {n}) matrix, got shape {lj.shape}")
        ll = lj.conj().T @ lj
        L += np.kron(lj, lj.conj()) - 0.5 * (np.kron(ll, one) + np.kron(one, ll.T))
    return L


def lindblad_evolve(H, rho0, times, dephasing_rate=0.0, basis=None, jump_ops=None, H_t=None, method=None,
                    rtol=1e-10, atol=1e-12):
    """Integrate the Lindblad equation of one pseudospin (module doc).

    d rho/dt = -i[H(t), rho] + gamma sum_i (P_i rho P_i - {P_i, rho}/2)
               + sum_j (L_j rho L_j^dag - {L_j^dag L_j, rho}/2),  hbar = 1,

    P_i = |b_i><b_i|, sum_i P_i = 1, so coherences in the basis {b_i} decay at
    exactly gamma.

    Parameters
    ----------
    H : (N, N) Hermitian array
        Static Hamiltonian (energy).  With ``H_t`` the Hamiltonian is
        H + H_t(t) (pass zeros for a purely time-dependent one).
    rho0 : (N, N) array
        Density matrix at t = times[0] (Hermitian, trace 1, positive).
    times : (nt,) array
        Non-decreasing output times; the first is the initial time.
    dephasing_rate : float
        gamma >= 0 (rate, energy units).
    basis : (N, N) array, None or "instantaneous"
        Dephasing basis, columns orthonormal.  None: eigenbasis of ``H``
        (must be non-degenerate when gamma > 0).  "instantaneous": eigenbasis
        of H + H_t(t) at every t (band-basis dephasing along a driven path;
        needs a non-degenerate spectrum along the path; ODE method only).
    jump_ops : sequence of (N, N) arrays, optional
        General jump operators L_j, rates included (L_j = sqrt(Gamma_j) O_j).
    H_t : callable, optional
        t -> (N, N) Hermitian array, added to H.
    method : {None, "expm", "ode"}
        "expm": rho(t) = exp(L (t - t0)) rho0 with the exact Liouvillian
        (scipy.linalg.expm; static H only).  "ode": scipy solve_ivp DOP853
        on the density matrix.  None: "expm" for static H, "ode" otherwise.
    rtol, atol : float
        ODE tolerances (DOP853).

    Returns
    -------
    ndarray, shape (nt, N, N), complex
        rho at each time.
    """
    H = _hermitian("H", H)
    n = H.shape[0]
    rho0 = _density(rho0, n)
    t = _times(times)
    gamma = float(dephasing_rate)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"dephasing_rate must be a finite rate >= 0, got {dephasing_rate!r}")
    jumps = []
    for j, lj in enumerate(jump_ops or ()):
        lj = np.asarray(lj, dtype=np.complex128)
        if lj.shape != (n, n) or not np.all(np.isfinite(lj)):
            raise ValueError(f"jump_ops[{j}] must be a finite ({n}, {n}) matrix, got shape {lj.shape}")
        jumps.append(lj)
    if H_t is not None and not callable(H_t):
        raise ValueError("H_t must be a callable t -> (N, N) Hermitian array")
    instantaneous = isinstance(basis, str)
    if instantaneous and basis != "instantaneous":
        raise ValueError(f"basis must be an (N, N) array, None or 'instantaneous', got {basis!r}")
    if instantaneous and H_t is None:
        basis = None  # the eigenbasis of a static H is the instantaneous one
        instantaneous = False
    if method is None:
        method = "expm" if H_t is None else "ode"
    if method not in ("expm", "ode"):
        raise ValueError(f"method must be None, 'expm' or 'ode', got {method!r}")
    if method == "expm" and H_t is not None:
        raise ValueError("method='expm' needs a time-independent Hamiltonian; use method='ode' with H_t")

    bstatic = None
    if gamma > 0 and not instantaneous:
        bstatic = _eigenbasis(H) if basis is None else _unitary_basis(basis, n)

    if method == "expm":
        L = liouvillian(H, gamma, bstatic, jumps)
        v0 = rho0.reshape(-1)
        out = np.empty((t.size, n, n), complex)
        for i, ti in enumerate(t):
            out[i] = (linalg.expm(L * (ti - t[0])) @ v0).reshape(n, n)
        return out

    lsum = sum((lj.conj().T @ lj for lj in jumps), np.zeros((n, n), complex))

    def hamiltonian(tt):
        if H_t is None:
            return H
        ht = np.asarray(H_t(tt), dtype=np.complex128)
        if ht.shape != (n, n):
            raise ValueError(f"H_t(t) must return an ({n}, {n}) array, got shape {ht.shape}")
        return H + ht

    def rhs(tt, y):
        rho = y.reshape(n, n)
        h = hamiltonian(tt)
        d = -1j * (h @ rho - rho @ h)
        if gamma > 0:
            b = np.linalg.eigh(h)[1] if instantaneous else bstatic
            # gamma (sum_i P_i rho P_i - rho) = -gamma x (off-diagonal part of rho in basis b)
            r = b.conj().T @ rho @ b
            r[np.diag_indices(n)] = 0.0
            d -= gamma * (b @ r @ b.conj().T)
        for lj in jumps:
            d += lj @ rho @ lj.conj().T
        if jumps:
            d -= 0.5 * (lsum @ rho + rho @ lsum)
        return d.reshape(-1)

    if t[-1] == t[0]:
        return np.repeat(rho0[None], t.size, axis=0)
    sol = integrate.solve_ivp(rhs, (t[0], t[-1]), rho0.reshape(-1).astype(complex), method="DOP853", t_eval=t,
                              rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T.reshape(t.size, n, n)


# ----------------------------------------------------------------------------
# two levels: Bloch equations
# ----------------------------------------------------------------------------


def bloch_vector(rho):
    """Bloch vector r_a = Tr(rho sigma_a) of a 2x2 density matrix (shape (..., 2, 2) -> (..., 3))."""
    rho = np.asarray(rho, dtype=np.complex128)
    if rho.shape[-2:] != (2, 2):
        raise ValueError(f"rho must have shape (..., 2, 2), got {rho.shape}")
    return np.einsum("...ij,aji->...a", rho, _PAULI).real


def density_from_bloch(r):
    """rho = (1 + r.sigma)/2 from a Bloch vector (shape (..., 3) -> (..., 2, 2))."""
    r = np.asarray(r, dtype=np.float64)
    if r.shape[-1:] != (3,):
        raise ValueError(f"r must have shape (..., 3), got {r.shape}")
    return 0.5 * (np.eye(2) + np.einsum("...a,aij->...ij", r, _PAULI))


def bloch_equations(h, r0, times, dephasing_rate=0.0, axis=None, h_t=None, rtol=1e-10, atol=1e-12):
    """Bloch equations of a dephased two-level system (second, independent form of the master equation).

    For H = h0 1 + h.sigma and dephasing projectors P_+/- = (1 +/- n.sigma)/2
    (the module's dephasing with N = 2), the Lindblad equation of :func:`lindblad_evolve`
    becomes, for r = Tr(rho sigma),

        dr/dt = 2 h x r - gamma [r - (r.n) n],

    i.e. precession at angular frequency 2|h| (the level splitting) and decay
    of the components transverse to n with T2 = 1/gamma; r.n is conserved by
    the dissipator.  Derivation: -i[h.sigma, r.sigma/2] = (h x r).sigma and
    sum_+/- P rho P - rho = -(r - (r.n)n).sigma/2.

    Parameters
    ----------
    h : array_like, shape (3,)
        Static field h (energy; the h0 part of H does not enter).
    r0 : array_like, shape (3,)
        Initial Bloch vector at times[0], |r0| <= 1.
    times : (nt,) array
        Non-decreasing output times.
    dephasing_rate : float
        gamma >= 0.
    axis : array_like, shape (3,), optional
        Dephasing axis n (normalised here); default h/|h| (eigenbasis
        dephasing).
    h_t : callable, optional
        t -> shape (3,) field added to h.  With gamma > 0 and no ``axis``,
        the axis follows the instantaneous field (instantaneous eigenbasis).
    rtol, atol : float
        DOP853 tolerances.

    Returns
    -------
    ndarray, shape (nt, 3)
    """
    h = np.asarray(h, dtype=np.float64)
    r0 = np.asarray(r0, dtype=np.float64)
    if h.shape != (3,) or r0.shape != (3,):
        raise ValueError(f"h and r0 must have shape (3,), got {h.shape} and {r0.shape}")
    if np.linalg.norm(r0) > 1 + 1e-10:
        raise ValueError(f"|r0| = {np.linalg.norm(r0):.6g} > 1 is not a physical state")
    t = _times(times)
    gamma = float(dephasing_rate)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"dephasing_rate must be a finite rate >= 0, got {dephasing_rate!r}")
    n_fixed = None
    if axis is not None:
        n_fixed = np.asarray(axis, dtype=np.float64)
        if n_fixed.shape != (3,) or np.linalg.norm(n_fixed) == 0:
            raise ValueError("axis must be a non-zero 3-vector")
        n_fixed = n_fixed / np.linalg.norm(n_fixed)
    elif gamma > 0 and h_t is None:
        if np.linalg.norm(h) == 0:
            raise ValueError("h = 0 is degenerate: its eigenbasis is ambiguous; pass axis=")
        n_fixed = h / np.linalg.norm(h)

    def rhs(tt, r):
        f = h if h_t is None else h + np.asarray(h_t(tt), dtype=np.float64)
        d = 2.0 * np.cross(f, r)
        if gamma > 0:
            nn = n_fixed if n_fixed is not None else f / np.linalg.norm(f)
            d -= gamma * (r - np.dot(r, nn) * nn)
        return d

    if t[-1] == t[0]:
        return np.repeat(r0[None], t.size, axis=0)
    sol = integrate.solve_ivp(rhs, (t[0], t[-1]), r0, method="DOP853", t_eval=t, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T
