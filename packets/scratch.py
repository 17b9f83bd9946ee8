"""Per-packet scratch layouts and their allocators, generated for each target.

The scratch tuple ``S`` passed to the steppers (:mod:`packets.eom`) and the
measurement context ``C`` (:mod:`packets.context`) have a fixed layout, listed
once here.  :func:`make_allocator` turns a layout into an ``@njit`` function
returning the tuple: ``np.empty`` on the CPU, ``cuda.local.array`` (registers
or local memory) inside a CUDA kernel.  Keeping one list is what lets both
drivers call the same per-packet physics.
"""
import numba
import numpy as np


def scratch_layout(dim, nb):
    """Layout of the stepper scratch tuple S: list of (name, shape, dtype)."""
    nxi = 2 * dim
    c = np.complex128
    f = np.float64
    return [
        ("xs", (dim,), f), ("ks", (dim,), f), ("K", (4, 2, dim), f), ("H1", (nb, nb), c),
        ("comb", (nb, nb), c), ("chia", (nb,), c), ("chib", (nb,), c), ("w", (nb,), f), ("v", (nb, nb), c),
        ("work", (nb, nb), c), ("tmp", (nb,), c), ("dk", (dim, nb, nb), c), ("dx", (dim, nb, nb), c),
        ("ev", (dim,), f), ("g", (dim,), f), ("M", (nxi, nb, nb), c), ("om", (nxi, nxi), f), ("rhs", (nxi,), f),
        ("x1", (dim,), f), ("k1", (dim,), f), ("c1", (nb,), c), ("x2", (dim,), f), ("k2", (dim,), f),
        ("c2", (nb,), c), ("H2", (nb, nb), c), ("H3", (nb, nb), c), ("H4", (nb, nb), c),
        # event-channel scratch (scattering, dephasing, relaxation)
        ("ew", (nb,), f), ("evec", (nb, nb), c), ("ek", (dim,), f), ("ebrk", (64,), np.int64),
        ("edh", (dim, nb, nb), c), ("ec", (nb,), c),
        # displacement by events (side jumps) during the current record interval
        ("jx", (dim,), f),
    ]


def context_layout(dim, nb):
    """Layout of the measurement context C (see :mod:`packets.context`)."""
    return [("xd", (dim,), np.float64), ("kd", (dim,), np.float64), ("vb", (dim,), np.float64),
            ("cb", (nb,), np.complex128), ("w", (nb,), np.float64), ("en", (1,), np.float64),
            ("xj", (dim,), np.float64)]


def make_allocator(layout, target="cpu"):
    """Generate an ``@njit`` (CPU) or device (CUDA) function returning the scratch tuple.

    The source is generated because numba cannot build a heterogeneous tuple
    in a loop; the shapes become compile-time constants.
    """
    lines = ["def alloc():"]
    names = []
    for i, (name, shape, dtype) in enumerate(layout):
        dt = {np.dtype(np.complex128): "np.complex128", np.dtype(np.float64): "np.float64",
              np.dtype(np.int64): "np.int64"}[np.dtype(dtype)]
        if target == "cpu":
            lines.append(f"    a{i} = np.empty({tuple(shape)!r}, dtype={dt})")
        elif target == "cuda":
            lines.append(f"    a{i} = cuda.local.array({tuple(shape)!r}, {dt})")
        else:
            raise ValueError(f"unknown target {target!r}")
        names.append(f"a{i}")
    lines.append(f"    return ({', '.join(names)},)")
    ns = {"np": np}
    if target == "cuda":
        from numba import cuda
        ns["cuda"] = cuda
    exec("\n".join(lines), ns)
    fn = ns["alloc"]
    if target == "cpu":
        return numba.njit(error_model="numpy")(fn)
    from numba import cuda
    return cuda.jit(device=True)(fn)
