"""CUDA driver: runs the composed per-packet step over the ensemble on a GPU.

The GPU counterpart of :mod:`packets.driver_cpu` (docs/architecture.md).  Only the
loop structure lives here; the physics comes in as the same ``@njit``
functions the CPU driver calls (``advance_packet``, ``context``, ``tally``),
which numba-cuda compiles as device functions.

Kernel layout
-------------
* One thread per packet, grid-stride loop over the (chunk of the) ensemble.
* Each thread copies its packet's x, k, chi into ``cuda.local.array`` s,
  builds the scratch tuples with the CUDA allocators of
  :mod:`packets.scratch`, calls ``advance_packet``, applies the same
  finite/norm checks as the CPU driver, evaluates ``context`` and adds the
  observables and the event counts into a per-thread local tally row
  (``ncomp`` doubles), exactly as the CPU driver does into its chunk row.
* Reduction: the row of each packet is added with shared-memory atomics into
  a per-block accumulator ``acc[nbatch, ncomp]`` plus ``nbatch`` packet counts
  (dynamic shared memory, ``8 nbatch (ncomp + 1)`` bytes, zero entries
  skipped), and after the grid-stride loop every block adds its accumulator
  to the global ``out[nbatch, ncomp]`` and ``counts[nbatch]`` with at most one
  global atomic per (block, batch, component).  Shared memory therefore does
  not grow with the block size.  When ``8 nbatch (ncomp + 1)`` exceeds the
  shared-memory budget (large ``Density`` grids), the kernel adds each
  packet's non-zero row entries straight to global memory instead (same
  result, more global atomics).
* Packet steps are summed per block in shared memory, one global atomic per block.

Floating-point sums in a different order than on the CPU: tallies agree with
the CPU driver to round-off, not bit for bit (the GPU also contracts a*x + b
into fused multiply-adds; docs/architecture.md).

Data movement
-------------
:class:`CudaRunner` uploads the ensemble and the parameter tuple ``P`` once,
keeps them on the device across record intervals, and downloads the state
only when asked (:meth:`CudaRunner.download`).  Ensembles larger than the
device memory budget are processed in chunks that are uploaded, advanced and
downloaded in every interval.  The CPU-compatible call
``CudaAdvance.__call__(X, K, ..., out, counts)`` is a runner used for one
interval (upload, run, download), with the same semantics as the CPU driver's
``advance``.

CUDA simulator
--------------
With ``NUMBA_ENABLE_CUDASIM=1`` the kernel runs as Python threads and calls
the CPU builds of the njit functions.  The simulator hands kernels wrapped
arrays that njit code cannot take; the kernel then unwraps its array
arguments first (``_sim_unwrap``).  On a real GPU the unwrap is an inlined
identity and costs nothing.
"""
import math

import numba
import numpy as np
# module-level name: the CUDA simulator swaps the `cuda` global of kernel functions for its fake module
from numba import cuda

#: status code of a good packet (packets.status.OK); gpu/ does not import packets
_OK = 0

#: default threads per block (register-heavy kernels: 255 regs x 256 threads fit one SM's register file)
THREADS_PER_BLOCK = 128
#: default resident blocks per multiprocessor for the grid-stride launch
BLOCKS_PER_SM = 4
#: default dynamic shared-memory budget per block for the tally accumulator (bytes; 48 KiB needs no opt-in)
SHARED_LIMIT = 48 * 1024
#: fraction of free device memory the ensemble may take (the rest: local memory of resident threads, out, P)
MEMORY_FRACTION = 0.5

#: the packet-state arrays the kernel takes, in its argument order.  Their dtypes, shapes and which
#: of them the kernel writes come with the schema ``packets.state.gpu_schema()`` that
#: build_cuda_advance receives (gpu/ imports nothing from packets); it must name these, in this order.
KERNEL_STATE = ("x", "k", "chi", "band", "weight", "status", "pid", "clock", "ev")


def _simulator_on():
    return bool(numba.config.ENABLE_CUDASIM)


