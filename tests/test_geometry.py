"""Band geometry (packets.bandgeom kernels, packets.geometry host API).

Every quantity is checked against a closed form (massive Dirac, QWZ, two-band
formulas) or against an independent NumPy calculation in a random gauge
(tests/reference.py: finite differences of spectral projectors, tiny Berry
loops), never against stored numbers.
"""
import math

import numba
import numpy as np
import pytest

import reference as ref
from packets import bandgeom
from packets import geometry as geo
from packets.models import BandModel, Lattice, MassiveDirac, QWZ

try:  # numba-cuda is optional
    from numba import cuda
except ImportError:  # pragma: no cover
    cuda = None

try:  # written by another helper; used when present
    from packets.models.haldane import Haldane
except ImportError:  # pragma: no cover
    Haldane = None


# ----------------------------------------------------------------------------
# test-only model: two copies of QWZ rotated by a fixed random unitary, so
# every band is exactly doubly degenerate and the eigensolver's basis inside
# each doublet is arbitrary.  params = [u, Re U (16), Im U (16)]
# ----------------------------------------------------------------------------


@numba.njit
def _dbl_fill(p, h00, h01, h11, out):
    for i in range(4):
        for j in range(4):
            acc = 0j
            for a in range(4):
                ua = complex(p[1 + 4 * i + a], p[17 + 4 * i + a])
                for b in range(4):
                    if a // 2 != b // 2:
                        continue
                    ra = a % 2
                    rb = b % 2
                    if ra == 0 and rb == 0:
                        bab = h00
                    elif ra == 1 and rb == 1:
                        bab = h11
                    elif ra == 0:
                        bab = h01
                    else:
                        bab = h01.conjugate()
                    ub = complex(p[1 + 4 * j + b], -p[17 + 4 * j + b])
                    acc += ua * bab * ub
            out[i, j] = acc


@numba.njit
def _dbl_h(x, k, p, out):
    dz = p[0] + math.cos(k[0]) + math.cos(k[1])
    _dbl_fill(p, complex(dz, 0.0), complex(math.sin(k[0]), -math.sin(k[1])), complex(-dz, 0.0), out)


@numba.njit
def _dbl_dhdk(x, k, p, out, work):
    _dbl_fill(p, complex(-math.sin(k[0]), 0.0), complex(math.cos(k[0]), 0.0), complex(math.sin(k[0]), 0.0), out[0])
    _dbl_fill(p, complex(-math.sin(k[1]), 0.0), complex(0.0, -math.cos(k[1])), complex(math.sin(k[1]), 0.0), out[1])


def doubled_qwz(u=1.0, seed=5):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
    p = [u] + list(U.real.ravel()) + list(U.imag.ravel())
    return BandModel("doubled QWZ (test)", 2, 4, p, _dbl_h, _dbl_dhdk, lattice=Lattice(np.eye(2)))


def _gapped_points(model, rng, n, kscale, xscale=0.0, mingap=0.05):
    """n random (k, x) points where all adjacent gaps exceed mingap."""
    ks, xs = [], []
    while len(ks) < n:
        k = rng.uniform(-kscale, kscale, model.dim)
        x = rng.uniform(-xscale, xscale, model.dim)
        w = model.energies(k, x)
        if np.min(np.diff(w)) > mingap:
            ks.append(k)
            xs.append(x)
    return np.array(ks), np.array(xs)


# ----------------------------------------------------------------------------
# kernels against their NumPy counterparts
# ----------------------------------------------------------------------------


