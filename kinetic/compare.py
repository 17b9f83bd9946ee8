"""Monte Carlo versus kinetic-equation comparison: a table of z-scores and an optional figure.

``compare(mc_result, reference, quantities=..., path=None)`` takes a
:class:`packets.result.Result` (or a list of them over a parameter) and
reference values, and returns a :class:`ComparisonTable` with one row per
quantity (and parameter value): MC mean, MC standard error (batch means,
docs/architecture.md), reference, and z = (MC - reference) / stderr.  With ``path``
it also writes a PNG: MC points with error bars on the reference curve.
matplotlib is the optional extra ``plot`` (``pip install packets[plot]``);
it is imported only when a figure is requested, with the Agg backend, after
the table is computed: without matplotlib, ``compare`` warns and returns the
table without a figure, and :meth:`ComparisonTable.plot` raises an
``ImportError`` that names the extra.

Quantity names
--------------
``"sigma_ab"`` (a, b in x, y, z), optionally with a suffix ``_band`` or
``_anomalous``: a conductivity from :meth:`Result.conductivity` (static
field along b).  ``"<observable>[i]"``: component i (flat index) of the
time average of any recorded observable, e.g. ``"current[0]"``.  A callable
``f(result) -> (mean, stderr)`` can be given instead, with a name, through a
dict ``{name: callable}``.
"""
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ComparisonRow", "ComparisonTable", "compare", "mc_value"]

_AX = "xyz"


@dataclass
class ComparisonRow:
    quantity: str
    parameter: float
    mc: float
    stderr: float
    reference: float

    @property
    def z(self):
        """(MC - reference)/stderr; nan when the standard error is 0 or unknown."""
        if not (self.stderr > 0) or not math.isfinite(self.stderr):
            return math.nan
        return (self.mc - self.reference) / self.stderr


@dataclass
class ComparisonTable:
    rows: list = field(default_factory=list)
    parameter_name: str = "parameter"
    figure: str = None
    _plot_info: tuple = field(default=None, repr=False, compare=False)

    def plot(self, path, title=None):
        """Write the comparison figure (PNG) to ``path``; returns ``path``.

        Needs matplotlib (the ``plot`` extra); without it an ``ImportError``
        says what to install and the table itself is untouched.
        """
        if self._plot_info is None:
            raise ValueError("this table was not made by compare(); it has no references to draw")
        quantities, reference, params, title0 = self._plot_info
        _plot(self, quantities, reference, params, path, title if title is not None else title0)
        self.figure = str(path)
        return self.figure

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def to_array(self):
        """Structured numpy array with fields quantity, parameter, mc, stderr, reference, z."""
        dt = [("quantity", "U40"), ("parameter", "f8"), ("mc", "f8"), ("stderr", "f8"), ("reference", "f8"),
              ("z", "f8")]
        return np.array([(r.quantity, r.parameter, r.mc, r.stderr, r.reference, r.z) for r in self.rows], dtype=dt)

    @property
    def z(self):
        return np.array([r.z for r in self.rows])

    def max_abs_z(self):
        z = self.z
        return float(np.nanmax(np.abs(z))) if z.size and np.any(np.isfinite(z)) else math.nan

    def __str__(self):
        head = f"{'quantity':<22s} {self.parameter_name:>12s} {'MC':>14s} {'stderr':>11s} {'reference':>14s} {'z':>7s}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.quantity:<22s} {r.parameter:>12.6g} {r.mc:>14.7g} {r.stderr:>11.3g} "
                         f"{r.reference:>14.7g} {r.z:>7.2f}")
        return "\n".join(lines)


def mc_value(result, quantity, t_min=None, t_max=None, zero_field=None):
    """(mean, stderr) of a named quantity of one Result (module docstring for the names).

    ``zero_field``: a Result of the same ensemble and seed at E = 0; conductivities are then formed from
    j(E) - j(0) batch by batch (correlated sampling, ``Result.conductivity(reference=...)``).
    """
    if callable(quantity):
        m, s = quantity(result)
        return float(m), float(s)
    m = re.fullmatch(r"sigma_([xyz])([xyz])(?:_(band|anomalous|total))?", quantity)
    if m:
        a, b = _AX.index(m.group(1)), _AX.index(m.group(2))
        part = m.group(3) or "total"
        if zero_field is None:
            sig, se, bb = result.conductivity(t_min, t_max, part=part)
        else:
            sig, se, bb = result.conductivity(t_min, t_max, part=part, reference=zero_field)
        if bb != b:
            raise ValueError(f"{quantity}: the run's field is along {_AX[bb]}, so only sigma_?{_AX[bb]} is measured")
        if a >= sig.size:
            raise ValueError(f"{quantity}: component {_AX[a]} does not exist in a {sig.size}-D result")
        return float(sig[a]), float(se[a])
    m = re.fullmatch(r"(\w+)\[(\d+)\]", quantity)
    if m:
        name, i = m.group(1), int(m.group(2))
        mean, se = result[name].time_average(t_min, t_max)
        mean, se = np.ravel(mean), np.ravel(se)
        if i >= mean.size:
            raise ValueError(f"{quantity}: observable {name!r} has {mean.size} components")
        return float(mean[i]), float(se[i])
    raise ValueError(f"unknown quantity {quantity!r}: use 'sigma_ab[_band|_anomalous]', 'observable[i]' or a callable")


