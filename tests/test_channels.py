"""Stochastic event channels against the physics (issue: scattering, decoherence, relaxation).

Every test compares with an independent value: closed forms (white-noise Born
lifetimes, Drude, Lindblad dephasing) and ones derived in the docstrings,
deterministic quadrature (:mod:`scattering.born`), a direct Lindblad
integration, NumPy finite differences in a random gauge, or a conservation
law.  Stochastic checks use a fixed seed and |mc - exact| < 5 sigma (+ a stated
systematic tolerance).

Compilation dominates the run time: the simulations share three kernel
variants (numba kernels are cached per process by model class, dynamics,
observables and channel types; parameter values do not recompile):

* K1  MassiveDirac, adiabatic, [ElasticScattering(white noise)], OBS
* K2  Parabolic,   adiabatic, [ElasticScattering(Gaussian), phonon UserChannel], OBS
      (also what examples/phonon_channel.py builds)
* K3  MassiveDirac, coherent,  [Dephasing, Relaxation], OBS_COH
"""
import math
import os
import sys

import numba
import numpy as np
import pytest
from scipy import integrate, special, stats

from kinetic.closed_form import dirac_born_rate
from kinetic.master_equation import lindblad_evolve
from observables import BandPopulation, Current, DensityMatrix, Energy
from packets import Ensemble, FlaggedPacketsError, FlaggedPacketsWarning, Field, Simulation, models
from packets import status as st
from packets.eom import make_scratch_allocator
from packets.plugins import BuildContext
from scattering import (Dephasing, ElasticScattering, GaussianDisorder, Relaxation, UserChannel, UserDisorder,
                        WhiteNoiseDisorder, born, side_jump)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import phonon_channel  # noqa: E402


def obs():
    """Observables of the adiabatic kernels K1/K2 (one list => one compiled variant)."""
    return [Current(), BandPopulation(), Energy()]


def obs_coh():
    """Observables of the coherent kernel K3."""
    return [DensityMatrix(), BandPopulation(), Energy()]


def assert_close(mc, se, exact, sys_tol=0.0, what=""):
    """|mc - exact| < 5 se + sys_tol, elementwise."""
    mc, se, exact = np.broadcast_arrays(np.asarray(mc, float), np.asarray(se, float), np.asarray(exact, float))
    bad = ~(np.abs(mc - exact) <= 5.0 * se + sys_tol)
    assert not np.any(bad), (f"{what}: MC {mc[bad]} +- {se[bad]} vs exact {exact[bad]} "
                             f"(|diff| = {np.abs(mc - exact)[bad]}, 5 sigma + {sys_tol} allowed)")


def shell(model, kf, n, band, seed, angles=None):
    """Packets on the circle |k| = kf (random directions unless ``angles``), x = 0, weights 1/n."""
    phi = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, n) if angles is None else angles
    k = np.stack([kf * np.cos(phi), kf * np.sin(phi)], axis=1)
    return Ensemble.from_arrays(model, np.zeros((n, 2)), k, band=band, seed=seed), phi


def events(res, name):
    """Total number of ``name`` events (accepted_X / band_change_X / tentative) over all records."""
    ev = res["events"]
    return float(ev.mean[:, ev.labels.index(name)].sum())


def chi2_pvalue(counts, probs):
    expected = counts.sum() * probs
    assert expected.min() > 5.0, "chi-square test needs >= 5 expected counts per bin"
    return stats.chi2.sf(np.sum((counts - expected) ** 2 / expected), counts.size - 1)


# ----------------------------------------------------------------------------
# K1: massive Dirac, elastic white-noise scattering (Born lifetime)
# ----------------------------------------------------------------------------


