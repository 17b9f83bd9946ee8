"""Deterministic kinetic-equation references for the Monte Carlo.

Conventions: hbar = e = 1, carrier charge q = -1, Berry curvature
Omega_z = -2 Im<d_kx u|d_ky u>, sigma_xy = dj_x/dE_y (REFERENCES §0).

Implemented
-----------
:mod:`kinetic.closed_form`
    Closed-form references: massive-Dirac band geometry (Berry curvature,
    orbital moment, intrinsic Hall conductivity at T = 0 and finite T,
    density), Born and transport rates for white-noise disorder (Dirac and
    parabolic bands), Drude and Dirac Boltzmann conductivities, the
    Landau-Zener probability, Bloch and cyclotron periods, QWZ Chern number
    and Hall conductivity, eigenbasis Lindblad dephasing, and the
    Berry-curvature-dipole (Sodemann-Fu) nonlinear Hall response of a
    tilted massive Dirac valley.
:mod:`kinetic.master_equation`
    Single-k pseudospin master equation: Lindblad evolution (exact
    Liouvillian exponential or DOP853, dephasing projectors, general jump
    operators, time-dependent H) and the two-level Bloch equations.

Still to come
-------------
Linearised and time-dependent Boltzmann solvers, the non-adiabatic steady
state of seed 001, coherence-matrix radiative transport (seed 002) and the
MC-vs-kinetic comparison tool.
"""
from .closed_form import (
    berry_dipole_nonlinear_hall_current,
    bloch_period,
    cyclotron_period,
    dirac_berry_curvature,
    dirac_born_rate,
    dirac_density,
    dirac_drude_conductivity,
    dirac_energy,
    dirac_intrinsic_hall,
    dirac_orbital_moment,
    dirac_transport_rate,
    drude_conductivity,
    landau_zener_probability,
    lindblad_dephasing_coherence,
    nonlinear_hall_chi,
    parabolic_born_rate,
    qwz_chern,
    qwz_hall,
    tilted_dirac_berry_curvature_dipole,
)
from .master_equation import (
    bloch_equations,
    bloch_vector,
    density_from_bloch,
    lindblad_evolve,
    liouvillian,
)

__all__ = [
    "berry_dipole_nonlinear_hall_current",
    "bloch_period",
    "cyclotron_period",
    "dirac_berry_curvature",
    "dirac_born_rate",
    "dirac_density",
    "dirac_drude_conductivity",
    "dirac_energy",
    "dirac_intrinsic_hall",
    "dirac_orbital_moment",
    "dirac_transport_rate",
    "drude_conductivity",
    "landau_zener_probability",
    "lindblad_dephasing_coherence",
    "nonlinear_hall_chi",
    "parabolic_born_rate",
    "qwz_chern",
    "qwz_hall",
    "tilted_dirac_berry_curvature_dipole",
    "bloch_equations",
    "bloch_vector",
    "density_from_bloch",
    "lindblad_evolve",
    "liouvillian",
]
