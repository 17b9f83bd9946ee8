"""Tests of packets.ensemble: weights are densities, constructors sample what they say.

Every stochastic check uses a fixed seed and asserts |mc - exact| < 5 sigma,
with sigma estimated from the ensemble itself (no systematic error: the
exact values below account for the sampled k region exactly).
"""
import math
import warnings

import numba
import numpy as np
import pytest
from scipy import integrate

from packets.ensemble import STATUS, STATUS_OK, Ensemble, fermi, model_signature
from packets.models import QWZ, BandModel, Lattice, MassiveDirac

# ----------------------------------------------------------------------------
# small inline models (independent of the other helpers' models)
# ----------------------------------------------------------------------------


@numba.njit
def _para_h(x, k, p, out):
    # eps = hbar^2 k^2 / 2 m*, any dimension
    s = 0.0
    for a in range(k.shape[0]):
        s += k[a] * k[a]
    out[0, 0] = s / (2.0 * p[0])


@numba.njit
def _para_dhdk(x, k, p, out, work):
    for a in range(k.shape[0]):
        out[a, 0, 0] = k[a] / p[0]


def parabolic(mass, dim, k_window):
    return BandModel("test parabolic", dim, 1, [mass], _para_h, _para_dhdk, param_names=("m",), k_window=k_window)


@numba.njit
def _chain_h(x, k, p, out):
    # eps = -2 t cos(k a), p = [t, a]
    out[0, 0] = -2.0 * p[0] * math.cos(k[0] * p[1])


@numba.njit
def _chain_dhdk(x, k, p, out, work):
    out[0, 0, 0] = 2.0 * p[0] * p[1] * math.sin(k[0] * p[1])


def chain(t, a):
    return BandModel("test chain", 1, 1, [t, a], _chain_h, _chain_dhdk, lattice=Lattice([[a]]),
                     param_names=("t", "a"))


@numba.njit
def _flat_h(x, k, p, out):
    out[0, 0] = p[0]


@numba.njit
def _flat_dhdk(x, k, p, out, work):
    for a in range(out.shape[0]):
        out[a, 0, 0] = 0.0


def flat_oblique():
    """A flat band on an oblique 2D lattice: tests the BZ mapping and the cell area."""
    return BandModel("test flat", 2, 1, [0.0], _flat_h, _flat_dhdk,
                     lattice=Lattice([[1.3, 0.2], [0.5, 0.9]]), param_names=("e0",))


def weighted_sum_stderr(ens):
    """Standard error of sum(w) for independent draws within each band block."""
    var = 0.0
    for b in np.unique(ens.band):
        w = ens.weight[ens.band == b]
        var += w.size * w.var(ddof=1)
    return math.sqrt(var)


def window_stderr(ens):
    """Standard error of sum(w) for a fermi_surface ensemble (inverse sampling)."""
    n = ens.n
    p = ens.info["acceptance"]
    w = ens.weight
    rel2 = (1.0 - p) / n + w.var(ddof=1) / (n * w.mean() ** 2)
    return abs(w.sum()) * math.sqrt(rel2)


# ----------------------------------------------------------------------------
# Fermi sea densities
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_parabolic_fermi_sea_T0_density(dim):
    mass, mu = 0.7, 0.5
    kf = math.sqrt(2 * mass * mu)
    model = parabolic(mass, dim, k_window=1.5 * kf)
    ens = Ensemble.fermi_sea(model, mu, 0.0, 20000, seed=11)
    # n = (volume of the Fermi ball)/(2 pi)^d: 2 kF/2pi, pi kF^2/4pi^2 = m mu/2pi, kF^3/6pi^2
    exact = {1: kf / math.pi, 2: mass * mu / (2 * math.pi), 3: kf ** 3 / (6 * math.pi ** 2)}[dim]
    sigma = weighted_sum_stderr(ens)
    assert 0 < sigma < 0.02 * exact
    assert abs(ens.weight.sum() - exact) < 5 * sigma
    assert np.all(np.linalg.norm(ens.k, axis=1) <= 1.5 * kf)


