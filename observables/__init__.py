"""Observables: ensemble tallies with batch-means error bars.

Each observable is a small object following the protocol used by
:class:`packets.Simulation` (duck typing; ``packets`` never imports this
package):

``name``
    key under which the result stores it;
``build(ctx)``
    ``ctx`` is the simulation's :class:`packets.plugins.BuildContext`
    (``ctx.model``, ``ctx.dynamics``, ...); returns ``(ncomp, labels, shape, kernel)`` where ``kernel`` is an
    ``@njit`` function ``kernel(weight, n, x, k, C, out)`` that *adds* this
    packet's contribution (already multiplied by its weight) to ``out[0:ncomp]``.
    ``C`` is the measurement context of :mod:`packets.context`
    (velocity, band velocity, band amplitudes, energies), its entries reached
    by the names of :mod:`packets.scratch` (``C[scratch.C_XDOT]``, ...).  ``shape`` is the
    shape the components are reshaped to in the result.

Sums over packets are densities (the ensemble weights are densities per unit
area/volume, see :class:`packets.ensemble.Ensemble`), so e.g. ``Current``
is the current density j = q sum_i w_i dx_i/dt in e E0 / (hbar L0^(d-1))
code units, and ``Density`` is n(x) per unit area/volume.
"""
from .basic import BandPopulation, Current, Density, DensityMatrix, Energy

__all__ = ["Current", "Density", "BandPopulation", "DensityMatrix", "Energy"]
