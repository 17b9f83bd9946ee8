"""Deterministic kinetic-equation references for the Monte Carlo.

Conventions: hbar = e = 1, carrier charge q = -1, Berry curvature
Omega_z = -2 Im<d_kx u|d_ky u>, sigma_xy = dj_x/dE_y (docs/conventions.md).

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

Solvers
-------
:mod:`kinetic.boltzmann`
    Linearised Boltzmann equation with the full Born kernel on the Fermi
    contour (Drude, intrinsic, side-jump, anomalous-distribution
    conductivities; relaxation-time mode) and the time-dependent
    homogeneous Boltzmann equation (all orders in E).
:mod:`kinetic.nonadiabatic`
    Non-adiabatic steady state of Tu, Li & Yao (Eqs. 54-63).
:mod:`kinetic.coherence`
    Coherence-matrix radiative transport of Qi, Wang & Watson (Eqs. 4.14-4.16).
:mod:`kinetic.compare`
    Monte Carlo versus kinetic tables of z-scores and figures.
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

from .boltzmann import (  # noqa: E402
    FermiContour,
    LinearResponse,
    TDResult,
    TimeDependentBoltzmann,
    born_kernel,
    fermi_contour,
    linear_response,
)
from .coherence import CoherenceEvolution, CoherenceTransport  # noqa: E402
from .compare import ComparisonRow, ComparisonTable, compare, mc_value  # noqa: E402
from .nonadiabatic import (  # noqa: E402
    NonadiabaticResult,
    adiabatic_current,
    hybridised_bands,
    k_grid,
    nonadiabatic_current,
)

__all__ += [
    "FermiContour",
    "LinearResponse",
    "TDResult",
    "TimeDependentBoltzmann",
    "born_kernel",
    "fermi_contour",
    "linear_response",
    "CoherenceEvolution",
    "CoherenceTransport",
    "ComparisonRow",
    "ComparisonTable",
    "compare",
    "mc_value",
    "NonadiabaticResult",
    "adiabatic_current",
    "hybridised_bands",
    "k_grid",
    "nonadiabatic_current",
]
