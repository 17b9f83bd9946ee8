"""Built-in band models: Hermiticity, derivative fillers, closed-form spectra, input errors.

Every check compares a model with an independent calculation: NumPy finite
differences of ``model.hamiltonian`` for dH/dk and dH/dx, closed-form
dispersions (docs/models.md), or a second implementation (the generic
TightBinding with hand-written hoppings).  Chern numbers are tested with
packets.geometry, not here.
"""
import math

import numba
import numpy as np
import pytest

from packets import models
from packets.models import (BHZ, Chain, Haldane, Lattice, MassiveDirac, Parabolic, QWZ, TexturedDirac, TightBinding,
                            UserModel, Weyl)

S3 = math.sqrt(3.0)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def numpy_fd(model, k, x, axis, h=1e-5):
    """Second-order central difference of model.hamiltonian (independent of base._fd_derivative).

    Error: truncation h^2/6 |H'''| ~ 2e-11 plus round-off ~ eps |H| / h ~ 2e-11
    for the O(1) Hamiltonians used here.
    """
    out = []
    for a in range(model.dim):
        e = np.zeros(model.dim)
        e[a] = h
        if axis == "k":
            out.append((model.hamiltonian(k + e, x) - model.hamiltonian(k - e, x)) / (2 * h))
        else:
            out.append((model.hamiltonian(k, x + e) - model.hamiltonian(k, x - e)) / (2 * h))
    return np.stack(out, axis=-3)


def random_points(model, n=12, seed=1):
    rng = np.random.default_rng(seed)
    kscale = np.pi if model.is_lattice else 1.5
    return rng.uniform(-kscale, kscale, (n, model.dim)), rng.uniform(-3.0, 3.0, (n, model.dim))


@numba.njit
def user_dirac_h(x, k, p, out):
    """A lattice-regularised Dirac model written by a 'user': p = [v, m]."""
    v = p[0]
    m = p[1] + math.cos(k[0]) + math.cos(k[1])
    out[0, 0] = m
    out[1, 1] = -m
    out[0, 1] = complex(v * math.sin(k[0]), -v * math.sin(k[1]))
    out[1, 0] = complex(v * math.sin(k[0]), v * math.sin(k[1]))


@numba.njit
def user_dirac_dhdk(x, k, p, out, work):
    v = p[0]
    out[0, 0, 0] = -math.sin(k[0])
    out[0, 1, 1] = math.sin(k[0])
    out[0, 0, 1] = v * math.cos(k[0])
    out[0, 1, 0] = v * math.cos(k[0])
    out[1, 0, 0] = -math.sin(k[1])
    out[1, 1, 1] = math.sin(k[1])
    out[1, 0, 1] = complex(0.0, -v * math.cos(k[1]))
    out[1, 1, 0] = complex(0.0, v * math.cos(k[1]))


@numba.njit
def user_textured_h(x, k, p, out):
    """Continuum Dirac with m(x) = p[1] sin(x_1) cos(2 x_2): p = [v, m1]."""
    m = p[1] * math.sin(x[0]) * math.cos(2.0 * x[1])
    out[0, 0] = m
    out[1, 1] = -m
    out[0, 1] = complex(p[0] * k[0], -p[0] * k[1])
    out[1, 0] = complex(p[0] * k[0], p[0] * k[1])


@numba.njit
def wavy_mass(x, p):
    """User profile m = p0 + p1 sin(x_1) cos(2 x_2) with its exact gradient."""
    m = p[0] + p[1] * math.sin(x[0]) * math.cos(2.0 * x[1])
    return m, p[1] * math.cos(x[0]) * math.cos(2.0 * x[1]), -2.0 * p[1] * math.sin(x[0]) * math.sin(2.0 * x[1])


@numba.njit
def wavy_mass_only(x, p):
    return p[0] + p[1] * math.sin(x[0]) * math.cos(2.0 * x[1])


@numba.njit
def wavy_mass_gradient(x, p):
    return p[1] * math.cos(x[0]) * math.cos(2.0 * x[1]), -2.0 * p[1] * math.sin(x[0]) * math.sin(2.0 * x[1])


@numba.njit
def wavy_mass_wrong_gradient(x, p):
    # sign error on purpose: check() must catch it
    return -p[1] * math.cos(x[0]) * math.cos(2.0 * x[1]), -2.0 * p[1] * math.sin(x[0]) * math.sin(2.0 * x[1])


