"""One packet over one record interval: integration steps plus stochastic events.

:func:`make_packet_advance` composes the stepper of :mod:`packets.eom` with the
event channels into a single kernel function that both drivers (CPU shard
loop, CUDA thread) call once per packet and record interval.  It is
the only place where time stepping and events meet.

Events: null collisions with a constant majorant (docs/scattering.md §3)
------------------------------------------------------------------------
Every channel c supplies a majorant rate G_c (host-computed before the run)
and an ``apply`` kernel that accepts a *tentative* event with probability
rate_c(state)/G_c — for Born scattering through the proposal weight of
:mod:`scattering.born` — and, if accepted, changes the packet's state.
Tentative events form a Poisson process of the constant total rate
G = sum_c G_c, so the time to the next one is drawn once, -ln(u)/G, and
carried by the packet as ``clock``.  The integration step is cut at the
tentative-event time, so the acceptance test sees the packet's state (k, chi)
*at that instant*: the real event rate is exactly rate_c(k(t)) even while a
field drives k.  Null collisions were chosen over the integrated hazard
because they need the total rate only through a bound (the exact
out-scattering rate 1/tau(k) of a general model is a surface integral, far too
costly to evaluate at every step), and the per-event cost is one proposal.

Random numbers come from the counter-based Philox generator
(:mod:`packets.rng`), keyed by (seed, packet id) and counted by the packet's
tentative-event index ``ev``: stream 0 holds (channel choice, next clock) for
event ``ev``; a channel may use stream 1 counters ``16 ev .. 16 ev + 15``
(:func:`event_counter`).  The random stream therefore depends on nothing but
(seed, pid, ev) — not on threads, chunking or backend.

Channel kernel contract (what a channel's ``build`` returns as ``apply``)::

    apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev) -> (status, accepted, new_band)

with ``pc`` the channel's float64 parameter slice.  ``apply`` may change x, k,
chi in place (for example the scattered momentum, the side jump, the
collapsed pseudospin) and returns the new band index (adiabatic packets).
"""
import math

import numba

from .jit import kernel
import numpy as np

from . import rng
from . import scratch as sc
from . import status as st
from .jit import kernel

#: tentative-event randoms: stream 0 (choice, clock); channels: stream 1
CHANNEL_STREAM = 1
#: counters a channel may use per tentative event
COUNTERS_PER_EVENT = 16


@kernel
def event_counter(ev, j):
    """Philox counter of the j-th random block (j < 16) a channel may draw for tentative event ``ev``."""
    return rng.stream_counter(CHANNEL_STREAM, ev * COUNTERS_PER_EVENT + j)


@kernel
def first_clock(key0, key1, pid, gtot):
    """Initial time to the first tentative event, -ln(u)/G (Philox stream 0, counter 2^47)."""
    if gtot <= 0.0:
        return np.inf
    u1, u2 = rng.uniforms2_53(key0, key1, pid, rng.stream_counter(0, 140737488355328))
    return -math.log(u1) / gtot


def compose_channels(applies, offsets, lengths):
    """Chain channel ``apply`` kernels into ``event(c, ...)`` dispatching on index c."""

    # inlined: each compiled (not inlined) level of the call chain has its whole
    # subtree of channels re-optimised when numba finalises it
    @kernel(inline="always")
    def event_none(c, t, x, k, chi, band, P, S, key0, key1, pid, ev):
        return st.CHANNEL, False, band

    event = event_none
    for i, (ap, off, ln) in enumerate(zip(applies, offsets, lengths)):
        def chain(prev, ap=ap, i=i, off=off, ln=ln):
            @kernel(inline="always")
            def event_more(c, t, x, k, chi, band, P, S, key0, key1, pid, ev):
                if c == i:
                    return ap(t, x, k, chi, band, P, S, P[sc.P_CHANNELS][off:off + ln], key0, key1, pid, ev)
                return prev(c, t, x, k, chi, band, P, S, key0, key1, pid, ev)
            return event_more
        event = chain(event)
    return event


