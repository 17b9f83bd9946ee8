"""Per-packet scratch layouts and their allocators, generated for each target.

The scratch tuple ``S`` passed to the steppers (:mod:`packets.eom`) and the
measurement context ``C`` (:mod:`packets.context`) have a fixed layout, listed
once here.  :func:`make_allocator` turns a layout into an ``@njit`` function
returning the tuple: ``np.empty`` on the CPU, ``cuda.local.array`` (registers
or local memory) inside a CUDA kernel.  Keeping one list is what lets both
drivers call the same per-packet physics.

The CPU lane driver (:mod:`packets.driver_cpu`) uses a third target,
``"cpu_stack"``: the arrays live on the stack of the calling function (an
LLVM ``alloca`` per array, see :func:`stack_array`) instead of the heap.
With every index a compile-time constant after loop unrolling, LLVM then
keeps the scratch entirely in registers (scalar replacement of aggregates)
and can vectorise a loop over packets that calls the step; heap scratch is
opaque memory shared by all iterations and blocks that.
"""
import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


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


_STACK_ARRAYS = {}


def stack_array(shape, dtype):
    """A CPU intrinsic ``f() -> array`` of fixed ``shape`` backed by stack memory of the caller.

    The array is an ``alloca`` in the entry block of the function the call
    is compiled into (C order, no meminfo: nothing to reference-count or
    free), so it must only be used inside that function — call it from a
    function that inlines it (``inline="always"``) or directly, never return
    the array.  Uninitialised, like ``np.empty``.  CPU only: CUDA code uses
    ``cuda.local.array`` (:func:`make_allocator` with ``target="cuda"``).
    """
    shape = tuple(int(s) for s in shape)
    key = (shape, np.dtype(dtype).str)
    if key in _STACK_ARRAYS:
        return _STACK_ARRAYS[key]
    nbty = numba.from_dtype(np.dtype(dtype))
    arrty = types.Array(nbty, len(shape), "C")
    size = max(int(np.prod(shape)), 1)

    @intrinsic
    def alloc(typingctx):
        def codegen(context, builder, sig, args):
            from numba.np.arrayobj import make_array, populate_array

            ll_elem = context.get_data_type(nbty)
            with builder.goto_entry_block():
                raw = builder.alloca(ir.ArrayType(ll_elem, size))
            itemsize = context.get_abi_sizeof(ll_elem)
            strides = []
            acc = itemsize
            for n in reversed(shape):
                strides.append(acc)
                acc *= n
            intp = context.get_value_type(types.intp)
            ary = make_array(arrty)(context, builder)
            populate_array(ary, data=builder.bitcast(raw, ll_elem.as_pointer()),
                           shape=[ir.Constant(intp, n) for n in shape],
                           strides=[ir.Constant(intp, n) for n in reversed(strides)],
                           itemsize=ir.Constant(intp, itemsize), meminfo=None)
            return ary._getvalue()

        return arrty(), codegen

    _STACK_ARRAYS[key] = alloc
    return alloc


@intrinsic
def borrow(typingctx, arr):
    """The array ``arr`` without its meminfo: a reference the callee does not count (CPU only).

    Passing arrays between compiled functions costs two atomic reference
    count updates per array and call; a borrowed array has no meminfo, so
    those updates are skipped.  Valid while the caller keeps ``arr`` alive
    (for the duration of the call that receives it).
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        from numba.np.arrayobj import make_array

        src = make_array(arr)(context, builder, value=args[0])
        out = make_array(arr)(context, builder, value=src._getvalue())
        out.meminfo = ir.Constant(out.meminfo.type, None)
        out.parent = ir.Constant(out.parent.type, None)
        return out._getvalue()

    return arr(arr), codegen


def make_allocator(layout, target="cpu"):
    """Generate an ``@njit`` (CPU) or device (CUDA) function returning the scratch tuple.

    The source is generated because numba cannot build a heterogeneous tuple
    in a loop; the shapes become compile-time constants.  Targets: ``"cpu"``
    (``np.empty``), ``"cuda"`` (``cuda.local.array``) and ``"cpu_stack"``
    (:func:`stack_array`; the allocator is inlined at numba-IR level so the
    arrays live in the caller's frame).
    """
    lines = ["def alloc():"]
    names = []
    ns = {"np": np}
    for i, (name, shape, dtype) in enumerate(layout):
        dt = {np.dtype(np.complex128): "np.complex128", np.dtype(np.float64): "np.float64",
              np.dtype(np.int64): "np.int64"}[np.dtype(dtype)]
        if target == "cpu":
            lines.append(f"    a{i} = np.empty({tuple(shape)!r}, dtype={dt})")
        elif target == "cuda":
            lines.append(f"    a{i} = cuda.local.array({tuple(shape)!r}, {dt})")
        elif target == "cpu_stack":
            ns[f"stack{i}"] = stack_array(shape, dtype)
            lines.append(f"    a{i} = stack{i}()")
        else:
            raise ValueError(f"unknown target {target!r}")
        names.append(f"a{i}")
    lines.append(f"    return ({', '.join(names)},)")
    if target == "cuda":
        from numba import cuda
        ns["cuda"] = cuda
    exec("\n".join(lines), ns)
    fn = ns["alloc"]
    if target == "cpu":
        return numba.njit(error_model="numpy")(fn)
    if target == "cpu_stack":
        return numba.njit(error_model="numpy", inline="always")(fn)
    from numba import cuda
    return cuda.jit(device=True)(fn)
