"""Results of a run: raw per-batch sums, means and standard errors.

Statistics (docs/architecture.md).  Packets are split into ``nbatch`` independent
groups by packet id (batch = pid mod nbatch; the ids of a sampled ensemble are
independent draws, so the batches are independent and identically
distributed).  For every record time and every component the result keeps
the per-batch sums S_b = sum_{i in b} w_i O_i.  The ensemble value is the
total T = sum_b S_b (a density, because weights are densities), and its
standard error is the batch-means estimate

    se(T)^2 = B/(B - 1) sum_b (S_b - T/B)^2 ,

computed across independent packet groups — never across correlated time
steps.  Time averages over a window are formed per batch first, so their
error bars include the time correlations correctly.

Merging with ``+`` adds the per-batch sums: use it for disjoint packet sets of
one ensemble (e.g. two halves of the packet ids run separately), whose weights
already sum to the full density.  It refuses results of different runs (any
entry of :data:`MERGE_SPEC` differs) and results whose packet ids overlap
(which would count packets twice: two independently built ensembles, both
numbered from 0, would double the density).  Independent runs of one
simulation (replicas: other seeds) are combined by :meth:`Result.replicas`,
which averages them.
"""
import numpy as np

#: the ``meta`` entries two results must share to be merged with ``+`` or combined as replicas: the
#: physics and the estimator (the seeds and the majorants may differ: null collisions are exact for
#: any majorant above the rate)
MERGE_SPEC = ("model", "field", "ensemble", "dynamics", "integrator", "manifold", "orbital_moment", "dt", "tol",
              "channels", "channel_params", "observables", "observable_params")

#: packet-id runs kept exactly in ``meta["pid_ranges"]``; beyond that only the envelope [min, max]
MAX_PID_RUNS = 1024


def pid_ranges(pid):
    """Sorted inclusive runs ``[[lo, hi], ...]`` of the packet ids ``pid`` (their envelope if too many)."""
    p = np.unique(np.asarray(pid, dtype=np.int64))
    if p.size == 0:
        return []
    cut = np.flatnonzero(np.diff(p) != 1)
    los = np.concatenate([[p[0]], p[cut + 1]])
    his = np.concatenate([p[cut], [p[-1]]])
    if los.size > MAX_PID_RUNS:
        return [[int(p[0]), int(p[-1])]]
    return [[int(a), int(b)] for a, b in zip(los, his)]


def _first_overlap(a, b):
    """The first id range shared by two sorted run lists, or None."""
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            return lo, hi
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return None


