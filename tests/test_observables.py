"""The observables and the Result statistics against slow, obviously correct NumPy.

For a small ensemble the state at a record time (``sim.x``, ``sim.k``,
``sim.chi``, ``sim.band``, ``sim.weight``) is read back and every observable is
recomputed per packet with numpy: ``numpy.linalg.eigh`` per packet, dH/dk by
finite differences of H, Berry curvature from random-gauge finite
differences of projectors (tests/reference.py, independent of
packets.geometry), the histogram by ``numpy.histogram2d``.  The per-batch
sums (batch = pid mod nbatch), the batch-means standard error, time
averages, conductivities and merging with ``+`` are then checked against
numpy on those sums.

The simulations reuse the massive-Dirac kernels of tests/test_dynamics.py
(same model class, field kind and observable objects), so no extra numba
compilation is needed when both files run in one session.
"""
import math

import numpy as np
import pytest

from observables import DensityMatrix
from packets import Ensemble, Result, models
from reference import fd_curvature, model_hfun
from test_dynamics import EDGES, Q, dirac_field, make_sim, random_chi, u_numpy

POT = np.array([0.3, 0.4, 0.25, 0.0, 0.0])  # U = 0.3 cos(0.4 x + 0.25 y)
E_FIELD = np.array([0.04, -0.03])
MODEL = models.MassiveDirac(velocity=1.0, mass=0.5)
NBATCH = 8


def _field():
    return dirac_field(E=E_FIELD, A=POT[0], g=POT[1:3])


def _ensemble(dynamics, n=60, seed=21):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-7.0, 7.0, (n, 2))  # some packets lie outside the density grid
    k = rng.uniform(-1.0, 1.0, (n, 2))
    w = rng.uniform(0.2, 1.0, n)
    if dynamics == "coherent":
        return Ensemble.from_arrays(MODEL, x, k, chi=random_chi(rng, n, 2), weight=w, seed=1)
    return Ensemble.from_arrays(MODEL, x, k, band=rng.integers(0, 2, n), weight=w, seed=1)


def _dhdk_fd(model, k, x, h=1e-3):
    """dH/dk_a by fourth-order central differences of H (shape (n, dim, nb, nb))."""
    out = []
    for a in range(model.dim):
        e = np.zeros(model.dim)
        e[a] = h
        Hs = [model.hamiltonian(k + s * e, x) for s in (2, 1, -1, -2)]
        out.append((-Hs[0] + 8 * Hs[1] - 8 * Hs[2] + Hs[3]) / (12 * h))
    return np.stack(out, axis=1)


def _grad_u(x, p):
    ph = x @ p[1:3]
    return np.stack([-p[0] * p[1] * np.sin(ph) + p[4] * p[3] * np.exp(p[4] * x[:, 0]),
                     -p[0] * p[2] * np.sin(ph)], axis=1)


def _per_packet(sim, dynamics):
    """Per-packet observable vectors in the Result's component order (numpy reference).

    Returns a dict name -> array (n, ncomp) of *unweighted* values.
    """
    n = sim.x.shape[0]
    x, k, chi = sim.x, sim.k, sim.chi
    H = MODEL.hamiltonian(k, x)
    w_np, v_np = np.linalg.eigh(H)
    # the engine's eigenvectors (its gauge) are needed only for the
    # gauge-dependent off-diagonal density matrix; check they are eigenvectors
    w_k, v_k = MODEL.bands(k, x)
    np.testing.assert_allclose(w_k, w_np, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("pij,pjn->pin", H, v_k), v_k * w_np[:, None, :], rtol=0, atol=1e-12)
    dH = _dhdk_fd(MODEL, k, x)
    rows = np.arange(n)
    if dynamics == "coherent":
        c = np.einsum("pin,pi->pn", v_np.conj(), chi)
        xd = np.einsum("pi,paij,pj->pa", chi.conj(), dH, chi).real
        vdiag = np.einsum("pin,paij,pjn->pan", v_np.conj(), dH, v_np).real  # d eps_n/dk (Hellmann-Feynman)
        vb = np.einsum("pan,pn->pa", vdiag, np.abs(c) ** 2)
        pops = np.abs(c) ** 2
        ck = np.einsum("pin,pi->pn", v_k.conj(), chi)
        rho = ck[:, :, None] * ck[:, None, :].conj()
        en = np.einsum("pi,pij,pj->p", chi.conj(), H, chi).real + u_numpy(x, POT)
    else:
        b = sim.band
        hfun = model_hfun(MODEL)
        om = np.array([fd_curvature(hfun, np.concatenate([x[i], k[i]]), [b[i]], 2, 3, seed=i) for i in rows])
        kd = Q * E_FIELD - _grad_u(x, POT)
        vb = np.einsum("pin,paij,pjn->pan", v_np.conj(), dH, v_np).real[rows, :, b]
        xd = vb + np.stack([-kd[:, 1] * om, kd[:, 0] * om], axis=1)  # -kdot x Omega z
        pops = np.zeros((n, 2))
        pops[rows, b] = 1.0
        rho = np.zeros((n, 2, 2), dtype=complex)
        rho[rows, b, b] = 1.0
        en = w_np[rows, b] + u_numpy(x, POT)
    # no event channels: the side-jump part is zero and total = dx/dt
    cur = Q * np.concatenate([xd, vb, xd - vb, np.zeros_like(xd)], axis=1)
    dens = np.zeros((n, (len(EDGES[0]) - 1) * (len(EDGES[1]) - 1)))
    area = np.outer(np.diff(EDGES[0]), np.diff(EDGES[1])).ravel()
    for i in rows:
        hist, _, _ = np.histogram2d(x[i:i + 1, 0], x[i:i + 1, 1], bins=EDGES)
        dens[i] = hist.ravel() / area
    rho_ri = np.stack([rho.real, rho.imag], axis=-1).reshape(n, -1)
    return {"current": cur, "populations": pops, "density_matrix": rho_ri, "density": dens, "energy": en[:, None]}


