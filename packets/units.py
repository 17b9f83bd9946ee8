"""Code units and conversions (docs/conventions.md).

Code units: hbar = 1, e = 1 (e > 0 is the elementary charge), carrier charge
q = -1.  Energies and lengths are in the model's own units (E0, L0); time is
then hbar/E0, electric field E0/(e L0), magnetic field hbar/(e L0^2).

Conductivity in code units is in e^2/hbar; a 2D Chern number C gives
|sigma_xy| = C e^2/h = C/(2 pi) e^2/hbar.  Use :func:`to_e2_over_h` to express
a code-unit conductivity in e^2/h and :func:`to_siemens` in SI.

The module checks its constants against each other when imported.
"""
import math

#: Carrier charge in units of e (electrons).
Q = -1.0
#: Reduced Planck constant in code units.
HBAR = 1.0
#: Elementary charge in code units.
E_CHARGE = 1.0

# CODATA 2018 exact SI values
E_SI = 1.602176634e-19  # C (exact)
H_SI = 6.62607015e-34  # J s (exact)
HBAR_SI = H_SI / (2.0 * math.pi)  # J s
#: Conductance quantum e^2/h in siemens.
E2_OVER_H_SI = E_SI ** 2 / H_SI
#: e^2/hbar in siemens.
E2_OVER_HBAR_SI = E_SI ** 2 / HBAR_SI


def to_e2_over_h(sigma):
    """Convert a conductivity from code units (e^2/hbar) to e^2/h (multiply by 2 pi)."""
    return sigma * 2.0 * math.pi


def from_e2_over_h(sigma):
    """Convert a conductivity in e^2/h to code units (e^2/hbar)."""
    return sigma / (2.0 * math.pi)


def to_siemens(sigma, dim=2, length_m=1.0):
    """Convert a code-unit conductivity to SI.

    Parameters
    ----------
    sigma : float or array
        Conductivity in e^2/hbar / L0^(dim-2) (code units).
    dim : int
        Dimension: 2D sheet conductivity is in S, 3D in S/m, 1D in S m.
    length_m : float
        The model length unit L0 in metres.
    """
    return sigma * E2_OVER_HBAR_SI * length_m ** (2 - dim)


def energy_to_joule(e, energy_unit_ev=1.0):
    """Convert an energy in model units (E0 = ``energy_unit_ev`` eV) to joule."""
    return e * energy_unit_ev * E_SI


def time_to_seconds(t, energy_unit_ev=1.0):
    """Convert a time in code units (hbar/E0) to seconds."""
    return t * HBAR_SI / (energy_unit_ev * E_SI)


def _self_check():
    """Cross-check the constants; raises RuntimeError (not assert: survives -O)."""
    checks = [
        (abs(HBAR_SI - 1.054571817e-34) / 1.054571817e-34 < 1e-9, "hbar differs from CODATA 1.054571817e-34 J s"),
        (abs(E2_OVER_HBAR_SI / E2_OVER_H_SI - 2 * math.pi) < 1e-12, "e^2/hbar != 2 pi e^2/h"),
        (abs(to_e2_over_h(from_e2_over_h(0.37)) - 0.37) < 1e-15, "e^2/h conversion is not invertible"),
        (abs(E2_OVER_H_SI - 3.874045865e-5) / 3.874045865e-5 < 1e-8, "e^2/h differs from 3.874045865e-5 S"),
        (abs(time_to_seconds(1.0) - 6.582119569e-16) / 6.582119569e-16 < 1e-8, "hbar/eV differs from 6.582119569e-16 s"),
        (Q == -E_CHARGE, "carrier charge must be -e"),
    ]
    for ok, what in checks:
        if not ok:
            raise RuntimeError(f"packets.units self-check failed: {what}")


_self_check()
