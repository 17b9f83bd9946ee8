"""The compiled variant of a simulation: what its kernels are specialised to.

Two simulations with equal :class:`Variant` run the same machine code; they
may differ in every parameter *value* (model parameters, E, U, B, dt, channel
rates, seeds), which reach the kernels at run time through ``P``
(:mod:`packets.scratch`).  The variant is the key of the in-process kernel
cache of :class:`packets.Simulation`; the on-disk cache
(:mod:`packets.compile_cache`) keys the same kernels by content.
"""
from dataclasses import dataclass
from typing import Optional

from . import scratch


def model_key(model):
    """What compiled code depends on in a band model: its fillers and shape (h, dhdk, dhdx, textured, dim, nbands).

    The functions themselves are held, never their ``id()``: a key keeps them alive, so it
    cannot come to name another function after garbage collection.
    """
    return (model.h, model.dhdk, model.dhdx, model.textured, model.dim, model.nbands)


def field_key(field):
    """What compiled code depends on in a field: (efield, potential, has_B, has_potential)."""
    return (field.efield, field.potential, field.has_B, field.has_potential)


@dataclass(frozen=True)
class Variant:
    """Frozen, hashable description of one compiled kernel variant.

    Attributes
    ----------
    backend : {"cpu", "cuda"}
    dynamics : {"coherent", "adiabatic"}
    integrator : {"rk4", "adaptive"}
    manifold : (int, int) or None
        Active manifold of coherent dynamics.
    orbital_moment : bool
    model : tuple
        The model's fillers and shape: (h, dhdk, dhdx, textured, dim, nbands).
    field : tuple
        The field's functions and which terms exist: (efield, potential, has_B, has_potential).
    observables : tuple
        Per observable: (kernel key, components, shape); keys from :func:`packets.plugins.plugin_key`.
    channels : tuple
        Per channel: (kernel key, number of parameters).
    """

    backend: str
    dynamics: str
    integrator: str
    manifold: Optional[tuple]
    orbital_moment: bool
    model: tuple
    field: tuple
    observables: tuple = ()
    channels: tuple = ()

    @classmethod
    def of(cls, spec, observables=(), channels=()):
        """The compiled projection of a :class:`packets.spec.Spec`, given its plug-ins' kernel keys.

        ``observables``: per observable ``(kernel key, components, shape)``; ``channels``: per
        channel ``(kernel key, number of parameters)`` (keys from :func:`packets.plugins.plugin_key`).
        """
        model, field = spec.model, spec.field
        return cls(backend=spec.backend, dynamics=spec.dynamics, integrator=spec.integrator,
                   manifold=None if spec.manifold is None else tuple(spec.manifold),
                   orbital_moment=bool(spec.orbital_moment),
                   model=model_key(model), field=field_key(field),
                   observables=tuple(observables), channels=tuple(channels))

    @property
    def nchannels(self):
        return len(self.channels)

    def channel_offsets(self):
        """Offset of each channel's parameters in ``P[P_CHANNELS]``."""
        offs, off = [], 0
        for _key, n in self.channels:
            offs.append(off)
            off += n
        return offs

    def scratch_groups(self):
        """The scratch groups its kernels use (:func:`packets.scratch.scratch_groups`)."""
        return scratch.scratch_groups(adaptive=self.integrator == "adaptive", manifold=self.manifold is not None,
                                      events=self.nchannels > 0)