@pytest.mark.parametrize("valley", [1, -1])
def test_dirac_conduction_band_T0_density(valley):
    v, m, mu = 1.3, 0.3, 0.8
    model = MassiveDirac(velocity=v, mass=m, valley=valley)
    kf = math.sqrt(mu ** 2 - m ** 2) / v
    ens = Ensemble.fermi_sea(model, mu, 0.0, 20000, seed=5, bands=[1], k_window=1.3 * kf)
    exact = (mu ** 2 - m ** 2) / (4 * math.pi * v ** 2)
    sigma = weighted_sum_stderr(ens)
    assert 0 < sigma < 0.02 * exact
    assert abs(ens.weight.sum() - exact) < 5 * sigma
    assert np.all(ens.band == 1)


def test_qwz_filled_bands_exact():
    model = QWZ(u=1.0)
    # mu above the top of both bands: every f = 1, two states per cell exactly
    ens = Ensemble.fermi_sea(model, 10.0, 0.0, 1001, seed=1)
    assert ens.weight.sum() == pytest.approx(2.0 / model.lattice.cell_volume, rel=1e-13, abs=0)
    # mu in the gap (|d| >= 1 for u = 1): lower band full, upper empty, per band exactly
    ens = Ensemble.fermi_sea(model, 0.0, 0.0, 1000, seed=2)
    assert ens.weight[ens.band == 0].sum() == pytest.approx(1.0, rel=1e-13)
    assert ens.weight[ens.band == 1].sum() == 0.0
    assert ens.info["n_per_band"] == [500, 500]


def test_lattice_bz_mapping_oblique_cell():
    model = flat_oblique()
    ens = Ensemble.fermi_sea(model, 1.0, 0.0, 400, seed=3)
    assert ens.weight.sum() == pytest.approx(1.0 / model.lattice.cell_volume, rel=1e-13)
    # k = sum_a s_a b_a with fractional coordinates s_a = k . a_a / 2pi in [-1/2, 1/2)
    frac = ens.k @ model.lattice.vectors.T / (2 * math.pi)
    assert np.all(frac >= -0.5 - 1e-12) and np.all(frac < 0.5 + 1e-12)
    # uniform in each fractional coordinate: mean 0 within 5 sigma (sigma^2 = 1/12n)
    assert np.all(np.abs(frac.mean(axis=0)) < 5 * math.sqrt(1 / 12 / ens.n))


def test_chain_partial_filling_T0():
    t, a, mu = 1.0, 1.7, 0.6
    model = chain(t, a)
    ens = Ensemble.fermi_sea(model, mu, 0.0, 20000, seed=4)
    # occupied |k| < kF with -2t cos(kF a) = mu, density 2 kF / 2pi
    kf = math.acos(-mu / (2 * t)) / a
    exact = kf / math.pi
    sigma = weighted_sum_stderr(ens)
    assert abs(ens.weight.sum() - exact) < 5 * sigma
    assert np.all(np.abs(ens.k[:, 0]) <= math.pi / a + 1e-12)


