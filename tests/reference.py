"""Slow, obviously correct NumPy references for small cases, to check every kernel against.

Two independent families of references for band geometry:

1. ``fd_*``: finite differences of spectral projectors in a deliberately
   **random gauge**.  Eigenvectors come from ``numpy.linalg.eigh`` and are
   multiplied by random phases at every k (``random_gauge_eigh``); only
   gauge-invariant combinations (projectors P, their derivatives, traces) are
   used, so the result cannot depend on the phases.  Nothing here uses the
   model's derivative fillers or the kernel eigensolver: only H(x, k).
   Formulas (P = projector on band n or on a band set, Q = 1 - P)::

       Omega^{ab} = i Tr(P [d_a P, d_b P])              (= -2 Im<d_a u|Q|d_b u>)
       g^{ab}     = Re Tr(P d_a P Q d_b P)
       m^c        = Im Tr(P d_a P (H - eps_n) d_b P)     ((a, b, c) cyclic, e = 1)
       G^{ab}     = 2 Re Tr(P d_a P R_n d_b P),  R_n = sum_{m!=n} P_m/(eps_n - eps_m)
       A^a_nm     = i <u_n| d_a P_m |u_m>                (n != m)
       F^{ab}     = i P_S (d_a P_S Q_S d_b P_S - d_b P_S Q_S d_a P_S) P_S

   using ``P d_a P Q = |u><d_a u|Q`` for a rank-one P (and the analogue for a
   set S).  Derivatives are fourth-order central differences (step 1e-3:
   truncation ~1e-12, round-off ~1e-13, relative).  Plus
   ``plaquette_curvature``: the Berry phase of a tiny square loop
   (Fukui-Hatsugai-Suzuki link variables), a second route to Omega.

2. ``sos_*``: plain-Python sum-over-states formulas on (w, M) to check each
   kernel-callable function of :mod:`packets.bandgeom` against.

Phase-space points are ``lam = (x_1..x_d, k_1..k_d)`` (Tu, Li & Yao, Eq. 13); a
direction index ``a`` is ``d + i`` for ``k_i`` and ``i`` for ``x_i``
(``phase_index``).

Also: closed forms (massive Dirac, Wong & Tserkovnyak 2021, Sec. III A;
two-band formulas) and small test-only models (random multi-band lattice
model, textured Dirac model, 3D two-band lattice model) built as ordinary
BandModels with njit fillers.
"""
import math

import numba
import numpy as np

from packets.models import BandModel, Lattice

FD_STEP = 1e-3

# ----------------------------------------------------------------------------
# random gauge, projectors, finite differences
# ----------------------------------------------------------------------------


def phase_index(dim, letter, i):
    """Index of phase-space direction ``letter`` ('x' or 'k') component i."""
    return (dim if letter == "k" else 0) + i


def model_hfun(model):
    """Return ``hfun(lam) -> H`` (nb x nb) for a model, lam = (x, k)."""
    d = model.dim

    def hfun(lam):
        lam = np.asarray(lam, dtype=np.float64)
        return model.hamiltonian(lam[d:], lam[:d])

    return hfun


def random_gauge_eigh(h, rng):
    """numpy.linalg.eigh with a random phase on every eigenvector."""
    w, v = np.linalg.eigh(h)
    ph = np.exp(2j * np.pi * rng.random(w.size))
    return w, v * ph


def projector(hfun, lam, bands, rng):
    """Projector on the given band indices, built from random-gauge vectors."""
    _, v = random_gauge_eigh(hfun(lam), rng)
    vs = v[:, list(bands)]
    return vs @ vs.conj().T


def projector_derivative(hfun, lam, bands, a, rng, step=FD_STEP):
    """d P / d lam_a by the fourth-order central difference."""
    lam = np.asarray(lam, dtype=np.float64)
    e = np.zeros_like(lam)
    e[a] = step

    def P(s):
        return projector(hfun, lam + s * e, bands, rng)

    return (-P(2) + 8 * P(1) - 8 * P(-1) + P(-2)) / (12 * step)


def _setup(hfun, lam, bands, a, b, rng):
    P = projector(hfun, lam, bands, rng)
    Pa = projector_derivative(hfun, lam, bands, a, rng)
    Pb = projector_derivative(hfun, lam, bands, b, rng)
    return P, Pa, Pb, np.eye(P.shape[0]) - P


