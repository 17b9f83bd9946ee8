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
already sum to the full density.
"""
import numpy as np


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
        Number of packets per status code name at the end (flagged packets
        are excluded from every tally from the moment they are flagged).
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
        if not isinstance(other, Result):
            return NotImplemented
        if self.layout.keys() != other.layout.keys() or self._sums.shape != other._sums.shape:
            raise ValueError("results have different observables or shapes and cannot be merged")
        if not np.array_equal(self.times, other.times):
            raise ValueError("results have different record times and cannot be merged")
        sc = dict(self.status_counts)
        for k_, v_ in other.status_counts.items():
            sc[k_] = sc.get(k_, 0) + v_
        meta = dict(self.meta)
        meta["merged"] = meta.get("merged", 1) + other.meta.get("merged", 1)
        return Result(self.times, self.E, self._sums + other._sums, self.layout, self.counts + other.counts, sc, meta)

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
