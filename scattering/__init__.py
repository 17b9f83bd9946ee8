"""scattering: stochastic events of the wave-packet Monte Carlo.

Disorder models (correlation spectra R^(q) of a static random potential,
Qi, Wang & Watson, Eq. 4.2) and the Born scattering machinery (transition rate
W = 2 pi R^(k - k') |<u_m(k')|u_n(k)>|^2 delta(eps_n(k) - eps_m(k')),
Qi, Wang & Watson, Eqs. 4.14-4.15; docs/conventions.md):

disorder    WhiteNoiseDisorder, GaussianDisorder, ScreenedCoulombDisorder,
            UserDisorder; each with a kernel-callable ``spectrum(q, p)``
born        deterministic references (born_rate, transport_rate,
            angular_distribution, majorant) and the kernel-callable,
            unbiased null-collision sampler (make_born_sampler), plus
            sample_many to draw proposals from the host

sidejump    the gauge-invariant coordinate shift (Sinitsyn, Niu & MacDonald 2006)
channels    the event channels for packets.Simulation: ElasticScattering
            (with side jump and the coherent-scattering rule), Dephasing into
            the hybridised bands, Relaxation to equilibrium, UserChannel

Conventions: hbar = e = 1; int [dk] = int d^dk / (2 pi)^d; rates in energy
units.
"""
from . import born, channels, disorder, sidejump
from .channels import Dephasing, ElasticScattering, Relaxation, UserChannel
from .sidejump import coordinate_shift, side_jump
from .born import (EVENT_MAJORANT_VIOLATED, EVENT_NULL, EVENT_REAL, BornSamples, angular_distribution, born_rate,
                   majorant, make_born_sampler, overlap, overlap_column, ray_geometry, sample_many, shell_points,
                   transport_rate)
from .disorder import (Disorder, GaussianDisorder, ScreenedCoulombDisorder, UserDisorder, WhiteNoiseDisorder,
                       evaluate_spectrum)

__all__ = ["born", "disorder", "channels", "sidejump", "ElasticScattering", "Dephasing", "Relaxation",
           "UserChannel", "coordinate_shift", "side_jump", "Disorder", "WhiteNoiseDisorder", "GaussianDisorder", "ScreenedCoulombDisorder",
           "UserDisorder", "evaluate_spectrum", "born_rate", "transport_rate", "angular_distribution", "majorant",
           "make_born_sampler", "sample_many", "BornSamples", "ray_geometry", "shell_points", "overlap",
           "overlap_column", "EVENT_NULL", "EVENT_REAL", "EVENT_MAJORANT_VIOLATED"]