def test_kernels_match_numpy_sum_over_states():
    rng = np.random.default_rng(1)
    nb = 5
    for trial in range(4):
        w = np.sort(rng.normal(size=nb))
        if trial % 2:
            w[2] = w[1]  # exactly degenerate pair: must contribute zero, no NaN
        mats = []
        for _ in range(2):
            a = rng.normal(size=(nb, nb)) + 1j * rng.normal(size=(nb, nb))
            mats.append(a + a.conj().T)
        ma, mb = mats
        v, _ = np.linalg.qr(rng.normal(size=(nb, nb)) + 1j * rng.normal(size=(nb, nb)))
        dh = np.stack(mats)
        out = np.empty_like(dh)
        bandgeom.band_derivative_matrices(v, dh, out)
        np.testing.assert_allclose(out, ref.sos_band_derivative_matrices(v, dh), rtol=0, atol=1e-12)
        tol = 1e-12
        for n in range(nb):
            for fk, fr in ((bandgeom.curvature, ref.sos_curvature), (bandgeom.metric, ref.sos_metric),
                           (bandgeom.orbital_moment, ref.sos_orbital_moment), (bandgeom.bcp, ref.sos_bcp)):
                got = fk(w, ma, mb, n, geo.DEGTOL)
                want = fr(w, ma, mb, n, geo.DEGTOL)
                assert np.isfinite(got)
                assert abs(got - want) <= tol * max(1.0, abs(want)), (fk, n, got, want)
            for m in range(nb):
                got = bandgeom.interband_connection(w, ma, n, m, geo.DEGTOL)
                want = ref.sos_interband_connection(w, ma, n, m, geo.DEGTOL)
                assert abs(got - want) <= tol * max(1.0, abs(want))
        for lo, hi in ((0, 1), (1, 3), (2, 5)):
            for n in range(lo, hi):
                for m in range(lo, hi):
                    got = bandgeom.nonabelian_curvature(w, ma, mb, lo, hi, n, m, geo.DEGTOL)
                    want = ref.sos_nonabelian_curvature(w, ma, mb, lo, hi, n, m, geo.DEGTOL)
                    assert np.isfinite(got)
                    assert abs(got - want) <= tol * max(1.0, abs(want))
        # one-band manifold: F_nn = Omega_n
        for n in range(nb):
            f = bandgeom.nonabelian_curvature(w, ma, mb, n, n + 1, n, n, geo.DEGTOL)
            assert abs(f.imag) < 1e-12
            assert abs(f.real - bandgeom.curvature(w, ma, mb, n, geo.DEGTOL)) < 1e-12 * max(1, abs(f))


# ----------------------------------------------------------------------------
# closed forms: massive Dirac (Wong & Tserkovnyak 2021, Sec. III A), two-band formulas
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("s", [1, -1])
@pytest.mark.parametrize("mass", [0.7, -0.4])
@pytest.mark.parametrize("tilt", [(0.0, 0.0), (0.3, -0.2)])
def test_dirac_curvature_and_moment_closed_form(s, mass, tilt):
    v = 1.3
    model = MassiveDirac(velocity=v, mass=mass, valley=s, tilt=tilt)
    k = np.random.default_rng(2).uniform(-3, 3, size=(100, 2))
    om = geo.berry_curvature(model, k)
    om_exact = ref.dirac_berry_curvature(k, v, mass, s)
    np.testing.assert_allclose(om, om_exact, rtol=1e-10, atol=0)
    mz = geo.orbital_moment(model, k)
    np.testing.assert_allclose(mz, ref.dirac_orbital_moment(k, v, mass, s), rtol=1e-10, atol=0)
    # closed form Omega_+ = -s m v^2/(2E^3): hbar = v = s = m = 1 -> Omega_+(0) = -1/2
    if s == 1 and mass > 0:
        one = MassiveDirac(velocity=1.0, mass=1.0, valley=1)
        assert abs(geo.berry_curvature(one, [0.0, 0.0], band=1) + 0.5) < 1e-14


@pytest.mark.parametrize("model", [MassiveDirac(velocity=0.8, mass=-0.3, valley=-1, tilt=(0.2, 0.1)), QWZ(u=1.4)],
                         ids=["dirac", "qwz"])