def fd_curvature(hfun, lam, bands, a, b, seed=0):
    """Omega^{ab} = i Tr(P[d_a P, d_b P]) of a band (or a band set: the trace
    of its non-Abelian curvature)."""
    rng = np.random.default_rng(seed)
    bands = np.atleast_1d(bands)
    P, Pa, Pb, _ = _setup(hfun, lam, bands, a, b, rng)
    return float(np.real(1j * np.trace(P @ (Pa @ Pb - Pb @ Pa))))


def fd_metric(hfun, lam, n, a, b, seed=0):
    """g^{ab} = Re Tr(P d_a P Q d_b P) of band n."""
    rng = np.random.default_rng(seed)
    P, Pa, Pb, Q = _setup(hfun, lam, [n], a, b, rng)
    return float(np.real(np.trace(P @ Pa @ Q @ Pb)))


def fd_orbital_moment(hfun, lam, n, a, b, seed=0):
    """m^c = Im Tr(P d_a P (H - eps_n) d_b P) of band n, (a, b, c) cyclic."""
    rng = np.random.default_rng(seed)
    P, Pa, Pb, _ = _setup(hfun, lam, [n], a, b, rng)
    h = hfun(lam)
    eps = np.linalg.eigvalsh(h)[n]
    return float(np.imag(np.trace(P @ Pa @ (h - eps * np.eye(h.shape[0])) @ Pb)))


def fd_bcp(hfun, lam, n, a, b, seed=0):
    """G^{ab} = 2 Re <d_a u_n|R_n|d_b u_n>, from the first-order state change.

    A uniform field E changes the state to first order by
    ``|du_n> = sum_{m!=n} |u_m> E_b A^b_mn/(eps_n - eps_m) = i E_b R_n Q|d_b u_n>``
    and the induced connection is ``A'_a = 2 Re <d_a u_n|R_n|d_b u_n> E_b``
    (Gao-Yang-Niu).  ``Q|d_b u_n><u_n| = Q d_b P P`` is built from projector
    derivatives (gauge invariant).
    """
    rng = np.random.default_rng(seed)
    P, Pa, Pb, _ = _setup(hfun, lam, [n], a, b, rng)
    w, v = random_gauge_eigh(hfun(lam), rng)
    R = sum(np.outer(v[:, m], v[:, m].conj()) / (w[n] - w[m]) for m in range(w.size) if m != n)
    return float(2.0 * np.real(np.trace(P @ Pa @ R @ Pb)))


def fd_interband_connection(hfun, lam, vecs, a, seed=0):
    """A^a_nm = i<u_n|d_a P_m|u_m> (n != m) in the gauge of ``vecs`` at lam.

    ``vecs`` are the eigenvector columns whose gauge the answer refers to
    (e.g. those returned by the code under test); the derivative itself is
    taken on projectors from random-gauge vectors.  Diagonal set to 0.
    """
    rng = np.random.default_rng(seed)
    nb = vecs.shape[0]
    out = np.zeros((nb, nb), dtype=np.complex128)
    for m in range(nb):
        dP = projector_derivative(hfun, lam, [m], a, rng)
        for n in range(nb):
            if n != m:
                out[n, m] = 1j * (vecs[:, n].conj() @ dP @ vecs[:, m])
    return out


def fd_nonabelian_curvature(hfun, lam, lo, hi, vecs, a, b, seed=0):
    """F^{ab}_nm (n, m in [lo, hi)) in the basis ``vecs[:, lo:hi]``.

    ``F = i P_S (d_a P_S Q_S d_b P_S - d_b P_S Q_S d_a P_S) P_S`` with P_S the
    projector on the manifold; equals Tu, Li & Yao, Eq. (40) because
    ``Q_S d_b P_S |u_m> = Q_S |d_b u_m>`` for m in S.
    """
    rng = np.random.default_rng(seed)
    bands = list(range(lo, hi))
    P, Pa, Pb, Q = _setup(hfun, lam, bands, a, b, rng)
    F = 1j * P @ (Pa @ Q @ Pb - Pb @ Q @ Pa) @ P
    u = vecs[:, lo:hi]
    return u.conj().T @ F @ u


def plaquette_curvature(hfun, lam, bands, a, b, eps=1e-4, seed=0):
    """Omega^{ab} from the Berry phase of a tiny square loop around lam.

    Corners lam +/- eps/2 e_a +/- eps/2 e_b, traversed a -> b
    (counter-clockwise in the (a, b) plane); link variables are determinants
    of overlap matrices of the band set (random-gauge vectors);
    ``Omega = -arg(prod links)/eps^2`` since ``<u(k)|u(k+dk)> ~ exp(-i A dk)``.
    Error O(eps^2) relative.
    """
    rng = np.random.default_rng(seed)
    lam = np.asarray(lam, dtype=np.float64)
    ea = np.zeros_like(lam)
    eb = np.zeros_like(lam)
    ea[a] = 0.5 * eps
    eb[b] = 0.5 * eps
    corners = [lam - ea - eb, lam + ea - eb, lam + ea + eb, lam - ea + eb]
    bands = list(np.atleast_1d(bands))
    us = [random_gauge_eigh(hfun(c), rng)[1][:, bands] for c in corners]
    prod = 1.0 + 0j
    for i in range(4):
        prod *= np.linalg.det(us[i].conj().T @ us[(i + 1) % 4])
    return float(-np.angle(prod) / eps ** 2)


