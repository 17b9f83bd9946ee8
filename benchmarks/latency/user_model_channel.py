"""Latency case: a user's own @njit band model, disorder spectrum and event channel.

A two-band model written by the user (UserModel with finite-difference derivatives), Born scattering
off a user spectrum, and a user channel (a constant-rate momentum kick), coherent dynamics with a
Current tally.  Prints one JSON line of phase times.
"""
import json
import math
import sys
import time

T0 = float(sys.argv[1]) if len(sys.argv) > 1 else time.time()

import numba  # noqa: E402


@numba.njit
def h_user(x, k, p, out):
    """A massive Dirac cone with an anisotropic velocity: H = p0 kx sx + p1 ky sy + p2 sz."""
    out[0, 0] = p[2]
    out[1, 1] = -p[2]
    out[0, 1] = p[0] * k[0] - 1j * p[1] * k[1]
    out[1, 0] = p[0] * k[0] + 1j * p[1] * k[1]


@numba.njit
def spectrum_user(q, p):
    """Gaussian-correlated disorder W(q) = p0 exp(-q^2 p1^2 / 2)."""
    s = 0.0
    for a in range(q.shape[0]):
        s += q[a] * q[a]
    return p[0] * math.exp(-0.5 * s * p[1] * p[1])


@numba.njit
def kick_rate(t, x, k, chi, band, p):
    return p[0]


@numba.njit
def kick_apply(t, x, k, chi, band, p, u1, u2, u3, u4):
    k[0] += p[1] * (u1 - 0.5)
    return band


def main():
    t = {"start": time.time()}
    from observables import Current
    from packets import Ensemble, Field, Simulation, models
    from scattering import ElasticScattering, UserChannel, UserDisorder

    t["import"] = time.time()
    model = models.UserModel(h_user, dim=2, nbands=2, params=[1.0, 0.8, 0.1], name="anisotropic Dirac",
                             k_window=3.0)
    ens = Ensemble.fermi_sea(model, mu=0.4, temperature=0.02, n=256, seed=7, bands=[1], k_window=1.0)
    ch = [ElasticScattering(UserDisorder(spectrum_user, params=[0.3, 0.5], dim=2), side_jump=False),
          UserChannel(kick_rate, kick_apply, majorant=0.05, params=[0.05, 0.01], name="kick")]
    sim = Simulation(model, ens, field=Field(E=(1e-3, 0.0)), dynamics="coherent", dt=0.05, progress=False,
                     channels=ch, observables=[Current()])
    t["setup"] = time.time()
    r = sim.run(0.1, 0.05)
    t["first_step"] = time.time()
    return t, [float(r["current"].mean[-1][0])]


if __name__ == "__main__":
    t, out = main()
    t2, _ = main()
    print(json.dumps({"to_first_step": t["first_step"] - T0, "phases": {k: v - T0 for k, v in t.items()},
                      "in_process": t2["first_step"] - t2["start"], "jx": out}))
