"""CPU driver: runs the composed per-packet step over the ensemble with numba.

Only the loop structure lives here: fixed-size shards of packets, each one
compiled call run on a pool of threads (:class:`ShardedAdvance`), scratch
allocated once per shard, a private tally block per
shard summed in packet order, and the shard blocks combined over a fixed
binary tree of their global index (:func:`tree_reduce`) — so the result is
bit-identical for any number of threads and for any split of the run at
shard boundaries.

Lanes (fixed-step runs)
-----------------------
A packet's step is a long chain of dependent floating-point operations; one
packet at a time leaves most of a core idle.  For fixed-step integrators the
driver therefore advances :data:`LANES` consecutive packets of a shard
together: their states are held in a small structure-of-arrays block and the
*same* step kernel is called for each lane inside one loop over lanes, with
its scratch on the stack (:func:`packets.scratch.stack_array`) and the loop
compiled without reference counting, so that LLVM keeps the scratch in
registers and vectorises the loop across packets (SIMD).  Per step, a lane
whose event clock is below dt is left out of the vectorised step and crosses
that step with the per-packet event kernel ``cross``
(:func:`packets.packet.make_packet_kernels`) instead; all other lanes take
``step(t0 + s dt, dt)``.  These are exactly the decisions and calls of the
per-packet ``advance_packet`` (which the CUDA driver runs), and without
fast-math flags vectorised IEEE arithmetic gives the scalar results bit for
bit, so the lane driver reproduces the per-packet one exactly.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import compile_cache

from . import status as st
from .jit import kernel
from . import scratch as sc
from .scratch import borrow, make_allocator, stack_array

#: packets advanced together by the CPU lane driver (two AVX2 / one AVX-512 vector of float64)
LANES = 8


def compose_tally(kernels, offsets):
    """Chain observable kernels into one ``tally(weight, n, x, k, C, row)``.

    Each kernel adds to ``row[off:off+ncomp]``; offsets are compile-time
    constants of the closure.  The chain itself is inlined (no call per link).
    """

    @numba.njit(inline="always")
    def tally_none(weight, n, x, k, C, row):
        pass

    tally = tally_none
    for kern, off in zip(kernels, offsets):
        def chain(prev, kern=kern, off=off):
            @numba.njit(inline="always")
            def tally_more(weight, n, x, k, C, row):
                prev(weight, n, x, k, C, row)
                kern(weight, n, x, k, C, row[off:])
            return tally_more
        tally = chain(tally)
    return tally


def make_lane_steps(step, dim, nb, has_events, scratch_layout):
    """Build ``lane_steps(s, nsteps, t0, dt, Z, clock, band, live, pend, code, nst, P) -> s_next``.

    Advances the :data:`LANES` packets of one block by fixed steps s, s+1,
    ... (step s covers [t0 + s dt, t0 + (s + 1) dt]).  ``Z`` (float64[2 dim
    + 2 nb, LANES]) holds the lanes' (x, k, Re chi, Im chi), ``clock``,
    ``band``, ``code`` (status of the last step) and ``nst`` (steps taken)
    one entry per lane; only lanes with ``live`` != 0 move.  A lane whose
    clock is below dt at step s is not stepped but marked in ``pend``; the
    function then returns s + 1 after that step, and the caller crosses step
    s of the marked lanes with the event kernel.  A lane whose step returns
    a non-OK status stops (``live`` = 0), as in ``advance_packet``.

    Compiled without NRT and with the block and the step's scratch on the
    stack, so that the loop over lanes can be vectorised (module docstring).
    """
    L = LANES
    nz = 2 * dim + 2 * nb
    alloc_stack = make_allocator(scratch_layout, "cpu_stack")
    zblock = stack_array((nz, L), np.float64)
    fblock = stack_array((L,), np.float64)
    iblock = stack_array((L,), np.int64)
    xarr = stack_array((dim,), np.float64)
    carr = stack_array((nb,), np.complex128)

    @kernel(_nrt=False)
    def lane_steps(s0, nsteps, t0, dt, Z, clock, band, live, pend, code, nst, P):
        S = alloc_stack()
        Zs = zblock()
        clk = fblock()
        bnd = iblock()
        lv = iblock()
        cd = iblock()
        ns = iblock()
        x = xarr()
        k = xarr()
        chi = carr()
        # work on stack copies: provably not aliased with anything else
        for l in range(L):
            for j in range(nz):
                Zs[j, l] = Z[j, l]
            clk[l] = clock[l]
            bnd[l] = band[l]
            lv[l] = live[l]
            cd[l] = code[l]
            ns[l] = nst[l]
            pend[l] = 0
        s = s0
        while s < nsteps:
            ts = t0 + s * dt
            hit = False
            if has_events:
                for l in range(L):
                    if lv[l] != 0 and not clk[l] >= dt:
                        pend[l] = 1
                        hit = True
            # the vectorised loop: one step of every lane, kept only where it counts
            for l in range(L):
                for a in range(dim):
                    x[a] = Zs[a, l]
                    k[a] = Zs[dim + a, l]
                for j in range(nb):
                    chi[j] = complex(Zs[2 * dim + 2 * j, l], Zs[2 * dim + 2 * j + 1, l])
                c = step(ts, dt, x, k, chi, bnd[l], P, S)
                if (lv[l] != 0) & (clk[l] >= dt):
                    for a in range(dim):
                        Zs[a, l] = x[a]
                        Zs[dim + a, l] = k[a]
                    for j in range(nb):
                        Zs[2 * dim + 2 * j, l] = chi[j].real
                        Zs[2 * dim + 2 * j + 1, l] = chi[j].imag
                    clk[l] -= dt
                    ns[l] += 1
                    cd[l] = c
                    if c != st.OK:
                        lv[l] = 0
            s += 1
            if hit:
                break
        for l in range(L):
            for j in range(nz):
                Z[j, l] = Zs[j, l]
            clock[l] = clk[l]
            live[l] = lv[l]
            code[l] = cd[l]
            nst[l] = ns[l]
        return s

    return lane_steps


def build_advance(advance_packet, start, finish, scratch_layout, context_layout, dim, nb, ncomp, nev, lanes=None):
    """Build the CPU driver that advances all packets by one record interval (a :class:`ShardedAdvance`).

    Signature of the returned function::

        advance(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                nbatch, shard, rows, counts) -> packet_steps

    For each packet with status OK it calls ``start``, ``advance_packet``
    (:mod:`packets.packet`: steps and events from t0 to t0 + nsteps dt) and
    ``finish`` (checks, measurement context, observables and event counts)
    into the shard's row ``pid % nbatch``.  ``rows`` (nshards, nbatch, ncomp)
    and ``counts`` (nshards, nbatch) receive the tallies of each shard of
    ``shard`` consecutive packets, summed in packet order; :func:`tree_reduce`
    combines shards.  ``scratch_layout`` and ``context_layout`` are the
    layouts of :mod:`packets.scratch` the per-packet kernels were built for.

    ``lanes=(step, cross, has_events)`` (fixed-step integrators) selects the
    lane driver (module docstring): ``step`` is the fixed step kernel that
    ``advance_packet`` calls and ``cross`` its event kernel
    (:func:`packets.packet.make_packet_kernels`); the result is bit-identical
    to the per-packet loop.
    """
    if lanes is not None:
        run_chunk = _make_lane_chunk(lanes, finish, scratch_layout, context_layout, dim, nb, nev)
    else:
        run_chunk = _make_packet_chunk(advance_packet, start, finish, make_allocator(scratch_layout, "cpu"),
                                       make_allocator(context_layout, "cpu"), dim, nb, nev)

    return ShardedAdvance(compile_cache.enable(run_chunk))


_POOLS = {}


def _pool(nthreads):
    """The driver's thread pool of ``nthreads`` workers (one per process and size, made on first use).

    Keyed by the process id as well: a pool's threads do not survive ``fork``,
    so a forked worker (multiprocessing, Dask) makes its own.
    """
    key = (os.getpid(), nthreads)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(nthreads, thread_name_prefix="packets-shard")
    return pool


class ShardedAdvance:
    """Advance all packets by one record interval: shards run on threads, each one compiled call.

    Calling it::

        advance(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                nbatch, shard, rows, counts) -> packet_steps

    runs ``run_chunk(c, ...)`` (the compiled per-shard loop, GIL released) for
    every shard c of ``shard`` consecutive packets, writing the shard's
    tallies into ``rows[c]`` and ``counts[c]``, on
    ``min(numba.get_num_threads(), nshards)`` threads, and returns the number
    of packet steps taken.  Shards share no output, so the result does not
    depend on the number of threads or on the order in which shards finish.

    Why Python threads and not a ``prange`` loop: numba finalises every
    compiled function by linking all of its callees into one module and
    optimising and emitting that whole module again, so each extra level of
    compiled call chain pays again for all of the physics below it.  A
    ``parallel=True`` loop over ``run_chunk`` was such a level and cost about
    a quarter of a variant's cold compile.  A shard is thousands of packets
    over a whole record interval, so one Python call per shard costs nothing
    measurable.

    Attributes
    ----------
    run_chunk : numba dispatcher
        ``run_chunk(c, X, ..., nbatch, shard, rows[c], counts[c]) -> steps``
        of :func:`_make_packet_chunk` or :func:`_make_lane_chunk`.
    """

    def __init__(self, run_chunk):
        self.run_chunk = run_chunk

    def __call__(self, X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1, nbatch, shard,
                 rows, counts):
        nsh = (X.shape[0] + shard - 1) // shard

        def one(c):
            return self.run_chunk(c, X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                                  nbatch, shard, rows[c], counts[c])

        nthreads = min(numba.get_num_threads(), nsh)
        if nthreads <= 1:
            return sum(one(c) for c in range(nsh))
        return sum(_pool(nthreads).map(one, range(nsh)))


def _make_lane_chunk(lanes, finish, scratch_layout, context_layout, dim, nb, nev):
    """``run_chunk`` of the lane driver: blocks of :data:`LANES` packets through :func:`make_lane_steps`."""
    step, cross, has_events = lanes
    lane_steps = make_lane_steps(step, dim, nb, has_events, scratch_layout)
    L = LANES
    nz = 2 * dim + 2 * nb
    # the scratch and context tuples on the stack: no meminfo, so passing the
    # ~40 arrays to finish/cross costs no atomic reference counting (which
    # on the heap tuples cost about a microsecond per packet and interval)
    alloc_scratch = make_allocator(scratch_layout, "cpu_stack")
    alloc_context = make_allocator(context_layout, "cpu_stack")

    xarr = stack_array((dim,), np.float64)
    carr = stack_array((nb,), np.complex128)
    zarr = stack_array((nz, L), np.float64)
    farr = stack_array((L,), np.float64)
    iarr = stack_array((L,), np.int64)
    earr = stack_array((L, max(nev, 1)), np.int64)
    jarr = stack_array((L, dim), np.float64)

    @kernel(nogil=True)
    def run_chunk(c, X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1, nbatch,
                  chunk, rows, crow):
        # all per-packet arrays on the stack and P, rows borrowed (scratch.borrow):
        # the calls below then pass them without reference counting
        n = X.shape[0]
        S = alloc_scratch()
        C = alloc_context()
        P = (borrow(P[sc.P_MODEL]), borrow(P[sc.P_EFIELD]), borrow(P[sc.P_POTENTIAL]), borrow(P[sc.P_B]),
             borrow(P[sc.P_CHANNELS]), borrow(P[sc.P_MAJORANTS]))
        rows = borrow(rows)
        x = xarr()
        k = xarr()
        chi = carr()
        Z = zarr()
        clock = farr()
        band = iarr()
        ev = iarr()
        live = iarr()
        pend = iarr()
        code = iarr()
        nst = iarr()
        evcs = earr()
        jxs = jarr()
        jx = xarr()  # the displacement by events of the lane being crossed or finished
        lo = c * chunk
        hi = min(n, (c + 1) * chunk)
        total = 0
        for b0 in range(lo, hi, L):
            # the block's packets; flagged ones and the tail beyond the shard
            # stay dead and carry a copy of a live lane (finite, harmless values)
            first = -1
            for l in range(L):
                i = b0 + l
                live[l] = 1 if i < hi and STATUS[i] == st.OK else 0
                if live[l] != 0 and first < 0:
                    first = i
            if first < 0:
                continue
            for l in range(L):
                i = b0 + l if live[l] != 0 else first
                for a in range(dim):
                    Z[a, l] = X[i, a]
                    Z[dim + a, l] = K[i, a]
                    jxs[l, a] = 0.0
                for j in range(nb):
                    Z[2 * dim + 2 * j, l] = CHI[i, j].real
                    Z[2 * dim + 2 * j + 1, l] = CHI[i, j].imag
                clock[l] = CLOCK[i]
                band[l] = BAND[i]
                ev[l] = EV[i]
                code[l] = st.OK
                nst[l] = 0
                for j in range(evcs.shape[1]):
                    evcs[l, j] = 0
            # int64, not the literal 0: a literal first argument would compile lane_steps a second time
            s = np.int64(0)
            while s < nsteps:
                s = lane_steps(s, nsteps, t0, dt, Z, clock, band, live, pend, code, nst, P)
                if has_events:
                    ts = t0 + (s - 1) * dt
                    for l in range(L):
                        if pend[l] == 0:
                            continue
                        # step s - 1 of this lane holds a tentative event
                        for a in range(dim):
                            x[a] = Z[a, l]
                            k[a] = Z[dim + a, l]
                            jx[a] = jxs[l, a]
                        for j in range(nb):
                            chi[j] = complex(Z[2 * dim + 2 * j, l], Z[2 * dim + 2 * j + 1, l])
                        cd, bd, ck, e, ns = cross(ts, dt, x, k, chi, band[l], clock[l], ev[l], P, S, key0, key1,
                                                  PID[b0 + l], evcs[l], jx)
                        for a in range(dim):
                            Z[a, l] = x[a]
                            Z[dim + a, l] = k[a]
                            jxs[l, a] = jx[a]
                        for j in range(nb):
                            Z[2 * dim + 2 * j, l] = chi[j].real
                            Z[2 * dim + 2 * j + 1, l] = chi[j].imag
                        band[l] = bd
                        clock[l] = ck
                        ev[l] = e
                        nst[l] += ns
                        code[l] = cd
                        if cd != st.OK:
                            live[l] = 0
            # checks, context and tallies in packet order
            for l in range(L):
                i = b0 + l
                if i >= hi or STATUS[i] != st.OK:
                    continue
                for a in range(dim):
                    x[a] = Z[a, l]
                    k[a] = Z[dim + a, l]
                    jx[a] = jxs[l, a]
                for j in range(nb):
                    chi[j] = complex(Z[2 * dim + 2 * j, l], Z[2 * dim + 2 * j + 1, l])
                total += nst[l]
                b = PID[i] % nbatch
                cd, tallied = finish(t0 + nsteps * dt, nsteps * dt, code[l], x, k, chi, band[l], W[i], evcs[l], jx,
                                     P, S, C, rows[b])
                if tallied:
                    crow[b] += 1
                for a in range(dim):
                    X[i, a] = x[a]
                    K[i, a] = k[a]
                for j in range(nb):
                    CHI[i, j] = chi[j]
                BAND[i] = band[l]
                CLOCK[i] = clock[l]
                EV[i] = ev[l]
                STATUS[i] = cd
        return total

    return run_chunk


def _make_packet_chunk(advance_packet, start, finish, alloc_scratch, alloc_context, dim, nb, nev):
    """``run_chunk`` of the per-packet driver (adaptive integrators)."""

    @kernel(nogil=True)
    def run_chunk(c, X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1, nbatch,
                  chunk, rows, crow):
        # one work item: packets [c*chunk, (c+1)*chunk); scratch allocated once
        n = X.shape[0]
        S = alloc_scratch()
        C = alloc_context()
        x = np.empty(dim)
        k = np.empty(dim)
        chi = np.empty(nb, dtype=np.complex128)
        evc = np.zeros(max(nev, 1), dtype=np.int64)
        jx = np.empty(dim)  # displacement of x by events in this interval
        nst = 0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            if STATUS[i] != st.OK:
                continue
            for a in range(dim):
                x[a] = X[i, a]
                k[a] = K[i, a]
            for j in range(nb):
                chi[j] = CHI[i, j]
            start(evc, jx)
            code, band, clock, ev, ns = advance_packet(t0, dt, nsteps, tol, x, k, chi, BAND[i], CLOCK[i], EV[i],
                                                       P, S, key0, key1, PID[i], evc, jx)
            nst += ns
            b = PID[i] % nbatch
            code, tallied = finish(t0 + nsteps * dt, nsteps * dt, code, x, k, chi, band, W[i], evc, jx, P, S, C,
                                   rows[b])
            if tallied:
                crow[b] += 1
            for a in range(dim):
                X[i, a] = x[a]
                K[i, a] = k[a]
            for j in range(nb):
                CHI[i, j] = chi[j]
            BAND[i] = band
            CLOCK[i] = clock
            EV[i] = ev
            STATUS[i] = code
        return nst

    return run_chunk


def tree_reduce(blocks, first):
    """Sum ``blocks[i]`` (global block index ``first + i``) over a fixed binary tree.

    The tree is the one over global indices [0, 2^L): a node covering
    [j 2^l, (j+1) 2^l) is the sum of its two children, and empty children are
    skipped (x + 0 = x exactly).  The result therefore depends only on the
    blocks' global indices, not on how a run was split: the sum over an
    index-aligned half equals the corresponding subtree bit for bit, and
    merging the halves' results reproduces the full run exactly
    (``Result.__add__``, distributed shards, restarts).
    """
    m = blocks.shape[0]
    if m == 0:
        return np.zeros(blocks.shape[1:], dtype=blocks.dtype)
    last = first + m
    level = 0
    while (1 << level) < last:
        level += 1

    def node(lv, j):
        lo = j << lv
        hi = (j + 1) << lv
        if hi <= first or lo >= last:
            return None
        if lv == 0:
            return blocks[lo - first]
        a = node(lv - 1, 2 * j)
        b = node(lv - 1, 2 * j + 1)
        if a is None:
            return b
        if b is None:
            return a
        return a + b

    out = node(level, 0)
    return np.array(out, copy=True)
