"""The Simulation: composes model, ensemble, field, dynamics, channels and observables.

``Simulation(...).run(t_end, record_every)`` advances the ensemble on the
chosen backend and returns a :class:`packets.result.Result`.  The per-packet
physics is built once by the factories of :mod:`packets.eom` and
:mod:`packets.context`; the CPU driver (:mod:`packets.driver_cpu`) only loops.
Compiled kernels are cached per process by what they close over (model
fillers, field functions, dynamics, integrator, observables), so a second
Simulation with other parameter *values* does not recompile.
"""
import dataclasses
import math
import os
import time
import warnings

import numba
import numpy as np

from . import status as st
from .context import make_context
from . import compile_cache, rng, scratch
from .driver_cpu import build_advance, compose_tally, tree_reduce
from .eom import make_adaptive_advance, make_adiabatic_step, make_coherent_step, make_coherent_step2
from .units import Q
from .field import Field
from .packet import compose_channels, first_clock, make_packet_finish, make_packet_kernels
from .plugins import BuildContext, plugin_key
from .result import Result
from .spec import Spec
from .state import COMPONENTS as STATE_COMPONENTS, ENSEMBLE as ENSEMBLE_COMPONENTS, NAMES as STATE_NAMES
from .state import PacketState, gpu_schema
from .variant import Variant

DYNAMICS = ("coherent", "adiabatic")
INTEGRATORS = ("rk4", "adaptive")
ON_FLAG = ("warn", "raise", "ignore")
#: largest dt * omega_c of a fixed-step adiabatic run in B: the RK4 step of a cyclotron orbit keeps
#: |k - k_c|^2 (the energy of a parabolic band) to (dt omega_c)^6/72 = 3.4e-6 and the phase to
#: (dt omega_c)^5/120 = 8e-6 per step
CYCLOTRON_STEP = 0.25
BACKENDS = ("cpu", "cuda", "auto")

_KERNEL_CACHE = {}



def _round_down(v, digits=3):
    """``v`` rounded *down* to ``digits`` significant digits (a dt that passes the check)."""
    e = math.floor(math.log10(v)) - (digits - 1)
    return math.floor(v / 10.0 ** e) * 10.0 ** e


