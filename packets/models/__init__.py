"""Band models: the Hamiltonians every packet moves on.

See :mod:`packets.models.base` for the filler-function contract shared by all
models and ``docs/models.md`` for the Hamiltonians, units and conventions.
"""
from .base import BandModel, Lattice
from .dirac import MassiveDirac
from .qwz import QWZ

__all__ = ["BandModel", "Lattice", "MassiveDirac", "QWZ"]
