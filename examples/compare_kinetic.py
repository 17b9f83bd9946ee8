"""Monte Carlo against the kinetic equations: massive Dirac model with disorder, dephasing and relaxation.

One massive Dirac valley, H = v (s k_x sigma_x + k_y sigma_y) + m sigma_z (Wong & Tserkovnyak 2021, Eq. 41),
hbar = e = 1, carrier charge q = -1, sigma_ab = dj_a/dE_b in e^2/hbar (docs/conventions.md).  Two scans, each printed as a
:func:`kinetic.compare.compare` table (MC, batch-means standard error, reference, z) and drawn as a PNG:

A. **Chemical-potential scan** (adiabatic Berry-corrected dynamics, Born elastic scattering off
   white-noise disorder n_i V0^2 = W, side jumps on).  A Fermi sea of the conduction band
   (``bands=[1]``) runs at E along x and at E = 0 with the same ensemble and seed; sigma is the
   correlated difference [j(E) - j(0)]/E averaged over t >= 3 tau_tr.  References:
   :func:`kinetic.boltzmann.linear_response` (exact linearised Boltzmann equation, same Born kernel and
   the same coordinate shift as the Monte Carlo):

   * sigma_xx (band-velocity current) against the Drude term.  linear_response's side-jump and
     anomalous-distribution xx terms vanish; the MC's side-jump current also has a longitudinal part,
     second order in the jump (the side-jump velocity of the anomalous distribution, O(dr^2/l^2) of
     the Drude term, beyond the order of Sinitsyn's scheme; -6 % of sigma_xx at W = 2 here), so the
     band part is the quantity that the linearised equation predicts;
   * sigma_xy = -sigma_yx (isotropic model) against the total intrinsic + side jump + anomalous
     distribution.  The Monte Carlo has no valence-band packets: the filled lower band's intrinsic
     part -s sgn(m)/(4 pi) (Streda formula with mu in the gap, Wong & Tserkovnyak 2021, Eqs. 45-47)
     is added to the MC value.

   Systematics of the Monte Carlo at finite E printed alongside: the transient (the current relaxes
   on tau_tr, e^{-t_min/tau_tr}) and Joule heating (elastic scattering does not relax the energy the
   field feeds in; the thermal shell broadens ~ (E v)^2 tau_tr t), both from the time-dependent
   Boltzmann solver :class:`kinetic.boltzmann.TimeDependentBoltzmann` run over the same window.

B. **Field scan from the adiabatic to the non-adiabatic regime** (coherent pseudospin dynamics, no
   disorder) with ``Dephasing(gamma)`` and ``Relaxation(tau, mu, T)`` against
   :func:`kinetic.nonadiabatic.nonadiabatic_current` (Tu, Li & Yao, Eqs. 54-60).  Mapping of parameters:

   * Tu, Li & Yao, Eq. (A7): scattering at one band-independent rate 1/tau refills the hybridised band i
     with g_i^0 = f(E_i) (Eq. 57b).  ``Relaxation(tau, mu, T)`` redraws each packet at rate 1/tau from
     p(k, i) ~ f(E_i(k)) in the hybridised energies of the moving-frame Hamiltonian (Eqs. 27, 54, 55)
     over the disc |k| < K: the same tau, mu and T, and ``nonadiabatic_current(..., k_max=K)``
     integrates the same disc.  Relaxation redraws into both hybridised bands, so the ensemble is the
     Fermi sea of both bands inside K.
   * Eq. (56) (no coherence between hybridised bands) is the limit of complete decoherence in the
     Hbar eigenbasis; Eqs. (57)-(60) contain no dephasing rate.  ``Dephasing(gamma)`` collapses the
     pseudospin onto the Hbar eigenstates at rate gamma; any gamma large enough to remove the
     coherence that the drift builds up between them gives the same current (gamma = 4/tau here; the
     results at gamma = 2/tau and 10/tau agree within the statistical errors).
   * The k window: the MC's filled lower band ends at |k| = K, and the drift displaces that edge like a
     Fermi surface (velocity pointing inwards).  Its current, first order in E, is
     sigma_xx^edge = -tau K v_K [f(-eps_K) - f(eps_K)]/(4 pi), v_K = v^2 K/eps_K (derived here: the
     relaxation-time solution -tau qE.grad theta(K - |k|) of the step times the group velocity);
     Eq. (57) on the disc has no such term, so it is added to the kinetic sigma_xx.
   * Eq. (57c) is the short-scattering-time (first order in tau d/dt) form of Eq. (A11); the MC drifts
     to all orders and conserves the particle number (Eq. 57 at fixed mu does not).  Both effects are
     estimated by :func:`exact_drift_current` (Eq. A11 evaluated exactly, below) and printed as the
     systematic of the comparison.

Usage: python examples/compare_kinetic.py [--small] [--out compare_kinetic.png]
Writes ``<stem>_mu.png`` and ``<stem>_field.png``.
"""
import argparse
import math
import os
import time