def test_two_band_metric_curvature_bcp_formulas(model):
    k = np.random.default_rng(3).uniform(-2, 2, size=(30, 2))
    h = model.hamiltonian(k)
    dh = model.dhdk_matrices(k)
    om = geo.berry_curvature_tensor(model, k)
    g = geo.quantum_metric(model, k)
    G = geo.berry_connection_polarizability(model, k)
    for i in range(len(k)):
        d = ref.two_band_vector(h[i])
        dd = [ref.two_band_vector(dh[i, a]) for a in range(2)]
        om_up, g2, G_up = ref.two_band_geometry(d, dd)
        np.testing.assert_allclose(om[i, 1], om_up, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(om[i, 0], -om_up, rtol=1e-10, atol=1e-13)
        for n in range(2):
            np.testing.assert_allclose(g[i, n], g2, rtol=1e-10, atol=1e-13)
        # BCP: +g/|d| in the upper band, -g/|d| in the lower band
        np.testing.assert_allclose(G[i, 1], G_up, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(G[i, 0], -G_up, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("s, mass", [(1, 0.5), (-1, 0.5), (1, -0.3)])
def test_dirac_intrinsic_hall_conductivity(s, mass):
    v, k_max = 1.0, 20.0
    model = MassiveDirac(velocity=v, mass=mass, valley=s)
    am = abs(mass)
    for mu in (0.0, 0.6 * am, -0.9 * am, 1.7 * am, 3.0, -2.2):
        kf = math.sqrt(max(mu * mu - mass * mass, 0.0)) / v
        brk = [kf] if kf > 0 else []
        # panels of width 0.1 resolve the 1/E^3 curvature (scale |m|) to round-off
        sig = geo.intrinsic_hall_conductivity(model, mu, n=200, k_max=k_max, n_theta=8, k_breaks=brk)
        # exact integral of the truncated disc |k| < k_max (tail (1/2pi)(s m/2)/E(k_max) left out)
        exact = ref.dirac_hall_conductivity(mu, v, mass, s, k_max)
        assert abs(sig - exact) < 1e-9, (mu, sig, exact)
        # and the closed form -(e^2/2h) s m / max(|mu|, |m|), up to that tail
        tail = s * mass / (2.0 * math.sqrt(v * v * k_max * k_max + mass * mass)) / (2 * np.pi)
        full = -0.5 * s * mass / max(abs(mu), am) / (2 * np.pi)
        assert abs(sig - tail - full) < 1e-9
    # closed form at m = s = 1, mu = 2 -> -1/(8 pi) e^2/hbar, tail added back analytically
    one = MassiveDirac(velocity=1.0, mass=1.0, valley=1)
    sig = geo.intrinsic_hall_conductivity(one, 2.0, n=200, k_max=20.0, n_theta=8, k_breaks=[math.sqrt(3.0)])
    assert abs(sig - 1.0 / (2 * math.sqrt(401.0)) / (2 * np.pi) + 1.0 / (8 * np.pi)) < 1e-9


def test_hall_conductivity_array_mu_and_temperature():
    model = QWZ(u=1.0)
    mus = np.array([-0.1, 0.0, 0.2])  # all in the gap (|d| >= 1)
    sig = geo.intrinsic_hall_conductivity(model, mus, n=64)
    np.testing.assert_allclose(sig, np.full(3, 1.0 / (2 * np.pi)), atol=1e-10)  # -C/(2pi), C = -1
    # a small temperature in the gap changes it only by ~exp(-gap/2T)
    sig_t = geo.intrinsic_hall_conductivity(model, 0.0, temperature=0.02, n=64)
    assert abs(sig_t - 1.0 / (2 * np.pi)) < 1e-10


# ----------------------------------------------------------------------------
# every quantity against finite differences in a random gauge
# ----------------------------------------------------------------------------


def _fd_cases():
    cases = [("dirac", MassiveDirac(velocity=1.1, mass=0.35, valley=-1, tilt=(0.25, -0.1)), 1.5, 0.0),
             ("qwz", QWZ(u=1.3), np.pi, 0.0),
             ("random3", ref.random_lattice_model(3, seed=11), np.pi, 0.0),
             ("random4", ref.random_lattice_model(4, seed=12), np.pi, 0.0),
             ("textured", ref.textured_dirac_model(), 1.2, 1.5)]
    if Haldane is not None:
        cases.append(("haldane", Haldane(t1=1.0, t2=0.15, phi=1.1, M=0.2), 2.5, 0.0))
    return cases


@pytest.mark.parametrize("name, model, kscale, xscale", _fd_cases(), ids=[c[0] for c in _fd_cases()])
def test_geometry_against_random_gauge_finite_differences(name, model, kscale, xscale):
    rng = np.random.default_rng(sum(map(ord, name)))
    d, nb = model.dim, model.nbands
    npts = 3
    ks, xs = _gapped_points(model, rng, npts, kscale, xscale, mingap=0.1)
    kinds = ("kk", "kx", "xk", "xx") if model.textured else ("kk",)
    hfun = ref.model_hfun(model)
    _, vecs = geo.bands(model, ks, xs)
    conn = geo.berry_connection(model, ks, xs)
    mz = geo.orbital_moment(model, ks, xs)
    manifolds = [(0, 1), (nb - 1, nb)] + ([(0, 2), (1, nb)] if nb >= 3 else [])

    def close(got, want, what):
        scale = max(1.0, np.max(np.abs(want)))
        assert np.all(np.isfinite(got)), what
        assert np.max(np.abs(got - want)) < 2e-7 * scale, (what, got, want)

    for kind in kinds:
        om = geo.berry_curvature_tensor(model, ks, xs, kind=kind)
        g = geo.quantum_metric(model, ks, xs, kind=kind)
        G = geo.berry_connection_polarizability(model, ks, xs, kind=kind)
        F = {mf: geo.nonabelian_curvature(model, ks, mf, xs, kind=kind) for mf in manifolds}
        for i in range(npts):
            lam = np.concatenate([xs[i], ks[i]])
            for a in range(d):
                for b in range(d):
                    ia = ref.phase_index(d, kind[0], a)
                    ib = ref.phase_index(d, kind[1], b)
                    for n in range(nb):
                        close(om[i, n, a, b], ref.fd_curvature(hfun, lam, n, ia, ib), f"{kind} Omega n={n}")
                        close(g[i, n, a, b], ref.fd_metric(hfun, lam, n, ia, ib), f"{kind} g n={n}")
                        close(G[i, n, a, b], ref.fd_bcp(hfun, lam, n, ia, ib), f"{kind} BCP n={n}")
                    for (lo, hi), f in F.items():
                        want = ref.fd_nonabelian_curvature(hfun, lam, lo, hi, vecs[i], ia, ib)
                        close(f[i, :, :, a, b], want, f"{kind} F[{lo},{hi})")
                    if kind == "kk" and a < b:
                        # a second independent route: Berry phase of a tiny loop
                        for n in range(nb):
                            close(om[i, n, a, b], ref.plaquette_curvature(hfun, lam, n, ia, ib), "plaquette")
    for i in range(npts):
        lam = np.concatenate([xs[i], ks[i]])
        for a in range(d):
            want = ref.fd_interband_connection(hfun, lam, vecs[i], ref.phase_index(d, "k", a))
            close(conn[i, a], want, "interband connection")
        for n in range(nb):
            close(mz[i, n], ref.fd_orbital_moment(hfun, lam, n, d + 0, d + 1), f"orbital moment n={n}")


def test_velocity_matrix_diagonal_is_group_velocity():
    model = ref.random_lattice_model(3, seed=11)
    k = np.random.default_rng(4).uniform(-3, 3, size=(5, 2))
    vm = geo.velocity_matrix(model, k)
    h = 1e-5
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (model.energies(k + e) - model.energies(k - e)) / (2 * h)
        np.testing.assert_allclose(np.real(np.diagonal(vm[:, a], axis1=-2, axis2=-1)), fd, atol=1e-8)
    np.testing.assert_allclose(vm, np.conj(np.swapaxes(vm, -1, -2)), atol=1e-14)


def test_three_dimensional_vector_forms():
    model = ref.lattice3d_model(u=2.5, t=0.3)
    rng = np.random.default_rng(6)
    ks, xs = _gapped_points(model, rng, 3, np.pi, mingap=0.2)
    om = geo.berry_curvature(model, ks)
    mm = geo.orbital_moment(model, ks)
    assert om.shape == (3, 2, 3) and mm.shape == (3, 2, 3)
    hfun = ref.model_hfun(model)
    for i in range(3):
        lam = np.concatenate([xs[i], ks[i]])
        for c in range(3):
            a, b = 3 + (c + 1) % 3, 3 + (c + 2) % 3
            for n in range(2):
                want = ref.fd_curvature(hfun, lam, n, a, b)
                assert abs(om[i, n, c] - want) < 2e-7 * max(1, abs(want))
                want = ref.fd_orbital_moment(hfun, lam, n, a, b)
                assert abs(mm[i, n, c] - want) < 2e-7 * max(1, abs(want))
    assert geo.berry_curvature(model, ks, band=1).shape == (3, 3)


# ----------------------------------------------------------------------------
# Chern numbers
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("u", [-3.0, -1.0, 1.0, 3.0])
def test_qwz_chern_numbers(u):
    model = QWZ(u=u)
    c_exact = 0.5 * (np.sign(u + 2) + np.sign(u - 2) - 2 * np.sign(u))  # QWZ closed form, lower band
    assert abs(geo.chern_number(model, 0, n=48) - c_exact) < 1e-9
    assert abs(geo.chern_number(model, 1, n=48) + c_exact) < 1e-9
    assert abs(geo.chern_number(model, [0, 1], n=16)) < 1e-9
    assert abs(geo.chern_number_integrated(model, 0, n=64) - c_exact) < 1e-6
    assert abs(geo.intrinsic_hall_conductivity(model, 0.0, n=64) + c_exact / (2 * np.pi)) < 1e-6


@pytest.mark.skipif(Haldane is None, reason="Haldane model not available")
@pytest.mark.parametrize("phi, M", [(np.pi / 2, 0.0), (-np.pi / 2, 0.3), (1.0, 1.5)])
def test_haldane_chern_numbers(phi, M):
    # non-periodic Bloch convention (orbital positions in the phases): the
    # plaquette method must still give the exact integer
    model = Haldane(t1=1.0, t2=0.2, phi=phi, M=M)
    c = model.chern_exact()
    assert abs(geo.chern_number(model, 0, n=48) - c) < 1e-9
    assert abs(geo.chern_number_integrated(model, 0, n=96) - c) < 1e-6


def test_random_model_chern_plaquette_equals_integral():
    # a gapped random 3-band model with Chern numbers (-1, 2, -1)
    model = ref.random_lattice_model(3, seed=12, scale=0.6, offsets=[-1.0, 0.0, 1.0])
    k = model.lattice.bz_grid(24).reshape(-1, 2)
    assert np.min(np.diff(model.energies(k), axis=-1)) > 0.4  # gapped bands
    cs = [geo.chern_number(model, n, n=48) for n in range(3)]
    assert abs(cs[1]) > 0.5  # a topologically non-trivial case
    for n in range(3):
        assert abs(cs[n] - round(cs[n])) < 1e-9
        # midpoint rule converges exponentially; the curvature peaks at the
        # narrowest gaps (~0.5) need n ~ 160 for 1e-8
        assert abs(geo.chern_number_integrated(model, n, n=160) - cs[n]) < 1e-8
    assert abs(sum(cs)) < 1e-9
    assert abs(geo.chern_number(model, [0, 1], n=48) - (cs[0] + cs[1])) < 1e-9


# ----------------------------------------------------------------------------
# degeneracies
# ----------------------------------------------------------------------------


def test_no_nan_at_dirac_point():
    # m = 0 at k = 0: the bands touch; the degenerate rule gives exactly 0
    model = MassiveDirac(velocity=1.0, mass=0.0, valley=1)
    k = np.array([[0.0, 0.0], [1e-3, 0.0]])
    out = [geo.berry_curvature(model, k), geo.orbital_moment(model, k), geo.quantum_metric(model, k),
           geo.berry_connection_polarizability(model, k), geo.berry_connection(model, k),
           geo.nonabelian_curvature(model, k, (0, 1)), geo.berry_curvature_tensor(model, k, kind="xx")]
    for o in out:
        assert np.all(np.isfinite(o))
        assert np.all(o[0] == 0.0)
    # away from k = 0 the m = 0 cone has zero curvature but a 1/k^2 metric
    g = geo.quantum_metric(model, k)[1]
    np.testing.assert_allclose(g[:, 1, 1], 0.25 / 1e-6, rtol=1e-10)


def test_degenerate_doublets():
    model = doubled_qwz(u=1.0)
    rng = np.random.default_rng(8)
    k = rng.uniform(-np.pi, np.pi, size=(20, 2))
    w = model.energies(k)
    assert np.max(np.abs(w[:, 1] - w[:, 0])) < 1e-12 and np.max(np.abs(w[:, 3] - w[:, 2])) < 1e-12
    om = geo.berry_curvature(model, k)
    F = geo.nonabelian_curvature(model, k, (0, 2))
    for q in (om, F, geo.quantum_metric(model, k), geo.orbital_moment(model, k),
              geo.berry_connection_polarizability(model, k), geo.berry_connection(model, k)):
        assert np.all(np.isfinite(q))
    om_qwz = geo.berry_curvature(QWZ(u=1.0), k)
    trF = np.trace(F[..., 0, 1], axis1=1, axis2=2)
    # the trace is gauge invariant: twice the QWZ lower-band curvature
    np.testing.assert_allclose(trF.real, 2 * om_qwz[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(trF.imag, 0.0, atol=1e-12)
    # partners are skipped, so the single-band values add up to the trace
    np.testing.assert_allclose(om[:, 0] + om[:, 1], trF.real, rtol=1e-9, atol=1e-12)
    # independent: projector of the doublet in a random gauge
    hfun = ref.model_hfun(model)
    for i in range(3):
        lam = np.concatenate([np.zeros(2), k[i]])
        assert abs(trF[i].real - ref.fd_curvature(hfun, lam, [0, 1], 2, 3)) < 2e-7 * max(1, abs(trF[i]))
    # determinant links work through the degeneracy: C = 2 C_QWZ = -2
    assert abs(geo.chern_number(model, [0, 1], n=32) + 2.0) < 1e-9


def test_chern_number_warns_without_gap():
    # H = cos(k_x) sigma_z: the bands cross at k_x = +/- pi/2, where the lower
    # eigenvector jumps from (0, 1) to (1, 0) and a link overlap vanishes
    sz = np.diag([1.0, -1.0])
    model = ref.lattice_model_from_terms([((1.0, 0.0), sz, np.zeros((2, 2)))])
    with pytest.warns(RuntimeWarning, match="gap"):
        geo.chern_number(model, 0, n=16)


# ----------------------------------------------------------------------------
# the kernel functions compile as CUDA device functions (PTX for sm_90)
# ----------------------------------------------------------------------------


def _geometry_device_kernel(w, ma, mb, v, dh, mout, out, cout):
    i = cuda.grid(1)
    if i < w.shape[0]:
        bandgeom.band_derivative_matrices(v[i], dh[i], mout[i])
        out[i, 0] = bandgeom.curvature(w[i], ma[i], mb[i], 0, 1e-10)
        out[i, 1] = bandgeom.metric(w[i], ma[i], mb[i], 0, 1e-10)
        out[i, 2] = bandgeom.orbital_moment(w[i], ma[i], mb[i], 0, 1e-10)
        out[i, 3] = bandgeom.bcp(w[i], ma[i], mb[i], 0, 1e-10)
        cout[i, 0] = bandgeom.interband_connection(w[i], ma[i], 0, 1, 1e-10)
        cout[i, 1] = bandgeom.nonabelian_curvature(w[i], ma[i], mb[i], 0, 2, 0, 1, 1e-10)


def test_kernels_compile_to_ptx(monkeypatch):
    from numba import complex128, float64
    if cuda is None:
        pytest.skip("numba-cuda is not installed (pip install 'numba-cuda[cu12]')")
    try:
        cuda.compile_ptx(lambda a: None, "(float64[:],)", cc=(9, 0))
    except Exception as exc:  # no numba-cuda, or no NVVM (numba-cuda without the [cu12] extra)
        pytest.skip(f"no CUDA compiler available: {exc!r}")
    if not cuda.is_available():
        # numba-cuda 0.30 asks the current device for its compute capability
        # when compiling an njit function as a device function, even inside
        # compile_ptx; without a driver, stand in a cc 9.0 device.
        import types
        import numba.cuda.dispatcher as cuda_dispatcher
        monkeypatch.setattr(cuda_dispatcher, "get_current_device",
                            lambda: types.SimpleNamespace(compute_capability=(9, 0)), raising=False)
    c3 = complex128[:, :, :]
    c4 = complex128[:, :, :, :]
    sig = (float64[:, :], c3, c3, c3, c4, c4, float64[:, :], complex128[:, :])
    ptx, _ = cuda.compile_ptx(_geometry_device_kernel, sig, cc=(9, 0))
    assert ".target sm_90" in ptx


# ----------------------------------------------------------------------------
# Fermi function and input validation
# ----------------------------------------------------------------------------


def test_fermi():
    eps = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(geo.fermi(eps, 0.0, 0.0), [1.0, 0.5, 0.0])
    T = 0.3
    np.testing.assert_allclose(geo.fermi(eps, 0.2, T), 1 / (np.exp((eps - 0.2) / T) + 1), rtol=1e-14)
    with np.errstate(all="raise"):
        f = geo.fermi(np.array([-1e4, 1e4]), 0.0, 1e-3)
    np.testing.assert_array_equal(f, [1.0, 0.0])
    assert geo.fermi(0.0, 0.0, 1.0) == 0.5


def test_bad_inputs():
    dirac = MassiveDirac()
    qwz = QWZ()
    with pytest.raises(ValueError, match="unknown band"):
        geo.berry_curvature(dirac, [0.1, 0.2], band=2)
    with pytest.raises(ValueError, match="unknown band"):
        geo.chern_number(qwz, 5)
    with pytest.raises(ValueError, match="last axis"):
        geo.berry_curvature(dirac, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="continuum"):
        geo.chern_number(dirac, 0)
    with pytest.raises(ValueError, match="continuum"):
        geo.chern_number_integrated(dirac, 0)
    with pytest.raises(ValueError, match="kind"):
        geo.berry_curvature_tensor(dirac, [0.1, 0.2], kind="kz")
    with pytest.raises(ValueError, match="berry_curvature_tensor"):
        geo.berry_curvature(dirac, [0.1, 0.2], kind="kx")
    with pytest.raises(ValueError, match="manifold"):
        geo.nonabelian_curvature(dirac, [0.1, 0.2], (1, 1))
    with pytest.raises(ValueError, match="empty"):
        geo.chern_number(qwz, [])
    with pytest.raises(ValueError, match="temperature"):
        geo.fermi(0.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="k_breaks"):
        geo.intrinsic_hall_conductivity(dirac, 0.5, k_max=2.0, k_breaks=[3.0])
    with pytest.raises(ValueError, match="continuum models"):
        geo.intrinsic_hall_conductivity(qwz, 0.0, k_max=2.0)
    with pytest.raises(ValueError, match="n must be"):
        geo.chern_number(qwz, 0, n=1)