def _reference_value(ref, param, index):
    if callable(ref):
        return float(ref(param))
    arr = np.ravel(np.asarray(ref, float))
    if arr.size == 1:
        return float(arr[0])
    if index >= arr.size:
        raise ValueError(f"reference has {arr.size} values but there are more results")
    return float(arr[index])


def compare(mc_result, reference, quantities=None, path=None, parameter=None, parameter_name="parameter",
            t_min=None, t_max=None, title=None, zero_field=None):
    """Compare Monte Carlo results with kinetic (or closed-form) references.

    Parameters
    ----------
    mc_result : Result or list of Result
        One run, or runs over a parameter (``parameter`` gives its values).
    reference : dict
        {quantity name: value, sequence of values (one per result), or
        callable(parameter) -> value}.
    quantities : list of str or dict {name: callable(result) -> (mean, stderr)}, optional
        Default: the keys of ``reference``.
    path : str, optional
        Write a PNG figure there (matplotlib, Agg backend).
    parameter : sequence of float, optional
        Parameter values of the results (default 0, 1, 2, ...).
    t_min, t_max : float, optional
        Time-average window.
    zero_field : Result or list of Result, optional
        E = 0 runs of the same ensembles and seeds (one per result): conductivities use the correlated
        difference j(E) - j(0) (see :func:`mc_value`).

    Returns
    -------
    ComparisonTable
    """
    results = list(mc_result) if isinstance(mc_result, (list, tuple)) else [mc_result]
    if not results:
        raise ValueError("mc_result is empty")
    if parameter is None:
        params = np.arange(len(results), dtype=float)
    else:
        params = np.atleast_1d(np.asarray(parameter, float))
        if params.size != len(results):
            raise ValueError(f"{params.size} parameter values for {len(results)} results")
    if not isinstance(reference, dict):
        raise ValueError("reference must be a dict {quantity: value | values | callable}")
    if quantities is None:
        quantities = {q: q for q in reference}
    elif not isinstance(quantities, dict):
        quantities = {q: q for q in quantities}
    missing = [q for q in quantities if q not in reference]
    if missing:
        raise ValueError(f"no reference for {missing}")
    zeros = [None] * len(results)
    if zero_field is not None:
        zeros = list(zero_field) if isinstance(zero_field, (list, tuple)) else [zero_field]
        if len(zeros) != len(results):
            raise ValueError(f"{len(zeros)} zero-field results for {len(results)} results")
    table = ComparisonTable(parameter_name=parameter_name)
    for name, q in quantities.items():
        for i, (res, p) in enumerate(zip(results, params)):
            mval, se = mc_value(res, q, t_min, t_max, zeros[i])
            table.rows.append(ComparisonRow(name, float(p), mval, se, _reference_value(reference[name], p, i)))
    table._plot_info = (quantities, reference, params, title)
    if path is not None:
        try:
            table.plot(path)
        except ImportError as exc:  # the numbers are computed: keep them, say how to get the figure
            warnings.warn(f"{exc}; the comparison table is returned without a figure", stacklevel=2)
    return table


def _pyplot():
    """matplotlib.pyplot with the Agg backend, or an ImportError naming the extra to install."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("drawing a figure needs matplotlib: pip install 'packets[plot]' "
                          "(or pip install matplotlib)") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _plot(table, quantities, reference, params, path, title):
    plt = _pyplot()
    names = list(quantities)
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 3 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        rows = [r for r in table.rows if r.quantity == name]
        x = np.array([r.parameter for r in rows])
        ref = reference[name]
        if callable(ref) and x.size > 1:
            xf = np.linspace(x.min(), x.max(), 200)
            ax.plot(xf, [ref(v) for v in xf], "-", color="C0", label="kinetic")
        else:
            ax.plot(x, [r.reference for r in rows], "-" if x.size > 1 else "_", color="C0", ms=20, label="kinetic")
        ax.errorbar(x, [r.mc for r in rows], yerr=[r.stderr for r in rows], fmt="o", color="C1", capsize=3,
                    label="Monte Carlo")
        ax.set_ylabel(name)
        ax.set_xlabel(table.parameter_name)
        ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