# ----------------------------------------------------------------------------
# sum-over-states NumPy counterparts of packets.bandgeom
# ----------------------------------------------------------------------------


def sos_band_derivative_matrices(v, dh):
    """M^a = V^dagger dH_a V for every a."""
    return np.einsum("ki,akl,lj->aij", v.conj(), dh, v)


def sos_interband_connection(w, ma, n, m, degtol):
    if n == m or abs(w[m] - w[n]) <= degtol:
        return 0j
    return 1j * ma[n, m] / (w[m] - w[n])


def _others(w, n, degtol):
    return [m for m in range(len(w)) if m != n and abs(w[n] - w[m]) > degtol]


def sos_curvature(w, ma, mb, n, degtol):
    return -2.0 * sum((ma[n, m] * mb[m, n]).imag / (w[n] - w[m]) ** 2 for m in _others(w, n, degtol))


def sos_metric(w, ma, mb, n, degtol):
    return sum((ma[n, m] * mb[m, n]).real / (w[n] - w[m]) ** 2 for m in _others(w, n, degtol))


def sos_orbital_moment(w, ma, mb, n, degtol):
    return sum((ma[n, m] * mb[m, n]).imag / (w[m] - w[n]) for m in _others(w, n, degtol))


def sos_bcp(w, ma, mb, n, degtol):
    # via the interband connections: 2 Re sum A^a_nm A^b_mn / (w_n - w_m)
    return 2.0 * sum((sos_interband_connection(w, ma, n, m, degtol) * sos_interband_connection(w, mb, m, n, degtol)).real
                     / (w[n] - w[m]) for m in _others(w, n, degtol))


def sos_nonabelian_curvature(w, ma, mb, lo, hi, n, m, degtol):
    acc = 0j
    for l in range(len(w)):
        if lo <= l < hi or abs(w[n] - w[l]) <= degtol or abs(w[m] - w[l]) <= degtol:
            continue
        acc += (ma[n, l] * mb[l, m] - mb[n, l] * ma[l, m]) / ((w[n] - w[l]) * (w[m] - w[l]))
    return 1j * acc


# ----------------------------------------------------------------------------
# closed forms
# ----------------------------------------------------------------------------


def dirac_energy(k, v, m):
    """E_k = sqrt(v^2 k^2 + m^2) (Wong & Tserkovnyak 2021, Eq. 41)."""
    k = np.asarray(k, dtype=np.float64)
    return np.sqrt(v * v * np.sum(k * k, axis=-1) + m * m)


def dirac_berry_curvature(k, v, m, s):
    """(Omega_-, Omega_+) = (+, -) s m v^2/(2E^3), shape (..., 2) (Wong & Tserkovnyak 2021, Sec. III A)."""
    om = s * m * v * v / (2.0 * dirac_energy(k, v, m) ** 3)
    return np.stack([om, -om], axis=-1)


def dirac_orbital_moment(k, v, m, s):
    """m_z = -s m v^2/(2E^2), both bands, shape (..., 2) (Wong & Tserkovnyak 2021, Sec. III A)."""
    mz = -s * m * v * v / (2.0 * dirac_energy(k, v, m) ** 2)
    return np.stack([mz, mz], axis=-1)


def dirac_hall_conductivity(mu, v, m, s, k_max=np.inf):
    """Intrinsic sigma_xy (e^2/hbar), T = 0, integral over |k| < k_max.

    sigma = -(1/2pi)(s m/2)(1/max(|mu|, |m|) - 1/E(k_max)): the integral of
    Omega ~ 1/E^3 over the filled states is elementary,
    ``int_0^K Omega_- k dk/(2pi) = (1/2pi)(s m/2)(1/|m| - 1/E_K)``.  For
    k_max = inf this is the closed form -(e^2/2h) s m/max(|mu|, |m|)
    (Streda formula, Wong & Tserkovnyak 2021, Eqs. 45-47, in our signs).
    Valid for |mu| < E(k_max).
    """
    e_cut = 0.0 if not np.isfinite(k_max) else 1.0 / math.sqrt(v * v * k_max * k_max + m * m)
    return -(s * m / 2.0) * (1.0 / max(abs(mu), abs(m)) - e_cut) / (2.0 * np.pi)


