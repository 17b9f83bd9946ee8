"""The packet state: one structure of arrays, one schema.

Every place that holds or moves packets uses the components listed once in
:data:`COMPONENTS`: the live state of a :class:`packets.Simulation`
(:attr:`~packets.Simulation.packets`), the arrays of an
:class:`packets.Ensemble` (its first seven components), a checkpoint's
``arrays`` group, the payload of a distributed task
(:mod:`packets.distributed`) and the device buffers of the CUDA backend
(:mod:`gpu.driver`, which receives the schema as plain tuples from
:func:`gpu_schema` because ``gpu`` imports nothing from ``packets``).

Per packet ``i``:

========  ==================  ===========================================================
name      dtype, shape        meaning
========  ==================  ===========================================================
x         float64[dim]        wave-packet centre in real space (lattice units)
k         float64[dim]        crystal momentum of the centre (1 / lattice units)
chi       complex128[nbands]  band pseudospin: amplitudes in the model's orbital basis
band      int64               band index (the initial band of a coherent packet)
weight    float64             statistical weight (a density: sum_i w_i O_i = int[dk] f O)
status    int32               :mod:`packets.status` code, 0 = ok (others are excluded)
pid       int64               unique packet id: keys the packet's random streams
clock     float64             time of the packet's next tentative event (inf: none)
ev        int64               tentative events drawn so far (the event-stream counter)
========  ==================  ===========================================================

``clock`` and ``ev`` are what make a restarted or split run continue the
event streams exactly; an ensemble does not have them (they start afresh).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Component:
    """One per-packet array of the state.

    Attributes
    ----------
    name : str
    dtype : numpy.dtype
    per_packet : {"", "dim", "nbands"}
        Trailing shape of one packet's entry: a scalar, a dim-vector or an nbands-vector.
    kernel_writes : bool
        Whether the kernels change it (what the GPU backend downloads after a run).
    meaning : str
    """
    name: str
    dtype: np.dtype
    per_packet: str
    kernel_writes: bool
    meaning: str

    def shape(self, n, dim, nbands):
        """Shape of the array for ``n`` packets."""
        return (int(n),) + {"": (), "dim": (int(dim),), "nbands": (int(nbands),)}[self.per_packet]


COMPONENTS = (
    Component("x", np.dtype(np.float64), "dim", True, "wave-packet centre in real space"),
    Component("k", np.dtype(np.float64), "dim", True, "crystal momentum of the centre"),
    Component("chi", np.dtype(np.complex128), "nbands", True, "band pseudospin in the orbital basis"),
    Component("band", np.dtype(np.int64), "", True, "band index"),
    Component("weight", np.dtype(np.float64), "", False, "statistical weight"),
    Component("status", np.dtype(np.int32), "", True, "status code (0 = ok)"),
    Component("pid", np.dtype(np.int64), "", False, "unique packet id (keys the random streams)"),
    Component("clock", np.dtype(np.float64), "", True, "time of the next tentative event"),
    Component("ev", np.dtype(np.int64), "", True, "tentative events drawn so far"),
)
#: component names, in the order of :data:`COMPONENTS` (the kernels' argument order)
NAMES = tuple(c.name for c in COMPONENTS)
#: the components an ensemble holds (the initial state); ``clock`` and ``ev`` start afresh
ENSEMBLE = NAMES[:7]
_BY_NAME = {c.name: c for c in COMPONENTS}


def gpu_schema():
    """The schema as plain tuples ``(name, dtype, per_packet, kernel_writes)`` for :mod:`gpu.driver`."""
    return tuple((c.name, c.dtype, c.per_packet, c.kernel_writes) for c in COMPONENTS)


class PacketState:
    """The state of ``n`` packets: one C-contiguous array per component of :data:`COMPONENTS`.

    Build one with :meth:`from_arrays` (checks and converts); the constructor
    takes the arrays as they are and only checks them.  Attributes are the
    component names (``state.x``, ``state.chi``, ...).

    Parameters
    ----------
    dim, nbands : int
        Shape of the model the state belongs to.
    **arrays
        One array per name of :data:`NAMES`, of the dtype and shape of its component.
    """

    __slots__ = NAMES + ("dim", "nbands")

    def __init__(self, dim, nbands, **arrays):
        missing = [n for n in NAMES if n not in arrays]
        extra = [n for n in arrays if n not in _BY_NAME]
        if missing or extra:
            raise ValueError(f"packet state: missing components {missing}, unknown {extra}")
        self.dim = int(dim)
        self.nbands = int(nbands)
        n = np.shape(arrays["x"])[0] if np.ndim(arrays["x"]) else 0
        for c in COMPONENTS:
            a = arrays[c.name]
            want = c.shape(n, dim, nbands)
            if not isinstance(a, np.ndarray) or a.dtype != c.dtype or a.shape != want or not a.flags.c_contiguous:
                got = (f"{a.dtype.name}{list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__)
                raise ValueError(f"packet state: {c.name} ({c.meaning}) must be a C-contiguous "
                                 f"{c.dtype.name}{list(want)} array, got {got}")
            object.__setattr__(self, c.name, a)

    @classmethod
    def from_arrays(cls, arrays, dim, nbands, copy=True):
        """A state from a mapping (or an object with attributes) of component arrays, converted and checked.

        ``arrays`` needs the ensemble components (:data:`ENSEMBLE`); without
        ``clock`` and ``ev`` the event streams start afresh (clock = inf, ev = 0).
        ``copy``: copy every array (default), else convert only where needed.
        """
        get = arrays.get if hasattr(arrays, "get") else (lambda name, default=None: getattr(arrays, name, default))
        missing = [n for n in ENSEMBLE if get(n) is None]
        if missing:
            raise ValueError(f"packet state: missing components {missing}")
        x = np.asarray(get("x"))
        n = x.shape[0] if x.ndim else 0
        out = {}
        for c in COMPONENTS:
            a = get(c.name)
            if a is None:
                a = np.full(n, np.inf) if c.name == "clock" else np.zeros(n, dtype=c.dtype)
            a = np.array(a, dtype=c.dtype, order="C", copy=True) if copy else np.ascontiguousarray(a, dtype=c.dtype)
            out[c.name] = a
        return cls(dim, nbands, **out)

    # -- views and copies ---------------------------------------------------------------
    @property
    def n(self):
        """Number of packets."""
        return self.x.shape[0]

    def __len__(self):
        return self.n

    def as_dict(self):
        """``{name: array}`` (the arrays themselves, not copies)."""
        return {n: getattr(self, n) for n in NAMES}

    def __getitem__(self, index):
        """The packets ``index`` selects (a slice gives views; an index array or mask, copies)."""
        return PacketState(self.dim, self.nbands,
                           **{n: np.ascontiguousarray(getattr(self, n)[index]) for n in NAMES})

    def copy(self):
        return PacketState(self.dim, self.nbands, **{n: getattr(self, n).copy() for n in NAMES})

    @classmethod
    def concatenate(cls, parts):
        """One state of the packets of ``parts`` in order (e.g. the pid-range tasks of a sharded run)."""
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one packet state")
        return cls(parts[0].dim, parts[0].nbands, **{n: np.concatenate([getattr(p, n) for p in parts]) for n in NAMES})

    @property
    def nbytes(self):
        """Bytes of all the arrays (what a checkpoint stores before compression)."""
        return int(sum(getattr(self, n).nbytes for n in NAMES))

    @staticmethod
    def nbytes_per_packet(dim, nbands):
        """Bytes of state per packet."""
        return int(sum(c.dtype.itemsize * int(np.prod(c.shape(1, dim, nbands))) for c in COMPONENTS))

    def __getstate__(self):
        return (self.dim, self.nbands, self.as_dict())

    def __setstate__(self, s):
        dim, nbands, arrays = s
        self.__init__(dim, nbands, **arrays)

    def __repr__(self):
        return f"PacketState(n={self.n}, dim={self.dim}, nbands={self.nbands})"
