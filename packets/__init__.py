"""packets: Monte Carlo of semiclassical electron wave packets in crystals.

Modules
-------
models      band Hamiltonians H(x, k) and their kernel fillers
geometry    energies, Bloch states, Berry connection/curvature, quantum
            metric, orbital moment, Berry connection polarizability, Chern numbers
bandgeom    the same geometry as kernel-callable per-point functions
state       the packet state: one schema (COMPONENTS) and PacketState
ensemble    the initial packet ensemble and its samplers
field       uniform E(t), B and a scalar potential U(x)
eom         per-packet equations of motion and integrators (coherent, adiabatic)
packet      one packet over one record interval: steps plus stochastic events
simulation  Simulation: composes everything and runs it on a backend
spec        Spec: a simulation apart from its packet state (checkpoints, tasks)
result      Result: time series with batch-means error bars, conductivity
rng         counter-based Philox4x32-10 random numbers (same on CPU and GPU)
linalg      kernel-callable small Hermitian eigensolvers
units       code units (hbar = e = 1, carrier charge -1) and SI conversions

Conventions (docs/conventions.md): e > 0, carrier charge q = -e; Berry connection
A = i<u|grad_k u>, Omega_z = -2 Im<d_kx u|d_ky u>; sigma_xy = dj_x/dE_y.

``import packets`` never imports CUDA; the GPU backend is loaded lazily.
"""
from . import bandgeom, geometry, linalg, models, rng, units
from .ensemble import Ensemble
from .field import Field
from .result import Result
from .simulation import Simulation
from .status import FlaggedPacketsError, FlaggedPacketsWarning

__version__ = "0.1.0"

__all__ = ["Ensemble", "Field", "Simulation", "Result", "FlaggedPacketsWarning", "FlaggedPacketsError", "bandgeom",
           "geometry", "linalg", "models", "rng", "units", "__version__"]