def _batch_sums(values, weight, pid, nbatch):
    S = np.zeros((nbatch, values.shape[1]))
    np.add.at(S, pid % nbatch, weight[:, None] * values)
    return S


@pytest.mark.parametrize("dynamics", ["coherent", "adiabatic"])
def test_observables_match_numpy_at_a_record_time(dynamics):
    """Current split, populations, density matrix, density histogram, energy: engine == numpy to 1e-10.

    Compared per batch (batch = pid mod nbatch), so both the per-packet
    values and the batch bookkeeping are checked.  Finite-difference
    references: dH/dk (4th order, H linear in k for Dirac: round-off only),
    Omega (random-gauge projectors, ~1e-12).
    """
    ens = _ensemble(dynamics)
    sim = make_sim(MODEL, ens, _field(), dynamics, dt=0.05, nbatch=NBATCH)
    res = sim.run(1.0, record_every=0.5)
    assert np.all(sim.status == 0)
    ref = _per_packet(sim, dynamics)
    # the histogram really has packets in and out of the grid
    inside = (np.abs(sim.x[:, 0]) < 6) & (np.abs(sim.x[:, 1]) < 4)
    assert 0 < inside.sum() < len(inside)
    assert res.layout["current"][2] == ["total_x", "total_y", "band_x", "band_y", "anomalous_x", "anomalous_y",
                                        "jump_x", "jump_y"]
    for name, vals in ref.items():
        S = _batch_sums(vals, sim.weight, sim.pid, NBATCH)
        got = res[name].sums[-1]
        assert got.shape == S.shape, name
        np.testing.assert_allclose(got, S, rtol=1e-10, atol=1e-12, err_msg=name)
    # shapes and the helpers of the result
    assert res["density"].mean.shape == (3, 6, 4)
    assert res["density_matrix"].mean.shape == (3, 2, 2, 2)
    rho = DensityMatrix.complex_matrix(res["density_matrix"].mean[-1])
    np.testing.assert_allclose(rho, rho.conj().T, atol=1e-14)
    np.testing.assert_allclose(np.diag(rho).real, res["populations"].mean[-1], rtol=1e-13)
    assert np.trace(rho).real == pytest.approx(sim.weight.sum(), rel=1e-13)
    # density * bin area = weight inside the grid
    area = np.outer(np.diff(EDGES[0]), np.diff(EDGES[1]))
    assert np.sum(res["density"].mean[-1] * area) == pytest.approx(sim.weight[inside].sum(), rel=1e-12)