import numpy as np

from kinetic.boltzmann import TimeDependentBoltzmann, linear_response
from kinetic.closed_form import dirac_transport_rate
from kinetic.compare import compare
from kinetic.nonadiabatic import adiabatic_current, hybridised_bands, k_grid, nonadiabatic_current
from observables import Current, DensityMatrix
from packets import Ensemble, Field, Simulation, geometry, models
from scattering import Dephasing, ElasticScattering, GaussianDisorder, Relaxation, born

Q = -1.0

#: part A (adiabatic, Born elastic scattering): m, v, valley, T, disorder strength W, field
DIRAC_A = dict(m=0.3, v=1.0, s=+1, T=0.01, W=2.0, E=0.01)
#: part B (coherent, dephasing + relaxation): m, mu, T, relaxation time, dephasing rate, k window
DIRAC_B = dict(m=0.2, v=1.0, s=+1, mu=0.4, T=0.04, tau=1.0, gamma=4.0, K=1.0)
#: ray length and scan resolution of the Born sampler (continuum Dirac: one root per ray)
R_MAX, N_SCAN = 1.5, 8
#: intrinsic Hall conductivity of linear_response: disc |k| < 1000 (tail s m/(4 pi E(k_max)) ~ 2e-5)
INTRINSIC_OPTIONS = dict(k_max=1000.0, n=64, k_breaks=(0.3, 0.6, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0))


def white_noise(strength):
    """White-noise disorder R^(q) = strength (docs/conventions.md), as ``GaussianDisorder(strength, 0)``.

    The Gaussian spectrum W exp(-q^2 xi^2/2) with xi = 0 is exactly the white-noise spectrum
    (:class:`scattering.GaussianDisorder`); using one spectrum function lets the white-noise and the
    Gaussian-correlated runs share one compiled kernel (kernels are cached per spectrum function).
    """
    return GaussianDisorder(strength, 0.0)


def dirac(m, v=1.0, s=+1):
    return models.MassiveDirac(velocity=v, mass=m, valley=s)


def elastic(model, disorder, energies, band=1, side_jump=True, safety=1.6):
    """ElasticScattering with a majorant bounding the Born proposal weight on the given energy shells."""
    gm = born.majorant(model, disorder, energies=np.asarray(energies, float), band=band, safety=safety,
                       r_max=R_MAX, n_scan=N_SCAN)
    return ElasticScattering(disorder, side_jump=side_jump, majorant=gm, r_max=R_MAX, n_scan=N_SCAN)


def run_pair(model, ens, E, dynamics, channels, observables, dt, t_end, record):
    """Run at E along x and at E = 0 (same ensemble and seed: correlated sampling); returns (res_E, res_0, sims)."""
    out, sims = [], []
    for e in (E, 0.0):
        sim = Simulation(model, ens, field=Field(E=(e, 0.0)), dynamics=dynamics, channels=channels(),
                         observables=observables, dt=dt, progress=False)
        out.append(sim.run(t_end, record))
        sims.append(sim)
    return out[0], out[1], sims


# ----------------------------------------------------------------------------
# part A: adiabatic Monte Carlo with Born scattering vs the linearised Boltzmann equation
# ----------------------------------------------------------------------------


