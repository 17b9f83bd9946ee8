"""Latency case: the main job's kernel variants (examples/anomalous_hall.py) on a tiny ensemble.

Adiabatic massive Dirac with white-noise Born scattering (side jump), Current and BandPopulation
tallies, E and E = 0 runs (the same compiled variant).  Prints one JSON line of phase times.
"""
import json
import sys
import time

T0 = float(sys.argv[1]) if len(sys.argv) > 1 else time.time()  # the parent's process start time


def main():
    t = {"start": time.time()}
    from observables import BandPopulation, Current
    from packets import Ensemble, Field, Simulation, models
    from scattering import ElasticScattering, WhiteNoiseDisorder

    t["import"] = time.time()
    model = models.MassiveDirac(velocity=1.0, mass=0.3, valley=+1)
    ens = Ensemble.fermi_sea(model, mu=0.6, temperature=0.02, n=256, seed=2026, bands=[1], k_window=0.83)
    out = []
    for E in (2e-3, 0.0):
        sim = Simulation(model, ens, field=Field(E=(E, 0.0)), dynamics="adiabatic", dt=0.1, progress=False,
                         observables=[Current(), BandPopulation()],
                         channels=[ElasticScattering(WhiteNoiseDisorder(strength=0.2), side_jump=True)])
        if "setup" not in t:
            t["setup"] = time.time()
        r = sim.run(0.2, 0.1)
        if "first_step" not in t:
            t["first_step"] = time.time()
        out.append(float(r["current"].mean[-1][0]))
    t["end"] = time.time()
    return t, out


if __name__ == "__main__":
    t, out = main()
    t2, _ = main()  # the same script again in this process: the in-process figure
    print(json.dumps({"to_first_step": t["first_step"] - T0, "phases": {k: v - T0 for k, v in t.items()},
                      "in_process": t2["first_step"] - t2["start"], "jx": out}))
