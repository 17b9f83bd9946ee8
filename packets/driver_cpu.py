"""CPU driver: runs the composed per-packet step over the ensemble with numba.

Only the loop structure lives here (DESIGN.md §3): ``prange`` over fixed-size
shards of packets, scratch allocated once per shard, a private tally block per
shard summed in packet order, and the shard blocks combined over a fixed
binary tree of their global index (:func:`tree_reduce`) — so the result is
bit-identical for any number of threads and for any split of the run at
shard boundaries.
"""
import numba
import numpy as np

from . import status as st
from .jit import kernel


def compose_tally(kernels, offsets):
    """Chain observable kernels into one ``tally(weight, n, x, k, C, row)``.

    Each kernel adds to ``row[off:off+ncomp]``; offsets are compile-time
    constants of the closure.
    """

    @numba.njit
    def tally_none(weight, n, x, k, C, row):
        pass

    tally = tally_none
    for kern, off in zip(kernels, offsets):
        def chain(prev, kern=kern, off=off):
            @numba.njit
            def tally_more(weight, n, x, k, C, row):
                prev(weight, n, x, k, C, row)
                kern(weight, n, x, k, C, row[off:])
            return tally_more
        tally = chain(tally)
    return tally


def build_advance(advance_packet, start, finish, alloc_scratch, alloc_context, dim, nb, ncomp, nev):
    """Build the parallel CPU kernel that advances all packets by one record interval.

    Signature of the returned function::

        advance(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                nbatch, shard, rows, counts) -> packet_steps

    For each packet with status OK it calls ``start``, ``advance_packet``
    (:mod:`packets.packet`: steps and events from t0 to t0 + nsteps dt) and
    ``finish`` (checks, measurement context, observables and event counts)
    into the shard's row ``pid % nbatch``.  ``rows`` (nshards, nbatch, ncomp)
    and ``counts`` (nshards, nbatch) receive the tallies of each shard of
    ``shard`` consecutive packets, summed in packet order; :func:`tree_reduce`
    combines shards.
    """

    @kernel
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
        nst = 0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            if STATUS[i] != st.OK:
                continue
            for a in range(dim):
                x[a] = X[i, a]
                k[a] = K[i, a]
            for j in range(nb):
                chi[j] = CHI[i, j]
            start(evc, S)
            code, band, clock, ev, ns = advance_packet(t0, dt, nsteps, tol, x, k, chi, BAND[i], CLOCK[i], EV[i],
                                                       P, S, key0, key1, PID[i], evc)
            nst += ns
            b = PID[i] % nbatch
            code, tallied = finish(t0 + nsteps * dt, nsteps * dt, code, x, k, chi, band, W[i], evc, P, S, C,
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

    @numba.njit(parallel=True)
    def advance(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1, nbatch, shard,
                rows, counts):
        # one work item per shard of ``shard`` consecutive packets; the shard's
        # tallies are summed sequentially in packet order into rows[s]
        n = X.shape[0]
        nsh = (n + shard - 1) // shard
        steps = np.zeros(nsh, dtype=np.int64)
        for c in numba.prange(nsh):
            steps[c] = run_chunk(c, X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                                 nbatch, shard, rows[c], counts[c])
        total = 0
        for c in range(nsh):
            total += steps[c]
        return total

    return advance


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
