"""Host-side validation helpers shared by the model constructors.

Every model constructor turns its arguments into floats through these helpers
so that a wrong or missing parameter gives a ``ValueError`` that names the
parameter and says what to change (docs/architecture.md: host code raises
clear errors; kernels never do).
"""
import math

import numpy as np
from numba.core.dispatcher import Dispatcher


def real(name, value, *, positive=False, nonneg=False, nonzero=False):
    """Return ``value`` as a finite Python float or raise a ValueError naming ``name``."""
    if value is None:
        raise ValueError(f"parameter {name!r} is missing (got None); give a finite number")
    if isinstance(value, (complex, np.complexfloating)):
        raise ValueError(f"parameter {name!r} must be real, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"parameter {name!r} is {v}; give a finite number")
    if positive and not v > 0.0:
        raise ValueError(f"parameter {name!r} must be positive, got {v:g}")
    if nonneg and v < 0.0:
        raise ValueError(f"parameter {name!r} must be >= 0, got {v:g}")
    if nonzero and v == 0.0:
        raise ValueError(f"parameter {name!r} must be nonzero")
    return v


def sign(name, value):
    """Return +1 or -1 (as float) or raise a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or value not in (1, -1):
        raise ValueError(f"parameter {name!r} must be +1 or -1, got {value!r}")
    return float(value)


def vector(name, value, n):
    """Return ``value`` as a finite float64 array of length ``n``."""
    try:
        a = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} must be a sequence of {n} real numbers, got {value!r}") from None
    if a.size != n:
        raise ValueError(f"parameter {name!r} must have {n} components, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"parameter {name!r} has NaN or infinite components: {a.tolist()}")
    return a


def njit_function(name, f):
    """Check that ``f`` is a plain ``@numba.njit`` dispatcher usable in kernels.

    Kernels are built by factories that close over model functions, so only
    numba CPU dispatchers without an explicit signature can be inlined and
    compiled as CUDA device functions (with a signature numba-cuda refuses:
    "using cpu function on device but its compilation is disabled").
    """
    if not isinstance(f, Dispatcher):
        raise ValueError(f"{name} must be a function decorated with @numba.njit (got {type(f).__name__}); "
                         "decorate it with @numba.njit so it can be inlined into the kernels")
    if not getattr(f, "_can_compile", True):
        raise ValueError(f"{name} was compiled with an explicit signature; use plain @numba.njit without a "
                         "signature so numba-cuda can compile it as a device function")
    return f


__all__ = ["real", "sign", "vector", "njit_function"]
