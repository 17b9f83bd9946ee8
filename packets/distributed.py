"""Sharded runs: Dask workers, streaming through large ensembles.

A run is split into *tasks*, each a contiguous range of packet ids of
``task_size`` packets (a power-of-two multiple of the Simulation's ``shard``,
aligned to multiples of itself).  A task is a pure function of (configuration,
packet state, time plan): it builds a Simulation on its packets, runs the
whole time plan and returns its per-batch sums, counts, final state and step
count.  Because random numbers are keyed by (seed, packet id, event index)
and tallies are combined over a fixed binary tree of global shard indices
(:func:`packets.driver_cpu.tree_reduce`), the merged result is bit-identical
to the in-memory run and independent of the number of workers, of the order
in which tasks finish, and of tasks being re-run after a worker died.

Dask (``dask.distributed``) is the engine for several processes or machines:
pass ``client=`` (any ``distributed.Client``: a LocalCluster, a
dask-jobqueue SLURMCluster, a dask-cuda LocalCUDACluster) or ``workers=N`` to
start a LocalCluster of N single-threaded processes.  Without Dask,
``stream=True`` runs the tasks one after another in this process, holding one
task's working state at a time; with an :class:`EnsembleSource` the ensemble
itself is generated task by task and never held in memory.
"""
import math
import os
import time
from types import SimpleNamespace

import numpy as np

from . import rng
from . import status as st

#: bytes of packet state per packet beyond x, k, chi (band, weight, status, pid, clock, ev)
_FIXED_BYTES = 8 + 8 + 4 + 8 + 8 + 8


def bytes_per_packet(dim, nbands):
    """Bytes of one packet's state: x, k (8 dim each), chi (16 nbands), band, weight, status, pid, clock, counter."""
    return 16 * dim + 16 * nbands + _FIXED_BYTES