def qwz_hoppings():
    """QWZ (docs/models.md) as hoppings: sin k = (e^{ik} - e^{-ik})/2i, cos k = (e^{ik} + e^{-ik})/2."""
    return [(0, 0, (1, 0), 0.5), (0, 0, (0, 1), 0.5), (1, 1, (1, 0), -0.5), (1, 1, (0, 1), -0.5),
            (0, 1, (1, 0), -0.5j), (0, 1, (-1, 0), 0.5j), (0, 1, (0, 1), -0.5), (0, 1, (0, -1), 0.5)]


def haldane_tb(t1, t2, phi, M, orbitals=((0.0, 0.0), (0.0, 1.0))):
    """Haldane model from hoppings in integer cell coordinates (a = 1).

    A -> B nearest neighbours at R = 0, -a2, a1 - a2; next-nearest b1 = -a1,
    b2 = a1 - a2, b3 = a2 with t2 e^{+i phi} on A and t2 e^{-i phi} on B.
    """
    hops = [(0, 1, (0, 0), t1), (0, 1, (0, -1), t1), (0, 1, (1, -1), t1)]
    for R in ((-1, 0), (1, -1), (0, 1)):
        hops.append((0, 0, R, t2 * np.exp(1j * phi)))
        hops.append((1, 1, R, t2 * np.exp(-1j * phi)))
    return TightBinding([[S3, 0.0], [S3 / 2, 1.5]], orbitals, hops, onsite=[M, -M])


def bhz_hoppings(u, z, delta):
    """The four-band BHZ model as hoppings (all orbitals at the origin)."""
    hops = []
    for s, (e, hh) in ((1, (0, 1)), (-1, (2, 3))):
        for R in ((1, 0), (0, 1)):
            hops.append((e, e, R, 0.5))
            hops.append((hh, hh, R, -0.5))
        # sigma_x sin k_x with sign s (spin down block is h*(-k)), sigma_y sin k_y for both
        hops += [(e, hh, (1, 0), -0.5j * s), (e, hh, (-1, 0), 0.5j * s),
                 (e, hh, (0, 1), -0.5), (e, hh, (0, -1), 0.5)]
    hops += [(0, 3, (0, 0), -delta), (1, 2, (0, 0), delta)]
    return TightBinding(np.eye(2), np.zeros((4, 2)), hops, onsite=[u + z, -u + z, u - z, -u - z])


MODELS = {
    "dirac_tilted": lambda: MassiveDirac(1.3, 0.4, -1, tilt=(0.2, -0.3)),
    "qwz": lambda: QWZ(0.7),
    "haldane": lambda: Haldane(1.0, 0.15, 0.8, 0.3),
    "parabolic1": lambda: Parabolic(0.5, dim=1, offset=0.2),
    "parabolic3": lambda: Parabolic(-2.0, dim=3),
    "chain": lambda: Chain(0.8, 1.7, 0.1),
    "weyl": lambda: Weyl(1.2, -1, tilt=(0.3, -0.2, 0.5)),
    "dw": lambda: TexturedDirac("domain_wall", 0.9, -1, m0=0.5, width=0.7, m_bar=0.1, x0=0.3),
    "moire": lambda: TexturedDirac("moire", 1.1, 1, m0=0.05, m1=0.2, G=1.3),
    "square": lambda: TexturedDirac("square", 1.0, 1, m0=-0.1, m1=0.3, G=0.8),
    "textured_user": lambda: TexturedDirac(wavy_mass, 1.0, 1, mass_params=[0.1, 0.4]),
    "bhz": lambda: BHZ(0.9, 0.03, 0.07),
    "tb_haldane": lambda: haldane_tb(1.0, 0.1, 0.4, 0.2),
    "user_fd": lambda: UserModel(user_dirac_h, 2, 2, [1.2, -0.5], lattice=np.eye(2)),
    "user_textured_fd": lambda: UserModel(user_textured_h, 2, 2, [1.0, 0.7], textured=True),
}


