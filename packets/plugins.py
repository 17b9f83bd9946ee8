"""What channels and observables are built from, and how their compiled kernels are keyed.

A channel (``build(ctx) -> {"apply", "params", "majorant"}``, see
:mod:`packets.packet`) and an observable (``build(ctx) -> (ncomp, labels,
shape, kernel)``, see the ``observables`` package) both receive the same
:class:`BuildContext`: the compiled variant (model, field, dynamics, active
manifold, orbital moment) and read-only views of the initial packet states,
which channels use to check user functions and estimate majorants.  They do
not see the Simulation itself, so a plug-in cannot depend on anything a
rebuilt Simulation (:meth:`packets.Simulation.from_state`) would not have.
"""
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import compile_cache


@dataclass(frozen=True)
class BuildContext:
    """The narrow view a plug-in's ``build`` gets.

    Attributes
    ----------
    model : packets.models.BandModel
    field : packets.Field
    dynamics : {"coherent", "adiabatic"}
    manifold : (int, int) or None
        Active manifold of coherent dynamics (bands lo..hi-1), None for all bands.
    orbital_moment : bool
        Adiabatic dynamics with B includes the orbital-moment energy.
    x, k, chi, band, status : numpy.ndarray or None
        The initial packet states (None when built without an ensemble): the
        simulation's own arrays, to read, never to modify.  They are not
        made read-only because numba compiles a separate specialisation of a
        user function for read-only arrays, which a check would then pay for.
    """

    model: Any
    field: Any
    dynamics: str
    manifold: Optional[tuple] = None
    orbital_moment: bool = True
    x: Optional[np.ndarray] = None
    k: Optional[np.ndarray] = None
    chi: Optional[np.ndarray] = None
    band: Optional[np.ndarray] = None
    status: Optional[np.ndarray] = None


def plugin_key(plugin, kernel):
    """In-process kernel-cache key of a channel or observable.

    Its ``cache_key()`` when it has one; else the content digest of the kernel it built
    (:func:`packets.compile_cache.content_digest`: equal only for the same code and closure values);
    else the kernel object itself, which the cache then keeps alive.  Never ``id()``: an id is reused
    after garbage collection, and a new plug-in would silently get another one's compiled kernel.
    """
    key = getattr(plugin, "cache_key", None)
    if callable(key):
        return key()
    try:
        return ("content", compile_cache.content_digest(kernel))
    except compile_cache.Uncacheable:
        return ("kernel", kernel)


def describe(plugin):
    """JSON-ready description of a channel or observable for result files and merge checks.

    The plug-in's own ``describe()`` when it has one; else its class and its
    public attributes (numbers, strings, arrays as lists, objects with a
    ``describe()`` such as a disorder model, functions by qualified name).
    """
    own = getattr(plugin, "describe", None)
    if callable(own):
        return own()
    params = {name: _describe_value(v) for name, v in sorted(getattr(plugin, "__dict__", {}).items())
              if not name.startswith("_")}
    return {"class": f"{type(plugin).__module__}.{type(plugin).__qualname__}", "params": params}


def _describe_value(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_describe_value(e) for e in v]
    if isinstance(v, dict):
        return {str(k): _describe_value(e) for k, e in v.items()}
    own = getattr(v, "describe", None)
    if callable(own):
        return own()
    py = getattr(v, "py_func", v)
    if callable(py):
        return {"function": f"{getattr(py, '__module__', None)}.{getattr(py, '__qualname__', type(py).__name__)}"}
    return {"object": f"{type(v).__module__}.{type(v).__qualname__}"}