def make_packet_advance(step, adaptive, event, nchan):
    """Build ``advance_packet`` for a stepper, optional adaptive driver and channels.

    ``advance_packet(t0, dt, nsteps, tol, x, k, chi, band, clock, ev, P, S, key0, key1, pid, evc, jx)
    -> (status, band, clock, ev, steps)`` integrates from t0 to t0 + nsteps dt.
    ``P`` is the parameter tuple of :mod:`packets.scratch` (``P[P_CHANNELS]``
    the channels' parameters, ``P[P_MAJORANTS]`` their majorants); ``evc``
    (int64[2 nchan + 1]) receives accepted events per channel, band-changing
    events per channel and the number of tentative events.  The displacement
    of x by events (side jumps) is *added* to ``jx`` (float64[dim]), which
    the driver zeroes per packet and interval (``start``): the side-jump
    current is not in dx/dt, only in these jumps.

    Fixed steps: step s covers [t_s, t_s + dt] with t_s = t0 + s dt.  When
    the packet's clock is >= dt no tentative event falls into it and it is
    one call ``step(t_s, dt, ...)`` (the clock then drops by dt); otherwise
    the whole step goes to ``cross`` (see :func:`make_packet_kernels`),
    which cuts it at the tentative events.  The CPU lane driver
    (:mod:`packets.driver_cpu`) takes the very same decisions per packet, so
    it reproduces this function bit for bit.
    """
    return make_packet_kernels(step, adaptive, event, nchan)[0]


def make_packet_kernels(step, adaptive, event, nchan):
    """``(advance_packet, cross)``: see :func:`make_packet_advance`.

    ``cross(ts, dt, x, k, chi, band, clock, ev, P, S, key0, key1, pid, evc, jx)
    -> (status, band, clock, ev, steps)`` advances one packet over one fixed
    step [ts, ts + dt] that contains at least one tentative event
    (clock < dt): integrate to the event, let the chosen channel act,
    repeat, then integrate to ts + dt.  It and the adaptive path share one
    loop, ``run_to_events``.  Both are IR-inlined at their one call site, so
    they are no compiled levels of their own (each level is optimised and
    emitted again with everything below it); the channels' ``apply`` kernels
    stay calls, so the event machinery adds a call, not its code, to the
    loop that runs the plain steps.
    """
    use_adaptive = adaptive is not None
    fixed = not use_adaptive  # a plain closure constant: numba prunes the dead branch
    has_events = nchan > 0
    if adaptive is None:
        @kernel
        def adaptive(t0, t1, dt0, tol, x, k, chi, n, P, S):  # never called
            return st.OK, 0, dt0

    # a compiled level of its own, not IR-inlined: the two-band coherent step is inlined in
    # its callers, and a copy of it in run_chunk (where the lane driver inlines the event path)
    # makes that large function slower to optimise than this small one
    @kernel
    def integrate(ta, tb, dt, tol, x, k, chi, band, P, S):
        # advance from ta to tb (tb - ta <= dt for fixed steps)
        if tb <= ta:
            return st.OK, 0
        if use_adaptive:
            code, ns, hl = adaptive(ta, tb, dt, tol, x, k, chi, band, P, S)
            return code, ns
        return step(ta, tb - ta, x, k, chi, band, P, S), 1

    @kernel(inline="always")
    def tentative(tcur, x, k, chi, band, P, S, key0, key1, pid, ev, evc, jx, gtot):
        # tentative event at tcur: pick the channel, let it act, draw the next clock
        gm = P[sc.P_MAJORANTS]
        u1, u2 = rng.uniforms2_53(key0, key1, pid, rng.stream_counter(0, ev))
        target = u1 * gtot
        c = 0
        acc = gm[0]
        while target >= acc and c < gm.shape[0] - 1:
            c += 1
            acc += gm[c]
        for a in range(x.shape[0]):
            jx[a] -= x[a]
        code, accepted, nb_new = event(c, tcur, x, k, chi, band, P, S, key0, key1, pid, ev)
        for a in range(x.shape[0]):
            jx[a] += x[a]
        if code == st.OK:
            # a channel that leaves a non-finite state is named as the source, not the next check
            for a in range(x.shape[0]):
                if not (math.isfinite(x[a]) and math.isfinite(k[a])):
                    code = st.NAN
            for j in range(chi.shape[0]):
                if not (math.isfinite(chi[j].real) and math.isfinite(chi[j].imag)):
                    code = st.NAN
        if code != st.OK:
            code += (c + 1) * st.SOURCE_STRIDE
        evc[2 * nchan] += 1
        if accepted:
            evc[c] += 1
            if nb_new != band:
                evc[nchan + c] += 1
        return code, nb_new, ev + 1, -math.log(u2) / gtot

    @kernel(inline="always")
    def total_rate(P):
        gm = P[sc.P_MAJORANTS]
        gtot = 0.0
        for c in range(gm.shape[0]):
            gtot += gm[c]
        return gtot

    @kernel(inline="always")
    def run_to_events(tcur, te, dt, tol, x, k, chi, band, clock, ev, P, S, key0, key1, pid, evc, jx):
        # integrate from tcur to te, cut at the tentative events (the clock runs down to each)
        gtot = total_rate(P)
        nst = 0
        code = st.OK
        while True:
            rem = te - tcur
            hit = clock < rem
            tb = tcur + clock if hit else te
            code, ns = integrate(tcur, tb, dt, tol, x, k, chi, band, P, S)
            nst += ns
            if not hit:
                # no further tentative event before te
                clock -= rem
                break
            tcur = tb
            if code != st.OK:
                break
            code, band, ev, clock = tentative(tcur, x, k, chi, band, P, S, key0, key1, pid, ev, evc, jx, gtot)
            if code != st.OK:
                break
        return code, band, clock, ev, nst

    # IR-inlined at its one call site (advance_packet, or the lane driver's run_chunk)
    @kernel(inline="always")
    def cross(ts, dt, x, k, chi, band, clock, ev, P, S, key0, key1, pid, evc, jx):
        return run_to_events(ts, ts + dt, dt, 0.0, x, k, chi, band, clock, ev, P, S, key0, key1, pid, evc, jx)

    @kernel
    def advance_packet(t0, dt, nsteps, tol, x, k, chi, band, clock, ev, P, S, key0, key1, pid, evc, jx):
        nst = 0
        code = st.OK
        if not has_events:
            if use_adaptive:
                code, nst, hl = adaptive(t0, t0 + nsteps * dt, dt, tol, x, k, chi, band, P, S)
                return code, band, clock, ev, nst
            for s in range(nsteps):
                code = step(t0 + s * dt, dt, x, k, chi, band, P, S)
                nst += 1
                if code != st.OK:
                    break
            return code, band, clock, ev, nst
        if fixed:
            for s in range(nsteps):
                ts = t0 + s * dt
                if clock >= dt:
                    code = step(ts, dt, x, k, chi, band, P, S)
                    nst += 1
                    clock -= dt
                else:
                    code, band, clock, ev, ns = cross(ts, dt, x, k, chi, band, clock, ev, P, S, key0, key1, pid,
                                                      evc, jx)
                    nst += ns
                if code != st.OK:
                    break
            return code, band, clock, ev, nst
        # adaptive steps: the whole interval is one integration, cut at the events
        return run_to_events(t0, t0 + nsteps * dt, dt, tol, x, k, chi, band, clock, ev, P, S, key0, key1, pid,
                             evc, jx)

    return advance_packet, cross