def test_dirac_event_rate_and_angular_distribution():
    """Event rate = white-noise Born 1/tau (closed form) and the scattering angles follow angular_distribution.

    Packets on the eps = 2 shell of MassiveDirac(v=1, m=1) with E = 0: every
    event moves k to the same shell, so the rate stays exactly 1/tau = 1/8
    and the number of events is Poisson (sigma = sqrt(count)).  The relative
    angle Delta = phi(t1) - phi(0) of the packets that scattered by t1 is
    distributed as the Poisson mixture of j-fold convolutions of the
    single-event distribution p(phi) = angular_distribution / rate, whose
    Fourier coefficients are (exp(lam (p_l - 1)) - exp(-lam)) / (1 - exp(-lam)),
    lam = t1/tau: exact for any t1, checked by chi-square (p > 1e-3).
    """
    model = models.MassiveDirac(1.0, 1.0, 1)
    dis = WhiteNoiseDisorder(0.1)
    eps = 2.0
    kf = math.sqrt(eps * eps - 1.0)
    rate = dirac_born_rate(eps, 1.0, 1.0, 0.1)                   # 0.125 (tau = 8)
    n = 4000
    ens, phi0 = shell(model, kf, n, 1, seed=11)
    gmax = 0.41          # proposal weight of the sampler here: 0.4 |<u'|u>|^2 <= 0.4
    sim = Simulation(model, ens, dynamics="adiabatic", channels=[ElasticScattering(dis, majorant=gmax, n_scan=16)],
                     observables=obs(), dt=1.0, progress=False)
    t1 = 4.0
    sim.run(t_end=t1, record_every=1.0)
    k1 = sim.k.copy()
    t_end = 24.0
    res = sim.run(t_end=t_end, record_every=4.0)
    assert res.status_counts == {"ok": n}
    # 1) rate
    count = events(res, "accepted_elastic")
    assert_close(count / (n * t_end), math.sqrt(count) / (n * t_end), rate, what="Dirac event rate")
    assert events(res, "band_change_elastic") == 0
    tent = events(res, "tentative")
    assert_close(tent, math.sqrt(gmax * n * t_end), gmax * n * t_end, what="tentative-event count")
    # energy stays on the shell (elastic, E = 0)
    e_fin = model.energies(sim.k, sim.x)[:, 1]
    assert np.max(np.abs(e_fin - eps)) < 1e-9
    # 2) angles at t1
    moved = np.linalg.norm(k1 - ens.k, axis=1) > 1e-9
    lam = rate * t1
    p_scat = 1.0 - math.exp(-lam)
    assert_close(moved.sum(), math.sqrt(n * p_scat * (1 - p_scat)), n * p_scat, what="packets scattered by t1")
    grid = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    dens = born.angular_distribution(model, dis, [kf, 0.0], 1, grid)
    assert abs(dens.mean() * 2 * np.pi - rate) < 1e-6 * rate     # quadrature normalisation = 1/tau
    ls = np.arange(-8, 9)
    p_l = (dens[None, :] * np.exp(-1j * ls[:, None] * grid[None, :])).sum(axis=1) / dens.sum()
    mix = (np.exp(lam * (p_l - 1.0)) - math.exp(-lam)) / (1.0 - math.exp(-lam))
    nbins = 24
    edges = np.linspace(0.0, 2.0 * np.pi, nbins + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ib = np.where(ls[:, None] == 0, edges[None, 1:] - edges[None, :-1],
                      (np.exp(1j * ls[:, None] * edges[None, 1:]) - np.exp(1j * ls[:, None] * edges[None, :-1]))
                      / (1j * ls[:, None]))
    probs = np.real((mix[:, None] * ib).sum(axis=0)) / (2.0 * np.pi)
    assert abs(probs.sum() - 1.0) < 1e-10
    delta = np.mod(np.arctan2(k1[moved, 1], k1[moved, 0]) - phi0[moved], 2.0 * np.pi)
    counts = np.histogram(delta, edges)[0]
    assert chi2_pvalue(counts, probs) > 1e-3
    # the test can tell the Dirac overlap from isotropic scattering
    assert chi2_pvalue(counts, np.full(nbins, 1.0 / nbins)) < 1e-6


def _shell_radius(model, band, e, theta, rmax=10.0):
    """|k| where eps_band(|k| (cos th, sin th)) = e (bisection; monotone along rays for the tilted cone)."""
    lo = np.zeros_like(theta)
    hi = np.full_like(theta, rmax)
    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = model.energies(mid[:, None] * d)[:, band] > e
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def test_tilted_dirac_fermi_sea_stays_in_equilibrium():
    """At E = 0 elastic scattering keeps a finite-T Fermi sea in equilibrium (tilted, anisotropic cone).

    W(k -> k') is symmetric, so the uniform measure on each energy shell is
    stationary although 1/tau(k) varies around the tilted shell: packets
    drawn uniformly in k stay uniform.  Checked on the packets whose whole
    shell lies inside the sampled disc: the histogram of their polar angles
    after ~3 scattering times against the area fractions of the region
    {eps < E_c} per angular sector (quadrature of r(theta)^2 / 2), chi-square
    p > 1e-3.  Band populations and the energy density do not drift (5 sigma),
    and every packet keeps its energy (elastic) to 1e-9.
    """
    model = models.MassiveDirac(1.0, 1.0, 1, tilt=(0.4, 0.0))
    dis = WhiteNoiseDisorder(0.1)
    kw = 2.5
    ens = Ensemble.fermi_sea(model, mu=1.8, temperature=0.3, n=3000, seed=5, bands=[1], k_window=kw)
    e0 = model.energies(ens.k)[:, 1]
    # largest energy whose whole shell lies inside |k| < kw (the shell reaches furthest against the tilt)
    e_cut = float(np.min(model.energies(kw * np.stack([np.cos(np.linspace(0, 2 * np.pi, 721)),
                                                        np.sin(np.linspace(0, 2 * np.pi, 721))], 1))[:, 1]))
    gmax = born.majorant(model, dis, energies=np.linspace(1.05, e0.max(), 8), band=1, safety=1.5)
    sim = Simulation(model, ens, dynamics="adiabatic", channels=[ElasticScattering(dis, majorant=gmax, n_scan=16)],
                     observables=obs(), dt=1.0, progress=False)
    res = sim.run(t_end=24.0, record_every=8.0)
    assert res.status_counts == {"ok": ens.n}
    assert events(res, "accepted_elastic") > 2.0 * ens.n         # ~ every packet scattered several times
    assert events(res, "band_change_elastic") == 0
    e1 = model.energies(sim.k, sim.x)[:, 1]
    assert np.max(np.abs(e1 - e0)) < 1e-9
    for name in ("populations", "energy"):
        s = res[name]
        assert_close(s.mean[-1], np.hypot(s.stderr[-1], s.stderr[0]), s.mean[0], what=f"{name} drift")
    inside = e0 < e_cut
    assert inside.sum() > 1000
    nbins = 16
    edges = np.linspace(-np.pi, np.pi, nbins + 1)
    th = np.linspace(-np.pi, np.pi, 16 * 64 + 1)
    r2 = _shell_radius(model, 1, e_cut, th) ** 2 / 2.0
    area = np.array([integrate.simpson(r2[i * 64:(i + 1) * 64 + 1], x=th[i * 64:(i + 1) * 64 + 1])
                     for i in range(nbins)])
    probs = area / area.sum()
    counts = np.histogram(np.arctan2(sim.k[inside, 1], sim.k[inside, 0]), edges)[0]
    assert chi2_pvalue(counts, probs) > 1e-3
    # the region really is anisotropic (the test could fail): sectors differ by > 20 %
    assert probs.max() / probs.min() > 1.2


def test_side_jump_conserves_total_energy_in_field():
    """With side_jump=True and a static E, eps_n(k) + E.x (= band + potential energy -qE.x, q = -1) is
    conserved per packet by the drift *and* by every event (side jump in a field), to 1e-8.

    Without the energy correction of the jump the error would be E . delta r
    ~ 1e-2 per event.
    """
    model = models.MassiveDirac(1.0, 1.0, 1)
    dis = WhiteNoiseDisorder(0.1)
    n = 400
    ens, _ = shell(model, math.sqrt(3.0), n, 1, seed=21)
    E = np.array([0.05, -0.03])
    sim = Simulation(model, ens, field=Field(E=tuple(E)), dynamics="adiabatic",
                     channels=[ElasticScattering(dis, side_jump=True, majorant=0.8, n_scan=16)],
                     observables=obs(), dt=0.02, progress=False)
    res = sim.run(t_end=10.0, record_every=5.0)
    assert res.status_counts == {"ok": n}
    assert events(res, "accepted_elastic") > 200
    etot0 = model.energies(ens.k, ens.x)[:, 1] + ens.x @ E
    etot1 = model.energies(sim.k, sim.x)[:, 1] + sim.x @ E
    assert np.max(np.abs(etot1 - etot0)) < 1e-8
    # the jumps are real: one event of the apply kernel called directly moves x by side_jump(k -> k')
    fake = BuildContext(model, Field(E=tuple(E)), "adiabatic")
    spec = ElasticScattering(dis, side_jump=True, majorant=0.41, n_scan=16).build(fake)
    apply = spec["apply"]
    S = make_scratch_allocator(2, 2)()
    pc = np.ascontiguousarray(spec["params"], dtype=np.float64)
    P = (model.params, np.asarray(E), np.zeros(0), np.zeros(3), pc, np.array([spec["majorant"]]))
    k0 = np.array([math.sqrt(3.0), 0.0])
    u1 = model.bands(k0[None])[1][0][:, 1]
    jumps = 0
    for ev in range(200):
        x, k, chi = np.zeros(2), k0.copy(), u1.copy()
        code, acc, band = apply(0.0, x, k, chi, 1, P, S, pc, np.uint64(5), np.uint64(6), 3, ev)
        assert code == st.OK
        if not acc:
            continue
        jumps += 1
        ref = side_jump(model, k0, 1, k, band)
        assert np.linalg.norm(x) > 1e-3
        # the final k' lies on the shell shifted by the jump energy of the transition to k' itself:
        # eps(k') + E.dr(k0 -> k') = eps(k0), with dr recomputed here by the host wrapper
        assert np.linalg.norm(x - ref) < 1e-9, (x, ref)
        assert abs(model.energies(k[None])[0, band] + ref @ E - 2.0) < 1e-10
    assert jumps >= 10


# ----------------------------------------------------------------------------
# K2: parabolic band, Gaussian-correlated disorder (+ a dormant phonon channel)
# ----------------------------------------------------------------------------


def dormant_phonon():
    """The example's phonon UserChannel with zero coupling (same kernel variant K2, never fires)."""
    return UserChannel(phonon_channel.phonon_rate, phonon_channel.phonon_apply, majorant=1e-12,
                       params=[1.0, 0.5, 0.0, 0.5], name="phonon")


def test_gaussian_disorder_rate_and_transport_time():
    """Parabolic band, Gaussian disorder R^(q) = W exp(-q^2 xi^2/2): rate and momentum relaxation.

    Derived closed forms (2D, eps = k^2/2m, q^2 = 2 k^2 (1 - cos phi), a = k^2 xi^2):
    1/tau = m W e^{-a} I0(a), 1/tau_tr = m W e^{-a} (I0(a) - I1(a)).  For an
    isotropic band d<k>/dt = -<k>/tau_tr exactly, so packets started along
    +x have <k_x>(t) = k_F exp(-t/tau_tr); <k_x> = -m j_x (q = -1, weights 1/n).
    Also checks born_rate / transport_rate (quadrature) against the closed forms.
    """
    m, W, xi, eps = 1.0, 0.5, 0.5, 2.0
    model = models.Parabolic(m, 2)
    dis = GaussianDisorder(W, xi)
    kf = math.sqrt(2 * m * eps)
    a = kf * kf * xi * xi
    rate = m * W * special.i0e(a)
    rate_tr = m * W * (special.i0e(a) - special.i1e(a))
    assert abs(born.born_rate(model, dis, [kf, 0.0], 0) - rate) < 1e-8 * rate
    assert abs(born.transport_rate(model, dis, [kf, 0.0], 0) - rate_tr) < 1e-8 * rate_tr
    n = 4000
    ens, _ = shell(model, kf, n, 0, seed=3, angles=np.zeros(n))
    sim = Simulation(model, ens, dynamics="adiabatic",
                     channels=[ElasticScattering(dis, majorant=1.001 * W * m, n_scan=16), dormant_phonon()],
                     observables=obs(), dt=1.0, progress=False)
    t_end = 16.0
    res = sim.run(t_end=t_end, record_every=2.0)
    assert res.status_counts == {"ok": n}
    count = events(res, "accepted_elastic")
    assert_close(count / (n * t_end), math.sqrt(count) / (n * t_end), rate, what="Gaussian-disorder rate")
    assert events(res, "accepted_phonon") == 0
    cur = res["current"]
    kx = -m * cur.mean[:, 0]
    kx_se = m * cur.stderr[:, 0]
    assert_close(kx[1:], kx_se[1:], kf * np.exp(-res.times[1:] * rate_tr), what="<k_x>(t)")
    # discriminates tau_tr from tau: somewhere the two predictions differ by > 10 sigma
    t = res.times[1:]
    assert np.max(np.abs(np.exp(-t * rate_tr) - np.exp(-t * rate)) * kf / kx_se[1:]) > 10


def test_drude_conductivity_parabolic():
    """Drude sigma = n e^2 tau / m* for white noise (GaussianDisorder with xi = 0, R^ = W).

    With an energy-independent isotropic rate 1/tau = m W, every packet obeys
    d<k>/dt = -E - <k>/tau exactly (q = -1; any field strength, heating
    included), so j(t) = j(0) e^{-t/tau} + n tau E/m (1 - e^{-t/tau}) with
    n = sum of the Fermi-sea weights.  Time-averaged over t in [5 tau, 10 tau]
    via Result.conductivity with correlated sampling: the same ensemble and
    seed at E = 0 (whose current decays as j(0) e^{-t/tau}) is subtracted
    batch by batch, which leaves n tau E/m (1 - e^{-t/tau}) and removes the
    equilibrium fluctuations from the estimate and its error bar.  5 sigma,
    no systematic (the formula is exact); the error bar must be below 2 % of
    the Drude value (measured 1.5 %, from 12 000 packets), so a 10 % bias
    fails.  Also sigma_yx = 0.
    """
    m, W = 1.0, 0.25
    tau = 1.0 / (m * W)
    model = models.Parabolic(m, 2)
    mu, T = 0.5, 0.05
    ens = Ensemble.fermi_sea(model, mu=mu, temperature=T, n=12000, seed=17, k_window=1.5)
    n_dens = ens.weight.sum()
    # the ensemble density agrees with n = m T ln(1 + e^{mu/T}) / (2 pi) (weights convention)
    n_exact = m * T * math.log1p(math.exp(mu / T)) / (2 * math.pi)
    w_se = ens.weight.std() * math.sqrt(ens.n)
    assert_close(n_dens, w_se, n_exact, what="Fermi-sea density")
    Ex = 0.05

    def run(E):
        sim = Simulation(model, ens, field=Field(E=(E, 0.0)), dynamics="adiabatic",
                         channels=[ElasticScattering(GaussianDisorder(W, 0.0), majorant=1.001 * W * m, n_scan=16),
                                   dormant_phonon()],
                         observables=obs(), dt=0.5, progress=False)
        return sim.run(t_end=10 * tau, record_every=2.0)

    res, res0 = run(Ex), run(0.0)
    assert res.status_counts == {"ok": ens.n}
    sigma, se, b = res.conductivity(t_min=5 * tau, reference=res0)
    print(f"Drude: sigma_xx = {sigma[0]:.5f} +- {se[0]:.5f} (reference {n_dens * tau / m:.5f})")
    assert b == 0
    t = res.times[res.times >= 5 * tau - 1e-12]
    ref = np.mean(n_dens * tau / m * (1 - np.exp(-t / tau)))
    drude = n_exact * tau / m
    assert abs(ref - n_dens * tau / m) < 0.01 * drude           # the window is in the steady state
    assert_close(sigma[0], se[0], ref, what="Drude sigma_xx")
    assert_close(sigma[1], se[1], 0.0, what="sigma_yx")
    assert se[0] < 0.02 * drude                                 # the test is sharp enough to mean something


def test_phonon_channel_example_relaxes_energy():
    """examples/phonon_channel.py: <eps>(t) equals the exact birth-death ladder solution (5 sigma).

    Detailed balance g n_B / g (n_B + 1) = exp(-omega0/T) drives the mean
    energy to r + omega0 n_B; the exact <eps>(t) (matrix exponential of the
    ladder master equation) is compared at every record.
    """
    res, exact = phonon_channel.main(n=3000, t_end=24.0, record_every=4.0, verbose=False)
    e = res["energy"]
    assert res.status_counts == {"ok": 3000}
    assert_close(e.mean[:, 0], e.stderr[:, 0], exact, sys_tol=1e-12, what="phonon <eps>(t)")
    # the run really relaxes: the energy dropped by > 50 sigma
    assert e.mean[0, 0] - e.mean[-1, 0] > 50 * e.stderr[-1, 0]
    assert events(res, "accepted_phonon") > 3000


def test_broken_user_channel_flags_packets():
    """A user apply that writes NaN into k flags the packet (status nan), counted in status_counts.

    The example's phonon apply assumes m* > 0: with a negative mass parameter
    it computes sqrt(2 m* eps') < 0 -> NaN momenta.  Those packets must be
    flagged and excluded from tallies, never silently kept.
    """
    model = models.Parabolic(1.0, 2)
    n = 64
    ens, _ = shell(model, 0.5, n, 0, seed=8)
    bad = UserChannel(phonon_channel.phonon_rate, phonon_channel.phonon_apply, majorant=2.0,
                      params=[-1.0, 0.5, 0.5, 0.5], name="phonon")
    def make(channel, elastic_majorant=0.02, **kw):
        elastic = ElasticScattering(GaussianDisorder(0.01, 0.0), majorant=elastic_majorant, n_scan=16)
        return Simulation(model, ens, dynamics="adiabatic", channels=[elastic, channel], observables=obs(), dt=1.0,
                          progress=False, **kw)

    sim = make(bad)
    with pytest.warns(FlaggedPacketsWarning, match=r"of 64 packets were flagged.*nan \(channel 'phonon'\)") as rec:
        res = sim.run(t_end=10.0, record_every=5.0)
    nan_k = ~np.all(np.isfinite(sim.k), axis=1)
    flagged = st.reason(sim.status) == st.NAN
    assert nan_k.sum() > n // 2
    assert np.array_equal(nan_k, flagged)
    assert np.all(st.source(sim.status[flagged]) == 2)  # channel 1 (phonon), not the end-of-interval check
    assert res.status_counts.get("nan", 0) == flagged.sum()
    assert res.flags == {"nan": {"channel 'phonon'": int(flagged.sum())}}
    lost = sim.weight[flagged].sum() / sim.weight.sum()
    assert len(rec) == 1 and f"{lost:.3g} of the ensemble weight" in str(rec[0].message)
    # on_flag="raise": stops after the first record interval that flagged any, keeping what was recorded
    stop = make(bad, on_flag="raise")
    with pytest.raises(FlaggedPacketsError, match="channel 'phonon'"):
        stop.run(t_end=10.0, record_every=5.0)
    assert stop.t == 5.0 and list(stop.result().times) == [0.0, 5.0]
    # a majorant below the rate: flagged by that channel, and the message says what to pass
    # (the elastic channel is picked for 1e-3 / 2.001 of the tentative events: about 50 of them here)
    good = UserChannel(phonon_channel.phonon_rate, phonon_channel.phonon_apply, majorant=2.0,
                       params=[1.0, 0.5, 0.5, 0.5], name="phonon")
    with pytest.warns(FlaggedPacketsWarning, match=r"majorant_violated \(channel 'elastic'\): an event rate above "
                                                   r"the majorant 0\.001 of ElasticScattering; pass a larger majorant="):
        r_low = make(good, elastic_majorant=1e-3).run(t_end=800.0, record_every=800.0)
    assert list(r_low.flags) == ["majorant_violated"] and list(r_low.flags["majorant_violated"]) == ["channel 'elastic'"]
    assert sum(res.status_counts.values()) == n
    assert res.counts[-1].sum() == n - flagged.sum()            # tallies exclude flagged packets
    assert np.all(np.isfinite(res["energy"].mean))


# ----------------------------------------------------------------------------
# K3: coherent Dirac, dephasing and relaxation
# ----------------------------------------------------------------------------


def test_dephasing_matches_lindblad():
    """Band-basis dephasing at E = 0 reproduces the Lindblad equation (pure dephasing, lindblad_evolve).

    Packets at fixed k in a coherent superposition; the band-basis density
    matrix (DensityMatrix) has constant populations and
    rho_01(t)/rho_01(0) = exp(-i(e0 - e1) t - gamma t).  The ratio is gauge
    free (k fixed).  Systematic 1e-4: RK4 phase error (dt |e0 - e1| = 0.15).
    """
    model = models.MassiveDirac(1.0, 1.0, 1)
    k0 = np.array([1.0, 0.5])
    n = 4000
    w, v = model.bands(k0[None])
    a, beta = 0.6, 0.4
    chi0 = math.cos(a) * v[0][:, 0] + np.exp(1j * beta) * math.sin(a) * v[0][:, 1]
    ens = Ensemble.from_arrays(model, np.zeros((n, 2)), np.tile(k0, (n, 1)), chi=np.tile(chi0, (n, 1)), seed=4)
    gamma = 0.3
    sim = Simulation(model, ens, dynamics="coherent",
                     channels=[Dephasing(gamma), Relaxation(1e12, mu=0.0, temperature=0.1, k_window=2.0)],
                     observables=obs_coh(), dt=0.05, progress=False)
    res = sim.run(t_end=6.0, record_every=1.0)
    assert res.status_counts == {"ok": n}
    cnt = events(res, "accepted_dephasing")
    assert_close(cnt, math.sqrt(cnt), n * gamma * 6.0, what="dephasing event count")
    assert events(res, "accepted_relaxation") == 0
    rho_b = np.diag(w[0]).astype(complex)
    c = np.array([math.cos(a), np.exp(1j * beta) * math.sin(a)])
    ref = lindblad_evolve(rho_b, np.outer(c, c.conj()), res.times, dephasing_rate=gamma)
    dm = res["density_matrix"]
    rho = DensityMatrix.complex_matrix(dm.mean)
    se_re, se_im = dm.stderr[..., 0], dm.stderr[..., 1]
    for i in range(2):
        assert_close(rho[:, i, i].real, se_re[:, i, i], ref[:, i, i].real, sys_tol=1e-4, what=f"rho_{i}{i}")
    ratio = rho[:, 0, 1] / rho[0, 0, 1]
    ratio_ref = ref[:, 0, 1] / ref[0, 0, 1]
    s = se_re[:, 0, 1] / abs(rho[0, 0, 1])
    assert_close(ratio.real, s, ratio_ref.real, sys_tol=1e-4, what="Re rho01(t)/rho01(0)")
    assert_close(ratio.imag, se_im[:, 0, 1] / abs(rho[0, 0, 1]), ratio_ref.imag, sys_tol=1e-4,
                 what="Im rho01(t)/rho01(0)")
    # decay rate gamma, not gamma/2 or 2 gamma: discriminating at t = 6
    assert abs(math.exp(-gamma * 6) - math.exp(-gamma * 3)) > 10 * s[-1]


def _fermi(e, mu, T):
    return 0.5 * (1.0 - np.tanh(0.5 * (e - mu) / T))


def test_relaxation_to_fermi_dirac():
    """Relaxation (rate 1/tau_r) drives packets from one k to p(k, i) ~ f(E_i(k); mu, T) on the k disc.

    Massive Dirac (v = m = 1), disc |k| < kw: the equilibrium energy density per
    band is p(E) ~ f(E) |E| on 1 <= |E| <= sqrt(1 + kw^2) (d^2k = 2 pi |E| dE).
    Every event redraws the state independently of the past, so any average
    relaxes as A_eq + (A_0 - A_eq) e^{-t/tau_r} exactly: checked for the
    conduction population and the energy at every record (5 sigma),
    populations sum to 1 (weight conserved), and the final energy histogram
    fits the equilibrium (chi-square, p > 1e-3).
    """
    model = models.MassiveDirac(1.0, 1.0, 1)
    mu, T, kw, tau = 1.5, 0.3, 2.0, 1.0
    n = 4000
    k0 = np.array([1.2, 0.0])
    ens = Ensemble.from_arrays(model, np.zeros((n, 2)), np.tile(k0, (n, 1)), band=1, seed=9)
    sim = Simulation(model, ens, dynamics="coherent",
                     channels=[Dephasing(0.0), Relaxation(tau, mu=mu, temperature=T, k_window=kw)],
                     observables=obs_coh(), dt=0.05, progress=False, check_dt=True)
    t_end = 8.0
    res = sim.run(t_end=t_end, record_every=1.0)
    assert res.status_counts == {"ok": n}
    emax = math.sqrt(1.0 + kw * kw)
    zc = integrate.quad(lambda e: _fermi(e, mu, T) * e, 1.0, emax)[0]
    zv = integrate.quad(lambda e: _fermi(-e, mu, T) * e, 1.0, emax)[0]
    ec = integrate.quad(lambda e: _fermi(e, mu, T) * e * e, 1.0, emax)[0]
    ev_ = -integrate.quad(lambda e: _fermi(-e, mu, T) * e * e, 1.0, emax)[0]
    nc_eq = zc / (zc + zv)
    e_eq = (ec + ev_) / (zc + zv)
    e0 = model.energies(k0[None])[0, 1]
    decay = np.exp(-res.times / tau)
    pop = res["populations"]
    assert np.max(np.abs(pop.mean.sum(axis=1) - 1.0)) < 1e-10        # particle number conserved
    assert_close(pop.mean[:, 1], pop.stderr[:, 1], nc_eq + (1 - nc_eq) * decay, sys_tol=1e-6,
                 what="conduction population")
    en = res["energy"]
    assert_close(en.mean[:, 0], en.stderr[:, 0], e_eq + (e0 - e_eq) * decay, sys_tol=1e-6, what="<E>(t)")
    cnt = events(res, "accepted_relaxation")
    assert_close(cnt, math.sqrt(cnt), n * t_end / tau, what="relaxation event count")
    # final energy histogram vs the equilibrium (plus the e^{-8} unrelaxed remainder at e0)
    hk = model.hamiltonian(sim.k)
    efin = np.einsum("ni,nij,nj->n", sim.chi.conj(), hk, sim.chi).real
    edges = np.concatenate([np.linspace(-emax, -1.0, 7), np.linspace(1.0, emax, 9)])
    pdf = lambda e: (_fermi(e, mu, T) * abs(e)) / (zc + zv)        # noqa: E731
    probs = np.array([integrate.quad(pdf, lo, hi)[0] if hi <= -1 or lo >= 1 else 0.0
                      for lo, hi in zip(edges[:-1], edges[1:])])
    keep = probs > 0
    probs = probs[keep] * (1 - decay[-1])
    probs[np.searchsorted(edges[:-1][keep], e0, side="right") - 1] += decay[-1]
    counts = np.histogram(efin, edges)[0][keep]
    assert counts.sum() == n
    assert chi2_pvalue(counts, probs) > 1e-3


# ----------------------------------------------------------------------------
# Dephasing collapse basis in a field: the hybridised states of Hbar (no simulation)
# ----------------------------------------------------------------------------


def _fd_connection(model, k, h=1e-5):
    """Interband Berry connection A^a_nm = i<u_n|d_a u_m> (n != m) by central differences (NumPy)."""
    _, v = model.bands(k[None])
    v = v[0]
    nb = v.shape[1]
    A = np.zeros((model.dim, nb, nb), complex)
    for a in range(model.dim):
        dk = np.zeros(model.dim)
        dk[a] = h
        _, vp = model.bands((k + dk)[None])
        _, vm = model.bands((k - dk)[None])
        vp, vm = vp[0], vm[0]
        for m in range(nb):   # align the phases to u_m(k) (smooth local gauge)
            vp[:, m] *= np.exp(-1j * np.angle(np.vdot(v[:, m], vp[:, m])))
            vm[:, m] *= np.exp(-1j * np.angle(np.vdot(v[:, m], vm[:, m])))
        A[a] = 1j * v.conj().T @ (vp - vm) / (2 * h)
        np.fill_diagonal(A[a], 0.0)
    return A


@pytest.mark.parametrize("name", ["dirac", "bhz"])
def test_dephasing_collapses_onto_hybridised_states(name):
    """With E != 0 the Dephasing kernel collapses chi onto eigenvectors of Hbar = diag(eps) + V,
    V_nm = -(qE).A_nm (Tu, Li & Yao, Eqs. 27, 28, 55; q = -1), with Born-rule probabilities.

    Reference built in NumPy: eigenvectors from numpy.linalg.eigh, A from
    finite differences.  The apply kernel is called directly (2000 events).
    The hybridised probabilities differ from the band-basis ones by many
    sigma, so collapsing onto bands would fail.
    """
    if name == "dirac":
        model = models.MassiveDirac(1.0, 0.3, 1)
        k = np.array([0.2, -0.1])
        E = (0.25, 0.1)
    else:
        model = models.BHZ(u=1.0, zeeman=0.02, bia=0.05)
        k = np.array([0.3, -0.2])
        E = (0.2, 0.1)
    nb, dim = model.nbands, model.dim
    field = Field(E=E)
    gamma = 0.7
    fake = BuildContext(model, field, "coherent")
    spec = Dephasing(gamma).build(fake)
    apply = spec["apply"]
    S = make_scratch_allocator(dim, nb)()
    pc = np.ascontiguousarray(spec["params"], dtype=np.float64)
    P = (model.params, field.efield_params, field.potential_params, field.B, pc, np.array([spec["majorant"]]))
    # NumPy reference Hbar in the band basis
    w, v = model.bands(k[None])
    w, v = w[0], v[0]
    A = _fd_connection(model, k)
    q = -1.0
    hbar = np.diag(w).astype(complex) - q * np.einsum("a,anm->nm", np.asarray(E), A)
    assert np.allclose(hbar, hbar.conj().T, atol=1e-8)
    _, hv = np.linalg.eigh(hbar)
    hyb = v @ hv                                   # hybridised states, orbital basis
    rng = np.random.default_rng(2)
    chi0 = rng.normal(size=nb) + 1j * rng.normal(size=nb)
    chi0 /= np.linalg.norm(chi0)
    p_hyb = np.abs(hyb.conj().T @ chi0) ** 2
    p_band = np.abs(v.conj().T @ chi0) ** 2
    M = 2000
    x = np.zeros(dim)
    sel = np.empty(M, dtype=int)
    key0, key1 = np.uint64(123), np.uint64(456)
    for ev in range(M):
        chi = chi0.copy()
        code, acc, band = apply(0.0, x, k.copy(), chi, 0, P, S, pc, key0, key1, 7, ev)
        assert code == st.OK and acc
        ov = np.abs(hyb.conj().T @ chi)
        sel[ev] = int(np.argmax(ov))
        assert abs(ov[sel[ev]] - 1.0) < 1e-6, f"post-collapse state is not a hybridised state: {ov}"
    freq = np.bincount(sel, minlength=nb) / M
    se = np.sqrt(p_hyb * (1 - p_hyb) / M)
    assert_close(freq, se, p_hyb, what="collapse probabilities")
    assert np.max(np.abs(p_hyb - p_band) / np.maximum(se, 1e-3)) > 10.0


# ----------------------------------------------------------------------------
# Side jump: the general gauge formula by finite differences in a random gauge
# ----------------------------------------------------------------------------


class _RandomGauge:
    """Band-``n`` eigenvectors near ``center`` in a smooth random gauge.

    The phase is first fixed relative to the (randomly phased) reference
    u_n(center): <u_ref|u(q)> real positive, which is smooth near center; then
    multiplied by exp(i g(q)) with a random smooth g, so A_n and the overlap
    phases are both gauge dependent.
    """

    def __init__(self, model, center, n, rng):
        self.model, self.n = model, n
        self.center = np.asarray(center, float)
        _, v = model.bands(self.center[None])
        self.ref = v[0][:, n] * np.exp(2j * np.pi * rng.random())
        self.c = rng.normal(size=model.dim)
        self.d = rng.normal()
        self.e = rng.normal(size=model.dim)

    def __call__(self, q):
        _, v = self.model.bands(np.asarray(q, float)[None])
        u = v[0][:, self.n]
        u = u * np.exp(-1j * np.angle(np.vdot(self.ref, u)))
        dq = q - self.center
        return u * np.exp(1j * (self.c @ dq + self.d * np.sin(self.e @ dq)))


def _general_shift(model, k, n, k2, m, rng, h=1e-5):
    """delta r = A_m(k') - A_n(k) - (grad_k + grad_k') arg <u_m(k')|u_n(k)>, all by central differences."""
    ui = _RandomGauge(model, k, n, rng)
    uf = _RandomGauge(model, k2, m, rng)
    out = np.zeros(model.dim)
    for a in range(model.dim):
        d = np.zeros(model.dim)
        d[a] = h
        A_i = (1j * np.vdot(ui(k), (ui(k + d) - ui(k - d)) / (2 * h))).real
        A_f = (1j * np.vdot(uf(k2), (uf(k2 + d) - uf(k2 - d)) / (2 * h))).real
        g_i = np.angle(np.vdot(uf(k2), ui(k + d)) / np.vdot(uf(k2), ui(k - d))) / (2 * h)
        g_f = np.angle(np.vdot(uf(k2 + d), ui(k)) / np.vdot(uf(k2 - d), ui(k))) / (2 * h)
        out[a] = A_f - A_i - g_i - g_f
    return out


@pytest.mark.parametrize("name", ["dirac", "qwz", "bhz"])
def test_side_jump_general_formula_random_gauge(name):
    """scattering.sidejump.side_jump equals the Sinitsyn-Niu-MacDonald formula (PRB 73, 075318 (2006))
    evaluated by finite differences in a random smooth gauge (intra- and interband transitions)."""
    model = {"dirac": lambda: models.MassiveDirac(1.0, 0.4, -1), "qwz": lambda: models.QWZ(u=1.3),
             "bhz": lambda: models.BHZ(u=1.0, zeeman=0.1, bia=0.15)}[name]()
    rng = np.random.default_rng({"dirac": 1, "qwz": 2, "bhz": 3}[name])
    checked = 0
    for _ in range(6):
        k = rng.uniform(-1.0, 1.0, 2)
        k2 = rng.uniform(-1.0, 1.0, 2)
        n = int(rng.integers(model.nbands))
        m = int(rng.integers(model.nbands))
        w1 = model.energies(k[None])[0]
        w2 = model.energies(k2[None])[0]
        if min(np.min(np.diff(w1)), np.min(np.diff(w2))) < 1e-2:
            continue     # skip near-degenerate points (FD gauge fixing needs a gap)
        ref = _general_shift(model, k, n, k2, m, rng)
        got = side_jump(model, k, n, k2, m)
        assert np.allclose(got, ref, atol=1e-6, rtol=1e-6), (name, k, n, k2, m, got, ref)
        checked += 1
    assert checked >= 4


# ----------------------------------------------------------------------------
# Bad input: clear errors before the run
# ----------------------------------------------------------------------------


@numba.njit
def _spec_nothing(q, p):  # forgets to return R^(q)
    q[0] = q[0]


@numba.njit
def _spec_one_arg(q):
    return 1.0


@numba.njit
def _spec_nan(q, p):
    return math.nan if q[0] > 1.0 else 1.0


@numba.njit
def _spec_neg(q, p):
    return -1.0 + q[0] * 0.0


@numba.njit
def _rate_nan(t, x, k, chi, band, p):
    return math.nan


@numba.njit
def _rate_neg(t, x, k, chi, band, p):
    return -0.5


@numba.njit
def _rate_big(t, x, k, chi, band, p):
    return 5.0


@numba.njit
def _apply_none(t, x, k, chi, band, p, u1, u2, u3, u4):
    return band


@numba.njit
def _apply_short(t, x, k, chi, band, p):  # the wrong signature: four uniforms missing
    return band


@numba.njit
def _apply_nothing(t, x, k, chi, band, p, u1, u2, u3, u4):  # forgets to return the band
    k[0] = -k[0]


@numba.njit
def _apply_float_band(t, x, k, chi, band, p, u1, u2, u3, u4):
    return 1.0


@numba.njit
def _rate_nothing(t, x, k, chi, band, p):
    x[0] = x[0]


@numba.njit
def _njit_apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev):
    return 0, False, band


