"""Band models: the Hamiltonians every packet moves on.

See :mod:`packets.models.base` for the filler-function contract shared by all
models and ``docs/models.md`` for the Hamiltonians, units and conventions.

Built-in models: :class:`MassiveDirac` (valley, tilt), :class:`QWZ`,
:class:`Haldane`, :class:`Parabolic`, :class:`Chain`, :class:`Weyl`,
:class:`TexturedDirac` (position-dependent mass), :class:`BHZ` (four bands,
active pair plus remote bands), the generic :class:`TightBinding` and
:class:`UserModel` (the user's own njit filler).
"""
from .base import BandModel, Lattice
from .chain import Chain
from .dirac import MassiveDirac
from .haldane import Haldane
from .multiband import BHZ
from .parabolic import Parabolic
from .qwz import QWZ
from .textured import TexturedDirac
from .tightbinding import TightBinding
from .user import UserModel
from .weyl import Weyl

__all__ = ["BandModel", "Lattice", "MassiveDirac", "QWZ", "Haldane", "Parabolic", "Chain", "Weyl",
           "TexturedDirac", "BHZ", "TightBinding", "UserModel"]