def available_memory():
    """Available physical memory in bytes (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def check_memory(n, dim, nbands, copies=3.0, what="the ensemble"):
    """Raise MemoryError before any work if ``copies`` x the packet state would not fit in memory."""
    need = copies * n * bytes_per_packet(dim, nbands)
    avail = available_memory()
    if avail is not None and need > avail:
        raise MemoryError(f"{what} of {n} packets needs about {need / 2**30:.2f} GiB "
                          f"({bytes_per_packet(dim, nbands)} bytes per packet x {copies:g} working copies) but only "
                          f"{avail / 2**30:.2f} GiB are available: use an EnsembleSource with run(..., stream=True) "
                          "or distribute the run over Dask workers")
    return need


class EnsembleSource:
    """An ensemble generated task by task from (seed, packet id): never held whole in memory.

    ``fermi_sea`` packets: k uniform over the Brillouin zone (lattice models)
    or the ball |k| < k_window (continuum), the bands in contiguous pid blocks,
    chi the band eigenvector, weight f(eps; mu, T) * V_k / ((2 pi)^d n_per_band)
    — the same estimator as :meth:`packets.ensemble.Ensemble.fermi_sea` (so sums
    are densities), drawn from the counter-based Philox stream 5 keyed by
    (seed, pid) instead of a sequential generator, which is what makes any pid
    range reproducible on its own.

    Parameters
    ----------
    model : BandModel
    mu, temperature : float
    n : int
        Total number of packets (may exceed memory).
    seed : int
    bands : sequence of int, optional
    k_window : float, optional
    """

    STREAM = 5

    def __init__(self, model, mu, temperature, n, seed, bands=None, k_window=None):
        self.model = model
        self.mu = float(mu)
        self.temperature = float(temperature)
        self.n = int(n)
        if self.n < 1:
            raise ValueError("n must be >= 1")
        self.seed = int(seed)
        self.bands = tuple(range(model.nbands)) if bands is None else tuple(int(b) for b in bands)
        for b in self.bands:
            if not 0 <= b < model.nbands:
                raise ValueError(f"band {b} out of range [0, {model.nbands - 1}]")
        if model.lattice is None:
            kw = k_window if k_window is not None else model.k_window
            if kw is None or not kw > 0:
                raise ValueError("a continuum model needs k_window")
            self.k_window = float(kw)
            d = model.dim
            self.k_volume = {1: 2 * kw, 2: math.pi * kw ** 2, 3: 4 / 3 * math.pi * kw ** 3}[d]
        else:
            self.k_window = None
            self.k_volume = model.lattice.bz_volume
        self.kind = "fermi_sea_source"
        self.info = {"mu": self.mu, "temperature": self.temperature, "bands": list(self.bands),
                     "k_window": self.k_window, "n": self.n}
        self.dim = model.dim
        self.nbands = model.nbands

    def load(self, lo, hi):
        """The packets with ids lo..hi-1 as an ensemble-like namespace."""
        from .ensemble import fermi

        m = self.model
        d = m.dim
        pid = np.arange(lo, hi, dtype=np.int64)
        k0, k1 = rng.key_from_seed(self.seed)
        u = np.empty((pid.size, 4))
        _uniform_block(k0, k1, pid, rng.stream_counter(self.STREAM, 0), u)
        if m.lattice is None:
            kw = self.k_window
            if d == 1:
                k = (kw * (2 * u[:, 0] - 1))[:, None]
            elif d == 2:
                r = kw * np.sqrt(u[:, 0])
                ph = 2 * np.pi * u[:, 1]
                k = np.stack([r * np.cos(ph), r * np.sin(ph)], 1)
            else:
                r = kw * np.cbrt(u[:, 0])
                ct = 2 * u[:, 1] - 1
                stt = np.sqrt(1 - ct ** 2)
                ph = 2 * np.pi * u[:, 2]
                k = np.stack([r * stt * np.cos(ph), r * stt * np.sin(ph), r * ct], 1)
        else:
            k = (u[:, :d] - 0.5) @ m.lattice.reciprocal
        nb_sel = len(self.bands)
        # bands in contiguous pid blocks (as Ensemble.fermi_sea), so every
        # batch (pid mod nbatch) samples every band in proportion
        block = (pid * nb_sel) // self.n
        band = np.array(self.bands, dtype=np.int64)[block]
        edges = -((-np.arange(nb_sel + 1) * self.n) // nb_sel)  # ceil(b n / nb)
        n_in_block = np.diff(edges)[block]
        w, v = m.bands(k)
        eps = w[np.arange(pid.size), band]
        chi = np.ascontiguousarray(v[np.arange(pid.size), :, band])
        weight = fermi(eps, self.mu, self.temperature) * self.k_volume / ((2 * np.pi) ** d * n_in_block)
        return SimpleNamespace(x=np.zeros((pid.size, d)), k=np.ascontiguousarray(k), chi=chi, band=band,
                               weight=np.ascontiguousarray(weight), status=np.zeros(pid.size, np.int32), pid=pid,
                               seed=self.seed, kind=self.kind, info=self.info)

    def __len__(self):
        return self.n


def _uniform_block(k0, k1, pid, counter, out):
    import numba

    @numba.njit
    def fill(k0, k1, pid, counter, out):
        for i in range(pid.shape[0]):
            a, b = rng.uniforms2_53(k0, k1, pid[i], counter)
            c, d = rng.uniforms2_53(k0, k1, pid[i], counter + 1)
            out[i, 0] = a
            out[i, 1] = b
            out[i, 2] = c
            out[i, 3] = d

    global _uniform_block_jit
    try:
        f = _uniform_block_jit
    except NameError:
        f = _uniform_block_jit = fill
    f(np.uint64(k0), np.uint64(k1), pid, np.uint64(counter), out)


def run_task(spec, state, t0, records_before, plan, want_state=True):
    """Run one task (a pid range) for the whole time plan; pure and picklable.

    ``spec``: the :class:`packets.spec.Spec` of the parent Simulation;
    ``state``: the task's :class:`packets.state.PacketState` (or a mapping of
    its ensemble components, for an ensemble loaded by the task).  Returns a
    dict with the per-batch sums and counts of every record interval (nt,
    nbatch, ncomp), the final state (if ``want_state``), packet-steps and
    status counts.
    """
    from .simulation import Simulation

    # tasks run on the CPU of their worker whatever the parent's backend
    sim = Simulation.from_state(spec, state, t=t0, progress=False, backend="cpu",
                                on_flag="ignore")  # the parent run reports flagged packets once
    res = sim.run(plan["t_end"], plan["record_every"])
    sums = res._sums
    counts = res.counts
    if records_before:
        # the first record (state at t0) was already taken by the caller
        sums = sums[1:]
        counts = counts[1:]
    out = {"sums": sums, "counts": counts, "times": res.times[1:] if records_before else res.times,
           "E": res.E[1:] if records_before else res.E, "packet_steps": sim.packet_steps,
           "status": sim.status.copy(), "layout": res.layout, "first_pid": int(sim.pid[0]),
           "t": sim.t}
    if want_state:
        out["state"] = sim.packets.copy()
    return out


#: the default number of tasks a run is cut into (fewer for small runs): a constant, so that the
#: default task size, like the results, does not depend on the number of workers
DEFAULT_TASKS = 16


def default_task_size(n, shard):
    """The largest power-of-two multiple of ``shard`` that cuts ``n`` packets into at least
    :data:`DEFAULT_TASKS` tasks (``shard`` itself for small runs); independent of the workers."""
    q = 1
    while shard * q * 2 <= max(shard, n // DEFAULT_TASKS):
        q *= 2
    return shard * q


def _task_ranges(n, task_size):
    return [(lo, min(n, lo + task_size)) for lo in range(0, n, task_size)]


def check_task_size(task_size, shard):
    q = task_size // shard
    if task_size % shard or q < 1 or (q & (q - 1)):
        raise ValueError(f"task_size = {task_size} must be a power-of-two multiple of shard = {shard} "
                         f"(e.g. {shard * 2 ** max(0, int(round(math.log2(max(task_size, shard) / shard))))}) so that "
                         "merged results are bit-identical to an undivided run")


def run_sharded(sim, t_end, record_every, client=None, workers=None, task_size=None, source=None, progress=None,
                keep_state=True):
    """Run ``sim`` as independent pid-range tasks and merge them exactly.

    Used by :meth:`packets.Simulation.run` for ``client=``, ``workers=`` and
    ``stream=True``.  Returns (times, E, sums, counts, packet_steps, states).
    """
    from .driver_cpu import tree_reduce
    from .state import ENSEMBLE

    n = source.n if source is not None else sim.x.shape[0]
    if task_size is None:
        task_size = default_task_size(n, sim.shard)
    check_task_size(task_size, sim.shard)
    if source is None and not np.array_equal(sim.pid, np.arange(sim.pid[0], sim.pid[0] + n)):
        raise ValueError("sharded runs need contiguous packet ids (as built by the Ensemble constructors)")
    ranges = _task_ranges(n, task_size)
    first_task = int(sim.pid[0] // task_size) if source is None and sim.pid[0] % task_size == 0 else 0
    records_before = bool(sim._records)
    spec = sim.spec
    plan = {"t_end": float(t_end), "record_every": float(record_every)}

    full = sim.state if source is None else None

    def state_of(lo, hi):
        if source is not None:
            e = source.load(lo, hi)
            return {k: getattr(e, k) for k in ENSEMBLE}
        return full[lo:hi]

    results = [None] * len(ranges)
    bar = None
    if progress is not False:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(ranges), desc="packets tasks", unit="task", delay=2.0,
                       disable=None if progress is None else not progress, leave=False)
        except ImportError:  # pragma: no cover
            bar = None
    own_cluster = None
    try:
        if client is None and workers:
            from dask.distributed import Client, LocalCluster

            nthreads = max(1, (os.cpu_count() or 1) // int(workers))
            own_cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                       dashboard_address=None, env={"NUMBA_NUM_THREADS": str(nthreads)})
            client = Client(own_cluster)
        if client is not None:
            from dask.distributed import as_completed

            futs = {}
            for i, (lo, hi) in enumerate(ranges):
                f = client.submit(run_task, spec, state_of(lo, hi), sim.t, records_before, plan, keep_state,
                                  key=f"packets-task-{sim.seed}-{lo}-{hi}-{time.time_ns()}", pure=False, retries=3)
                futs[f] = i
            for f in as_completed(futs):
                results[futs[f]] = f.result()
                if bar is not None:
                    bar.update(1)
        else:
            for i, (lo, hi) in enumerate(ranges):
                results[i] = run_task(spec, state_of(lo, hi), sim.t, records_before, plan, keep_state)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    sums = tree_reduce(np.stack([r["sums"] for r in results]), first_task)
    counts = tree_reduce(np.stack([r["counts"] for r in results]), first_task)
    steps = int(sum(r["packet_steps"] for r in results))
    states = [r.get("state") for r in results]
    return results[0]["times"], results[0]["E"], sums, counts, steps, states, results