# ----------------------------------------------------------------------------
# every model: Hermitian, derivatives agree with NumPy finite differences
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_hermitian_and_derivatives(name):
    model = MODELS[name]()
    model.check()
    k, x = random_points(model)
    hm = model.hamiltonian(k, x)
    assert np.all(np.isfinite(hm))
    np.testing.assert_allclose(hm, np.conj(np.swapaxes(hm, -1, -2)), atol=1e-13)
    dk = model.dhdk_matrices(k, x)
    np.testing.assert_allclose(dk, numpy_fd(model, k, x, "k"), atol=1e-7)
    np.testing.assert_allclose(dk, np.conj(np.swapaxes(dk, -1, -2)), atol=1e-13)
    dx = model.dhdx_matrices(k, x)
    # untextured models: H must not depend on x, and dhdx is identically 0
    np.testing.assert_allclose(dx, numpy_fd(model, k, x, "x"), atol=1e-7)
    if not model.textured:
        assert np.all(dx == 0)
    # band energies from the kernel eigensolver agree with numpy.linalg.eigvalsh
    np.testing.assert_allclose(model.energies(k, x), np.linalg.eigvalsh(hm), atol=1e-11)


# ----------------------------------------------------------------------------
# closed-form spectra
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_parabolic_dispersion(dim):
    rng = np.random.default_rng(dim)
    k = rng.normal(size=(20, dim))
    for m, e0 in ((0.7, 0.0), (-1.5, 0.3)):
        model = Parabolic(m, dim=dim, offset=e0)
        np.testing.assert_allclose(model.energies(k)[..., 0], (k ** 2).sum(-1) / (2 * m) + e0, rtol=1e-14)
        np.testing.assert_allclose(model.dhdk_matrices(k)[..., 0, 0].real, k / m, rtol=1e-14)


def test_chain_dispersion_and_periodicity():
    t, a, e0 = 0.8, 1.7, 0.1
    model = Chain(t, a, e0)
    k = np.linspace(-np.pi / a, np.pi / a, 41)
    np.testing.assert_allclose(model.energies(k)[:, 0], e0 - 2 * t * np.cos(k * a), atol=1e-14)
    np.testing.assert_allclose(model.energies(k + model.lattice.reciprocal[0, 0]), model.energies(k), atol=1e-13)
    assert model.lattice.reciprocal[0, 0] == pytest.approx(2 * np.pi / a)


def test_weyl_dispersion():
    v, w = 1.2, np.array([0.3, -0.2, 0.5])
    k = np.random.default_rng(3).normal(size=(30, 3))
    for chi in (1, -1):
        e = Weyl(v, chi, tilt=w).energies(k)
        kn = np.linalg.norm(k, axis=-1)
        np.testing.assert_allclose(e[:, 0], k @ w - v * kn, atol=1e-13)
        np.testing.assert_allclose(e[:, 1], k @ w + v * kn, atol=1e-13)


def _mass_reference(profile, x, **p):
    """Independent NumPy formulas of the built-in mass profiles (docs/models.md)."""
    if profile == "domain_wall":
        return p["m_bar"] + p["m0"] * np.tanh((x[..., 0] - p["x0"]) / p["width"])
    gs = p["G"] * (np.array([[1.0, 0.0], [-0.5, S3 / 2], [-0.5, -S3 / 2]]) if profile == "moire"
                   else np.array([[1.0, 0.0], [0.0, 1.0]]))
    return p["m0"] + p["m1"] * np.cos(x @ gs.T).sum(-1)


@pytest.mark.parametrize("profile,p", [
    ("domain_wall", dict(m0=0.5, width=0.7, m_bar=0.1, x0=0.3)),
    ("moire", dict(m0=0.05, m1=0.2, G=1.3)),
    ("square", dict(m0=-0.1, m1=0.3, G=0.8)),
])
def test_textured_dirac_spectrum(profile, p):
    v = 0.9
    model = TexturedDirac(profile, v, -1, **p)
    rng = np.random.default_rng(4)
    k = rng.normal(size=(25, 2))
    x = rng.uniform(-6, 6, (25, 2))
    m = _mass_reference(profile, x, **p)
    e = np.sqrt(v ** 2 * (k ** 2).sum(-1) + m ** 2)
    np.testing.assert_allclose(model.energies(k, x), np.stack([-e, e], -1), atol=1e-13)
    np.testing.assert_allclose(model.hamiltonian(k, x)[:, 0, 0].real, m, atol=1e-14)
    mm, grad = model.mass(x)
    np.testing.assert_allclose(mm, m, atol=1e-14)
    # the analytic gradient against a NumPy central difference of the reference formula
    h = 1e-6
    fd = np.stack([(_mass_reference(profile, x + h * e_, **p) - _mass_reference(profile, x - h * e_, **p)) / (2 * h)
                   for e_ in np.eye(2)], -1)
    np.testing.assert_allclose(grad, fd, atol=1e-8)


