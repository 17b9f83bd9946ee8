"""A user-defined inelastic channel: optical-phonon emission and absorption.

Electrons in a 2D parabolic band eps = k^2 / (2 m*) (hbar = 1) exchange
energy with dispersionless optical phonons of energy omega0 held at
temperature T (a bath).  With a constant coupling g, the golden-rule rates
are (the 2D density of states is constant, so they do not depend on eps
except for the emission threshold)

    emission    eps -> eps - omega0 :  g (n_B + 1)   if eps >= omega0, else 0
    absorption  eps -> eps + omega0 :  g n_B

with the Bose factor n_B = 1 / (exp(omega0 / T) - 1), and the final
momentum direction uniform (k-independent matrix element).  The ratio of
the rates n_B / (n_B + 1) = exp(-omega0 / T) is detailed balance: a packet
started at eps_0 = r + j0 omega0 (0 <= r < omega0) walks on the ladder
eps_j = r + j omega0, j >= 0, and relaxes to the Boltzmann distribution
P_j = (1 - x) x^j, x = exp(-omega0 / T), whose mean energy is
r + omega0 n_B.  The time dependence is that of a birth-death chain with
constant up rate g n_B and down rate g (n_B + 1) (j >= 1), solved exactly in
:func:`ladder_mean_energy` and compared with the simulation.

The channel is two plain ``@numba.njit`` functions (no signatures, kernel
rules of docs/architecture.md: no allocation, no exceptions) handed to
:class:`scattering.UserChannel`; the library inlines them into its event
kernel and does the null-collision acceptance with the given majorant.

Run ``python examples/phonon_channel.py`` (about a minute, most of it
compilation).
"""
import math

import numba
import numpy as np


@numba.njit
def _phonon_rates(k, p):
    """(band energy k^2/2m*, emission rate g(n_B + 1) if a phonon can be emitted else 0, absorption rate g n_B)."""
    m, w0, g, temp = p[0], p[1], p[2], p[3]
    nb = 1.0 / (math.exp(w0 / temp) - 1.0)
    e = 0.0
    for a in range(k.shape[0]):
        e += k[a] * k[a]
    e = e / (2.0 * m)
    em = g * (nb + 1.0) if e >= w0 else 0.0
    return e, em, g * nb


@numba.njit
def phonon_rate(t, x, k, chi, band, p):
    """Total phonon scattering rate (1/time) of a packet; p = [m*, omega0, g, T]."""
    _e, em, ab = _phonon_rates(k, p)
    return em + ab


@numba.njit
def phonon_apply(t, x, k, chi, band, p, u1, u2, u3, u4):
    """Emit (probability g(n_B+1)/rate) or absorb a phonon; new direction uniform.

    Changes k in place; the single band's state chi stays (1,).  Returns the
    band index (unchanged).
    """
    m, w0 = p[0], p[1]
    e, em, ab = _phonon_rates(k, p)
    if u1 * (em + ab) < em:
        e = e - w0
    else:
        e = e + w0
    kn = math.sqrt(2.0 * m * max(e, 0.0))
    phi = 2.0 * math.pi * u2
    k[0] = kn * math.cos(phi)
    k[1] = kn * math.sin(phi)
    return band


def bose(omega0, temperature):
    """Bose occupation n_B = 1 / (exp(omega0 / T) - 1)."""
    return 1.0 / (math.exp(omega0 / temperature) - 1.0)   # same expression as the kernels


def phonon_channel(mstar=1.0, omega0=0.5, coupling=0.2, temperature=0.5):
    """The :class:`scattering.UserChannel` of this example (majorant g (2 n_B + 1))."""
    from scattering import UserChannel

    nb = bose(omega0, temperature)
    return UserChannel(phonon_rate, phonon_apply, majorant=coupling * (2.0 * nb + 1.0),
                       params=[mstar, omega0, coupling, temperature], name="phonon")


