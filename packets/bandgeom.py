"""Kernel-callable band geometry at one phase-space point.

Every function here follows the kernel rules of docs/architecture.md (plain
``@numba.njit`` without a signature, no allocation, no exceptions, no array
methods), so the CPU drivers and numba-cuda device code call the very same
formulas.  The vectorised user-facing versions live in
:mod:`packets.geometry`, whose docstring states the conventions in full.

Inputs shared by all functions
------------------------------
w : float64[nb]
    Band energies at the point, ascending (from :func:`packets.linalg.eigh`).
ma, mb : complex128[nb, nb]
    Band-basis derivative matrices ``M^a = V^dagger (dH/dlambda_a) V``, i.e.
    ``M^a_nm = <u_n| d_a H |u_m>``, from :func:`band_derivative_matrices`.
    ``lambda`` runs over phase space (x_1..x_d, k_1..k_d) as in Tu, Li & Yao,
    Eq. (13), so passing dH/dk or dH/dx matrices gives the k-k, k-x and x-x
    components with the same functions.  For ``lambda = k`` (hbar = 1),
    ``M^a`` is the velocity matrix.
n, m : int
    Band indices (0-based, ascending energy).
degtol : float
    Degeneracy tolerance (absolute, in model energy units).

Why sum over states
-------------------
For n != m, differentiating ``H|u_m> = w_m|u_m>`` gives
``<u_n|d_a u_m> = M^a_nm / (w_m - w_n)``.  Every geometric quantity is then a
sum over states of products ``M^a_nm M^b_mn`` divided by powers of energy
differences: gauge invariant by construction (the phases of ``|u_n>`` cancel
in each product), no derivative of an eigenvector is ever taken, and the
result is exact (no finite-difference step).

Degenerate rule
---------------
A pair (n, m) with ``|w_n - w_m| <= degtol`` contributes **zero**.  Within a
degenerate subspace the individual eigenvectors are not defined (any rotation
is as good), so the terms ``<u_n|d_a u_m>`` between degenerate partners are
not defined for a single band; moreover Tu, Li & Yao, Eq. (12) shows that
``M^a_nm = 0`` between exactly degenerate bands, so the 0/0 is resolved to 0.
The single-band quantities then contain only the coupling to the
non-degenerate bands; for a degenerate multiplet the meaningful (gauge
covariant) object is the non-Abelian curvature of the multiplet taken as
the manifold (:func:`nonabelian_curvature`), whose trace is gauge invariant.
With this rule the functions never produce NaN or inf.  Close to (but not
at) a degeneracy the results are large, as the physics says
(``~ 1/gap^2``).
"""
import numba

from .jit import kernel

from . import linalg

#: Default degeneracy tolerance: absolute, in model energy units.  Pairs of
#: bands closer than this are treated as exactly degenerate (see the module
#: docstring).  1e-10 sits well above the eigensolver's round-off
#: (~1e-15 x energy scale) and well below any physical gap of models whose
#: energy scale is O(1e-3..1e3) in their own units.
DEGTOL = 1e-10


@kernel
def band_derivative_matrices(v, dh, out):
    """Band-basis derivative matrices ``out[a] = V^dagger dh[a] V``.

    Parameters
    ----------
    v : complex128[nb, nb]
        Eigenvectors (columns) of H at the point.
    dh : complex128[nd, nb, nb]
        dH/dlambda_a in the orbital basis (from a model's ``dhdk``/``dhdx``
        filler).
    out : complex128[nd, nb, nb]
        Output, ``out[a, n, m] = <u_n| d_a H |u_m>``.  For ``lambda = k`` and
        hbar = 1 this is the velocity matrix (Tu, Li & Yao, Eq. 11).
    """
    for a in range(dh.shape[0]):
        linalg.sandwich(v, dh[a], out[a])


@kernel
def interband_connection(w, ma, n, m, degtol):
    """Interband Berry connection ``A^a_nm = i<u_n|d_a u_m>`` for n != m.

    ``A^a_nm = i M^a_nm / (w_m - w_n)`` (Tu, Li & Yao, Eq. 13 with
    ``<u_n|d_a u_m> = M^a_nm/(w_m - w_n)``).  Length units for
    ``lambda = k``.  Gauge covariant: it picks up the phases of ``u_n`` and
    ``u_m``.  Returns 0 for n == m (the diagonal connection is gauge
    dependent and is not computed here) and for degenerate pairs
    (``|w_n - w_m| <= degtol``).

    Returns
    -------
    complex
    """
    if n == m:
        return 0j
    dw = w[m] - w[n]
    if abs(dw) <= degtol:
        return 0j
    return 1j * ma[n, m] / dw


@kernel
def curvature(w, ma, mb, n, degtol):
    """Abelian Berry curvature ``Omega_n^{ab}`` of band n.

    ``Omega_n^{ab} = d_a R_b - d_b R_a = -2 Im<d_a u_n|d_b u_n>``
    (Tu, Li & Yao, Eq. 44; docs/conventions.md) in sum-over-states form::

        Omega_n^{ab} = -2 Im sum_{m != n} M^a_nm M^b_mn / (w_n - w_m)^2

    With ``a = k_x``, ``b = k_y`` this is ``Omega_z`` (area units, length^2).
    Antisymmetric in (a, b).  Degenerate partners are skipped (module
    docstring).

    Returns
    -------
    float
    """
    acc = 0.0
    for m in range(w.shape[0]):
        if m == n:
            continue
        dw = w[n] - w[m]
        if abs(dw) <= degtol:
            continue
        acc += (ma[n, m] * mb[m, n]).imag / (dw * dw)
    return -2.0 * acc