def adiabatic_run(mu, disorder, n, seed, E=DIRAC_A["E"], m=DIRAC_A["m"], v=DIRAC_A["v"], s=DIRAC_A["s"],
                  T=DIRAC_A["T"], side_jump=True, tau_tr=None, n_tau=8.0):
    """Correlated MC pair for a conduction-band Fermi sea at mu (adiabatic dynamics, Born scattering).

    Returns a dict with the two Results, the Simulations, the window t_min and the time grid.
    tau_tr (transport time at mu) sets t_end = n_tau tau_tr (rounded to the record step tau_tr/4)
    and t_min = 3 tau_tr.
    """
    model = dirac(m, v, s)
    kf = math.sqrt(mu * mu - m * m) / v
    kw = 1.4 * kf  # f(eps(kw)) < 1e-10 for the T used here
    ens = Ensemble.fermi_sea(model, mu=mu, temperature=T, n=n, seed=seed, bands=[1], k_window=kw)
    emax = math.sqrt((v * kw) ** 2 + m * m)
    energies = np.linspace(abs(m) * 1.0001, emax + 0.05, 12)  # + field-driven energy spread
    rec = round(tau_tr / 4.0, 2)
    t_end = rec * math.ceil(n_tau * tau_tr / rec)
    t_min = 3.0 * tau_tr
    res_e, res_0, sims = run_pair(model, ens, E, "adiabatic",
                                  lambda: [elastic(model, disorder, energies, side_jump=side_jump)],
                                  [Current()], rec, t_end, rec)
    return {"E": res_e, "0": res_0, "sims": sims, "t_min": t_min, "t_end": t_end, "record": rec, "model": model,
            "E_field": E, "mu": mu}


def lower_band_hall(m, s):
    """Intrinsic sigma_xy of the filled valence band alone, -s sgn(m)/(4 pi) (Wong & Tserkovnyak 2021, Eq. 47)."""
    return -s * math.copysign(1.0, m) / (4.0 * math.pi)


def mc_sigma(run, part="total"):
    """(sigma_xx, se_xx, sigma_xy_conduction, se_xy) from a correlated pair; sigma_xy = -sigma_yx."""
    sig, se, b = run["E"].conductivity(t_min=run["t_min"], part=part, reference=run["0"])
    assert b == 0
    return sig[0], se[0], -sig[1], se[1]


def kinetic_sigma(model, mu, disorder, T, side_jump=True):
    """linear_response with the intrinsic term on a large disc (see INTRINSIC_OPTIONS)."""
    return linear_response(model, mu, disorder, temperature=T, side_jump=side_jump, n_angles=32, n_energy=12,
                           intrinsic_options=INTRINSIC_OPTIONS)


def lost_packet_bound(run):
    """Bound on the Hall-conductivity bias from packets flagged during the run at E (e^2/hbar).

    A flagged packet (any status other than ok, e.g. a majorant violation) leaves the tallies; its
    weighted anomalous velocity |Omega|, as if lost from t = 0, bounds what the time average misses
    (0 when no packet is flagged, the normal case: a side jump without a final state at the shifted
    energy is a null event, not an error).
    """
    sim = run["sims"][0]
    bad = np.flatnonzero(sim.status != 0)
    if bad.size == 0:
        return 0.0
    om = geometry.berry_curvature(run["model"], sim.k[bad])[:, 1]
    return float(np.sum(sim.weight[bad] * np.abs(om)))


def boltzmann_window(model, mu, T, disorder, E, t_end, t_min, record, n_r=24, n_phi=16):
    """Time-dependent Boltzmann (all orders in E, Born kernel) averaged over the MC's window.

    Returns (sigma_xx at E, sigma_xx at E -> 0 (transient only), sigma_xy of the delta-f anomalous
    current at E): the field is switched on at t = 0 on the equilibrium state, as in the Monte Carlo,
    and [j(E) - j(0)]/E is averaged over the record times t >= t_min.  Conduction band only
    (bands=[1]), thermal window 22 T (needs mu - 22 T above the band edge).
    """
    tdb = TimeDependentBoltzmann(model, mu, T, disorder=disorder, n_r=n_r, n_phi=n_phi, window=22.0, bands=[1])
    times = np.arange(0.0, t_end + 0.5 * record, record)
    sel = times >= t_min - 1e-12
    out = []
    for e in (E, 1e-7):
        r = tdb.evolve(times, field=(e, 0.0))
        out.append((r.band[sel, 0].mean() / e, -r.anomalous[sel, 1].mean() / e))
    return out[0][0], out[1][0], out[0][1]