def _sim_unwrap(a):
    """Simulator only: the plain NumPy array behind a simulator device array (tuples element-wise)."""
    if isinstance(a, tuple):
        return tuple(_sim_unwrap(e) for e in a)
    inner = getattr(a, "_item", None)  # FakeWithinKernelCUDAArray
    if inner is not None:
        a = inner
    return getattr(a, "_ary", a)  # FakeCUDAArray -> ndarray


def _make_kernel(advance_packet, start, finish, alloc_scratch, alloc_context, dim, nb, ncomp, nev):
    """Build the ``cuda.jit`` kernel (lazy: compiled on first launch or by :meth:`CudaAdvance.ptx`)."""
    if _simulator_on():
        unwrap = _sim_unwrap
    else:
        @cuda.jit(device=True, inline=True)
        def unwrap(a):
            return a

    f64 = numba.float64
    c128 = numba.complex128
    i64 = numba.int64
    nevl = max(nev, 1)
    OK = _OK

    def kernel(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, n, t0, dt, nsteps, tol, P, key0, key1, nbatch,
               use_shared, out, counts, steps):
        X = unwrap(X)
        K = unwrap(K)
        CHI = unwrap(CHI)
        BAND = unwrap(BAND)
        W = unwrap(W)
        STATUS = unwrap(STATUS)
        PID = unwrap(PID)
        CLOCK = unwrap(CLOCK)
        EV = unwrap(EV)
        P = unwrap(P)
        out = unwrap(out)
        counts = unwrap(counts)
        steps = unwrap(steps)
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        acc = cuda.shared.array(0, f64)          # [nbatch * ncomp] sums, then [nbatch] packet counts
        bsteps = cuda.shared.array(1, i64)
        nacc = nbatch * ncomp
        if use_shared:
            for j in range(tid, nacc + nbatch, bdim):
                acc[j] = 0.0
        if tid == 0:
            bsteps[0] = 0
        cuda.syncthreads()
        S = alloc_scratch()
        C = alloc_context()
        x = cuda.local.array(dim, f64)
        k = cuda.local.array(dim, f64)
        jx = cuda.local.array(dim, f64)  # displacement of x by events in this interval
        chi = cuda.local.array(nb, c128)
        evc = cuda.local.array(nevl, i64)
        row = cuda.local.array(ncomp, f64)
        nst = 0
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            if STATUS[i] != OK:
                continue
            for a in range(dim):
                x[a] = X[i, a]
                k[a] = K[i, a]
            for j in range(nb):
                chi[j] = CHI[i, j]
            for j in range(ncomp):
                row[j] = 0.0
            start(evc, jx)
            code, band, clock, ev, ns = advance_packet(t0, dt, nsteps, tol, x, k, chi, BAND[i], CLOCK[i], EV[i],
                                                       P, S, key0, key1, PID[i], evc, jx)
            nst += ns
            b = PID[i] % nbatch
            # checks, context, observables, event counts: the CPU driver's own function (packets.packet)
            code, tallied = finish(t0 + nsteps * dt, nsteps * dt, code, x, k, chi, band, W[i], evc, jx, P, S, C, row)
            if use_shared:
                base = b * ncomp
                for j in range(ncomp):
                    if row[j] != 0.0:
                        cuda.atomic.add(acc, base + j, row[j])
                if tallied:
                    cuda.atomic.add(acc, nacc + b, 1.0)
            else:
                for j in range(ncomp):
                    if row[j] != 0.0:
                        cuda.atomic.add(out, (b, j), row[j])
                if tallied:
                    cuda.atomic.add(counts, b, 1)
            for a in range(dim):
                X[i, a] = x[a]
                K[i, a] = k[a]
            for j in range(nb):
                CHI[i, j] = chi[j]
            BAND[i] = band
            CLOCK[i] = clock
            EV[i] = ev
            STATUS[i] = code
        cuda.atomic.add(bsteps, 0, nst)
        cuda.syncthreads()
        if use_shared:
            # one global atomic per (block, batch, component), zero entries skipped
            for j in range(tid, nacc, bdim):
                v = acc[j]
                if v != 0.0:
                    cuda.atomic.add(out, (j // ncomp, j % ncomp), v)
            for bb in range(tid, nbatch, bdim):
                c = acc[nacc + bb]
                if c != 0.0:
                    cuda.atomic.add(counts, bb, int(c))
        if tid == 0:
            cuda.atomic.add(steps, 0, bsteps[0])

    return kernel, cuda.jit(kernel)


class CudaAdvance:
    """A compiled-on-demand CUDA kernel plus its launch logic (from :func:`build_cuda_advance`).

    Calling it has the signature and semantics of the CPU driver's ``advance``
    (:func:`packets.driver_cpu.build_advance`)::

        adv(x, k, chi, band, weight, status, pid, clock, ev, t0, dt, nsteps, tol, P, key0, key1,
            nbatch, shard, out, counts) -> packet_steps

    (``shard`` is accepted for compatibility and ignored: the GPU launch shape
    comes from :meth:`launch_config`).  ``out``/``counts`` are either
    ``(nbatch, ncomp)``/``(nbatch,)`` or the CPU driver's per-shard
    ``(nshards, nbatch, ncomp)``/``(nshards, nbatch)`` (total in shard 0, see
    :meth:`CudaRunner.advance`), so it drops into ``Simulation._interval``
    unchanged.  GPU tallies are atomic sums: equal to the CPU's tree sums to
    round-off, not bit for bit.  For many intervals without host round
    trips use :meth:`runner`.

    Attributes
    ----------
    schema : tuple
        The packet-state schema ``(name, dtype, per_packet, kernel_writes)`` per array, in
        :data:`KERNEL_STATE` order (``packets.state.gpu_schema()``).
    dim, nb, ncomp, nev : int
        Spatial dimension, bands, tally components, event components.
    threads_per_block, blocks_per_sm : int
        Launch shape (see :meth:`launch_config`); ``blocks`` overrides the grid size.
    shared_limit : int
        Shared-memory budget (bytes) of the per-block tally accumulator.
    """

    def __init__(self, pyfunc, kernel, schema, dim, nb, ncomp, nev, threads_per_block=None,
                 blocks_per_sm=BLOCKS_PER_SM, blocks=None, shared_limit=SHARED_LIMIT):
        self.pyfunc = pyfunc
        self.kernel = kernel
        self.schema = tuple(schema)
        self.dim = int(dim)
        self.nb = int(nb)
        self.ncomp = int(ncomp)
        self.nev = int(nev)
        self.threads_per_block = threads_per_block
        self.blocks_per_sm = int(blocks_per_sm)
        self.blocks = blocks
        self.shared_limit = int(shared_limit)

    # -- launch ------------------------------------------------------------------
    def launch_config(self, n):
        """(blocks, threads) for ``n`` packets.

        threads = ``threads_per_block`` (default 128, or 32 under the
        simulator), capped by the device's MAX_THREADS_PER_BLOCK; blocks =
        ``blocks`` if set, else ``blocks_per_sm`` x the multiprocessor count,
        but no more than needed to give every thread one packet.
        """
        sim = _simulator_on()
        threads = self.threads_per_block or (32 if sim else THREADS_PER_BLOCK)
        if sim:
            nsm, tmax = 1, 1024
        else:
            dev = cuda.get_current_device()
            nsm = int(dev.MULTIPROCESSOR_COUNT)
            tmax = int(dev.MAX_THREADS_PER_BLOCK)
        threads = max(1, min(int(threads), tmax))
        need = max(1, (int(n) + threads - 1) // threads)
        blocks = int(self.blocks) if self.blocks else min(self.blocks_per_sm * nsm, need)
        return max(1, blocks), threads

    def shared_bytes(self, nbatch):
        """Dynamic shared memory of the tally accumulator, or 0 when it exceeds ``shared_limit``."""
        nbytes = 8 * int(nbatch) * (self.ncomp + 1)
        return nbytes if nbytes <= self.shared_limit else 0

    def launch(self, d, n, t0, dt, nsteps, tol, P, key0, key1, nbatch, d_out, d_counts, d_steps):
        """Launch the kernel once on device arrays ``d`` (``{name: array}`` of the packet state) for ``n`` packets."""
        if n <= 0:
            return
        blocks, threads = self.launch_config(n)
        shm = self.shared_bytes(nbatch)
        self.kernel[blocks, threads, 0, shm](
            *(d[name] for name in KERNEL_STATE), np.int64(n),
            np.float64(t0), np.float64(dt), np.int64(nsteps), np.float64(tol), P, np.uint64(key0), np.uint64(key1),
            np.int64(nbatch), np.int64(1 if shm else 0), d_out, d_counts, d_steps)

    # -- host API ----------------------------------------------------------------
    def runner(self, state, P, max_packets=None):
        """A :class:`CudaRunner` that keeps the packet ``state`` (``{name: array}``) on the device across intervals."""
        return CudaRunner(self, state, P, max_packets=max_packets)

    def __call__(self, x, k, chi, band, weight, status, pid, clock, ev, t0, dt, nsteps, tol, P, key0, key1, nbatch,
                 shard, out, counts):
        r = CudaRunner(self, dict(zip(KERNEL_STATE, (x, k, chi, band, weight, status, pid, clock, ev))), P)
        ns = r.advance(t0, dt, nsteps, tol, key0, key1, nbatch, out, counts)
        r.download()
        return ns

    # -- compilation without a GPU -----------------------------------------------------------
    def signature(self, nparams=6):
        """The kernel's argument types (numba types) for a parameter tuple of ``nparams`` arrays."""
        from numba import types
        f2 = types.float64[:, ::1]
        f1 = types.float64[::1]
        i1 = types.int64[::1]
        state = tuple((numba.from_dtype(dtype)[::1] if per_packet == "" else numba.from_dtype(dtype)[:, ::1])
                      for _name, dtype, per_packet, _writes in self.schema)
        return state + (types.int64, types.float64, types.float64, types.int64, types.float64,
                        types.UniTuple(f1, int(nparams)), types.uint64, types.uint64, types.int64, types.int64, f2,
                        i1, i1)

    def ptx(self, cc=(9, 0), nparams=6):
        """PTX of the kernel for compute capability ``cc`` (no GPU needed; see :mod:`gpu.ptx`)."""
        from .ptx import compile_kernel_ptx
        return compile_kernel_ptx(self.pyfunc, self.signature(nparams), cc=cc)

    def resources(self, cc=(9, 0), nparams=6):
        """Registers, stack and spill bytes per thread from ``ptxas -v`` (no GPU needed)."""
        from .ptx import ptxas_resources
        res = ptxas_resources(self.ptx(cc, nparams), arch=f"sm_{cc[0]}{cc[1]}")
        return next(iter(res.values()))


def build_cuda_advance(advance_packet, start, finish, alloc_scratch, alloc_context, schema, dim, nb, ncomp, nev,
                       threads_per_block=None, blocks_per_sm=BLOCKS_PER_SM, blocks=None,
                       shared_limit=SHARED_LIMIT):
    """Build the CUDA driver for one kernel variant (GPU counterpart of ``packets.driver_cpu.build_advance``).

    Parameters
    ----------
    advance_packet, start, finish : numba dispatchers
        The per-packet functions composed by ``packets`` (``make_packet_advance``
        and ``make_packet_finish``: steps and events; state checks, measurement
        context, observables) — the same objects the CPU driver gets.
    alloc_scratch, alloc_context : CUDA device functions
        ``packets.scratch.make_allocator(scratch_layout(dim, nb), "cuda")`` and
        ``make_allocator(context_layout(dim, nb), "cuda")``.
    schema : tuple
        ``packets.state.gpu_schema()``: per packet-state array ``(name, dtype, per_packet,
        kernel_writes)``; the names must be :data:`KERNEL_STATE`, in order.
    dim, nb, ncomp, nev : int
        Dimension, bands, tally components (events included), event components (last ``nev``).
    threads_per_block, blocks_per_sm, blocks, shared_limit
        Launch shape and tally shared-memory budget (:class:`CudaAdvance`).

    Returns
    -------
    CudaAdvance
        Callable with the CPU driver's ``advance`` signature; ``.runner(...)``
        keeps the ensemble on the device.
    """
    names = tuple(entry[0] for entry in schema)
    if names != KERNEL_STATE:
        raise ValueError(f"the packet-state schema names {names}; the CUDA kernel takes {KERNEL_STATE} in this order")
    pyfunc, kernel = _make_kernel(advance_packet, start, finish, alloc_scratch, alloc_context, int(dim), int(nb),
                                  int(ncomp), int(nev))
    return CudaAdvance(pyfunc, kernel, schema, dim, nb, ncomp, nev, threads_per_block=threads_per_block,
                       blocks_per_sm=blocks_per_sm, blocks=blocks, shared_limit=shared_limit)


def _bytes_per_packet(arrays):
    return int(sum(a.dtype.itemsize * int(np.prod(a.shape[1:])) for a in arrays))


def max_resident_packets(bytes_per_packet, fraction=MEMORY_FRACTION):
    """Packets whose state fits in ``fraction`` of the free device memory (None: unlimited, e.g. simulator)."""
    free, total = cuda.current_context().get_memory_info()
    if not math.isfinite(float(free)):
        return None
    return max(1, int(fraction * float(free)) // max(1, int(bytes_per_packet)))


class CudaRunner:
    """Device-resident ensemble for a :class:`CudaAdvance` (upload once, download on request).

    Parameters
    ----------
    adv : CudaAdvance
    state : mapping
        The host packet state, ``{name: numpy array}`` for the names of the
        schema ``adv.schema`` (a ``packets.state.PacketState.as_dict()``), each
        C-contiguous of the schema's dtype and shape.  :meth:`download` writes
        the arrays the kernel changes back into them in place.
    P : tuple of float64 arrays
        Parameter arrays (model, E field, potential, B, channels, majorants);
        uploaded once and re-uploaded only when their values change.
    max_packets : int, optional
        Largest number of packets kept on the device at once.  Default: what
        fits into :data:`MEMORY_FRACTION` of the free device memory.  When the
        ensemble is larger it is processed in chunks of this size, each
        uploaded, advanced and downloaded in every interval.

    Attributes
    ----------
    resident : bool
        True when the whole ensemble lives on the device (no per-interval transfers).
    chunk : int
        Packets per device chunk.
    """

    def __init__(self, adv, state, P, max_packets=None):
        self.adv = adv
        missing = [name for name in KERNEL_STATE if name not in state]
        if missing:
            raise ValueError(f"the packet state lacks {missing}")
        host = {name: state[name] for name in KERNEL_STATE}
        n = host["x"].shape[0]
        trailing = {"": (), "dim": (adv.dim,), "nbands": (adv.nb,)}
        for name, dtype, per_packet, _writes in adv.schema:
            a = host[name]
            if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous numpy array (use np.ascontiguousarray)")
            shape = (n,) + trailing[per_packet]
            if a.dtype != dtype or a.shape != shape:
                raise ValueError(f"{name} must be {np.dtype(dtype).name}{list(shape)}, got "
                                 f"{a.dtype.name}{list(a.shape)}")
        self.host = host
        #: what the kernel changes, downloaded after a run (weight and pid are only read)
        self.mutable = tuple(name for name, _dtype, _per_packet, writes in adv.schema if writes)
        self.n = n
        if max_packets is None:
            max_packets = max_resident_packets(_bytes_per_packet(host.values()))
        self.chunk = max(1, n if max_packets is None else min(n, int(max_packets)))
        self.resident = self.chunk >= n
        self.dev = {name: cuda.device_array((self.chunk,) + a.shape[1:], dtype=a.dtype) for name, a in host.items()}
        self._P_host = None
        self._P_dev = None
        self._set_params(P)
        if self.resident:
            self.upload()

    def _set_params(self, P):
        P = tuple(np.ascontiguousarray(p, dtype=np.float64) for p in P)
        if self._P_host is not None and len(P) == len(self._P_host) and all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(P, self._P_host)):
            return
        self._P_host = tuple(p.copy() for p in P)
        self._P_dev = tuple(cuda.to_device(p) for p in self._P_host)

    def upload(self):
        """Copy the host state to the device (resident mode; chunked mode uploads per interval)."""
        if self.resident:
            for name, a in self.host.items():
                self.dev[name].copy_to_device(a)

    def download(self):
        """Copy the device state back into the host arrays (in place); no-op in chunked mode (always current)."""
        if self.resident:
            for name in self.mutable:
                self.dev[name].copy_to_host(self.host[name])

    def advance(self, t0, dt, nsteps, tol, key0, key1, nbatch, out, counts, P=None):
        """Advance every packet by ``nsteps`` steps of ``dt`` from ``t0``; tallies added to out/counts.

        Same meaning as the CPU driver's ``advance``: ``out[nbatch, ncomp]``
        and ``counts[nbatch]`` are added to, not overwritten.  The CPU
        driver's per-shard arrays ``rows[nshards, nbatch, ncomp]``,
        ``counts[nshards, nbatch]`` are accepted too: the total is added to
        shard 0, so ``tree_reduce`` over the shards returns it exactly.  Returns the
        number of packet steps.  ``P``: new parameter values (re-uploaded
        only if changed).
        """
        nbatch = int(nbatch)
        ncomp = self.adv.ncomp
        # per-shard layout of the CPU driver (rows[nshards, nbatch, ncomp], counts[nshards, nbatch]): the GPU
        # total goes into shard 0 and the other shards stay zero, so packets.driver_cpu.tree_reduce returns
        # it unchanged (x + 0 = x exactly)
        sharded = out.ndim == 3
        if sharded:
            ok = (out.shape[1:] == (nbatch, ncomp) and counts.ndim == 2 and counts.shape[1:] == (nbatch,)
                  and out.shape[0] >= 1 and counts.shape[0] == out.shape[0])
        else:
            ok = out.shape == (nbatch, ncomp) and counts.shape == (nbatch,)
        if not ok:
            raise ValueError(f"out must have shape ({nbatch}, {ncomp}) and counts ({nbatch},), or "
                             f"(nshards, {nbatch}, {ncomp}) and (nshards, {nbatch}); got {out.shape} and {counts.shape}")
        if P is not None:
            self._set_params(P)
        d_out = cuda.to_device(np.ascontiguousarray(out[0] if sharded else out, dtype=np.float64))
        d_counts = cuda.to_device(np.ascontiguousarray(counts[0] if sharded else counts, dtype=np.int64))
        d_steps = cuda.to_device(np.zeros(1, dtype=np.int64))
        if self.resident:
            self.adv.launch(self.dev, self.n, t0, dt, nsteps, tol, self._P_dev, key0, key1, nbatch, d_out, d_counts,
                            d_steps)
        else:
            for s in range(0, self.n, self.chunk):
                m = min(self.chunk, self.n - s)
                view = {name: self.dev[name][:m] for name in KERNEL_STATE}
                for name in KERNEL_STATE:
                    view[name].copy_to_device(self.host[name][s:s + m])
                self.adv.launch(view, m, t0, dt, nsteps, tol, self._P_dev, key0, key1, nbatch, d_out, d_counts,
                                d_steps)
                for name in self.mutable:
                    view[name].copy_to_host(self.host[name][s:s + m])
        if sharded:
            out[0] = d_out.copy_to_host()
            counts[0] = d_counts.copy_to_host()
        else:
            out[...] = d_out.copy_to_host()
            counts[...] = d_counts.copy_to_host()
        return int(d_steps.copy_to_host()[0])
