"""The named kernel interface: scratch ``S``, context ``C`` and parameters ``P``.

Every per-packet kernel (:mod:`packets.eom`, :mod:`packets.manifold`,
:mod:`packets.context`, :mod:`packets.packet`, the channels of
:mod:`scattering.channels`) gets three tuples whose layout is listed once
here, and reaches every entry by a module constant generated from that list
(``S[scratch.W]``, ``C[scratch.C_VBAND]``, ``P[scratch.P_MODEL]``): integer
globals are compile-time constants for numba on both targets, so a named
entry compiles to exactly the code a literal index did.

Scratch ``S``
    Per-packet work arrays, grouped by the part of the engine that owns
    them (:data:`SCRATCH_GROUPS`).  A simulation allocates only the groups
    its kernels declare (:func:`scratch_groups`); the entries of a group that
    is not declared are ``None``, so a kernel that reaches into an
    undeclared group fails to compile instead of reading garbage.  No entry
    carries a value from one kernel call to another: whatever a kernel finds
    in ``S`` on entry is undefined, and every value a kernel hands on goes
    through its arguments or return value.  The ``work`` group is
    linear-algebra workspace that any call may clobber.
Context ``C``
    What observables see of one packet at a record time
    (:mod:`packets.context`), :data:`CONTEXT_SLOTS`.
Parameters ``P``
    The float64 arrays of run parameters, :data:`PARAMETER_SLOTS`: they are
    uploaded once and may change between runs without recompiling.

The allocators: :func:`make_allocator` turns a layout into an ``@njit``
function returning the tuple: ``np.empty`` on the CPU, ``cuda.local.array``
(registers or local memory) inside a CUDA kernel.  Keeping one list is what
lets both drivers call the same per-packet physics.

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

_F = np.float64
_C = np.complex128
_I = np.int64

#: The scratch groups: ``{group: [(name, shape, dtype, meaning), ...]}``.  Shapes are
#: written in the packet's dimension ``D``, band count ``N`` and ``X = 2 D`` (phase space).
SCRATCH_GROUPS = {
    # the integrators of packets.eom: RK4 / commutator-free stages
    "stepper": [
        ("XS", ("D",), _F, "stage position x_i"),
        ("KS", ("D",), _F, "stage momentum k_i"),
        ("K", (4, 2, "D"), _F, "stage rates: K[j, 0] = dx/dt, K[j, 1] = dk/dt of stage j"),
        ("G1", ("N", "N"), _C, "generator of chi at stage 1 (i dchi/dt = G chi); H of the two-band step"),
        ("G2", ("N", "N"), _C, "generator at stage 2"),
        ("G3", ("N", "N"), _C, "generator at stage 3"),
        ("G4", ("N", "N"), _C, "generator at stage 4"),
        ("GCOMB", ("N", "N"), _C, "linear combination of generators being exponentiated"),
        ("CHI_Y2", ("N",), _C, "chi at stage 2, then stage 4"),
        ("CHI_Y3", ("N",), _C, "chi at stage 3"),
        ("EXP_W", ("N",), _F, "eigenvalues of the generator being exponentiated"),
        ("EXP_V", ("N", "N"), _C, "its eigenvectors (columns)"),
    ],
    # step doubling (packets.eom.make_adaptive_advance)
    "adaptive": [
        ("X_FULL", ("D",), _F, "x after one step of h"),
        ("K_FULL", ("D",), _F, "k after one step of h"),
        ("CHI_FULL", ("N",), _C, "chi after one step of h"),
        ("X_HALF", ("D",), _F, "x after two steps of h/2"),
        ("K_HALF", ("D",), _F, "k after two steps of h/2"),
        ("CHI_HALF", ("N",), _C, "chi after two steps of h/2"),
    ],
    # the band structure at the point a kernel is evaluating (rates, context, channels)
    "bands": [
        ("HM", ("N", "N"), _C, "H(x, k) in the orbital basis"),
        ("W", ("N",), _F, "band energies, ascending"),
        ("V", ("N", "N"), _C, "band eigenvectors (columns)"),
        ("DHDK", ("D", "N", "N"), _C, "dH/dk_a"),
        ("DHDX", ("D", "N", "N"), _C, "dH/dx_a (textured models)"),
        ("M", ("X", "N", "N"), _C, "band-basis derivative matrices V^dagger dH/dxi V, xi = (x, k)"),
        ("OMEGA", ("X", "X"), _F, "symplectic form of the adiabatic equations of motion"),
        ("GRAD", ("X",), _F, "grad_xi of the band energy, then the solution xi_dot"),
        ("EFIELD", ("D",), _F, "E(t)"),
        ("GRAD_U", ("D",), _F, "grad U(x)"),
        ("VBAND", ("D",), _F, "band velocity d(eps - m.B)/dk of an adiabatic rates call"),
    ],
    # coherent dynamics inside an active manifold (packets.manifold)
    "manifold": [
        ("MF_AMP", ("N",), _C, "band amplitudes <u_n|chi>"),
        ("MF_GEN", ("N", "N"), _C, "generator in the band basis"),
        ("MF_ORB", ("N", "N"), _C, "generator half-transformed to the orbital basis"),
    ],
    # linear-algebra workspace: clobbered by every eigensolver, exponential and model filler
    "work": [
        ("WORK", ("N", "N"), _C, "matrix workspace (eigensolvers, model fillers)"),
        ("TMP", ("N",), _C, "vector workspace (exponentials)"),
    ],
    # stochastic-event channels (scattering.channels, user channels)
    "events": [
        ("EV_W", ("N",), _F, "band energies at the incoming (x, k)"),
        ("EV_V", ("N", "N"), _C, "band eigenvectors at the incoming (x, k)"),
        ("EV_K", ("D",), _F, "outgoing momentum k'"),
        ("EV_DHDK", ("D", "N", "N"), _C, "dH/dk at the outgoing momentum"),
        ("EV_DH", ("D", "N", "N"), _C, "band-basis matrices of dH/dk (hybridised bands; ray scan)"),
        ("EV_BITS", (64,), _I, "integer workspace: root brackets of the ray scan, on-shell pair masks"),
        ("EV_PSI", ("N",), _C, "incoming state projected on the energy shell; band amplitudes"),
        ("EV_CIN", ("N",), _C, "incoming chi in the band basis"),
        ("EV_COUT", ("N",), _C, "outgoing amplitudes in the band basis at k'"),
        ("EV_SHIFT", ("D",), _F, "side jump dr"),
        ("EV_XJ", ("D",), _F, "jumped position x + dr"),
        ("EV_DIR", ("D",), _F, "unit direction of the proposal ray"),
        ("EV_Q", ("D",), _F, "momentum transfer; grad U at a jumped position"),
        ("EV_HB", ("N", "N"), _C, "moving-frame Hamiltonian in the band basis"),
        ("EV_MAT", ("N", "N"), _C, "matrix workspace of a channel"),
    ],
}

#: The measurement context C (:mod:`packets.context`): ``[(name, shape, dtype, meaning), ...]``.
CONTEXT_SLOTS = [
    ("C_XDOT", ("D",), _F, "dx/dt from the equations of motion"),
    ("C_KDOT", ("D",), _F, "dk/dt"),
    ("C_VBAND", ("D",), _F, "band-velocity part of dx/dt"),
    ("C_AMP", ("N",), _C, "band amplitudes <u_n(x, k)|chi>"),
    ("C_ENERGIES", ("N",), _F, "instantaneous band energies, ascending"),
    ("C_ENERGY", (1,), _F, "the packet's energy"),
    ("C_XJUMP", ("D",), _F, "side-jump velocity: displacement by events / record interval"),
]

#: The parameter tuple P: ``[(name, meaning), ...]``; every entry a float64 array.
PARAMETER_SLOTS = [
    ("P_MODEL", "model parameters (model.params)"),
    ("P_EFIELD", "parameters of E(t)"),
    ("P_POTENTIAL", "parameters of U(x)"),
    ("P_B", "magnetic field (Bx, By, Bz)"),
    ("P_CHANNELS", "the channels' parameter vectors, concatenated"),
    ("P_MAJORANTS", "the channels' majorant rates"),
]

#: scratch entry names in tuple order, then the group of each
SCRATCH_NAMES = [s[0] for g in SCRATCH_GROUPS.values() for s in g]
SCRATCH_GROUP_OF = {s[0]: g for g, slots in SCRATCH_GROUPS.items() for s in slots}


def _define_names():
    # one module constant per entry: its position in its tuple
    g = globals()
    for i, name in enumerate(SCRATCH_NAMES):
        g[name] = i
    for i, (name, *_rest) in enumerate(CONTEXT_SLOTS):
        g[name] = i
    for i, (name, _doc) in enumerate(PARAMETER_SLOTS):
        g[name] = i


_define_names()


def _shape(shape, dim, nb):
    size = {"D": dim, "N": nb, "X": 2 * dim}
    return tuple(size[s] if isinstance(s, str) else s for s in shape)


def scratch_groups(adaptive=False, manifold=False, events=False):
    """The scratch groups a simulation's kernels use.

    Every variant uses ``stepper`` (the integrators), ``bands`` (the rates
    and the measurement context) and ``work``; the adaptive integrator adds
    ``adaptive``, manifold dynamics ``manifold`` and stochastic channels
    ``events``.  Without channels a kernel thus allocates no event scratch.
    """
    groups = {"stepper", "bands", "work"}
    if adaptive:
        groups.add("adaptive")
    if manifold:
        groups.add("manifold")
    if events:
        groups.add("events")
    return frozenset(groups)


def scratch_layout(dim, nb, groups=None):
    """Layout of the scratch tuple S: list of (name, shape, dtype); ``shape=None`` for an absent entry.

    ``groups``: the groups to allocate (default all); entries of the other
    groups are ``None`` in the tuple.
    """
    out = []
    for g, slots in SCRATCH_GROUPS.items():
        for name, shape, dtype, _doc in slots:
            if groups is None or g in groups:
                out.append((name, _shape(shape, dim, nb), dtype))
            else:
                out.append((name, None, None))
    return out


def context_layout(dim, nb):
    """Layout of the measurement context C (see :mod:`packets.context`)."""
    return [(name, _shape(shape, dim, nb), dtype) for name, shape, dtype, _doc in CONTEXT_SLOTS]


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
        names.append(f"a{i}")
        if shape is None:  # an entry of a group the kernels do not declare
            lines.append(f"    a{i} = None")
            continue
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