def _versions():
    import importlib.metadata as md
    import platform

    import packets
    out = {"packets": packets.__version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "scipy", "h5py", "numba-cuda", "dask"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


@compile_cache.host_kernel
def _init_clocks(clock, pid, key0, key1, gtot):
    for i in range(clock.shape[0]):
        clock[i] = first_clock(key0, key1, pid[i], gtot)


class Simulation:
    """A Monte Carlo run of a packet ensemble.

    Parameters
    ----------
    model : packets.models.BandModel
    ensemble : packets.ensemble.Ensemble
        Initial state (copied; the ensemble object is not modified).
    field : packets.Field, optional
        External fields (default: none).
    dynamics : {"coherent", "adiabatic"}
        Equations of motion (see :mod:`packets.eom`).
    channels : sequence
        Stochastic event channels (scattering, dephasing, relaxation, user
        channels).  A channel is any object with a ``name`` and a method
        ``build(ctx)`` (``ctx``: a :class:`packets.plugins.BuildContext`)
        returning a dict with ``apply`` (the ``@njit`` kernel of the contract
        in :mod:`packets.packet`), ``params`` (float64 array) and
        ``majorant`` (the null-collision bound on its rate, 1/time); optional
        ``cache_key()`` lets compiled kernels be reused.
    observables : sequence
        Objects following the protocol of the ``observables`` package.
    dt : float
        Time step (hbar/E0).  Checked against the model's band spread.
    integrator : {"rk4", "adaptive"}
        Fixed-step fourth-order scheme, or step-doubling error control with
        local tolerance ``tol`` (then ``dt`` is the initial step).
    tol : float
        Local error tolerance of the adaptive integrator.
    backend : {"cpu", "cuda", "auto"}
        "cpu": numba, parallel over packets on all cores; "cuda": one GPU
        thread per packet (raises a clear error when no GPU or CUDA compiler
        is usable); "auto": the GPU when usable, else the CPU (it warns which).
        The result records the backend, the device name and versions.
    nbatch : int
        Number of independent packet batches for error bars (>= 2).
    shard : int
        Packets per work item (default 4096).  Each shard's tallies are summed
        in packet order and shards are combined over a fixed binary tree of
        their global index (pid // shard), so results are bit-identical for
        any thread count, and runs split at shard boundaries (restarts,
        distributed shards, merged half-runs) reproduce the full run exactly.
    orbital_moment : bool
        Adiabatic dynamics with B: include the orbital-moment energy -m.B
        (Wong & Tserkovnyak 2021, Eqs. 35-40).
    progress : bool or None
        tqdm progress bar: None shows it only on a terminal and only for
        runs longer than ~2 s; False never.
    check_dt : bool
        Refuse a time step too large for the band spread (default True).
    manifold : (int, int), optional
        Coherent dynamics restricted to the active manifold of bands
        lo..hi-1, with the remote bands entering through their non-Abelian
        curvature (Tu, Li & Yao, Eqs. 34, 42; :mod:`packets.manifold`).  The
        ensemble's pseudospins must lie in the manifold.
    seed : int, optional
        Seed of the event random streams (default: the ensemble's seed).  The
        Philox key is derived from it through its own SeedSequence spawn key, so
        it is independent of the stream that sampled the ensemble.
    on_flag : {"warn", "raise", "ignore"}
        What :meth:`run` does when packets are flagged (a non-finite state, a
        majorant violated, a channel error, ...; :mod:`packets.status`):
        "warn" (default) emits one :class:`packets.status.FlaggedPacketsWarning`
        per run naming the count, the reasons, what flagged them (the dynamics
        or which channel) and the fraction of the ensemble weight lost;
        "raise" stops with :class:`packets.status.FlaggedPacketsError` after the
        first record interval that flagged any (everything recorded so far is
        kept: ``result()``, ``checkpoint()`` and ``run()`` still work).
        ``Result.flags`` counts them by reason and source in any case.
    """

    def __init__(self, model, ensemble, field=None, dynamics="coherent", channels=(), observables=(), dt=0.05,
                 integrator="rk4", tol=1e-9, backend="cpu", nbatch=32, shard=4096, orbital_moment=True,
                 progress=None, check_dt=True, seed=None, manifold=None, on_flag="warn"):
        if dynamics not in DYNAMICS:
            raise ValueError(f"unknown dynamics {dynamics!r}; choose one of {DYNAMICS}")
        if on_flag not in ON_FLAG:
            raise ValueError(f"unknown on_flag {on_flag!r}; choose one of {ON_FLAG}")
        self.on_flag = on_flag
        if integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {integrator!r}; choose one of {INTEGRATORS}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        self.device = "cpu"
        if backend in ("cuda", "auto"):
            backend = self._resolve_backend(backend)
        if not (isinstance(dt, (int, float)) and dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive finite number, got {dt!r}")
        if int(nbatch) < 2:
            raise ValueError("nbatch must be >= 2 to estimate error bars")
        model.check()
        field = Field(dim=model.dim) if field is None else field
        if field.dim != model.dim:
            raise ValueError(f"the field is {field.dim}-D but the model is {model.dim}-D; give E with {model.dim} "
                             "components")
        self.source = None
        if hasattr(ensemble, "load") and hasattr(ensemble, "n"):
            # an EnsembleSource: validate and build on its first packets; the
            # whole ensemble is only ever generated task by task (run(stream=True))
            self.source = ensemble
            ensemble = ensemble.load(0, min(ensemble.n, int(shard)))
        else:
            from .distributed import check_memory

            check_memory(len(ensemble.x), model.dim, model.nbands, copies=1.0, what="a copy of the ensemble")
        if hasattr(ensemble, "check_model"):
            ensemble.check_model(model)
        for name, shape in (("x", (model.dim,)), ("k", (model.dim,)), ("chi", (model.nbands,))):
            arr = getattr(ensemble, name)
            if arr.shape[1:] != shape:
                raise ValueError(f"ensemble.{name} has shape {arr.shape}, expected (n,) + {shape} for this model")
        if manifold is not None:
            if dynamics != "coherent":
                raise ValueError("manifold=(lo, hi) needs dynamics='coherent'")
            lo, hi = (int(manifold[0]), int(manifold[1]))
            if not (0 <= lo < hi <= model.nbands):
                raise ValueError(f"manifold must be (lo, hi) with 0 <= lo < hi <= nbands = {model.nbands}, got "
                                 f"{manifold!r}")
            if hi - lo == model.nbands:
                manifold = None  # the whole band set: plain coherent dynamics
            else:
                manifold = (lo, hi)
        if int(shard) < 1:
            raise ValueError("shard must be >= 1")
        names = [o.name for o in observables]
        if len(set(names)) != len(names):
            raise ValueError(f"observable names must be unique, got {names}")
        if seed is None:
            seed = getattr(ensemble, "seed", None)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        #: the configuration, held once (self.model, self.dt, ... read it)
        self.spec = Spec(model=model, field=field, dynamics=dynamics, channels=tuple(channels),
                         observables=tuple(observables), dt=float(dt), integrator=integrator, tol=float(tol),
                         backend=backend, nbatch=int(nbatch), shard=int(shard), orbital_moment=bool(orbital_moment),
                         seed=seed, manifold=manifold)
        self.progress = progress
        # the packet state (copied; the event clocks and counters start afresh)
        self.packets = PacketState.from_arrays({n: getattr(ensemble, n) for n in ENSEMBLE_COMPONENTS}, model.dim,
                                               model.nbands)
        k0, k1 = np.random.SeedSequence(self.seed, spawn_key=(7,)).generate_state(2, np.uint32)
        self.key = (np.uint64(k0), np.uint64(k1))
        self._ensemble_info = {"kind": getattr(ensemble, "kind", None), "info": getattr(ensemble, "info", None),
                               "seed": getattr(ensemble, "seed", None)}
        if np.any((self.band < 0) | (self.band >= model.nbands)):
            raise ValueError(f"ensemble band indices must lie in [0, {model.nbands - 1}]")
        bad = ~(np.all(np.isfinite(self.x), axis=1) & np.all(np.isfinite(self.k), axis=1)
                & np.all(np.isfinite(self.chi), axis=1) & np.isfinite(self.weight))
        if np.any(bad):
            self.status[bad & (self.status == st.OK)] = st.NAN + st.SOURCE_INITIAL * st.SOURCE_STRIDE
        if self.manifold is not None:
            from .manifold import manifold_leakage

            ok = np.flatnonzero(self.status == st.OK)
            leak = manifold_leakage(model, self.k[ok], self.x[ok], self.chi[ok], *self.manifold)
            if leak.size and leak.max() > 1e-8:
                i = int(ok[np.argmax(leak)])
                raise ValueError(f"packet {i} has {leak.max():.3g} of its weight outside the active manifold "
                                 f"{self.manifold}; build the ensemble with pseudospins in bands "
                                 f"{self.manifold[0]}..{self.manifold[1] - 1}")
        self.t = 0.0
        self.packet_steps = 0
        self._runner = None
        self._task_status = None
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._plan = None
        self._records = []
        if check_dt:
            self._check_time_step()
        self._build()

    # ------------------------------------------------------------------
    @staticmethod
    def _gpu_usable():
        import importlib.util

        if importlib.util.find_spec("numba_cuda") is None and importlib.util.find_spec("numba.cuda") is None:
            return False, "numba-cuda is not installed (pip install 'packets[cuda12]')"
        import gpu

        return gpu.available(allow_simulator=True)

    def _resolve_backend(self, backend):
        """'cuda': require a usable GPU and compiler (clear error otherwise); 'auto': GPU if present."""
        ok, why = self._gpu_usable()
        if backend == "cuda" and not ok:
            raise ValueError(f"backend='cuda' is not available here: {why}; use backend='cpu' or 'auto'")
        if ok:
            import gpu

            self.device = gpu.device_info().get("name", "cuda")
            resolved = "cuda"
        else:
            resolved = "cpu"
        if backend == "auto":
            import warnings

            warnings.warn(f"backend='auto' chose {resolved!r} ({self.device if ok else why})", stacklevel=3)
        return resolved

    def _check_time_step(self):
        """Refuse a fixed dt the ensemble's initial states show to be too large.

        Coherent dynamics: dt * (band spread) <= 1 rad of inter-band phase per step.  Adiabatic
        dynamics in a magnetic field: dt * omega_c <= :data:`CYCLOTRON_STEP`, where omega_c =
        |q| |B| ||d^2 eps_n / dk^2|| is the largest cyclotron frequency of the packets' orbits
        (|q| B / m* for a parabolic band; the Hessian by central differences of the band
        energies, its spectral norm, the largest over a sample of the ensemble).
        """
        if self.integrator == "adaptive":
            return  # adaptive: dt is only the first step
        sel = np.flatnonzero(self.status == st.OK)
        if sel.size == 0:
            return
        if self.dynamics == "adiabatic" and self.field.has_B:
            self._check_cyclotron_step(sel[:: max(1, sel.size // 512)])
        if self.model.nbands < 2 or self.dynamics != "coherent":
            return
        sel = sel[:: max(1, sel.size // 4096)]
        w = self.model.energies(self.k[sel], self.x[sel])
        spread = float(np.max(w[:, -1] - w[:, 0]))
        if self.dt * spread > 1.0:
            raise ValueError(f"dt = {self.dt:g} is too large for the band spread {spread:.4g} of this ensemble "
                             f"(phase advance dt*spread = {self.dt * spread:.3g} rad per step > 1); "
                             f"use dt <= {_round_down(1.0 / spread)} (or integrator='adaptive')")

    def _check_cyclotron_step(self, sel):
        k, x, band = self.k[sel], self.x[sel], self.band[sel]
        d = k.shape[1]
        rows = np.arange(sel.size)
        scale = max(1.0, float(np.max(np.abs(k))))
        h = 1e-4 * scale

        def eps(dk):
            return self.model.energies(k + dk, x)[rows, band]

        hess = np.empty((sel.size, d, d))
        e0 = eps(np.zeros(d))
        for a in range(d):
            ea = np.zeros(d)
            ea[a] = h
            hess[:, a, a] = (eps(ea) - 2 * e0 + eps(-ea)) / h ** 2
            for b in range(a + 1, d):
                eb = np.zeros(d)
                eb[b] = h
                mixed = eps(ea + eb) - eps(ea - eb) - eps(eb - ea) + eps(-ea - eb)
                hess[:, a, b] = hess[:, b, a] = mixed / (4 * h * h)
        curv = np.max(np.abs(np.linalg.eigvalsh(hess)), axis=1)
        omega = float(np.max(np.abs(Q) * np.linalg.norm(self.field.B) * curv))
        if np.isfinite(omega) and self.dt * omega > CYCLOTRON_STEP:
            raise ValueError(f"dt = {self.dt:g} is too large for the cyclotron frequency {omega:.4g} of this ensemble "
                             f"in B = {self.field.B.tolist()} (dt*omega_c = {self.dt * omega:.3g} > {CYCLOTRON_STEP}: "
                             f"the fourth-order step would change each packet's energy by about "
                             f"(dt omega_c)^6/72 = {(self.dt * omega) ** 6 / 72:.2g} per step); use dt <= "
                             f"{_round_down(CYCLOTRON_STEP / omega)} (or integrator='adaptive')")

    def _build(self):
        model, field = self.model, self.field
        layout = {}
        kernels = []
        offsets = []
        okeys = []
        off = 0
        ctx = self.build_context()
        for o in self.observables:
            nc, labels, shape, kern = o.build(ctx)
            layout[o.name] = (off, nc, list(labels), tuple(shape))
            kernels.append(kern)
            okeys.append((plugin_key(o, kern), nc, tuple(shape)))
            offsets.append(off)
            off += nc
        if len(self.channels) > st.SOURCE_INITIAL - 1:
            raise ValueError(f"at most {st.SOURCE_INITIAL - 1} channels (status values name the channel that flagged "
                             f"a packet), got {len(self.channels)}")
        applies, clens, pcs, gmax, ckeys, resolved = [], [], [], [], [], []
        names = set(layout)
        for ch in self.channels:
            spec = ch.build(ctx)
            name = getattr(ch, "name", type(ch).__name__)
            if not isinstance(spec, dict) or not {"apply", "params", "majorant"} <= set(spec):
                raise TypeError(f"channel {name!r}: build(ctx) must return a dict with 'apply', 'params' and "
                                "'majorant' (see packets.packet)")
            if not isinstance(spec["apply"], numba.core.registry.CPUDispatcher):
                raise TypeError(f"channel {name!r}: 'apply' must be a @numba.njit function")
            pc = np.ascontiguousarray(np.atleast_1d(np.asarray(spec["params"], dtype=np.float64)))
            if not np.all(np.isfinite(pc)):
                raise ValueError(f"channel {name!r}: parameters contain NaN or inf")
            g = float(spec["majorant"])
            if not (np.isfinite(g) and g >= 0.0):
                raise ValueError(f"channel {name!r}: majorant rate must be finite and >= 0, got {g}")
            applies.append(spec["apply"])
            clens.append(pc.size)
            pcs.append(pc)
            gmax.append(g)
            ckeys.append((plugin_key(ch, spec["apply"]), pc.size))
            # a majorant estimated from this ensemble is fixed in the spec, so that every rebuild of
            # this run (resume, stream and Dask tasks) uses it instead of estimating again from the
            # packets it holds: the event streams, and so the results, do not depend on the split
            fix = getattr(ch, "with_majorant", None)
            resolved.append(fix(g) if callable(fix) else ch)
        if any(r is not c for r, c in zip(resolved, self.channels)):
            self.spec = self.spec.replace(channels=tuple(resolved))
        nchan = len(applies)
        self.channel_names = [getattr(ch, "name", type(ch).__name__) for ch in self.channels]
        self.nev = 2 * nchan + 1 if nchan else 0
        if nchan:
            labels = ([f"accepted_{n}" for n in self.channel_names] + [f"band_change_{n}" for n in self.channel_names]
                      + ["tentative"])
            layout["events"] = (off, self.nev, labels, (self.nev,))
            off += self.nev
        self.pc = np.concatenate(pcs) if pcs else np.zeros(1)
        self.gmax = np.array(gmax if gmax else [0.0], dtype=np.float64)
        gtot = float(np.sum(self.gmax)) if nchan else 0.0
        if nchan and gtot > 0:
            _init_clocks(self.clock, self.pid, self.key[0], self.key[1], gtot)
        self.layout = layout
        self.ncomp = max(off, 1)
        self.variant = Variant.of(self.spec, okeys, ckeys)
        if self.variant in _KERNEL_CACHE:
            self._advance = _KERNEL_CACHE[self.variant]
            return
        if self.dynamics == "coherent" and self.manifold is not None:
            from .manifold import make_manifold_step

            step = make_manifold_step(model, field, *self.manifold)
        elif self.dynamics == "coherent":
            step = make_coherent_step2(model, field) if model.nbands == 2 else make_coherent_step(model, field)
        else:
            step = make_adiabatic_step(model, field, self.orbital_moment)
        adaptive = make_adaptive_advance(model, step) if self.integrator == "adaptive" else None
        event = compose_channels(applies, self.variant.channel_offsets(), clens)
        advance_packet, cross = make_packet_kernels(step, adaptive, event, nchan)
        context = make_context(model, field, self.dynamics, self.orbital_moment, self.manifold)
        tally = compose_tally(kernels, offsets)
        start, finish = make_packet_finish(context, tally, model.dim, model.nbands, self.ncomp, self.nev)
        self._parts = (advance_packet, start, finish)
        s_layout = scratch.scratch_layout(model.dim, model.nbands, self.variant.scratch_groups())
        c_layout = scratch.context_layout(model.dim, model.nbands)
        if self.backend == "cuda":
            import gpu

            # under numba's CUDA simulator these per-packet kernels are entry points called from Python
            for fn in (advance_packet, start, finish):
                compile_cache.enable(fn)
            adv = gpu.build_cuda_advance(advance_packet, start, finish, scratch.make_allocator(s_layout, "cuda"),
                                         scratch.make_allocator(c_layout, "cuda"), gpu_schema(), model.dim,
                                         model.nbands, self.ncomp, self.nev)
        else:
            # the lane driver (packets.driver_cpu) vectorises fixed steps across packets; it pays for the
            # closed-form two-band coherent step, whose loop LLVM vectorises.  Not with SVML: vectorised
            # transcendental functions would not reproduce the scalar (per-packet, GPU) results bit for bit.
            lanes = None
            if (adaptive is None and self.dynamics == "coherent" and self.manifold is None and model.nbands == 2
                    and not numba.config.USING_SVML):
                lanes = (step, cross, nchan > 0)
            adv = build_advance(advance_packet, start, finish, s_layout, c_layout, model.dim, model.nbands,
                                self.ncomp, self.nev, lanes=lanes)
        _KERNEL_CACHE[self.variant] = adv
        self._advance = adv

    def _params(self):
        """The parameter tuple P of the kernels, in the order of :data:`packets.scratch.PARAMETER_SLOTS`."""
        values = {"P_MODEL": self.model.params, "P_EFIELD": self.field.efield_params,
                  "P_POTENTIAL": self.field.potential_params, "P_B": self.field.B, "P_CHANNELS": self.pc,
                  "P_MAJORANTS": self.gmax}
        return tuple(values[name] for name, _meaning in scratch.PARAMETER_SLOTS)

    def _first_shard(self):
        """Global index of the first shard: pid[0] // shard for pid-aligned contiguous runs, else 0."""
        if self.pid.size and self.pid[0] % self.shard == 0:
            return int(self.pid[0] // self.shard)
        return 0

    def _interval(self, nsteps):
        if self.backend == "cuda":
            # ensemble stays on the device across record intervals (gpu.CudaRunner)
            if self._runner is None:
                self._runner = self._advance.runner(self.packets.as_dict(), self._params())
            out = np.zeros((self.nbatch, self.ncomp))
            counts = np.zeros(self.nbatch, dtype=np.int64)
            ns = self._runner.advance(self.t, self.dt, nsteps, self.tol, self.key[0], self.key[1], self.nbatch, out,
                                      counts, P=self._params())
            self.packet_steps += int(ns)
            self.t = self.t + nsteps * self.dt
            self._records.append((self.t, out, counts, self.field.E_at(self.t)))
            return
        n = self.x.shape[0]
        nsh = max((n + self.shard - 1) // self.shard, 1)
        rows = np.zeros((nsh, self.nbatch, self.ncomp))
        crows = np.zeros((nsh, self.nbatch), dtype=np.int64)
        # the CPU driver takes the state arrays in the order of the schema (packets.state.NAMES)
        ns = self._advance(*self.packets.as_dict().values(), self.t, self.dt, nsteps, self.tol, self._params(),
                           self.key[0], self.key[1], self.nbatch, self.shard, rows, crows)
        first = self._first_shard()
        out = tree_reduce(rows, first)
        counts = tree_reduce(crows, first)
        self.packet_steps += int(ns)
        self.t = self.t + nsteps * self.dt
        self._records.append((self.t, out, counts, self.field.E_at(self.t)))

    # ------------------------------------------------------------------
    def run(self, t_end=None, record_every=None, checkpoint=None, checkpoint_every=1, client=None, workers=None,
            stream=False, task_size=None):
        """Advance to time ``t_end`` recording observables every ``record_every``.

        ``record_every`` must be a multiple of ``dt`` (default: ``t_end``, i.e.
        one record at the end); the state at the current time is recorded first
        when nothing has been recorded yet.  Calling ``run`` again continues
        from where the last run stopped; after :meth:`resume`, ``run()`` with no
        arguments finishes the interrupted plan.  Returns the :class:`Result`
        of all records so far.

        Parameters
        ----------
        checkpoint : str, optional
            Path of a checkpoint file rewritten (atomically, with checksum)
            every ``checkpoint_every`` record intervals and at the end; a run
            killed at any moment resumes from it with :meth:`resume`, losing
            at most one checkpoint interval and giving bit-identical results.
        client : dask.distributed.Client, optional
            Run pid-range tasks on this Dask cluster (:mod:`packets.distributed`).
        workers : int, optional
            Start a LocalCluster of this many single-threaded processes.
        stream : bool
            Run the tasks one after another in this process (constant memory;
            required when the Simulation was built on an EnsembleSource).
        task_size : int, optional
            Packets per task: a power-of-two multiple of ``shard``.  Results are
            identical for any number of workers with the same seed and sizes.
        """
        if client is not None or workers or stream or self.source is not None:
            if checkpoint is not None:
                raise ValueError("checkpoint= applies to in-memory runs; a sharded run (stream/client/workers/"
                                 "EnsembleSource) restarts by re-running its lost tasks, which are pure functions")
            return self._run_sharded(t_end, record_every, client, workers, task_size)
        if t_end is None:
            if self._plan is None:
                raise ValueError("give t_end (no interrupted run to continue)")
            t_end, record_every = self._plan["t_end"], self._plan["record_every"]
            checkpoint = checkpoint or self._plan.get("checkpoint")
            checkpoint_every = self._plan.get("checkpoint_every", checkpoint_every)
        t_end = float(t_end)
        if not t_end >= self.t:
            raise ValueError(f"t_end = {t_end} is before the current time {self.t}")
        span = t_end - self.t
        record_every = span if record_every is None else float(record_every)
        if record_every <= 0 and span > 0:
            raise ValueError("record_every must be positive")
        nper = int(round(record_every / self.dt)) if span > 0 else 0
        if span > 0 and (nper < 1 or abs(nper * self.dt - record_every) > 1e-9 * max(1.0, record_every)):
            raise ValueError(f"record_every = {record_every} must be a positive multiple of dt = {self.dt}")
        nrec = int(round(span / record_every)) if span > 0 else 0
        if span > 0 and abs(nrec * record_every - span) > 1e-9 * max(1.0, span):
            raise ValueError(f"t_end - t = {span} must be a multiple of record_every = {record_every}")
        if checkpoint is not None:
            from .io import check_disk_space, check_writable

            check_writable(checkpoint)
            check_disk_space(checkpoint, self.state_nbytes() + 64 * 1024)
            if int(checkpoint_every) < 1:
                raise ValueError("checkpoint_every must be >= 1 record interval")
        self._plan = {"t_end": t_end, "record_every": record_every, "checkpoint": checkpoint,
                      "checkpoint_every": int(checkpoint_every)}
        wall0 = time.time()
        ok_before = self.status == st.OK
        if not self._records:
            self._interval(0)
        bar = None
        try:
            from tqdm.auto import tqdm
            if self.progress is not False and nrec > 1:
                bar = tqdm(total=nrec, desc=f"packets {self.dynamics}", unit="rec", delay=2.0,
                           disable=None if self.progress is None else not self.progress, leave=False)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
        for i in range(nrec):
            self._interval(nper)
            if bar is not None:
                bar.update(1)
            if checkpoint is not None and ((i + 1) % int(checkpoint_every) == 0 or i == nrec - 1):
                self.checkpoint(checkpoint)
            if self.on_flag == "raise":
                self._sync()
                if np.any(ok_before & (self.status != st.OK)):
                    if bar is not None:
                        bar.close()
                    self.wall_time = time.time() - wall0
                    self._report_flags(ok_before, self.status, self.weight)  # raises
        if bar is not None:
            bar.close()
        self._sync()
        self.wall_time = time.time() - wall0
        self._report_flags(ok_before, self.status, self.weight)
        return self.result()

    def _source_name(self, src):
        if src == st.SOURCE_DYNAMICS:
            return "dynamics"
        if src == st.SOURCE_INITIAL:
            return "initial state"
        c = src - 1
        return f"channel {self.channel_names[c]!r}" if 0 <= c < len(self.channel_names) else f"source {src}"

    @staticmethod
    def _flag_groups(status):
        """``(reason, source, count)`` of the flagged status values in ``status``."""
        values, num = np.unique(status[status != st.OK], return_counts=True)
        return [(int(st.reason(v)), int(st.source(v)), int(m)) for v, m in zip(values, num)]

    def _flag_counts(self, status):
        """{reason name: {source name: count}} of the flagged packets in ``status``."""
        out = {}
        for r, src, m in self._flag_groups(status):
            out.setdefault(st.NAMES.get(r, str(r)), {})[self._source_name(src)] = m
        return out

    def _flag_report(self, ok_before, status, weight):
        """The message of :class:`packets.status.FlaggedPacketsWarning` for packets flagged since ``ok_before``."""
        new = ok_before & (status != st.OK)
        parts = []
        for r, src, m in self._flag_groups(status[new]):
            txt = f"{m} {st.NAMES.get(r, str(r))} ({self._source_name(src)})"
            ch = src - 1
            if r == st.MAJORANT and src != st.SOURCE_INITIAL and 0 <= ch < len(self.channels):
                g = float(self.gmax[ch])
                txt += (f": an event rate above the majorant {g:.6g} of {type(self.channels[ch]).__name__}; "
                        "pass a larger majorant= (a bound above every rate the packets meet: a larger one costs "
                        "only null collisions, never accuracy)")
            parts.append(txt)
        lost = ""
        if weight is not None:
            w = np.abs(weight)
            lost = f", {w[new].sum() / w.sum():.3g} of the ensemble weight" if w.sum() > 0 else ""
        return (f"{int(new.sum())} of {status.size} packets were flagged in this run and are no longer tallied"
                f"{lost}: " + "; ".join(parts) + ". Simulation.flagged lists them and Result.flags counts them; "
                "Simulation(..., on_flag='raise') stops at the first record interval that flags any.")

    def _report_flags(self, ok_before, status, weight):
        if self.on_flag == "ignore" or not np.any(ok_before & (status != st.OK)):
            return
        msg = self._flag_report(ok_before, status, weight)
        if self.on_flag == "raise":
            raise st.FlaggedPacketsError(msg)
        warnings.warn(msg, st.FlaggedPacketsWarning, stacklevel=3)

    def _sync(self):
        """Bring the device-resident state back to the host arrays (CUDA backend)."""
        if self._runner is not None:
            self._runner.download()

    def result(self):
        """Build the :class:`Result` of everything recorded so far."""
        times = np.array([r[0] for r in self._records])
        sums = np.stack([r[1] for r in self._records])
        counts = np.stack([r[2] for r in self._records])
        E = np.stack([r[3] for r in self._records])
        status = self._task_status if self.source is not None and self._task_status is not None else self.status
        codes, num = np.unique(st.reason(status), return_counts=True)
        status_counts = {st.NAMES.get(int(c), str(int(c))): int(m) for c, m in zip(codes, num)}
        n_packets = self.source.n if self.source is not None else int(self.x.shape[0])
        from .io import git_revision
        from .plugins import describe
        from .result import pid_ranges
        meta = {"started": self.started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "git_revision": git_revision(), "ensemble": self._ensemble_info, "model": self.model.describe(),
                "field": self.field.describe(), "dynamics": self.dynamics, "integrator": self.integrator,
                "manifold": self.manifold, "dt": self.dt, "tol": self.tol, "backend": self.backend,
                "device": self.device, "threads": numba.get_num_threads(), "n_packets": n_packets,
                "seed": self.seed, "packet_steps": self.packet_steps, "nbatch": self.nbatch, "shard": self.shard,
                "versions": _versions(),
                "observables": list(self.layout),
                "channels": self.channel_names, "majorants": self.gmax.tolist() if self.nev else [],
                "channel_params": [describe(ch) for ch in self.channels],
                "observable_params": [describe(ob) for ob in self.observables],
                "orbital_moment": self.orbital_moment, "flags": self._flag_counts(status),
                "pid_ranges": pid_ranges(np.arange(self.source.n) if self.source is not None else self.pid)}
        return Result(times, E, sums, self.layout, counts, status_counts, meta)

    def _run_sharded(self, t_end, record_every, client, workers, task_size):
        from .distributed import run_sharded

        if t_end is None:
            raise ValueError("give t_end")
        t_end = float(t_end)
        span = t_end - self.t
        record_every = span if record_every is None else float(record_every)
        nper = int(round(record_every / self.dt))
        if nper < 1 or abs(nper * self.dt - record_every) > 1e-9 * max(1.0, record_every):
            raise ValueError(f"record_every = {record_every} must be a positive multiple of dt = {self.dt}")
        nrec = int(round(span / record_every))
        if nrec < 1 or abs(nrec * record_every - span) > 1e-9 * max(1.0, span):
            raise ValueError(f"t_end - t = {span} must be a positive multiple of record_every = {record_every}")
        keep = self.source is None
        times, E, sums, counts, steps, states, task_results = run_sharded(
            self, t_end, record_every, client=client, workers=workers, task_size=task_size, source=self.source,
            progress=self.progress, keep_state=keep)
        for i in range(len(times)):
            self._records.append((float(times[i]), sums[i], counts[i], E[i]))
        self.packet_steps += steps
        self.t = t_end
        codes = np.concatenate([r["status"] for r in task_results])
        ok_before = self.status == st.OK if keep else np.ones(codes.size, bool)
        self._task_status = codes
        if keep:
            self.packets = PacketState.concatenate(states)
        self._report_flags(ok_before, codes, self.weight if keep else None)
        return self.result()

    # ------------------------------------------------------------------
    def build_context(self):
        """The :class:`packets.plugins.BuildContext` channels and observables are built from."""
        return BuildContext(model=self.model, field=self.field, dynamics=self.dynamics, manifold=self.manifold,
                            orbital_moment=self.orbital_moment, x=self.x, k=self.k, chi=self.chi, band=self.band,
                            status=self.status)

    @property
    def state(self):
        """The :class:`packets.state.PacketState` (the live arrays, brought back from the GPU first)."""
        self._sync()
        return self.packets

    @classmethod
    def from_state(cls, spec, state, t=0.0, packet_steps=0, progress=None, ensemble_info=None, on_flag="warn",
                   **override):
        """Rebuild a Simulation from its :attr:`spec` and a packet :attr:`state`.

        The one path by which a saved or shipped simulation comes back:
        :meth:`resume` uses it for checkpoints and distributed tasks for their
        pid range.  ``spec``: a :class:`packets.spec.Spec` (or the equivalent
        dict of older checkpoints).  ``state``: a
        :class:`packets.state.PacketState` or a mapping of its component
        arrays; the ensemble components are required, and with ``clock`` and
        ``ev`` the event streams continue exactly where they stopped
        (otherwise they start afresh, as for a new ensemble).  ``override``:
        spec entries to replace (e.g. ``backend``).  The time step is not
        re-checked: it was checked when the run began.
        """
        from types import SimpleNamespace

        spec = Spec.coerce(spec)
        if override:
            spec = spec.replace(**override)
        model = spec.model
        # a saved state carries its event clocks and counters; an ensemble's arrays do not
        continues_events = isinstance(state, PacketState) or "clock" in state
        if not isinstance(state, PacketState):
            state = PacketState.from_arrays(state, model.dim, model.nbands, copy=False)
        info = ensemble_info or {}
        ens = SimpleNamespace(**{n: getattr(state, n) for n in ENSEMBLE_COMPONENTS}, seed=spec.seed,
                              kind=info.get("kind"), info=info.get("info"))
        sim = cls(model, ens, field=spec.field, progress=progress, check_dt=False, on_flag=on_flag,
                  **spec.constructor_kwargs())
        if continues_events:
            sim.clock[:] = state.clock
            sim.ev[:] = state.ev
        sim.t = float(t)
        sim.packet_steps = int(packet_steps)
        if ensemble_info is not None:
            sim._ensemble_info = ensemble_info
        return sim

    def state_nbytes(self):
        """Bytes of the packet state (what a checkpoint stores, before compression)."""
        return self.packets.nbytes

    def checkpoint(self, path):
        """Write the full state, records and configuration to ``path`` (atomic, checksummed)."""
        from .io import write_checkpoint

        arrays = self.state.as_dict()
        if self._records:
            arrays["rec_times"] = np.array([r[0] for r in self._records])
            arrays["rec_sums"] = np.stack([r[1] for r in self._records])
            arrays["rec_counts"] = np.stack([r[2] for r in self._records])
            arrays["rec_E"] = np.stack([r[3] for r in self._records])
        scalars = {"t": self.t, "packet_steps": self.packet_steps, "plan": self._plan, "started": self.started,
                   "ensemble": self._ensemble_info}
        return write_checkpoint(path, arrays, self.spec, scalars)

    @classmethod
    def resume(cls, path, progress=None, on_flag="warn", trusted=False):
        """Rebuild a Simulation from a checkpoint written by :meth:`checkpoint`.

        The packet state, time, records and random streams are restored, so
        ``Simulation.resume(path).run()`` finishes the interrupted run and gives
        exactly the result of an uninterrupted one.  The stored configuration
        is a pickle: a checkpoint not signed with this user's key (written
        elsewhere) is refused unless ``trusted=True`` (:mod:`packets.io`).
        """
        from .io import read_checkpoint

        arrays, spec, scalars = read_checkpoint(path, trusted=trusted)
        n = arrays["x"].shape[0]
        state = {name: arrays[name] for name in STATE_NAMES if name in arrays}
        sim = cls.from_state(spec, state, t=scalars["t"], packet_steps=scalars["packet_steps"],
                             progress=progress, ensemble_info=scalars.get("ensemble"), on_flag=on_flag)
        sim.started = scalars.get("started", sim.started)
        sim._plan = scalars.get("plan")
        if "rec_times" in arrays:
            sim._records = [(float(t), s_, c_, e_) for t, s_, c_, e_ in
                            zip(arrays["rec_times"], arrays["rec_sums"], arrays["rec_counts"], arrays["rec_E"])]
        if n != sim.x.shape[0]:
            raise RuntimeError("checkpoint state is inconsistent")
        return sim

    @property
    def flagged(self):
        """Indices of packets whose status is not OK (excluded from tallies)."""
        self._sync()
        return np.flatnonzero(self.status != st.OK)


# The configuration lives once, in Simulation.spec, and the packet state once, in Simulation.packets;
# sim.dt, sim.model, ... and sim.x, sim.chi, ... are read-only views of them.
def _spec_entry(name):
    return property(lambda self: getattr(self.spec, name), doc=f"``spec.{name}`` (:class:`packets.spec.Spec`).")


def _state_component(c):
    return property(lambda self: getattr(self.packets, c.name),
                    doc=f"``packets.{c.name}``: {c.meaning}, one entry per packet (:mod:`packets.state`).")


for _f in dataclasses.fields(Spec):
    setattr(Simulation, _f.name, _spec_entry(_f.name))
for _c in STATE_COMPONENTS:
    setattr(Simulation, _c.name, _state_component(_c))
del _f, _c