def mu_scan(mus, n, seed=2027, W=DIRAC_A["W"], E=DIRAC_A["E"], path=None, verbose=True):
    """Part A over chemical potentials; returns (table, runs, references, systematics)."""
    p = DIRAC_A
    model = dirac(p["m"], p["v"], p["s"])
    dis = white_noise(W)
    runs, ref_xx, ref_xy, sys_rows = [], [], [], []
    for i, mu in enumerate(mus):
        tau_tr = 1.0 / float(dirac_transport_rate(mu, p["v"], p["m"], W))
        run = adiabatic_run(mu, dis, n, seed + i, E=E, tau_tr=tau_tr)
        runs.append(run)
        kin = kinetic_sigma(model, mu, dis, p["T"])
        ref_xx.append(kin.drude[0, 0])
        ref_xy.append(kin.sigma[0, 1])
        sxx_e, sxx_0, sxy_heat = boltzmann_window(model, mu, p["T"], dis, E, run["t_end"], run["t_min"],
                                                  run["record"])
        sys_rows.append((mu, tau_tr, kin.drude[0, 0], sxx_0, sxx_e, sxy_heat, lost_packet_bound(run),
                         run["E"].status_counts))
    lower = lower_band_hall(p["m"], p["s"])
    by_id = {id(r["E"]): r for r in runs}

    def sxx(res):
        r = by_id[id(res)]
        a, b, _, _ = mc_sigma(r, part="band")
        return a, b

    def sxy(res):
        r = by_id[id(res)]
        _, _, c, d = mc_sigma(r)
        return c + lower, d

    table = compare([r["E"] for r in runs], {"sigma_xx": ref_xx, "sigma_xy": ref_xy},
                    quantities={"sigma_xx": sxx, "sigma_xy": sxy}, parameter=list(mus),
                    parameter_name="mu", title=f"massive Dirac m={p['m']}, white noise W={W}, E={E}: MC vs "
                                              "linearised Boltzmann")
    if verbose:
        print(f"A. mu scan: adiabatic MC (Born elastic, side jumps) vs kinetic.boltzmann.linear_response; "
              f"m={p['m']}, T={p['T']}, W={W}, E={E}, {n} packets per run; sigma_xy includes the valence band "
              f"{lower:.5f}")
        print(table)
        print("   systematics (e^2/hbar): Boltzmann sigma_xx linear | time-dependent Boltzmann over the MC window "
              "at E->0 (transient) and at E (transient + heating) | heating shift of the Hall anomalous part | "
              "lost-packet bound")
        for mu, tt, lin, s0, se_, sh, lost, stc in sys_rows:
            print(f"   mu={mu:g} tau_tr={tt:.2f}: {lin:.5f} | {s0:.5f} {se_:.5f} | {sh:+.5f} | {lost:.5f}  "
                  f"status {stc}")
    draw(table, path)
    return table, runs, {"sigma_xx": ref_xx, "sigma_xy": ref_xy}, sys_rows


# ----------------------------------------------------------------------------
# part B: coherent Monte Carlo with dephasing and relaxation vs Tu, Li & Yao, Eqs. 54-60
# ----------------------------------------------------------------------------


def coherent_channels(disorder=None, gamma=0.0, tau=None, mu=0.0, T=0.0, K=1.0):
    """[ElasticScattering, Dephasing, Relaxation] with unused channels switched off.

    Always the same three channel types, so every coherent run of this example (and of
    tests/test_mc_vs_kinetic.py) shares one compiled kernel: no disorder is an elastic channel of
    strength 0 with majorant 1e-30, no relaxation a relaxation time of 1e30.
    """
    if disorder is None:
        el = ElasticScattering(white_noise(0.0), side_jump=False, majorant=1e-30)
    else:
        el = ElasticScattering(disorder, side_jump=False, r_max=R_MAX, n_scan=N_SCAN)
    return [el, Dephasing(gamma), Relaxation(1e30 if tau is None else tau, mu, T, k_window=K)]