def test_moire_profile_is_periodic_and_c3_symmetric():
    G = 1.3
    model = TexturedDirac("moire", m0=0.05, m1=0.2, G=G)
    # real-space moire vectors A_i with G_j . A_i in 2 pi Z; |A| = 4 pi / (sqrt3 G)
    A = (2 * np.pi / G) * np.array([[1.0, 1.0 / S3], [0.0, 2.0 / S3]])
    assert np.linalg.norm(A, axis=1) == pytest.approx([4 * np.pi / (S3 * G)] * 2)
    x = np.random.default_rng(5).uniform(-5, 5, (20, 2))
    m0 = model.mass(x)[0]
    for a in A:
        np.testing.assert_allclose(model.mass(x + a)[0], m0, atol=1e-12)
    c, s = np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3)
    np.testing.assert_allclose(model.mass(x @ np.array([[c, s], [-s, c]]))[0], m0, atol=1e-12)


def test_textured_user_profile_two_function_form_and_wrong_gradient():
    one = TexturedDirac(wavy_mass, 1.0, 1, mass_params=[0.1, 0.4], mass_param_names=("mb", "m1"))
    two = TexturedDirac(wavy_mass_only, 1.0, 1, mass_params=[0.1, 0.4], mass_gradient=wavy_mass_gradient)
    assert one.param_names == ("mb", "m1", "v", "s")
    k, x = random_points(one)
    np.testing.assert_allclose(two.hamiltonian(k, x), one.hamiltonian(k, x), atol=0)
    np.testing.assert_allclose(two.dhdx_matrices(k, x), one.dhdx_matrices(k, x), atol=0)
    with pytest.raises(ValueError, match="dhdx disagrees"):
        TexturedDirac(wavy_mass_only, 1.0, 1, mass_params=[0.1, 0.4], mass_gradient=wavy_mass_wrong_gradient)
    with pytest.raises(ValueError, match="tuple"):
        TexturedDirac(wavy_mass_only, 1.0, 1, mass_params=[0.1, 0.4])


def test_haldane_dirac_points_and_gamma():
    t1, t2, phi, M = 1.0, 0.15, 0.8, 0.3
    model = Haldane(t1, t2, phi, M)
    K = np.array(model.K_point)
    assert K == pytest.approx([4 * np.pi / (3 * S3), 0.0])
    for s in (1, -1):
        e = model.energies(s * K)
        gap = 2 * abs(M - s * 3 * S3 * t2 * math.sin(phi))
        np.testing.assert_allclose(e, -3 * t2 * math.cos(phi) + np.array([-gap / 2, gap / 2]), atol=1e-13)
        assert model.gap_at_K(s) == pytest.approx(gap, rel=1e-14)
    e0 = 6 * t2 * math.cos(phi)
    r = math.sqrt(9 * t1 ** 2 + M ** 2)
    np.testing.assert_allclose(model.energies(np.zeros(2)), [e0 - r, e0 + r], atol=1e-13)


def test_haldane_bloch_convention_under_reciprocal_shift():
    """H(k + G) = U_G H(k) U_G^dagger with U_G = diag(e^{-i G.tau}) (orbital positions in the phases)."""
    model = Haldane(1.0, 0.1, 0.5, -0.2)
    lat = model.lattice
    assert lat.orbitals.tolist() == [[0.0, 0.0], [0.0, 1.0]]
    k = np.random.default_rng(6).uniform(-3, 3, (10, 2))
    h0 = model.hamiltonian(k)
    for G in lat.reciprocal:
        u = np.exp(-1j * lat.orbitals @ G)
        np.testing.assert_allclose(model.hamiltonian(k + G), u[:, None] * h0 * u[None, :].conj(), atol=1e-13)