#: |chi|^2 - 1 beyond which a coherent packet is flagged NORM_DRIFT
NORM_TOL = 1e-8


def make_packet_finish(context, tally, dim, nb, ncomp, nev, check_norm=True):
    """Build ``start``/``finish`` kernels shared by the CPU and CUDA drivers.

    ``start(evc, jx)`` zeroes the event counters and the event-displacement
    accumulator of one packet before :func:`make_packet_advance`'s
    ``advance_packet``.  ``finish(t_end, interval, code, x, k, chi, band,
    weight, evc, jx, P, S, C, row) -> (code, tallied)`` then: checks the state
    (finite x, k, chi; |chi|^2 = 1 within :data:`NORM_TOL`), adds the event
    counts to the last ``nev`` components of ``row``, and for a good packet
    evaluates the measurement context at ``t_end``, sets the side-jump
    velocity C[C_XJUMP] = jx / interval and adds the
    observables into ``row``.  ``row`` is the packet's batch row (accumulated
    on the CPU, a per-thread row on the GPU).
    """

    @kernel
    def start(evc, jx):
        for j in range(evc.shape[0]):
            evc[j] = 0
        for a in range(dim):
            jx[a] = 0.0

    @kernel(inline="always")
    def finish(t_end, interval, code, x, k, chi, band, weight, evc, jx, P, S, C, row):
        if code == st.OK:
            good = True
            for a in range(dim):
                if not (math.isfinite(x[a]) and math.isfinite(k[a])):
                    good = False
            nrm = 0.0
            for j in range(nb):
                nrm += chi[j].real * chi[j].real + chi[j].imag * chi[j].imag
            if not math.isfinite(nrm):
                good = False
            if not good:
                code = st.NAN
            elif check_norm and abs(nrm - 1.0) > NORM_TOL:
                code = st.NORM_DRIFT
        for j in range(nev):
            row[ncomp - nev + j] += evc[j]
        if code != st.OK:
            return code, False
        if not context(t_end, x, k, chi, band, P, S, C):
            return st.SINGULAR, False
        xj = C[sc.C_XJUMP]
        for a in range(dim):
            xj[a] = jx[a] / interval if interval > 0.0 else 0.0
        tally(weight, band, x, k, C, row)
        return st.OK, True

    return start, finish
