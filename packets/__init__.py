"""packets: Monte Carlo of semiclassical electron wave packets in crystals.

Subpackages and modules
-----------------------
models      band Hamiltonians H(x, k) and their kernel fillers
geometry    energies, Bloch states, Berry connection/curvature, quantum
            metric, orbital moment, Berry connection polarizability, Chern numbers
linalg      kernel-callable small Hermitian eigensolvers
units       code units (hbar = e = 1, carrier charge -1) and SI conversions

Conventions (REFERENCES §0): e > 0, carrier charge q = -e; Berry connection
A = i<u|grad_k u>, Omega_z = -2 Im<d_kx u|d_ky u>; sigma_xy = dj_x/dE_y.

``import packets`` never imports CUDA; the GPU backend is loaded lazily.
"""
from . import linalg, models, units

__version__ = "0.1.0"

__all__ = ["linalg", "models", "units", "__version__"]