def test_bhz_closed_forms():
    u, z = 0.9, 0.03
    k = np.random.default_rng(7).uniform(-np.pi, np.pi, (30, 2))
    E = np.sqrt(np.sin(k[:, 0]) ** 2 + np.sin(k[:, 1]) ** 2 + (u + np.cos(k).sum(-1)) ** 2)
    np.testing.assert_allclose(BHZ(u, z, 0.0).energies(k), np.stack([-E - z, -E + z, E - z, E + z], -1), atol=1e-12)
    # Z = 0: Kramers pairs at the time-reversal-invariant momenta, -/+ sqrt(d_z^2 + Delta^2)
    delta = 0.2
    trim = np.array([[0, 0], [np.pi, 0], [0, np.pi], [np.pi, np.pi]])
    r = np.sqrt((u + np.cos(trim).sum(-1)) ** 2 + delta ** 2)
    np.testing.assert_allclose(BHZ(u, 0.0, delta).energies(trim), np.stack([-r, -r, r, r], -1), atol=1e-12)
    model = BHZ(u, z, delta)
    assert model.active == (0, 1) and model.remote == (2, 3)
    assert BHZ(active=(2, 3)).remote == (0, 1)
    # the active pair is nearly degenerate, the remote pair far: gap ratios at random k
    e = model.energies(k)
    assert np.max(e[:, 1] - e[:, 0]) < 0.5 and np.min(e[:, 2] - e[:, 1]) > 1.5


# ----------------------------------------------------------------------------
# the generic tight-binding model reproduces the hand-written models
# ----------------------------------------------------------------------------


def test_tightbinding_reproduces_qwz():
    u = 0.7
    tb = TightBinding(np.eye(2), [[0.0, 0.0], [0.0, 0.0]], qwz_hoppings(), onsite=[u, -u])
    k = np.random.default_rng(8).uniform(-4, 4, (20, 2))
    np.testing.assert_allclose(tb.hamiltonian(k), QWZ(u).hamiltonian(k), atol=1e-14)
    np.testing.assert_allclose(tb.dhdk_matrices(k), QWZ(u).dhdk_matrices(k), atol=1e-14)


def test_tightbinding_reproduces_chain():
    t, a, e0 = 0.8, 1.7, 0.1
    tb = TightBinding([[a]], [[0.0]], [(0, 0, 1, -t)], onsite=[e0])
    ch = Chain(t, a, e0)
    k = np.linspace(-3, 3, 17)
    np.testing.assert_allclose(tb.hamiltonian(k), ch.hamiltonian(k), atol=1e-14)
    np.testing.assert_allclose(tb.dhdk_matrices(k), ch.dhdk_matrices(k), atol=1e-14)


def test_tightbinding_reproduces_haldane():
    args = (1.0, 0.13, 1.1, 0.25)
    tb, hal = haldane_tb(*args), Haldane(*args)
    k = np.random.default_rng(9).uniform(-4, 4, (20, 2))
    # same Bloch convention (orbital positions in the phases): equal matrices
    np.testing.assert_allclose(tb.hamiltonian(k), hal.hamiltonian(k), atol=1e-13)
    np.testing.assert_allclose(tb.dhdk_matrices(k), hal.dhdk_matrices(k), atol=1e-13)
    # other orbital positions: a diagonal unitary transformation, same eigenvalues, different matrices
    tb0 = haldane_tb(*args, orbitals=((0.0, 0.0), (0.0, 0.0)))
    np.testing.assert_allclose(tb0.energies(k), hal.energies(k), atol=1e-12)
    ph = np.exp(-1j * k @ np.array([0.0, 1.0]))  # H0_AB = H_AB e^{-i k.tau_B}
    np.testing.assert_allclose(tb0.hamiltonian(k)[:, 0, 1], hal.hamiltonian(k)[:, 0, 1] * ph, atol=1e-13)


def test_tightbinding_reproduces_bhz():
    k = np.random.default_rng(10).uniform(-4, 4, (20, 2))
    tb, bhz = bhz_hoppings(0.9, 0.03, 0.07), BHZ(0.9, 0.03, 0.07)
    np.testing.assert_allclose(tb.hamiltonian(k), bhz.hamiltonian(k), atol=1e-14)
    np.testing.assert_allclose(tb.dhdk_matrices(k), bhz.dhdk_matrices(k), atol=1e-14)


def test_tightbinding_changing_params_in_place():
    """Amplitudes travel in params: editing them changes H without a new model."""
    tb = TightBinding([[1.0]], [[0.0]], [(0, 0, 1, -1.0)])
    i = tb.param_names.index("hop0_re")
    tb.params[i] = -2.5
    np.testing.assert_allclose(tb.energies(np.array([0.3]))[0], -5.0 * np.cos(0.3), atol=1e-14)


