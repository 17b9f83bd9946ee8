"""CPU driver: runs the composed per-packet step over the ensemble with numba.

Only the loop structure lives here (DESIGN.md §3): ``prange`` over fixed-size
chunks of packets, scratch allocated once per chunk, a private tally block per
chunk, and the chunk blocks summed in a fixed order afterwards — so the result
is bit-identical for any number of threads.
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


def build_advance(advance_packet, context, tally, alloc_scratch, alloc_context, dim, nb, ncomp, nev,
                  check_norm=True):
    """Build the parallel CPU kernel that advances all packets by one record interval.

    Signature of the returned function::

        advance(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                nbatch, chunk, out, counts) -> packet_steps

    For each packet with status OK it calls ``advance_packet``
    (:mod:`packets.packet`: steps and events from t0 to t0 + nsteps dt), checks
    the state (finite, |chi| = 1 within 1e-8), evaluates the measurement
    context and adds the observables, then the event counts (unweighted, the
    last ``nev`` components), into ``out[pid % nbatch]``.
    """
    norm_tol = 1e-8

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
            for j in range(nev):
                evc[j] = 0
            code, band, clock, ev, ns = advance_packet(t0, dt, nsteps, tol, x, k, chi, BAND[i], CLOCK[i], EV[i],
                                                       P, S, key0, key1, PID[i], evc)
            nst += ns
            if code == st.OK:
                good = True
                for a in range(dim):
                    if not (np.isfinite(x[a]) and np.isfinite(k[a])):
                        good = False
                nrm = 0.0
                for j in range(nb):
                    nrm += chi[j].real * chi[j].real + chi[j].imag * chi[j].imag
                if not np.isfinite(nrm):
                    good = False
                if not good:
                    code = st.NAN
                elif check_norm and abs(nrm - 1.0) > norm_tol:
                    code = st.NORM_DRIFT
            b = PID[i] % nbatch
            for j in range(nev):
                rows[b, ncomp - nev + j] += evc[j]
            if code == st.OK:
                ok = context(t0 + nsteps * dt, x, k, chi, band, P, S, C)
                if not ok:
                    code = st.SINGULAR
                else:
                    tally(W[i], band, x, k, C, rows[b])
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
    def advance(X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1, nbatch, chunk,
                out, counts):
        n = X.shape[0]
        nch = (n + chunk - 1) // chunk
        rows = np.zeros((nch, nbatch, ncomp))
        crow = np.zeros((nch, nbatch), dtype=np.int64)
        steps = np.zeros(nch, dtype=np.int64)
        for c in numba.prange(nch):
            steps[c] = run_chunk(c, X, K, CHI, BAND, W, STATUS, PID, CLOCK, EV, t0, dt, nsteps, tol, P, key0, key1,
                                 nbatch, chunk, rows[c], crow[c])
        # fixed-order reduction: identical for any thread count
        total = 0
        for c in range(nch):
            for b in range(nbatch):
                for j in range(ncomp):
                    out[b, j] += rows[c, b, j]
                counts[b] += crow[c, b]
            total += steps[c]
        return total

    return advance