def ladder_mean_energy(eps0, times, omega0=0.5, coupling=0.2, temperature=0.5, jmax=None):
    """Exact mean energy <eps>(t) of the phonon ladder (birth-death master equation).

    dP_j/dt = g n_B P_{j-1} + g (n_B+1) P_{j+1} - [g n_B + g (n_B+1) 1_{j>=1}] P_j,
    solved with a matrix exponential on a ladder truncated at ``jmax`` rungs
    (default: far beyond where the Boltzmann tail and the initial rung
    matter).  Returns (mean energies at ``times``, equilibrium mean energy
    r + omega0 n_B).
    """
    from scipy.linalg import expm

    nb = bose(omega0, temperature)
    j0 = int(math.floor(eps0 / omega0 + 1e-12))
    r = eps0 - j0 * omega0
    if jmax is None:
        jmax = j0 + 60
    up, down = coupling * nb, coupling * (nb + 1.0)
    Q = np.zeros((jmax, jmax))
    for j in range(jmax):
        if j + 1 < jmax:
            Q[j + 1, j] += up
            Q[j, j] -= up
        if j >= 1:
            Q[j - 1, j] += down
            Q[j, j] -= down
    p0 = np.zeros(jmax)
    p0[j0] = 1.0
    levels = r + omega0 * np.arange(jmax)
    out = np.array([levels @ (expm(Q * t) @ p0) for t in np.atleast_1d(times)])
    return out, r + omega0 * nb


def main(n=4000, t_end=40.0, record_every=4.0, eps0=2.25, mstar=1.0, omega0=0.5, coupling=0.2,
         temperature=0.5, disorder=0.05, corr_length=0.5, seed=7, verbose=True):
    """Run n packets started at energy eps0 and print <eps>(t) against the exact ladder solution.

    The packets also scatter elastically off Gaussian-correlated disorder of
    strength ``disorder`` (W, energy^2 length^2) and correlation length
    ``corr_length``: that randomises directions but, since the phonon rates
    depend on the energy only, leaves <eps>(t) exactly as without it.

    Returns ``(result, exact)`` with ``exact`` the exact mean energies at
    ``result.times`` (:func:`ladder_mean_energy`).
    """
    from observables import BandPopulation, Current, Energy
    from packets import Ensemble, Simulation, models
    from scattering import ElasticScattering, GaussianDisorder

    model = models.Parabolic(effective_mass=mstar, dim=2)
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    k0 = math.sqrt(2.0 * mstar * eps0)
    k = np.stack([k0 * np.cos(phi), k0 * np.sin(phi)], axis=1)
    ens = Ensemble.from_arrays(model, np.zeros((n, 2)), k, band=0, seed=seed)   # weights 1/n
    # proposal weight of the Born sampler for a parabolic band: R^(q) m* <= W m*
    elastic = ElasticScattering(GaussianDisorder(disorder, corr_length), majorant=1.001 * disorder * mstar)
    sim = Simulation(model, ens, dynamics="adiabatic",
                     channels=[elastic, phonon_channel(mstar, omega0, coupling, temperature)],
                     observables=[Current(), BandPopulation(), Energy()], dt=0.5, progress=False)
    res = sim.run(t_end=t_end, record_every=record_every)
    exact, eq = ladder_mean_energy(eps0, res.times, omega0, coupling, temperature)
    if verbose:
        print(f"optical phonons: omega0 = {omega0}, T = {temperature}, n_B = {bose(omega0, temperature):.4f}, "
              f"g = {coupling}; {n} packets from eps = {eps0}")
        print(f"{'t':>7} {'<eps> MC':>18} {'exact':>9}")
        e = res["energy"]
        for t, m_, s_, x_ in zip(res.times, e.mean[:, 0], e.stderr[:, 0], exact):
            print(f"{t:7.2f} {m_:10.4f} +- {s_:5.4f} {x_:9.4f}")
        ev = res["events"]
        tot = ev.mean.sum(axis=0)
        print(f"equilibrium <eps> = r + omega0 n_B = {eq:.4f}")
        print("events: " + ", ".join(f"{lab} {int(c)}" for lab, c in zip(ev.labels, tot))
              + f"; status {res.status_counts}")
    return res, exact


if __name__ == "__main__":
    main()