def test_batch_means_stderr_and_time_average_against_numpy():
    """Series.mean/stderr and time_average from the raw per-batch sums, recomputed with numpy."""
    ens = _ensemble("coherent", n=96)
    sim = make_sim(MODEL, ens, _field(), "coherent", dt=0.05, nbatch=NBATCH)
    res = sim.run(2.0, record_every=0.5)
    assert res.nbatch == NBATCH
    for name in res.names:
        s = res[name]
        sums = s.sums  # (nt, B, ncomp)
        B = sums.shape[1]
        tot = sums.sum(axis=1)
        np.testing.assert_allclose(s.mean.reshape(tot.shape), tot, rtol=1e-14, atol=1e-300)
        # se(T)^2 = B/(B-1) sum_b (S_b - T/B)^2 = B * var(S_b, ddof=1)
        se = np.sqrt(B * np.var(sums, axis=1, ddof=1))
        np.testing.assert_allclose(s.stderr.reshape(se.shape), se, rtol=1e-10, atol=1e-300)
        # time average over [0.5, 1.5]: per batch first, then across batches
        sel = (s.times >= 0.5) & (s.times <= 1.5)
        assert sel.sum() == 3
        pb = sums[sel].mean(axis=0)
        m, e = s.time_average(0.5, 1.5)
        np.testing.assert_allclose(m.reshape(-1), pb.sum(axis=0), rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(e.reshape(-1), np.sqrt(B * np.var(pb, axis=0, ddof=1)), rtol=1e-10, atol=1e-300)
    with pytest.raises(ValueError, match="no record times"):
        res["energy"].time_average(5.0, 6.0)
    with pytest.raises(KeyError, match="no observable"):
        res["velocity"]


def test_batch_means_stderr_is_a_valid_error_bar():
    """For independent packets the batch-means error equals the per-packet (iid) error within chi^2 scatter.

    With B = 32 batches the estimated variance has relative spread
    sqrt(2/(B-1)) = 25 %, so its square root is within ~13 %; a 5-sigma band
    for the ratio of error bars is [0.4, 1.6].  An error bar formed across
    time steps, or a missing B/(B-1), would not be caught by this loose check,
    but a wrong scaling with the number of batches (sqrt(B)) would.
    """
    rng = np.random.default_rng(31)
    n = 4096
    ens = Ensemble.from_arrays(MODEL, rng.uniform(-3, 3, (n, 2)), rng.uniform(-1, 1, (n, 2)),
                               chi=random_chi(rng, n, 2), weight=np.full(n, 1.0 / n), seed=1)
    sim = make_sim(MODEL, ens, _field(), "coherent", dt=0.05, nbatch=32)
    res = sim.run(0.0)
    e = sim.weight * (np.einsum("pi,pij,pj->p", sim.chi.conj(), MODEL.hamiltonian(sim.k, sim.x), sim.chi).real
                      + u_numpy(sim.x, POT))
    iid = math.sqrt(n) * np.std(e, ddof=1)
    ratio = res["energy"].stderr[0, 0] / iid
    assert 0.4 < ratio < 1.6


def test_merging_results_of_disjoint_packet_sets():
    """Result + Result of two halves of an ensemble (pids kept) equals the full run to round-off."""
    ens = _ensemble("coherent", n=80)
    field = _field()
    full = make_sim(MODEL, ens, field, "coherent", dt=0.05, nbatch=NBATCH).run(1.0, record_every=0.5)
    even = np.arange(0, 80, 2)
    odd = np.arange(1, 80, 2)
    r1 = make_sim(MODEL, ens.subset(even), field, "coherent", dt=0.05, nbatch=NBATCH).run(1.0, record_every=0.5)
    r2 = make_sim(MODEL, ens.subset(odd), field, "coherent", dt=0.05, nbatch=NBATCH).run(1.0, record_every=0.5)
    merged = r1 + r2
    assert merged.status_counts == {"ok": 80}
    assert merged.meta["merged"] == 2
    np.testing.assert_array_equal(merged.counts, full.counts)
    for name in full.names:
        np.testing.assert_allclose(merged[name].sums, full[name].sums, rtol=1e-12, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(merged[name].stderr, full[name].stderr, rtol=1e-10, atol=1e-15)
    # results that do not describe the same records cannot be merged
    r3 = make_sim(MODEL, ens.subset(odd), field, "coherent", dt=0.05, nbatch=NBATCH).run(1.5, record_every=0.5)
    with pytest.raises(ValueError, match="record times|shapes"):
        r1 + r3
    with pytest.raises(TypeError):
        r1 + 3
    # packets counted twice: a half and the whole, or a second, independently sampled ensemble (its
    # ids also run from 0, and the sum of the two runs would double every density)
    with pytest.raises(ValueError, match=r"share packet ids \(1\.\.1\)"):
        r2 + full
    again = make_sim(MODEL, _ensemble("coherent", n=80, seed=22), field, "coherent", dt=0.05,
                     nbatch=NBATCH).run(1.0, record_every=0.5)
    with pytest.raises(ValueError, match="share packet ids.*Result.replicas"):
        full + again
    # disjoint ids but another run (a different time step): refused, naming what differs
    r_dt = make_sim(MODEL, ens.subset(odd), field, "coherent", dt=0.025, nbatch=NBATCH).run(1.0, record_every=0.5)
    with pytest.raises(ValueError, match=r"differ in \['dt'\]"):
        r1 + r_dt
    assert merged.meta["pid_ranges"] == [[0, 79]] and r1.meta["pid_ranges"][:2] == [[0, 0], [2, 2]]


def test_replicas_average_independent_runs_with_batch_means_errors():
    """Result.replicas: the average of independent runs, with the batch-means error of that average."""
    field = _field()
    runs = [make_sim(MODEL, _ensemble("coherent", n=80, seed=30 + r), field, "coherent", dt=0.05, nbatch=NBATCH,
                     seed=100 + r).run(1.0, record_every=0.5) for r in range(3)]
    comb = Result.replicas(runs)
    R = len(runs)
    assert comb.nbatch == R * NBATCH and comb.meta["replicas"] == R
    for name in comb.names:
        # numpy: the average of the replicas' totals; the batch-means error over the R*B batches S_rb / R
        S = np.concatenate([r[name].sums for r in runs], axis=1) / R       # (nt, R B, ncomp)
        mean = np.mean([r[name].mean for r in runs], axis=0)
        nb = S.shape[1]
        se = np.sqrt(nb / (nb - 1) * np.sum((S - S.sum(1, keepdims=True) / nb) ** 2, axis=1))
        np.testing.assert_allclose(comb[name].mean, mean, rtol=1e-12, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(comb[name].stderr, se.reshape(comb[name].stderr.shape), rtol=1e-12,
                                   atol=1e-15, err_msg=name)
    # the same run twice is not two replicas; a run of another simulation is none
    with pytest.raises(ValueError, match="same run"):
        Result.replicas([runs[0], runs[1], runs[0]])
    other = make_sim(MODEL, _ensemble("coherent", n=80, seed=40), field, "coherent", dt=0.025, nbatch=NBATCH,
                     seed=200).run(1.0, record_every=0.5)
    with pytest.raises(ValueError, match=r"differs in \['dt'\]"):
        Result.replicas([runs[0], other])


def test_merging_at_shard_boundaries_is_exact():
    """Runs split at shard boundaries (pid ranges aligned to ``shard``) merge to the full run bit for bit."""
    ens = _ensemble("coherent", n=64)
    field = _field()
    kw = dict(dt=0.05, nbatch=NBATCH, shard=16)
    full = make_sim(MODEL, ens, field, "coherent", **kw).run(1.0, record_every=0.5)
    lo = make_sim(MODEL, ens.subset(np.arange(32)), field, "coherent", **kw).run(1.0, record_every=0.5)
    hi = make_sim(MODEL, ens.subset(np.arange(32, 64)), field, "coherent", **kw).run(1.0, record_every=0.5)
    merged = lo + hi
    for name in full.names:
        np.testing.assert_array_equal(merged[name].sums, full[name].sums, err_msg=name)
    np.testing.assert_array_equal(merged.counts, full.counts)


def test_conductivity_from_time_averaged_current():
    """Result.conductivity = time-averaged current column / E_b with stderr / |E_b|; bad fields refused."""
    ens = _ensemble("adiabatic", n=64)
    Ey = 0.02
    sim = make_sim(MODEL, ens, dirac_field(E=(0.0, Ey), A=POT[0], g=POT[1:3]), "adiabatic", dt=0.05, nbatch=NBATCH)
    res = sim.run(1.0, record_every=0.25)
    for part, i in (("total", 0), ("band", 1), ("anomalous", 2), ("jump", 3)):
        sigma, se, axis = res.conductivity(t_min=0.25, part=part)
        assert axis == 1
        m, e = res["current"].time_average(t_min=0.25)
        np.testing.assert_allclose(sigma, m[2 * i:2 * i + 2] / Ey, rtol=1e-14)
        np.testing.assert_allclose(se, e[2 * i:2 * i + 2] / Ey, rtol=1e-14)
    s_tot = res.conductivity()[0]
    s_parts = res.conductivity(part="band")[0] + res.conductivity(part="anomalous")[0]
    np.testing.assert_allclose(s_tot, s_parts, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="unknown part"):
        res.conductivity(part="drift")
    # E along two axes: refused with a message
    sim2 = make_sim(MODEL, ens, dirac_field(E=(0.01, Ey), A=POT[0], g=POT[1:3]), "adiabatic", dt=0.05)
    with pytest.raises(ValueError, match="exactly one axis"):
        sim2.run(0.1, record_every=0.05).conductivity()
    # no Current observable: refused
    r_small = Result(res.times, res.E, res["energy"].sums, {"energy": (0, 1, ["energy"], (1,))}, res.counts, {}, {})
    with pytest.raises(ValueError, match="Current"):
        r_small.conductivity()