@pytest.mark.parametrize("hops,match", [
    ([(0, 1, (1, 0), 1.0), (1, 0, (-1, 0), 1.0)], "Hermitian conjugate"),
    ([(0, 0, (1, 0), 1.0), (0, 0, (-1, 0), 1.0)], "Hermitian conjugate"),
    ([(0, 0, (0, 0), 1.0)], "self-hop"),
    ([(0, 1, (1, 0), 1.0), (0, 1, (1, 0), 2.0)], "listed twice"),
    ([(0, 2, (1, 0), 1.0)], "orbital index j = 2"),
    ([(0, 1, (0.5, 0), 1.0)], "integers"),
    ([(0, 1, (1,), 1.0)], "2 integer components"),
    ([(0, 1, (1, 0), complex(np.nan, 0))], "not finite"),
    ([(0, 1, (1, 0))], r"\(i, j, R, t\)"),
])
def test_tightbinding_rejects_bad_hoppings(hops, match):
    with pytest.raises(ValueError, match=match):
        TightBinding(np.eye(2), np.zeros((2, 2)), hops)


# ----------------------------------------------------------------------------
# user models
# ----------------------------------------------------------------------------


def test_user_model_fd_derivative_accuracy():
    """FD dH/dk (h = 1e-3, 4th order) against the analytic derivative: documented ~1e-11 relative."""
    p = [1.2, -0.5]
    fd = UserModel(user_dirac_h, 2, 2, p, lattice=np.eye(2))
    exact = UserModel(user_dirac_h, 2, 2, p, dhdk=user_dirac_dhdk, lattice=np.eye(2))
    assert fd.fd_dhdk and not exact.fd_dhdk
    k, x = random_points(fd, n=40)
    ref = exact.dhdk_matrices(k, x)
    err = np.abs(fd.dhdk_matrices(k, x) - ref).max() / np.abs(ref).max()
    assert err < 1e-10
    # the supplied analytic derivative agrees with the independent NumPy difference too
    np.testing.assert_allclose(ref, numpy_fd(exact, k, x, "k"), atol=1e-8)
    # the user model is the QWZ-like lattice Dirac model: eigenvalues in closed form
    E = np.sqrt(p[0] ** 2 * (np.sin(k) ** 2).sum(-1) + (p[1] + np.cos(k).sum(-1)) ** 2)
    np.testing.assert_allclose(exact.energies(k), np.stack([-E, E], -1), atol=1e-12)


def test_user_model_fd_dhdx_accuracy_and_restores_arguments():
    model = UserModel(user_textured_h, 2, 2, [1.0, 0.7], textured=True)
    assert model.textured and model.fd_dhdx
    k, x = random_points(model, n=30)
    dx = model.dhdx_matrices(k, x)
    g1 = 0.7 * np.cos(x[:, 0]) * np.cos(2 * x[:, 1])
    g2 = -1.4 * np.sin(x[:, 0]) * np.sin(2 * x[:, 1])
    np.testing.assert_allclose(dx[:, 0, 0, 0].real, g1, atol=1e-11)
    np.testing.assert_allclose(dx[:, 1, 1, 1].real, -g2, atol=1e-11)
    # the fillers shift k[a] / x[a] in place and must restore them bit for bit
    xx, kk = x[0].copy(), k[0].copy() + 1e6 * np.pi  # large |k|: k + h - h != k in floating point
    x0, k0 = xx.copy(), kk.copy()
    out = np.empty((2, 2, 2), complex)
    work = np.empty((2, 2), complex)
    model.dhdk(xx, kk, model.params, out, work)
    model.dhdx(xx, kk, model.params, out, work)
    assert np.array_equal(xx, x0) and np.array_equal(kk, k0)