class _BadChannel:
    name = "bad"

    def __init__(self, spec):
        self.spec = spec

    def build(self, ctx):
        return self.spec


@pytest.mark.parametrize("make, exc, word", [
    (lambda: WhiteNoiseDisorder(-0.1), ValueError, "strength"),
    (lambda: GaussianDisorder(0.1, -1.0), ValueError, "corr_length"),
    (lambda: Dephasing(-0.2), ValueError, "rate"),
    (lambda: Dephasing(math.nan), ValueError, "rate"),
    (lambda: Relaxation(-1.0, mu=0.0, temperature=0.1), ValueError, "tau"),
    (lambda: Relaxation(1.0, mu=0.0, temperature=-0.1), ValueError, "temperature"),
    (lambda: ElasticScattering("white"), TypeError, "Disorder"),
    (lambda: ElasticScattering(WhiteNoiseDisorder(0.1), majorant=-1.0), ValueError, "majorant"),
    (lambda: UserDisorder(_spec_nan, dim=2), ValueError, "NaN"),
    (lambda: UserDisorder(_spec_neg, dim=2), ValueError, "negative"),
    (lambda: UserDisorder(_spec_nothing, dim=2), ValueError, r"spectrum\(q, p\) returned None \(NoneType\)"),
    (lambda: UserDisorder(_spec_one_arg, dim=2), ValueError,
     r"calling spectrum\(q, p\) on its own with q a float64 array of length 2 .* too many arguments"),
    (lambda: UserChannel(_rate_nan, _apply_none, majorant=-1.0), ValueError, "majorant"),
    (lambda: UserChannel(lambda *a: 0.0, _apply_none, majorant=1.0), TypeError, "njit"),
])
def test_bad_channel_parameters(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


@pytest.mark.parametrize("channel, exc, word", [
    (lambda: UserChannel(_rate_nan, _apply_none, majorant=1.0), ValueError, "finite"),
    (lambda: UserChannel(_rate_neg, _apply_none, majorant=1.0), ValueError, ">= 0"),
    (lambda: UserChannel(_rate_big, _apply_none, majorant=1.0), ValueError, "majorant"),
    # mistakes in the user's own functions: a short message naming the function, before the composed
    # kernel is compiled (which buried them in numba typing errors)
    (lambda: UserChannel(_rate_nothing, _apply_none, majorant=1.0), TypeError,
     r"'user': rate returned None \(NoneType\); it must return the rate as a float"),
    (lambda: UserChannel(_rate_big, _apply_short, majorant=9.0), TypeError,
     r"'user': apply\(t, x, k, chi, band, p, u1, u2, u3, u4\) failed when called on its own with "
     r"\(float, float64\[2\], float64\[2\], complex128\[1\], int, float64\[0\], float, float, float, float\)"),
    (lambda: UserChannel(_rate_big, _apply_nothing, majorant=9.0), TypeError,
     r"apply returned None \(NoneType\); it must return the packet's new band index, an int in 0\.\.0"),
    (lambda: UserChannel(_rate_big, _apply_float_band, majorant=9.0), TypeError, r"apply returned 1\.0 \(float\)"),
    (lambda: _BadChannel([1, 2]), TypeError, "dict"),
    (lambda: _BadChannel({"apply": lambda: 0, "params": [], "majorant": 1.0}), TypeError, "njit"),
    (lambda: _BadChannel({"apply": _njit_apply, "params": [math.nan], "majorant": 1.0}), ValueError, "NaN"),
    (lambda: _BadChannel({"apply": _njit_apply, "params": [1.0], "majorant": -1.0}), ValueError, "majorant"),
    (lambda: Dephasing(0.1), ValueError, "coherent"),
])
def test_bad_channels_rejected_before_the_run(channel, exc, word):
    model = models.Parabolic(1.0, 2)
    ens, _ = shell(model, 1.0, 8, 0, seed=1)
    with pytest.raises(exc, match=word):
        Simulation(model, ens, dynamics="adiabatic", channels=[channel()], observables=obs(), progress=False)