def window_edge_sigma(m, v, mu, T, tau, K):
    """sigma_xx of the drifting edge |k| = K of the k window (module docstring, part B), e^2/hbar."""
    eK = math.sqrt((v * K) ** 2 + m * m)
    vK = v * v * K / eK
    fl, fu = geometry.fermi(-eK, mu, T), geometry.fermi(eK, mu, T)
    return -tau * K * vK * (fl - fu) / (4.0 * math.pi)


def exact_drift_current(model, E, mu, T, tau, K, n_r=24, n_theta=48, n_u=24, k_breaks=()):
    """Tu, Li & Yao, Eq. (A11) without the short-scattering-time approximation, for the MC's relaxation.

    A packet relaxed at time t - s into hybridised band i at k0 (probability ~ f(E_i(k0)) on |k0| < K)
    drifts to k = k0 + qE s and, with decoherence in the Hbar basis, stays in hybridised band i
    (Eq. A11 with |<u_i'|chi'>|^2 = delta_ii').  With the exponential age distribution of rate 1/tau,

        J = N q sum_i int_{|k0|<K} [dk0] f(E_i(k0)) int_0^inf du e^{-u} v~_i(k0 + qE tau u),

    N = Z(0)/Z(E), Z(E) = int_{|k|<K} [dk] sum_i f(E_i): the relaxation conserves the particle number
    of the initial Fermi sea (Z(0), band energies).  To first order in tau E this is Eq. (57)-(60) on
    the disc plus the window-edge term; the difference at finite E is the systematic of comparing the
    MC with Eq. (57).  Quadrature: polar Gauss-Legendre grid (:func:`kinetic.nonadiabatic.k_grid`),
    Gauss-Laguerre in u.

    Returns
    -------
    J : ndarray (2,)   current density (e E0/(hbar L0))
    N : float          particle-number renormalisation Z(0)/Z(E)
    """
    E = np.asarray(E, float).reshape(2)
    k0, w0 = k_grid(model, n=n_r, k_max=K, n_theta=n_theta, k_breaks=k_breaks)
    ea, _, _ = hybridised_bands(model, k0, E)
    f = np.asarray(geometry.fermi(ea, mu, T))
    f0 = np.asarray(geometry.fermi(model.energies(k0), mu, T))
    norm = float((w0 @ f0.sum(axis=1)) / (w0 @ f.sum(axis=1)))
    u, wu = np.polynomial.laguerre.laggauss(n_u)
    vbar = np.zeros(f.shape + (2,))
    for uu, ww in zip(u, wu):
        _, vt, _ = hybridised_bands(model, k0 + Q * E * tau * uu, E)
        vbar += ww * vt
    return norm * Q * np.einsum("p,pi,pia->a", w0, f, vbar), norm


def field_references(E, p=DIRAC_B):
    """Kinetic references for part B at field E along x: dict of sigma_xx, sigma_yx (J/E) per formula."""
    model = dirac(p["m"], p["v"], p["s"])
    kf = math.sqrt(p["mu"] ** 2 - p["m"] ** 2) / p["v"]
    edge = window_edge_sigma(p["m"], p["v"], p["mu"], p["T"], p["tau"], p["K"])
    na = nonadiabatic_current(model, (E, 0.0), p["mu"], p["T"], p["tau"], k_max=p["K"], k_breaks=(kf,))
    ad = adiabatic_current(model, (E, 0.0), p["mu"], p["T"], p["tau"], k_max=p["K"], k_breaks=(kf,))
    ex, norm = exact_drift_current(model, (E, 0.0), p["mu"], p["T"], p["tau"], p["K"], k_breaks=(kf,))
    return {"nonadiabatic": (na.J[0] / E + edge, na.J[1] / E), "adiabatic": (ad[0] / E + edge, ad[1] / E),
            "exact_drift": (ex[0] / E, ex[1] / E), "edge": edge, "norm": norm}