def test_user_model_errors():
    with pytest.raises(ValueError, match="not Hermitian"):
        UserModel(_non_hermitian_h, 2, 2, [1.0, 0.1])
    with pytest.raises(ValueError, match=r"params must contain 2 values"):
        UserModel(user_dirac_h, 2, 2, [1.0])
    with pytest.raises(ValueError, match=r"params must contain 1 values"):
        UserModel(user_dirac_h, 2, 2, [1.0, 0.3], param_names=("v",))
    with pytest.raises(ValueError, match="NaN"):
        UserModel(user_dirac_h, 2, 2, [1.0, np.nan], param_names=("v", "m"))
    with pytest.raises(ValueError, match="NaN"):
        UserModel(_nan_h, 2, 2, [1.0, 0.1])
    with pytest.raises(ValueError, match=r"unwritten"):
        UserModel(_partial_h, 2, 2, [1.0, 0.1])
    with pytest.raises(ValueError, match="unwritten"):
        UserModel(user_dirac_h, 2, 3, [1.0, 0.1])
    with pytest.raises(ValueError, match="dim"):
        UserModel(user_dirac_h, 1, 2, [1.0, 0.1])
    with pytest.raises(ValueError, match="numba.njit"):
        UserModel(user_dirac_h.py_func, 2, 2, [1.0, 0.1])
    with pytest.raises(ValueError, match="signature"):
        UserModel(_signature_h, 2, 2, [1.0, 0.1])
    with pytest.raises(ValueError, match="textured=True"):
        UserModel(user_dirac_h, 2, 2, [1.0, 0.1], dhdx=user_dirac_dhdk)
    with pytest.raises(ValueError, match="dhdk disagrees"):
        UserModel(user_dirac_h, 2, 2, [1.0, 0.1], dhdk=_wrong_dhdk)


@numba.njit
def _non_hermitian_h(x, k, p, out):
    out[0, 0] = p[1]
    out[1, 1] = -p[1]
    out[0, 1] = complex(p[0] * k[0], -p[0] * k[1])
    out[1, 0] = complex(p[0] * k[0], -p[0] * k[1])


@numba.njit
def _nan_h(x, k, p, out):
    user_dirac_h(x, k, p, out)
    out[0, 0] = math.sqrt(-p[0])  # NaN without an exception in numba's math


@numba.njit
def _partial_h(x, k, p, out):
    out[0, 0] = p[1]
    out[1, 1] = -p[1]


@numba.njit("void(float64[::1], float64[::1], float64[::1], complex128[:, ::1])")
def _signature_h(x, k, p, out):
    out[0, 0] = p[1]


@numba.njit
def _wrong_dhdk(x, k, p, out, work):
    user_dirac_dhdk(x, k, p, out, work)
    out[0, 0, 1] = -out[0, 0, 1]
    out[0, 1, 0] = -out[0, 1, 0]


# ----------------------------------------------------------------------------
# constructors name the bad parameter
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("make,match", [
    (lambda: MassiveDirac(valley=2), "valley"),
    (lambda: MassiveDirac(velocity=-1.0), "velocity"),
    (lambda: MassiveDirac(velocity=1.0, mass=np.nan), r"'m'"),
    (lambda: Haldane(t1=np.nan), "t1"),
    (lambda: Haldane(a=-1.0), "'a'"),
    (lambda: Haldane(t1=0.0), "t1"),
    (lambda: Parabolic(0.0), "effective_mass"),
    (lambda: Parabolic(1.0, dim=4), "dim"),
    (lambda: Chain(hopping=None), "hopping"),
    (lambda: Chain(lattice_constant=0.0), "lattice_constant"),
    (lambda: Weyl(velocity=-1.0), "velocity"),
    (lambda: Weyl(chirality=0), "chirality"),
    (lambda: Weyl(tilt=(2.0, 0.0, 0.0)), "tilt"),
    (lambda: Weyl(tilt=(0.1, 0.0)), "tilt"),
    (lambda: TexturedDirac("vortex"), "vortex"),
    (lambda: TexturedDirac("domain_wall", width=0.0), "width"),
    (lambda: TexturedDirac("domain_wall", G=1.0), "'G'"),
    (lambda: TexturedDirac("moire", m1=np.inf), "m1"),
    (lambda: TexturedDirac("moire", valley=2), "valley"),
    (lambda: TexturedDirac("moire", velocity=0.0), "velocity"),
    (lambda: TexturedDirac(lambda x, p: (0.0, 0.0, 0.0)), "numba.njit"),
    (lambda: BHZ(u=np.nan), "'u'"),
    (lambda: BHZ(active=(0, 4)), "band index 4"),
    (lambda: BHZ(active=(0, 2)), "contiguous"),
    (lambda: BHZ(zeeman="big"), "zeeman"),
])
def test_constructor_errors_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_exports():
    for name in ("BandModel", "Lattice", "MassiveDirac", "QWZ", "Haldane", "Parabolic", "Chain", "Weyl",
                 "TexturedDirac", "BHZ", "TightBinding", "UserModel"):
        assert name in models.__all__ and hasattr(models, name)
    assert isinstance(Haldane().lattice, Lattice)
