"""Per-packet measurement context: what observables see at a record time.

:func:`make_context` builds ``context(t, x, k, chi, n, P, S, C) -> ok``,
an ``@njit`` kernel function that fills the context tuple ``C`` for one
packet; its entries are reached by the names of :mod:`packets.scratch`:

``C[C_XDOT]``      dx/dt (length dim) from the same equations of motion as the stepper
``C[C_KDOT]``      dk/dt
``C[C_VBAND]``     band-velocity part of dx/dt: sum_n |c_n|^2 d eps_n/dk (coherent) or
                   d(eps_n - m.B)/dk (adiabatic); C_XDOT - C_VBAND is the anomalous part
``C[C_AMP]``       band amplitudes c_n = <u_n(x, k)|chi> in the instantaneous eigenbasis
                   (adiabatic: the unit vector of the packet's band)
``C[C_ENERGIES]``  instantaneous band energies (ascending)
``C[C_ENERGY]``    [0] = the packet's energy <chi|H|chi> + U(x)  (adiabatic: eps_n - m.B + U)
``C[C_XJUMP]``     displacement of x by stochastic events (side jumps) during the record
                   interval divided by its length: the side-jump velocity, which is not
                   part of dx/dt (filled by the driver's ``finish`` after ``context``)

Observables (see the ``observables`` package) are ``@njit`` functions of this
context, so every observable sees the same numbers the dynamics uses.
"""
import numba

from .jit import kernel
import numpy as np

from . import linalg
from . import status as st
from . import scratch as sc
from .eom import inlined, make_adiabatic_rates, make_coherent_rates


def make_context(model, field, dynamics, orbital_moment=True, manifold=None):
    """Build the context kernel for ``dynamics`` in {"coherent", "adiabatic"}.

    ``manifold=(lo, hi)``: coherent dynamics inside an active manifold
    (:mod:`packets.manifold`); dx/dt and dk/dt then include the remote-band
    curvature terms of Tu, Li & Yao, Eq. 42.
    """
    dim = model.dim
    nb = model.nbands
    h = inlined(model.h)
    dhdk = inlined(model.dhdk)
    potential = inlined(field.potential)
    has_u = field.has_potential
    eigh = linalg.eigh_for(nb)

    if dynamics == "coherent":
        if manifold is None:
            crates = make_coherent_rates(model, field)

            @kernel(inline="always")
            def rates(t, x, k, chi, P, S, K, j):
                crates(t, x, k, chi, P, S, K, j)
                return True
        else:
            from .manifold import make_manifold_rates

            mrates = make_manifold_rates(model, field, manifold[0], manifold[1])

            @kernel(inline="always")
            def rates(t, x, k, chi, P, S, K, j):
                return mrates(t, x, k, chi, P, S, K, j, S[sc.G1]) != st.SINGULAR

        # inlined into the drivers' per-packet finish: a call boundary would pass the
        # ~40 scratch arrays one by one (and reference-count them) once per packet
        @kernel(inline="always")
        def context(t, x, k, chi, n, P, S, C):
            xd = C[sc.C_XDOT]
            kd = C[sc.C_KDOT]
            vb = C[sc.C_VBAND]
            cb = C[sc.C_AMP]
            w = C[sc.C_ENERGIES]
            en = C[sc.C_ENERGY]
            hm = S[sc.HM]
            v = S[sc.V]
            work = S[sc.WORK]
            dk = S[sc.DHDK]
            M = S[sc.M]
            K = S[sc.K]
            if not rates(t, x, k, chi, P, S, K, 0):
                return False
            for a in range(dim):
                xd[a] = K[0, 0, a]
                kd[a] = K[0, 1, a]
            h(x, k, P[sc.P_MODEL], hm)
            e = linalg.expectation(hm, chi)
            eigh(hm, w, v, work)
            linalg.band_amplitudes(v, chi, cb)
            dhdk(x, k, P[sc.P_MODEL], dk, work)
            for a in range(dim):
                mm = M[dim + a]  # the band matrix of k_a
                linalg.sandwich(v, dk[a], mm)
                acc = 0.0
                for i in range(nb):
                    acc += (cb[i].real ** 2 + cb[i].imag ** 2) * mm[i, i].real
                vb[a] = acc
            if has_u:
                e += potential(x, P[sc.P_POTENTIAL], S[sc.GRAD_U])
            en[0] = e
            return True

        return context

    if dynamics == "adiabatic":
        rates = make_adiabatic_rates(model, field, orbital_moment)

        @kernel(inline="always")
        def context(t, x, k, chi, n, P, S, C):
            xd = C[sc.C_XDOT]
            kd = C[sc.C_KDOT]
            cb = C[sc.C_AMP]
            w = C[sc.C_ENERGIES]
            en = C[sc.C_ENERGY]
            K = S[sc.K]
            ok, e = rates(t, x, k, n, P, S, K, np.int64(0), C[sc.C_VBAND])
            for a in range(dim):
                xd[a] = K[0, 0, a]
                kd[a] = K[0, 1, a]
            h(x, k, P[sc.P_MODEL], S[sc.HM])
            eigh(S[sc.HM], w, S[sc.V], S[sc.WORK])
            for i in range(nb):
                cb[i] = 0.0
            cb[n] = 1.0
            en[0] = e
            return ok

        return context

    raise ValueError(f"unknown dynamics {dynamics!r}; use 'coherent' or 'adiabatic'")
