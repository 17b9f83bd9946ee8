"""The decorator for kernel-callable functions.

``@kernel`` is ``numba.njit`` with ``error_model="numpy"``: a floating-point
division by zero gives inf/NaN (caught by the per-packet status checks)
instead of raising.  That is what CUDA device code does anyway (kernel
rules, docs/architecture.md: no exceptions in kernels), and on the CPU it
removes the hidden zero-division branches that otherwise cost the two-band
step a factor of three.  ``@kernel(inline="always")`` additionally inlines at numba-IR level,
for small hot functions called many times per step.
"""
import numba


def kernel(fn=None, **options):
    """``numba.njit(error_model="numpy", **options)`` usable with or without arguments."""
    options.setdefault("error_model", "numpy")
    if fn is None:
        return numba.njit(**options)
    return numba.njit(**options)(fn)
