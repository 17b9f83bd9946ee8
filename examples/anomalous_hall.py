"""Main job: anomalous Hall response of the massive Dirac model with disorder.

Conduction-band packets of the massive Dirac model (one valley, v = 1,
m = 0.3, mu = 0.6, T = 0.02) sampled from the Fermi sea move under adiabatic,
Berry-corrected dynamics (anomalous velocity -kdot x Omega) in a weak field
E along x and scatter elastically off white-noise disorder (Born
approximation, side jump on).  The run is repeated at E = 0 with the same
seed (correlated sampling), and sigma = [j(E) - j(0)]/E is time-averaged over
the steady state.  Printed next to the closed forms:

* sigma_xx against the Boltzmann transport-time result
  (kinetic.closed_form.dirac_drude_conductivity, Born transport time of
  white-noise disorder);
* sigma_xy, to which the filled lower band adds exactly -s sgn(m)/(4 pi)
  (the massive-Dirac Hall conductivity with mu in the gap), against the
  intrinsic value -s m / (4 pi mu) (Streda formula, Wong & Tserkovnyak 2021,
  Eqs. 45-47, in the signs of docs/conventions.md) plus the side-jump and
  anomalous-distribution parts from the linearised Boltzmann solver
  (kinetic.boltzmann.linear_response, Sinitsyn's scheme, same Born kernel).
  The Monte Carlo's side-jump current is the packets' displacement by the
  coordinate shifts at events; the anomalous distribution comes from final
  states drawn on the energy shell shifted by the jump energy -qE.dr
  (docs/scattering.md).

Conductivities in e^2/hbar and in e^2/h.  Writes ``anomalous_hall.h5``.

Usage: python examples/anomalous_hall.py [--packets N] [--t-end T] [--out PATH]
"""
import argparse
import math
import time

import numpy as np

from kinetic.boltzmann import linear_response
from kinetic.closed_form import dirac_drude_conductivity, dirac_intrinsic_hall, dirac_transport_rate
from observables import BandPopulation, Current
from packets import Ensemble, Field, Result, Simulation, models, units
from scattering import ElasticScattering, WhiteNoiseDisorder


def main(n=10000, t_end=100.0, out="anomalous_hall.h5", E=2e-3, seed=2026, progress=None, verbose=True):
    v, m, s, mu, T, nV2 = 1.0, 0.3, +1, 0.6, 0.02, 0.2
    model = models.MassiveDirac(velocity=v, mass=m, valley=s)
    kf = math.sqrt(mu ** 2 - m ** 2) / v
    ens = Ensemble.fermi_sea(model, mu=mu, temperature=T, n=n, seed=seed, bands=[1], k_window=1.6 * kf)
    disorder = WhiteNoiseDisorder(strength=nV2)
    obs = [Current(), BandPopulation()]
    dt, rec = 0.1, 2.0
    t0 = time.time()
    res = {}
    for label, field in (("E", Field(E=(E, 0.0))), ("0", Field(E=(0.0, 0.0)))):
        sim = Simulation(model, ens, field=field, dynamics="adiabatic", observables=obs, dt=dt,
                         channels=[ElasticScattering(disorder, side_jump=True)], progress=progress)
        res[label] = sim.run(t_end, rec)
    res["E"].save(out)
    tau = 1.0 / (nV2 * (mu ** 2 + m ** 2) / (2 * v ** 2 * mu))
    tau_tr = 1.0 / dirac_transport_rate(mu, v, m, nV2)
    t_min = min(3.0 * tau_tr, 0.5 * t_end)  # the drift current relaxes on the transport time
    sig, se, b = res["E"].conductivity(t_min=t_min, reference=res["0"])
    sxx_ref = dirac_drude_conductivity(mu, v, m, nV2)
    lower = -s * math.copysign(1.0, m) / (4 * math.pi)
    sxy = -sig[1]  # sigma_xy = dj_x/dE_y = -dj_y/dE_x (isotropic model)
    sxy_int = dirac_intrinsic_hall(mu, m, s)
    kin = linear_response(model, mu, disorder, side_jump=True)
    sxy_ext = kin.side_jump[0, 1] + kin.adist[0, 1]
    sxy_ref = sxy_int + sxy_ext
    if verbose:
        print(f"massive Dirac v={v} m={m} s={s:+d}, mu={mu}, T={T}, white noise n_i V0^2={nV2} (tau={tau:.2f}, tau_tr={tau_tr:.2f}), "
              f"E={E} along x; {n} packets, t_end={t_end}, steady window t >= {t_min:.1f}; "
              f"wall time {time.time() - t0:.1f} s; result file {out}")
        print(f"sigma_xx = {sig[0]:.4f} +- {se[0]:.4f} e^2/hbar   (Boltzmann closed form {sxx_ref:.4f}; "
              f"z = {(sig[0] - sxx_ref) / se[0]:+.2f})")
        print(f"sigma_xy = {sxy + lower:.5f} +- {se[1]:.5f} e^2/hbar = {units.to_e2_over_h(sxy + lower):.4f} "
              f"+- {units.to_e2_over_h(se[1]):.4f} e^2/h   (intrinsic {sxy_int:.5f} + side jump and anomalous "
              f"distribution {sxy_ext:.5f} = {sxy_ref:.5f} e^2/hbar; z = {(sxy + lower - sxy_ref) / se[1]:+.2f})")
        print(f"packet status: {res['E'].status_counts}; events: {dict(zip(res['E']['events'].labels, res['E']['events'].mean.sum(axis=0)))}")
    return {"sigma_xx": (sig[0], se[0], sxx_ref), "sigma_xy": (sxy + lower, se[1], sxy_ref), "results": res}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=10000)
    ap.add_argument("--t-end", type=float, default=100.0)
    ap.add_argument("--out", default="anomalous_hall.h5")
    a = ap.parse_args()
    main(a.packets, a.t_end, a.out)