def two_band_vector(h):
    """d of H = d0 + d.sigma."""
    return np.array([h[0, 1].real, -h[0, 1].imag, 0.5 * (h[0, 0] - h[1, 1]).real])


def two_band_geometry(d, dd):
    """Two-band closed forms from d and its derivatives dd[a] (a = 0..D-1).

    Returns ``(omega_upper, g, G_upper)``:
    ``omega_upper[a, b] = -(1/2) dhat.(d_a dhat x d_b dhat)`` (docs/conventions.md;
    the lower band has the opposite sign), the metric of both bands
    ``g[a, b] = (d_a dhat . d_b dhat)/4`` and the BCP of the upper band
    ``G_upper = g/|d|`` (the lower band has ``-G_upper``).
    """
    dn = np.linalg.norm(d)
    dh = d / dn
    ddh = [(x - dh * (dh @ x)) / dn for x in dd]
    D = len(dd)
    om = np.array([[-0.5 * dh @ np.cross(ddh[a], ddh[b]) for b in range(D)] for a in range(D)])
    g = np.array([[0.25 * ddh[a] @ ddh[b] for b in range(D)] for a in range(D)])
    return om, g, g / dn


# ----------------------------------------------------------------------------
# small test-only models
# ----------------------------------------------------------------------------
# random lattice model  H(k) = sum_j A_j cos(k.r_j) + B_j sin(k.r_j)
# params: [J, r (2J), then per term j: Re A, Im A, Re B, Im B (nb*nb each)]


@numba.njit
def _rand_h(x, k, p, out):
    nb = out.shape[0]
    nj = int(p[0])
    nn = nb * nb
    for i in range(nb):
        for l in range(nb):
            out[i, l] = 0.0
    for j in range(nj):
        ph = k[0] * p[1 + 2 * j] + k[1] * p[2 + 2 * j]
        c = math.cos(ph)
        s = math.sin(ph)
        base = 1 + 2 * nj + 4 * nn * j
        for i in range(nb):
            for l in range(nb):
                q = i * nb + l
                out[i, l] += c * complex(p[base + q], p[base + nn + q]) + s * complex(p[base + 2 * nn + q],
                                                                                      p[base + 3 * nn + q])


@numba.njit
def _rand_dhdk(x, k, p, out, work):
    nb = out.shape[1]
    nj = int(p[0])
    nn = nb * nb
    for a in range(2):
        for i in range(nb):
            for l in range(nb):
                out[a, i, l] = 0.0
    for j in range(nj):
        ph = k[0] * p[1 + 2 * j] + k[1] * p[2 + 2 * j]
        c = math.cos(ph)
        s = math.sin(ph)
        base = 1 + 2 * nj + 4 * nn * j
        for i in range(nb):
            for l in range(nb):
                q = i * nb + l
                z = -s * complex(p[base + q], p[base + nn + q]) + c * complex(p[base + 2 * nn + q],
                                                                              p[base + 3 * nn + q])
                out[0, i, l] += p[1 + 2 * j] * z
                out[1, i, l] += p[2 + 2 * j] * z


def _random_hermitian(rng, nb, scale):
    a = rng.normal(size=(nb, nb)) + 1j * rng.normal(size=(nb, nb))
    return scale * 0.5 * (a + a.conj().T)


def lattice_model_from_terms(terms, name="lattice model (test)"):
    """2D square-lattice model ``H(k) = sum_j A_j cos(k.r_j) + B_j sin(k.r_j)``.

    ``terms`` is a list of ``(r_j, A_j, B_j)`` with Hermitian nb x nb
    matrices A_j, B_j and integer r_j (so that H(k + G) = H(k)).
    """
    nb = np.asarray(terms[0][1]).shape[0]
    p = [float(len(terms))] + [float(c) for r, _, _ in terms for c in r]
    for r, A, B in terms:
        for mat in (A, B):
            mat = np.asarray(mat, dtype=complex)
            if mat.shape != (nb, nb) or np.max(np.abs(mat - mat.conj().T)) > 1e-14:
                raise ValueError("A_j and B_j must be Hermitian nb x nb matrices")
            p += list(mat.real.ravel()) + list(mat.imag.ravel())
    return BandModel(name, 2, nb, p, _rand_h, _rand_dhdk, lattice=Lattice(np.eye(2)))