def _union(a, b):
    out = []
    for lo, hi in sorted([list(r) for r in a] + [list(r) for r in b]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _spec_differences(a, b, keys=MERGE_SPEC):
    return [k for k in keys if a.meta.get(k) != b.meta.get(k)]


def _sum_counts(results):
    """The status counts of several results added per status."""
    out = {}
    for r in results:
        for k, v in r.status_counts.items():
            out[k] = out.get(k, 0) + v
    return out


def _check_same_records(a, b):
    if a.layout.keys() != b.layout.keys() or a._sums.shape != b._sums.shape:
        raise ValueError("results have different observables or shapes and cannot be combined")
    if not np.array_equal(a.times, b.times):
        raise ValueError("results have different record times and cannot be combined")


class Series:
    """One observable's time series: ``mean`` and ``stderr`` with shape (nt, *shape)."""

    def __init__(self, name, times, sums, labels, shape):
        self.name = name
        self.times = times
        self.labels = labels
        self.shape = tuple(shape)
        self.sums = sums  # (nt, nbatch, ncomp)
        nb = sums.shape[1]
        tot = sums.sum(axis=1)
        self.mean = tot.reshape((len(times),) + self.shape)
        if nb > 1:
            dev = sums - tot[:, None, :] / nb
            var = nb / (nb - 1.0) * np.sum(dev * dev, axis=1)
            self.stderr = np.sqrt(var).reshape(self.mean.shape)
        else:
            self.stderr = np.full(self.mean.shape, np.nan)

    def time_average(self, t_min=None, t_max=None):
        """Mean and stderr of the time average over record times in [t_min, t_max]."""
        sel = np.ones(len(self.times), bool)
        if t_min is not None:
            sel &= self.times >= t_min - 1e-12
        if t_max is not None:
            sel &= self.times <= t_max + 1e-12
        if not np.any(sel):
            raise ValueError(f"no record times in [{t_min}, {t_max}]; times run from {self.times[0]} to {self.times[-1]}")
        per_batch = self.sums[sel].mean(axis=0)  # (nbatch, ncomp)
        nb = per_batch.shape[0]
        tot = per_batch.sum(axis=0)
        dev = per_batch - tot / nb
        se = np.sqrt(nb / (nb - 1.0) * np.sum(dev * dev, axis=0)) if nb > 1 else np.full(tot.shape, np.nan)
        return tot.reshape(self.shape), se.reshape(self.shape)

    def __repr__(self):
        return f"Series({self.name!r}, nt={len(self.times)}, shape={self.shape})"


class Result:
    """What :meth:`packets.Simulation.run` returns.

    Attributes
    ----------
    times : ndarray (nt,)
        Record times.
    E : ndarray (nt, dim)
        Electric field at the record times.
    status_counts : dict
        Number of packets per status reason at the end (flagged packets
        are excluded from every tally from the moment they are flagged);
        :attr:`flags` splits the flagged ones by what flagged them.
    meta : dict
        Provenance: model, field, dynamics, dt, integrator, seed, backend,
        device, versions, packet number, packet-steps, wall time.

    ``result[name]`` gives a :class:`Series` with ``mean`` and ``stderr``.
    """

    def __init__(self, times, E, sums, layout, counts, status_counts, meta):
        self.times = np.asarray(times, dtype=np.float64)
        self.E = np.asarray(E, dtype=np.float64)
        self._sums = sums  # (nt, nbatch, ncomp_total)
        self.layout = layout  # name -> (offset, ncomp, labels, shape)
        self.counts = counts  # (nt, nbatch): number of OK packets tallied
        from .io import canonical

        self.status_counts = canonical(dict(status_counts))
        self.meta = canonical(dict(meta))

    @property
    def flags(self):
        """Flagged packets at the end, ``{reason: {source: count}}``: source "dynamics" (the equations of
        motion and the per-interval checks), "channel 'name'" or "initial state" (packets.status)."""
        return self.meta.get("flags", {})

    @property
    def names(self):
        return list(self.layout)

    @property
    def nbatch(self):
        return self._sums.shape[1]

    def __getitem__(self, name):
        if name not in self.layout:
            raise KeyError(f"no observable {name!r} in this result; have {self.names}")
        off, nc, labels, shape = self.layout[name]
        return Series(name, self.times, self._sums[:, :, off:off + nc], labels, shape)

    def __contains__(self, name):
        return name in self.layout

    def conductivity(self, t_min=None, t_max=None, part="total", reference=None):
        """Conductivity sigma_ab = j_a / E_b from the time-averaged current (e^2/hbar).

        The field must be static over the averaging window and along one Cartesian axis b (then only
        column b of sigma is measured).  Returns ``(sigma, stderr, b)`` with
        sigma and stderr of shape (dim,): the column sigma_{a b}, a = 0..dim-1.
        ``part`` selects the total, band-velocity, anomalous or side-jump current.
        The systematic error of a finite field (nonlinear response) is not
        included; compare two field strengths to bound it.

        ``reference``: a Result of the same ensemble and seed run at E = 0
        (correlated sampling).  The current is then j(E) - j(0) formed batch
        by batch, which removes the large equilibrium fluctuations of a
        Fermi-sea ensemble from the estimate and its error bar.
        """
        if "current" not in self.layout:
            raise ValueError("conductivity needs the Current observable in the run")
        sel = np.ones(len(self.times), bool)
        if t_min is not None:
            sel &= self.times >= t_min - 1e-12
        if t_max is not None:
            sel &= self.times <= t_max + 1e-12
        E = self.E[sel] if np.any(sel) else self.E
        if not np.array_equal(E, np.broadcast_to(E[0], E.shape)):
            raise ValueError("conductivity() needs a field that is static over [t_min, t_max]; use "
                             "result['current'] for time-dependent fields")
        E0 = E[0]
        nz = np.flatnonzero(E0 != 0.0)
        if nz.size != 1:
            raise ValueError(f"conductivity() needs E along exactly one axis, got E = {E0.tolist()}")
        b = int(nz[0])
        dim = E0.size
        cur = self["current"]
        if reference is not None:
            ref = reference["current"]
            if not np.array_equal(ref.times, cur.times) or ref.sums.shape != cur.sums.shape:
                raise ValueError("reference result must have the same record times, batches and observables")
            cur = Series("current", cur.times, cur.sums - ref.sums, cur.labels, cur.shape)
        mean, se = cur.time_average(t_min, t_max)
        parts = {"total": 0, "band": 1, "anomalous": 2, "jump": 3}
        if part not in parts:
            raise ValueError(f"unknown part {part!r}; choose one of {list(parts)}")
        i = parts[part]
        j = mean[i * dim:(i + 1) * dim]
        jse = se[i * dim:(i + 1) * dim]
        return j / E0[b], jse / abs(E0[b]), b

    def __add__(self, other):
        """The result of the union of two disjoint packet sets of one run (per-batch sums added)."""
        if not isinstance(other, Result):
            return NotImplemented
        _check_same_records(self, other)
        diff = _spec_differences(self, other)
        if diff:
            k = diff[0]
            raise ValueError(f"results of different runs cannot be merged with +: they differ in {diff} (e.g. {k}: "
                             f"{self.meta.get(k)!r} vs {other.meta.get(k)!r}); + adds disjoint packet sets of one "
                             "run, Result.replicas([...]) combines independent runs of one simulation")
        ra, rb = self.meta.get("pid_ranges"), other.meta.get("pid_ranges")
        if ra is None or rb is None:
            raise ValueError("a result without packet-id ranges (meta['pid_ranges'], written since this check "
                             "exists) cannot be shown disjoint from another; rerun it to merge with +")
        shared = _first_overlap(ra, rb)
        if shared is not None:
            raise ValueError(f"the two results share packet ids ({shared[0]}..{shared[1]}): + adds disjoint packet "
                             "sets of one ensemble and would count those packets twice (two ensembles built "
                             "independently both number their packets from 0, and their sum doubles every "
                             "density); combine independent runs with Result.replicas([r1, r2]), which averages "
                             "them, or give the parts disjoint ids (Ensemble.subset of one ensemble)")
        sc = _sum_counts([self, other])
        meta = dict(self.meta)
        meta["merged"] = meta.get("merged", 1) + other.meta.get("merged", 1)
        meta["pid_ranges"] = _union(ra, rb)
        for key in ("n_packets", "packet_steps"):
            if key in self.meta and key in other.meta:
                meta[key] = self.meta[key] + other.meta[key]
        return Result(self.times, self.E, self._sums + other._sums, self.layout, self.counts + other.counts, sc, meta)

    @classmethod
    def replicas(cls, results):
        """Combine independent runs of one simulation (other seeds) into one estimate.

        Each replica r estimates the same densities, T_r = sum_b S_rb.  The
        combination is their average, T = (1/R) sum_r T_r, kept as a result
        with the R B batches S_rb / R, so that the batch-means error bar of
        :class:`Series` becomes that of the average:

            se(T)^2 = RB/(RB - 1) sum_{r,b} (S_rb/R - T/(RB))^2  ~  B Var(S)/R .

        The replicas must share everything in :data:`MERGE_SPEC` but the
        ensemble's seed, and no two may have the same event seed and ensemble
        seed (they would be the same run, not independent).  Use ``+``
        instead for disjoint packet sets of one run.
        """
        results = list(results)
        if len(results) < 2 or not all(isinstance(r, Result) for r in results):
            raise ValueError("Result.replicas needs a list of at least two Result objects")
        first = results[0]
        keys = tuple(k for k in MERGE_SPEC if k != "ensemble")
        ens0 = dict(first.meta.get("ensemble") or {})
        seen = []
        for i, r in enumerate(results):
            _check_same_records(first, r)
            diff = _spec_differences(first, r, keys)
            ens = dict(r.meta.get("ensemble") or {})
            if {k: v for k, v in ens.items() if k != "seed"} != {k: v for k, v in ens0.items() if k != "seed"}:
                diff.append("ensemble")
            if diff:
                raise ValueError(f"replica {i} is a run of another simulation: it differs in {diff}")
            if not np.array_equal(r.E, first.E):
                raise ValueError(f"replica {i} has another field at the record times")
            ident = (r.meta.get("seed"), ens.get("seed"))
            if ident in seen:
                raise ValueError(f"replica {i} has the event seed and ensemble seed {ident} of an earlier one: it is "
                                 "the same run, not an independent replica")
            seen.append(ident)
        R = len(results)
        sums = np.concatenate([r._sums for r in results], axis=1) / R
        counts = np.concatenate([r.counts for r in results], axis=1)
        sc = _sum_counts(results)
        meta = dict(first.meta)
        meta["replicas"] = R
        meta["replica_seeds"] = [list(ident) for ident in seen]
        meta["nbatch"] = int(sums.shape[1])
        for key in ("n_packets", "packet_steps"):
            if all(key in r.meta for r in results):
                meta[key] = sum(r.meta[key] for r in results)
        return cls(first.times, first.E, sums, first.layout, counts, sc, meta)

    def save(self, path):
        """Write this result to an HDF5 file (see :mod:`packets.io`); returns the path."""
        from .io import save_result

        return save_result(self, path)

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save`."""
        from .io import load_result

        return load_result(path)

    def equals(self, other):
        """True when every array is bit-identical and the metadata are equal."""
        return (isinstance(other, Result) and self.layout == other.layout
                and all(np.array_equal(a, b) for a, b in ((self.times, other.times), (self.E, other.E),
                                                          (self._sums, other._sums), (self.counts, other.counts)))
                and self.meta == other.meta and self.status_counts == other.status_counts)

    def summary(self):
        """A short text summary (means +- stderr at the last record time)."""
        lines = [f"Result: {len(self.times)} records up to t = {self.times[-1]:g}, status {self.status_counts}"]
        for name in self.layout:
            s = self[name]
            m = s.mean[-1].ravel()
            e = s.stderr[-1].ravel()
            shown = ", ".join(f"{a:.4g}±{b:.2g}" for a, b in zip(m[:6], e[:6]))
            lines.append(f"  {name}: {shown}{' ...' if m.size > 6 else ''}")
        return "\n".join(lines)

    def __repr__(self):
        return self.summary()
