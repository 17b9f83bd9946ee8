"""Packet-steps per second of the coherent Dirac step, against the NumPy baseline.

Runs the NumPy baseline ``numpy_baseline.py`` (plain NumPy RK4 of the same
coherent massive-Dirac dynamics under uniform E; a script kept outside this
repository, loaded from ``$PACKETS_NUMPY_BASELINE`` or from ``BASELINE``)
and the library's CPU backend (coherent dynamics, uniform E, Current tally
on) side by side in this process, and prints one line per figure plus their
ratio.

A third figure repeats the library run with white-noise Born scattering
(``ElasticScattering(WhiteNoiseDisorder(0.02))``, null collisions, side jump
on) to show the cost of the event machinery.

Usage::

    python benchmarks/bench_dynamics.py [n_packets] [steps]

One "packet-step" is one fourth-order step of one packet (for the library
including the unitary pseudospin update); tallies are taken once per record
interval as in production runs.  Compilation is excluded (a warm-up run).
"""
import importlib.util
import os
import sys
import time

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINE = os.path.join(HERE, "..", "..", "shared", "bench", "numpy_baseline.py")


def load_baseline():
    path = os.environ.get("PACKETS_NUMPY_BASELINE", BASELINE)
    if not os.path.exists(path):
        raise SystemExit(f"NumPy baseline not found at {path}; set PACKETS_NUMPY_BASELINE")
    spec = importlib.util.spec_from_file_location("numpy_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def baseline_rate(mod, n, steps):
    """Time the baseline's own ``step`` exactly as its ``main`` does."""
    rng = np.random.default_rng(1)
    v, m = 1.0, 0.1
    E = np.array([0.01, 0.0])
    x = np.zeros((n, 2))
    k = rng.uniform(-1, 1, size=(n, 2))
    chi = np.zeros((n, 2), complex)
    chi[:, 0] = 1.0
    x, k, chi = mod.step(x, k, chi, 0.01, v, m, E)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, k, chi = mod.step(x, k, chi, 0.01, v, m, E)
    return n * steps / (time.perf_counter() - t0)


def library_rate(n, steps, channels=()):
    from observables import Current
    from packets import Ensemble, Field, Simulation, models

    model = models.MassiveDirac(velocity=1.0, mass=0.1)
    rng = np.random.default_rng(1)
    k = rng.uniform(-1, 1, size=(n, 2))
    chi = np.zeros((n, 2), complex)
    chi[:, 0] = 1.0
    ens = Ensemble.from_arrays(model, np.zeros((n, 2)), k, chi=chi, seed=1)
    sim = Simulation(model, ens, field=Field(E=(0.01, 0.0)), dynamics="coherent", channels=list(channels),
                     observables=[Current()], dt=0.01, progress=False)
    sim.run(0.01 * 2, 0.01 * 2)  # warm-up: compiles
    ps0 = sim.packet_steps
    t0 = time.perf_counter()
    sim.run(sim.t + 0.01 * steps, 0.01 * steps)
    el = time.perf_counter() - t0
    return (sim.packet_steps - ps0) / el


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    from scattering import ElasticScattering, WhiteNoiseDisorder

    base = baseline_rate(load_baseline(), n, steps)
    lib = library_rate(n, steps)
    scat = library_rate(n, steps, channels=[ElasticScattering(WhiteNoiseDisorder(0.02))])
    base2 = baseline_rate(load_baseline(), n, steps)  # again: the machine's state may drift
    print(f"numpy_baseline packet_steps_per_s {base:.3e} (repeat {base2:.3e})")
    print(f"packets_cpu_coherent_dirac packet_steps_per_s {lib:.3e} threads {numba.get_num_threads()}")
    print(f"packets_cpu_coherent_dirac_scattering packet_steps_per_s {scat:.3e}")
    print(f"ratio packets/numpy {lib / max(base, base2):.2f}")
    print(f"ratio scattering/no-scattering {scat / lib:.2f}")


if __name__ == "__main__":
    main()