def random_lattice_model(nb=3, seed=0, scale=0.5, offsets=None):
    """Random nb-band 2D square-lattice model (lattice constant 1).

    ``H(k) = diag(offsets) + sum_j A_j cos(k.r_j) + B_j sin(k.r_j)`` with
    r_j in {(0,0), (1,0), (0,1), (1,1), (1,-1)} and random Hermitian A_j, B_j
    of size ~scale.  ``offsets`` (default 0) separate the bands when a gapped
    model is wanted.
    """
    rng = np.random.default_rng(seed)
    rs = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, -1.0)]
    terms = []
    for j, r in enumerate(rs):
        A = _random_hermitian(rng, nb, scale)
        B = _random_hermitian(rng, nb, scale)
        if j == 0:
            # onsite term: k independent, so only A; add the band offsets
            B = np.zeros((nb, nb))
            if offsets is not None:
                A = A + np.diag(np.asarray(offsets, dtype=float))
        terms.append((r, A, B))
    return lattice_model_from_terms(terms, f"random {nb}-band (test)")


# textured Dirac:  d = (v kx + al sin x2, v ky, m0 + be x1 + ga cos x2)
# params [v, m0, al, be, ga]


@numba.njit
def _tex_h(x, k, p, out):
    dx = p[0] * k[0] + p[2] * math.sin(x[1])
    dy = p[0] * k[1]
    dz = p[1] + p[3] * x[0] + p[4] * math.cos(x[1])
    out[0, 0] = dz
    out[1, 1] = -dz
    out[0, 1] = complex(dx, -dy)
    out[1, 0] = complex(dx, dy)


@numba.njit
def _tex_dhdk(x, k, p, out, work):
    v = p[0]
    out[0, 0, 0] = 0.0
    out[0, 1, 1] = 0.0
    out[0, 0, 1] = v
    out[0, 1, 0] = v
    out[1, 0, 0] = 0.0
    out[1, 1, 1] = 0.0
    out[1, 0, 1] = complex(0.0, -v)
    out[1, 1, 0] = complex(0.0, v)


@numba.njit
def _tex_dhdx(x, k, p, out, work):
    # d/dx1: be sigma_z ; d/dx2: al cos x2 sigma_x - ga sin x2 sigma_z
    out[0, 0, 0] = p[3]
    out[0, 1, 1] = -p[3]
    out[0, 0, 1] = 0.0
    out[0, 1, 0] = 0.0
    c = p[2] * math.cos(x[1])
    z = -p[4] * math.sin(x[1])
    out[1, 0, 0] = z
    out[1, 1, 1] = -z
    out[1, 0, 1] = c
    out[1, 1, 0] = c


def textured_dirac_model(v=1.0, m0=0.6, al=0.4, be=0.3, ga=0.25):
    """Massive Dirac model with a position-dependent d vector (test only).

    ``H = (v k_x + al sin x_2) s_x + v k_y s_y + (m0 + be x_1 + ga cos x_2) s_z``
    """
    return BandModel("textured Dirac (test)", 2, 2, [v, m0, al, be, ga], _tex_h, _tex_dhdk, _tex_dhdx,
                     textured=True, k_window=10.0)


# 3D two-band lattice model: d = (sin kx, sin ky, u - cos kx - cos ky - cos kz) + t sin kz on s_x


@numba.njit
def _l3_h(x, k, p, out):
    dx = math.sin(k[0]) + p[1] * math.sin(k[2])
    dy = math.sin(k[1])
    dz = p[0] - math.cos(k[0]) - math.cos(k[1]) - math.cos(k[2])
    out[0, 0] = dz
    out[1, 1] = -dz
    out[0, 1] = complex(dx, -dy)
    out[1, 0] = complex(dx, dy)


@numba.njit
def _l3_dhdk(x, k, p, out, work):
    ddx = (math.cos(k[0]), 0.0, p[1] * math.cos(k[2]))
    ddy = (0.0, math.cos(k[1]), 0.0)
    ddz = (math.sin(k[0]), math.sin(k[1]), math.sin(k[2]))
    for a in range(3):
        out[a, 0, 0] = ddz[a]
        out[a, 1, 1] = -ddz[a]
        out[a, 0, 1] = complex(ddx[a], -ddy[a])
        out[a, 1, 0] = complex(ddx[a], ddy[a])


def lattice3d_model(u=2.5, t=0.3):
    """3D two-band cubic-lattice model (test only), Weyl nodes for 1 < u < 3."""
    return BandModel("3D two-band (test)", 3, 2, [u, t], _l3_h, _l3_dhdk, lattice=Lattice(np.eye(3)))