def field_runs(Es, n, seed=2028, p=DIRAC_B, t_end=10.0, t_min=4.0, dt=0.1, record=0.5):
    """Coherent MC (Dephasing + Relaxation) at each field and at E = 0, one ensemble and seed."""
    model = dirac(p["m"], p["v"], p["s"])
    ens = Ensemble.fermi_sea(model, mu=p["mu"], temperature=p["T"], n=n, seed=seed, k_window=p["K"])
    obs = [Current(), DensityMatrix()]
    out = {}
    for e in [0.0] + list(Es):
        sim = Simulation(model, ens, field=Field(E=(e, 0.0)), dynamics="coherent", observables=obs, dt=dt,
                         channels=coherent_channels(gamma=p["gamma"], tau=p["tau"], mu=p["mu"], T=p["T"], K=p["K"]),
                         progress=False)
        out[e] = sim.run(t_end, record)
    return out, t_min


def field_scan(Es, n, path=None, verbose=True, p=DIRAC_B):
    """Part B over field strengths; returns (table, results, references)."""
    res, t_min = field_runs(Es, n, p=p)
    refs = [field_references(e, p) for e in Es]
    table = compare([res[e] for e in Es],
                    {"sigma_xx": [r["nonadiabatic"][0] for r in refs], "sigma_yx": [r["nonadiabatic"][1] for r in refs]},
                    parameter=list(Es), parameter_name="E", t_min=t_min, zero_field=[res[0.0]] * len(Es),
                    title=f"massive Dirac m={p['m']}, mu={p['mu']}: coherent MC (dephasing, relaxation) vs "
                          "Tu, Li & Yao, Eq. 57-60")
    if verbose:
        print(f"B. field scan: coherent MC with Dephasing(gamma={p['gamma']}) + Relaxation(tau={p['tau']}, mu={p['mu']}, "
              f"T={p['T']}, |k|<{p['K']}) vs kinetic.nonadiabatic.nonadiabatic_current (+ window edge "
              f"{refs[0]['edge']:.5f} in sigma_xx); {n} packets")
        print(table)
        print("   sigma = J/E (e^2/hbar): Eq. 57 (reference) | adiabatic Eqs. 46-47 | Eq. A11 exact drift "
              "(systematic = |A11 - Eq. 57|) | N - 1")
        for e, r in zip(Es, refs):
            print(f"   E={e:g}: xx {r['nonadiabatic'][0]:.5f} {r['adiabatic'][0]:.5f} {r['exact_drift'][0]:.5f} | "
                  f"yx {r['nonadiabatic'][1]:.5f} {r['adiabatic'][1]:.5f} {r['exact_drift'][1]:.5f} | "
                  f"{r['norm'] - 1:.2e}")
    draw(table, path)
    return table, res, refs


def draw(table, path):
    """Write the table's figure to ``path`` (None: no figure); without matplotlib say what to install.

    Called after the table has been printed, so a missing matplotlib loses nothing computed.
    """
    if path is None:
        return None
    try:
        return table.plot(path)
    except ImportError as exc:
        print(f"   no figure {path}: {exc}")
        return None


def main(small=False, path="compare_kinetic.png", verbose=True):
    """Run both scans, print the tables and write ``<stem>_mu.png`` and ``<stem>_field.png``.

    ``small=True``: two chemical potentials and two fields with small ensembles (the version the tests
    run, ~1 minute once the kernels are compiled); the full version takes ~15 minutes on 2 cores.
    Returns a dict with the two tables and the figure paths.
    """
    t0 = time.time()
    stem, _ = os.path.splitext(path)
    p_mu, p_field = f"{stem}_mu.png", f"{stem}_field.png"
    if small:
        mus, n_mu, Es, n_e = (0.55, 0.75), 1500, (0.02, 0.15), 3000
    else:
        mus, n_mu, Es, n_e = (0.55, 0.6, 0.7, 0.8, 0.9), 12000, (0.01, 0.03, 0.06, 0.1, 0.15), 16000
    ta = mu_scan(mus, n_mu, path=p_mu, verbose=verbose)[0]
    tb = field_scan(Es, n_e, path=p_field, verbose=verbose)[0]
    figures = tuple(t.figure for t in (ta, tb))
    if verbose:
        print(f"figures {', '.join(f for f in figures if f) or 'none'}; wall time {time.time() - t0:.0f} s")
    return {"mu_table": ta, "field_table": tb, "figures": figures}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the quick version run by the tests")
    ap.add_argument("--out", default="compare_kinetic.png", help="figure stem (writes <stem>_mu.png, <stem>_field.png)")
    a = ap.parse_args()
    main(small=a.small, path=a.out)
