"""The specification of a simulation: everything but its packet state.

A :class:`Spec` is what :class:`packets.Simulation` was built from apart from
the ensemble: the model, the field, the dynamics and integrator, the channels
and observables, the time step, the backend, the batching and the seed.  It is
frozen and hashable, and it is the one description that

* a checkpoint stores (:meth:`packets.Simulation.checkpoint`),
* a distributed task carries, with its slice of the
  :class:`packets.state.PacketState` (:mod:`packets.distributed`),
* :meth:`packets.Simulation.from_state` rebuilds a Simulation from, and
* the kernel variant is projected from: :meth:`packets.variant.Variant.of`
  keeps what the compiled code depends on (the model's fillers, the field's
  terms, the dynamics, the integrator, the manifold, the backend and the
  plug-ins' kernel keys) and drops every value that reaches the kernels at run
  time (parameters, dt, seed, batching).  That projection is the kernel-cache key.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Spec:
    """Frozen description of a simulation apart from its packet state (the constructor's arguments).

    Attributes
    ----------
    model : packets.models.BandModel
    field : packets.Field
    dynamics : {"coherent", "adiabatic"}
    channels : tuple
        Event channels, in order.
    observables : tuple
        Observables, in order.
    dt : float
        Time step (hbar/E0); the initial step of the adaptive integrator.
    integrator : {"rk4", "adaptive"}
    tol : float
        Local error tolerance of the adaptive integrator.
    backend : {"cpu", "cuda"}
        The resolved backend.
    nbatch : int
        Independent batches for the error bars.
    shard : int
        Packets per work item (fixes the summation tree).
    orbital_moment : bool
    seed : int
        The resolved seed of the event streams.
    manifold : (int, int) or None
        Active manifold of coherent dynamics.
    """
    model: Any
    field: Any
    dynamics: str
    channels: tuple
    observables: tuple
    dt: float
    integrator: str
    tol: float
    backend: str
    nbatch: int
    shard: int
    orbital_moment: bool
    seed: int
    manifold: Optional[tuple] = None

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "observables", tuple(self.observables))
        if self.manifold is not None:
            object.__setattr__(self, "manifold", tuple(int(b) for b in self.manifold))

    @classmethod
    def coerce(cls, config):
        """A Spec from a Spec or from the configuration dict of earlier checkpoints (same keys)."""
        if isinstance(config, cls):
            return config
        cfg = dict(config)
        cfg.setdefault("manifold", None)  # checkpoints from before manifold dynamics
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in cfg]
        if missing:
            raise ValueError(f"the simulation configuration lacks {missing}")
        return cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls)})

    def replace(self, **changes):
        """A copy with some entries changed (e.g. ``backend="cpu"`` for a distributed task)."""
        return dataclasses.replace(self, **changes)

    def constructor_kwargs(self):
        """The keyword arguments of :class:`packets.Simulation` besides model, ensemble and field."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("model", "field")}