def test_dirac_finite_T_against_quadrature():
    v, m, mu, T, K = 1.0, 0.3, 0.6, 0.1, 1.5
    model = MassiveDirac(velocity=v, mass=m)
    ens = Ensemble.fermi_sea(model, mu, T, 40000, seed=7, k_window=K)
    EK = math.sqrt(v ** 2 * K ** 2 + m ** 2)

    # DOS per band g(E) = |E| / (2 pi v^2) for |m| < |E| < E_K (the window cut exactly)
    def dens(lo, hi):
        return integrate.quad(lambda e: abs(e) / (2 * math.pi * v ** 2) * fermi(e, mu, T), lo, hi,
                              epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    for band, (lo, hi) in ((0, (-EK, -m)), (1, (m, EK))):
        sub = ens.subset(ens.band == band)
        mc = sub.weight.sum()
        sigma = weighted_sum_stderr(sub)
        exact = dens(lo, hi)
        assert 0 < sigma < 0.02 * exact
        assert abs(mc - exact) < 5 * sigma, (band, mc, exact, sigma)


def test_parabolic_finite_T_closed_form():
    mass, mu, T = 1.0, 0.2, 0.15
    K = math.sqrt(2 * mass * (mu + 45 * T))  # f(E_K) ~ e^-45: truncation negligible
    model = parabolic(mass, 2, K)
    ens = Ensemble.fermi_sea(model, mu, T, 30000, seed=8)
    exact = mass * T / (2 * math.pi) * math.log1p(math.exp(mu / T))
    sigma = weighted_sum_stderr(ens)
    assert abs(ens.weight.sum() - exact) < 5 * sigma


def test_fermi_function_stable():
    e = np.array([-1e4, -3.0, -0.1, 0.0, 0.1, 3.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = fermi(e, 0.0, 0.5)
    assert np.all(np.isfinite(f))
    direct = 1.0 / (np.exp(e[1:-1] / 0.5) + 1.0)
    np.testing.assert_allclose(f[1:-1], direct, rtol=1e-14)
    assert f[0] == 1.0 and f[-1] == 0.0
    np.testing.assert_allclose(f + fermi(-e, 0.0, 0.5), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(fermi(np.array([-1.0, 0.0, 1.0]), 0.0, 0.0), [1.0, 0.5, 0.0])


# ----------------------------------------------------------------------------
# Fermi surface
# ----------------------------------------------------------------------------


def test_parabolic_fermi_surface_T0_window():
    mass, mu, w = 0.8, 0.5, 0.05
    model = parabolic(mass, 2, k_window=math.sqrt(2 * mass * 0.7))
    ens = Ensemble.fermi_surface(model, mu, 0.0, 20000, window=w, seed=9)
    eps = model.energies(ens.k)[:, 0]
    assert np.all(np.abs(eps - mu) < w)
    dos = mass / (2 * math.pi)
    # states in the window: constant DOS times 2w; sigma from inverse sampling
    n, p = ens.n, ens.info["acceptance"]
    states = ens.info["window_states"]
    assert abs(states - dos * 2 * w) < 5 * states * math.sqrt((1 - p) / n)
    # f-weighted: at T = 0 only the lower half is occupied
    sigma = window_stderr(ens)
    assert 0 < sigma < 0.03 * dos * w
    assert abs(ens.weight.sum() - dos * w) < 5 * sigma
    # the background below the window, estimated from the rejected trials
    bg = ens.info["background"]
    assert bg["represented"] is False
    assert abs(bg["density_below_window"] - dos * (mu - w)) < 5 * bg["density_below_window_stderr"]


def test_dirac_fermi_surface_finite_T_against_quadrature():
    v, m, mu, T = 1.0, 0.3, 0.7, 0.02
    model = MassiveDirac(velocity=v, mass=m)
    ens = Ensemble.fermi_surface(model, mu, T, 20000, seed=10, k_window=2.0)
    w = ens.info["window"]
    assert w == pytest.approx(20 * T)
    assert np.all(ens.band == 1)  # the valence band never reaches the window
    exact = integrate.quad(lambda e: e / (2 * math.pi * v ** 2) * fermi(e, mu, T), mu - w, mu + w,
                           epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    sigma = window_stderr(ens)
    assert 0 < sigma < 0.03 * exact
    assert abs(ens.weight.sum() - exact) < 5 * sigma


def test_fermi_surface_errors():
    model = MassiveDirac(velocity=1.0, mass=0.5)
    with pytest.raises(ValueError, match="only 0 of 100 packets"):
        Ensemble.fermi_surface(model, 0.0, 0.0, 100, window=0.1, seed=1, max_attempts=20000)
    with pytest.raises(ValueError, match="window"):
        Ensemble.fermi_surface(model, 0.8, 0.0, 100, seed=1)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Ensemble.fermi_surface(model, 0.8, 0.0, 100, window=0.1, bands=[2], seed=1)


# ----------------------------------------------------------------------------
# Gaussian packets
# ----------------------------------------------------------------------------


def test_gaussian_packet_moments():
    model = MassiveDirac(velocity=1.0, mass=0.2)
    x0, k0 = np.array([0.3, -1.2]), np.array([0.5, 0.1])
    sx, sk = np.array([0.7, 0.2]), 0.05
    n = 4000
    ens = Ensemble.gaussian_packet(model, x0, k0, n, sx, sk, band=1, seed=12)
    for arr, c, s in ((ens.x, x0, sx), (ens.k, k0, np.array([sk, sk]))):
        assert np.all(np.abs(arr.mean(axis=0) - c) < 5 * s / math.sqrt(n))
        assert np.all(np.abs(arr.std(axis=0, ddof=1) - s) < 5 * s / math.sqrt(2 * (n - 1)))
    np.testing.assert_allclose(ens.weight.sum(), 1.0, rtol=1e-14)
    assert np.all(ens.band == 1)
    _assert_band_eigenvectors(model, ens)

    same = Ensemble.gaussian_packet(model, x0, k0, 5, 0.0, 0.0, band=0, seed=1)
    assert np.all(same.x == x0) and np.all(same.k == k0)


def test_gaussian_packet_user_chi():
    model = MassiveDirac(velocity=1.0, mass=1.0)
    ens = Ensemble.gaussian_packet(model, [0, 0], [0, 0], 10, 0.0, 0.0, chi=[0.0, 2.0j], seed=1)
    np.testing.assert_allclose(ens.chi, np.tile([0.0, 1.0j], (10, 1)))
    # at k = 0, H = m sigma_z with m > 0: orbital 1 is the lower band
    assert np.all(ens.band == 0)
    with pytest.raises(ValueError, match="zero norm"):
        Ensemble.gaussian_packet(model, [0, 0], [0, 0], 10, 0.0, 0.0, chi=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        Ensemble.gaussian_packet(model, [0, 0], [0, 0], 10, 0.0, 0.0, chi=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="exactly one of"):
        Ensemble.gaussian_packet(model, [0, 0], [0, 0], 10, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Ensemble.gaussian_packet(model, [0, 0], [0, 0], 10, 0.0, 0.0, band=2)
    with pytest.raises(ValueError, match="sigma_x"):
        Ensemble.gaussian_packet(model, [0, 0], [0, 0], 10, -1.0, 0.0, band=0)


# ----------------------------------------------------------------------------
# pseudospins, seeds, validation, metadata
# ----------------------------------------------------------------------------


def _assert_band_eigenvectors(model, ens):
    """chi is normalised and equals the band eigenvector of an independent NumPy diagonalisation."""
    np.testing.assert_allclose(np.linalg.norm(ens.chi, axis=1), 1.0, atol=1e-13)
    h = model.hamiltonian(ens.k, ens.x)
    _, u = np.linalg.eigh(h)
    un = u[np.arange(ens.n), :, ens.band]
    overlap = np.abs(np.einsum("pi,pi->p", un.conj(), ens.chi))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-10)
    hchi = np.einsum("pij,pj->pi", h, ens.chi)
    eps = np.linalg.eigvalsh(h)[np.arange(ens.n), ens.band]
    np.testing.assert_allclose(hchi, eps[:, None] * ens.chi, atol=1e-10)


@pytest.mark.parametrize("model", [QWZ(u=-1.2), MassiveDirac(velocity=0.8, mass=-0.4, valley=-1, tilt=(0.2, 0.1))],
                         ids=["qwz", "tilted-dirac"])
def test_band_packets_carry_band_eigenvectors(model):
    ens = Ensemble.fermi_sea(model, 0.3, 0.05, 500, seed=13, k_window=None if model.is_lattice else 3.0)
    assert set(np.unique(ens.band)) == {0, 1}
    _assert_band_eigenvectors(model, ens)
    fs = Ensemble.fermi_surface(model, 1.0, 0.05, 200, seed=14, k_window=None if model.is_lattice else 3.0)
    _assert_band_eigenvectors(model, fs)


def test_seeds_reproducible_and_recorded():
    model = MassiveDirac(velocity=1.0, mass=0.3)
    for make in (lambda s: Ensemble.fermi_sea(model, 0.5, 0.01, 300, seed=s),
                 lambda s: Ensemble.fermi_surface(model, 0.5, 0.01, 300, seed=s),
                 lambda s: Ensemble.gaussian_packet(model, [0, 0], [0.1, 0], 300, 1.0, 0.1, band=1, seed=s)):
        a, b, c = make(21), make(21), make(22)
        assert a.seed == 21
        for name in ("x", "k", "chi", "band", "weight", "pid"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(a.k, c.k)
        fresh = make(None)
        assert isinstance(fresh.seed, int) and fresh.seed > 2 ** 32
        np.testing.assert_array_equal(make(fresh.seed).k, fresh.k)
    with pytest.raises(ValueError, match="seed"):
        Ensemble.fermi_sea(model, 0.5, 0.0, 10, seed=-3)


def test_from_arrays_valid_and_inferred_band():
    model = MassiveDirac(velocity=1.0, mass=0.5)
    k = np.array([[0.1, 0.2], [-0.3, 0.4], [1.0, 0.0]])
    x = np.zeros_like(k)
    ref = Ensemble.fermi_sea(model, 0.0, 0.0, 2, seed=1)  # any band eigenvectors
    _, v = model.bands(k)
    chi = v[:, :, 1]
    ens = Ensemble.from_arrays(model, x, k, chi=chi, seed=3)
    assert np.all(ens.band == 1) and ens.seed == 3 and ens.kind == "from_arrays"
    np.testing.assert_allclose(ens.weight, 1.0 / 3)
    np.testing.assert_array_equal(ens.pid, [0, 1, 2])
    ens2 = Ensemble.from_arrays(model, x, k, band=[0, 1, 0], weight=[1.0, 2.0, 3.0])
    _assert_band_eigenvectors(model, ens2)
    assert ens2.chi.dtype == np.complex128 and ens2.x.flags.c_contiguous
    assert ref.status.dtype == np.int32 and np.all(ref.status == STATUS_OK) and STATUS.OK == 0


def test_status_enum_mirrors_registry():
    from packets import status

    assert STATUS.OK == status.OK == STATUS_OK == 0
    codes = {n: v for n, v in vars(status).items() if n.isupper() and isinstance(v, int) and not n.startswith("SOURCE_")}
    assert set(codes.values()) == set(status.NAMES)  # the reasons, every one named
    assert {m.name: int(m) for m in STATUS} == codes


def test_from_arrays_errors():
    model = MassiveDirac(velocity=1.0, mass=0.5)
    n = 5
    x = np.zeros((n, 2))
    k = np.linspace(0, 1, 2 * n).reshape(n, 2)
    chi = np.tile([1.0, 0.0], (n, 1)).astype(complex)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        Ensemble.from_arrays(model, np.zeros((n, 3)), k, chi=chi)
    with pytest.raises(ValueError, match=r"k must have shape \(5, 2\)"):
        Ensemble.from_arrays(model, x, k[:4], chi=chi)
    kb = k.copy()
    kb[3, 1] = np.nan
    with pytest.raises(ValueError, match="k is NaN or infinite for packet 3"):
        Ensemble.from_arrays(model, x, kb, chi=chi)
    with pytest.raises(ValueError, match=r"chi must have shape \(5, 2\)"):
        Ensemble.from_arrays(model, x, k, chi=chi[:, :1])
    cb = chi.copy()
    cb[2] *= 1.001
    with pytest.raises(ValueError, match="packet 2.*normalise"):
        Ensemble.from_arrays(model, x, k, chi=cb)
    with pytest.raises(ValueError, match=r"out of range.*0\.\.1"):
        Ensemble.from_arrays(model, x, k, band=[0, 1, 2, 0, 0])
    with pytest.raises(ValueError, match="chi= .* or band="):
        Ensemble.from_arrays(model, x, k)
    with pytest.raises(ValueError, match="weight is NaN or infinite for packet 4"):
        Ensemble.from_arrays(model, x, k, chi=chi, weight=[1, 1, 1, 1, np.inf])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Ensemble.fermi_sea(model, 0.0, 0.0, 10, bands=[2])
    with pytest.raises(ValueError, match="temperature"):
        Ensemble.fermi_sea(model, 0.0, -1.0, 10)
    with pytest.raises(ValueError, match="k_window applies to continuum models only"):
        Ensemble.fermi_sea(QWZ(), 0.0, 0.0, 10, k_window=1.0)


def test_check_model():
    model = MassiveDirac(velocity=1.0, mass=0.1)
    ens = Ensemble.fermi_sea(model, 0.5, 0.0, 20, seed=1)
    ens.check_model(MassiveDirac(velocity=1.0, mass=0.1))  # an equal model is accepted
    assert ens.model_signature == model_signature(model)
    with pytest.raises(ValueError, match=r"different model.*'m': 0\.1.*'m': 0\.2"):
        ens.check_model(MassiveDirac(velocity=1.0, mass=0.2))
    with pytest.raises(ValueError, match="model class: ensemble 'MassiveDirac' vs model 'QWZ'"):
        ens.check_model(QWZ(u=1.0))
    with pytest.raises(ValueError, match="different model"):
        ens.check_model(MassiveDirac(velocity=1.0, mass=0.1, valley=-1))


def test_subset_concatenate_copy_keep_pids():
    model = QWZ(u=1.0)
    ens = Ensemble.fermi_sea(model, 0.0, 0.1, 100, seed=2)
    np.testing.assert_array_equal(ens.pid, np.arange(100))
    a = ens.subset(slice(0, 40))
    b = ens.subset(np.arange(40, 100))
    mask = ens.band == 1
    c = ens.subset(mask)
    np.testing.assert_array_equal(c.pid, np.flatnonzero(mask))
    np.testing.assert_array_equal(c.k, ens.k[mask])
    joined = Ensemble.concatenate([b, a])
    assert len(joined) == 100 and joined.seed == ens.seed
    np.testing.assert_array_equal(np.sort(joined.pid), ens.pid)
    order = np.argsort(joined.pid)
    for name in ("x", "k", "chi", "band", "weight", "status"):
        np.testing.assert_array_equal(getattr(joined, name)[order], getattr(ens, name))
    # independently built ensembles share ids 0..n-1: refuse unless renumbered
    other = Ensemble.fermi_sea(model, 0.0, 0.1, 50, seed=3)
    with pytest.raises(ValueError, match="renumber=True"):
        Ensemble.concatenate([ens, other])
    both = Ensemble.concatenate([ens, other], renumber=True)
    np.testing.assert_array_equal(both.pid, np.arange(150))
    assert both.weight.sum() == pytest.approx(ens.weight.sum() + other.weight.sum(), rel=1e-14)
    with pytest.raises(ValueError, match="different models"):
        Ensemble.concatenate([ens, Ensemble.fermi_sea(QWZ(u=0.5), 0.0, 0.1, 10, seed=1)], renumber=True)
    with pytest.raises(ValueError, match="more than once"):
        ens.subset(np.array([1, 1]))
    cp = ens.copy()
    cp.k[0, 0] += 1.0
    cp.info["mu"] = 99.0
    assert ens.k[0, 0] != cp.k[0, 0] and ens.info["mu"] == 0.0


def test_metadata_and_layout():
    model = MassiveDirac(velocity=1.0, mass=0.3)
    ens = Ensemble.fermi_sea(model, 0.5, 0.02, 10, seed=4, x_box=[[-1.0, 2.0], [0.0, 0.5]])
    assert (ens.n, ens.dim, ens.nbands, len(ens)) == (10, 2, 2, 10)
    assert ens.kind == "fermi_sea" and ens.info["mu"] == 0.5 and ens.info["temperature"] == 0.02
    # x (2 f8) + k (2 f8) + chi (2 c16) + band i8 + weight f8 + status i4 + pid i8
    assert ens.nbytes_per_packet == 16 + 16 + 32 + 8 + 8 + 4 + 8
    assert ens.nbytes == 10 * ens.nbytes_per_packet
    assert np.all((ens.x[:, 0] >= -1) & (ens.x[:, 0] <= 2) & (ens.x[:, 1] >= 0) & (ens.x[:, 1] <= 0.5))
    for name, dt in (("x", np.float64), ("k", np.float64), ("chi", np.complex128), ("band", np.int64),
                     ("weight", np.float64), ("status", np.int32), ("pid", np.int64)):
        arr = getattr(ens, name)
        assert arr.dtype == dt and arr.flags.c_contiguous and arr.shape[0] == 10