@kernel
def metric(w, ma, mb, n, degtol):
    """Quantum metric ``g_n^{ab} = Re<d_a u_n|(1 - P_n)|d_b u_n>`` of band n.

    Sum-over-states form of the quantum metric (defined on Balents 2025
    slides, "Bands")::

        g_n^{ab} = Re sum_{m != n} M^a_nm M^b_mn / (w_n - w_m)^2

    Symmetric, positive semi-definite; length^2 for k-k.  Degenerate
    partners are skipped (module docstring).

    Returns
    -------
    float
    """
    acc = 0.0
    for m in range(w.shape[0]):
        if m == n:
            continue
        dw = w[n] - w[m]
        if abs(dw) <= degtol:
            continue
        acc += (ma[n, m] * mb[m, n]).real / (dw * dw)
    return acc


@kernel
def orbital_moment(w, ma, mb, n, degtol):
    """Component c of the orbital magnetic moment of band n, (a, b, c) cyclic.

    ``m_n = -i (e/2hbar) <grad u_n| x (H - eps_n) |grad u_n>`` for carriers of
    charge q = -e (Xiao, Chang & Niu, Rev. Mod. Phys. 82, 1959 (2010); the
    moment of Wong & Tserkovnyak 2021, Eq. 35, energy shift ``-m.B``), in
    sum-over-states form with e = hbar = 1::

        m^c_n = sum_{m != n} Im(M^a_nm M^b_mn) / (w_m - w_n)

    Pass ``ma = M^{k_a}``, ``mb = M^{k_b}`` with (a, b, c) cyclic, e.g.
    (k_x, k_y) for m_z.  Units: e x energy x length^2 / hbar (code units).
    Check (Wong & Tserkovnyak 2021, Sec. III A): the massive Dirac model
    gives
    ``m_z = -s m v^2 / (2 E_k^2)`` for both bands.  Degenerate partners are
    skipped (module docstring).

    Returns
    -------
    float
    """
    acc = 0.0
    for m in range(w.shape[0]):
        if m == n:
            continue
        dw = w[m] - w[n]
        if abs(dw) <= degtol:
            continue
        acc += (ma[n, m] * mb[m, n]).imag / dw
    return acc


@kernel
def bcp(w, ma, mb, n, degtol):
    """Berry connection polarizability ``G_n^{ab}`` of band n.

    Gao, Yang & Niu, PRL 112, 166601 (2014) (the field-induced Berry
    connection of Lu & Zhou 2016, §4.2, ``A'_a = G_ab E_b`` to first order
    in a uniform field E), with e = 1::

        G_n^{ab} = 2 Re sum_{m != n} A^a_nm A^b_mn / (eps_n - eps_m)
                 = 2 Re sum_{m != n} M^a_nm M^b_mn / (w_n - w_m)^3

    It is also the second derivative of the second-order Stark shift of band
    n, ``eps_n^(2) = (1/2) G^{ab} E_a E_b`` (independent of the sign of the
    carrier charge).  The "band-normalised quantum metric" of Balents 2025
    slides is ``T_n = -G_n``.  Symmetric; units length^3/energy for k-k.
    For a two-band model ``H = d0 + d.sigma`` it equals
    ``+ (d_a dhat . d_b dhat) / (4|d|)`` for the **upper** band and minus
    that for the lower band (level repulsion lowers the lower band).
    Degenerate partners are skipped (module docstring).

    Returns
    -------
    float
    """
    acc = 0.0
    for m in range(w.shape[0]):
        if m == n:
            continue
        dw = w[n] - w[m]
        if abs(dw) <= degtol:
            continue
        acc += (ma[n, m] * mb[m, n]).real / (dw * dw * dw)
    return 2.0 * acc


@kernel
def nonabelian_curvature(w, ma, mb, lo, hi, n, m, degtol):
    """Non-Abelian Berry curvature ``F^{ab}_nm`` of the manifold [lo, hi).

    Tu, Li & Yao, Eqs. (40)-(41): with ``Q_r`` the projector on the remote
    bands r = all bands outside [lo, hi),
    ``F_nm = i<d_a u_n|Q_r|d_b u_m> - i<d_b u_n|Q_r|d_a u_m>``, i.e. in
    sum-over-states form::

        F^{ab}_nm = i sum_{l in r} [M^a_nl M^b_lm - M^b_nl M^a_lm]
                               / ((w_n - w_l)(w_m - w_l))

    for n, m in [lo, hi) (absolute band indices).  This is the remote-band
    contribution, i.e. the covariant curvature of the manifold written in
    its eigenbasis: it transforms as ``U^dagger F U`` under a rotation U of
    the manifold basis, so its trace (and eigenvalues) are gauge invariant.
    For a single-band manifold ``F_nn = Omega_n`` (:func:`curvature`).  A
    remote band degenerate (within degtol) with a manifold band contributes
    zero (the manifold is then not separated from r; choose it differently).

    Returns
    -------
    complex
    """
    acc = 0j
    for l in range(w.shape[0]):
        if l >= lo and l < hi:
            continue
        dn = w[n] - w[l]
        dm = w[m] - w[l]
        if abs(dn) <= degtol or abs(dm) <= degtol:
            continue
        acc += (ma[n, l] * mb[l, m] - mb[n, l] * ma[l, m]) / (dn * dm)
    return 1j * acc
