"""Counter-based Philox4x32-10 random numbers, written once for CPU and GPU.

The generator is the Philox4x32-10 block function of Salmon, Moraes, Dror and
Shaw, "Parallel random numbers: as easy as 1, 2, 3", Proc. SC11 (2011),
§4 (the "Philox" family; constants as in their Random123 library).  It is a
*pure function* of a 128-bit counter and a 64-bit key: no state arrays, so a
packet's random numbers depend only on (seed, packet id, event counter) and not
on thread count, launch shape, chunking or backend (docs/scattering.md,
"Random numbers"; docs/architecture.md, "Statistics and reproducibility").

Kernel rules (docs/architecture.md): every kernel-callable function below is plain
``@numba.njit`` without a signature, takes and returns scalars or flat tuples,
allocates nothing and never raises, so numba-cuda compiles it as a device
function when a ``cuda.jit`` kernel calls it.  All integer work is done in
``uint64`` holding 32-bit values: a 32x32-bit product is < 2**64, so
``mulhi``/``mullo`` are exact, and no Python integer wider than 64 bits is
ever formed.

Key and counter mapping (the simulator's convention)
----------------------------------------------------
* key  = (k0, k1) = two 32-bit words from
  ``numpy.random.SeedSequence(seed).generate_state(2, numpy.uint32)``
  (:func:`key_from_seed`), i.e. a 64-bit key ``k0 + 2**32 k1`` well mixed from
  the user's seed.
* counter = (c0, c1, c2, c3) =
  (counter low 32 bits, counter high 32 bits, pid low 32 bits, pid high 32 bits)
  with ``pid`` the packet id and ``counter`` the packet's 64-bit event counter,
  both reinterpreted as unsigned 64-bit integers.
* Sub-streams: a caller that needs independent streams for different purposes
  (initial-state sampling, elastic scattering, dephasing, ...) puts a stream
  number into the top 16 bits of the event counter with
  :func:`stream_counter` ``(stream, n) = stream * 2**48 + n``.  Each
  (stream, pid) pair then owns 2**48 consecutive Philox blocks.

One Philox call gives one block of four 32-bit words.  :func:`uniforms2_53`
(the default for event sampling) turns it into two doubles with 52 random bits
each, :func:`uniforms4` into four doubles with 32 random bits each.  The
integer-to-float conversions are exact (an integer below 2**53 times a power
of two), so uniforms are bit-for-bit identical on CPU and GPU.  Box-Muller
normals (:func:`normal2`) use ``log``/``sqrt``/``cos``/``sin``, whose GPU
(libdevice) and CPU (libm) versions may differ in the last bit: compare them
with a relative tolerance, never bit for bit (docs/architecture.md).
"""
import math
import numbers

import numba
import numpy as np

__all__ = [
    "PHILOX_M0", "PHILOX_M1", "PHILOX_W0", "PHILOX_W1", "PHILOX_ROUNDS",
    "STREAM_SHIFT",
    "philox4x32", "u01_32", "u01_53", "uniforms4", "uniforms2_53", "normal2",
    "normals2", "stream_counter",
    "key_from_seed", "uniforms_for", "normals_for",
]

# Philox4x32 round multipliers and Weyl key increments (Salmon et al. 2011,
# Random123 philox.h: PHILOX_M4x32_0/1, PHILOX_W32_0/1 = golden ratio and
# sqrt(3) - 1 in 0.32 fixed point).  Module-level numpy scalars are frozen by
# numba as typed uint64 constants, so no int64 literal ever mixes in (numba
# would promote uint64 op int64 to float64).
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint64(0x9E3779B9)
PHILOX_W1 = np.uint64(0xBB67AE85)
#: Number of Philox rounds (the "-10" of Philox4x32-10; the Crush-resistant
#: default of Salmon et al.).
PHILOX_ROUNDS = 10
#: Bit position of the stream number inside the 64-bit event counter.
STREAM_SHIFT = 48

_MASK32 = np.uint64(0xFFFFFFFF)
_SH32 = np.uint64(32)
_SH20 = np.uint64(20)
_SH12 = np.uint64(12)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_SHSTREAM = np.uint64(STREAM_SHIFT)
_MASK48 = np.uint64((1 << STREAM_SHIFT) - 1)
_MASK16 = np.uint64(0xFFFF)
# exact powers of two used by the integer -> (0, 1) maps
_TWO_M33 = 2.0 ** -33
_TWO_M53 = 2.0 ** -53
_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------
# kernel-callable functions
# --------------------------------------------------------------------------
@numba.njit
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 block function.

    Implements Salmon et al. (SC11) §4, Philox4x32 with 10 rounds.  One
    round, with ``M0 = 0xD2511F53`` and ``M1 = 0xCD9E8D57``::

        (hi0, lo0) = mulhilo(M0, c0);  (hi1, lo1) = mulhilo(M1, c2)
        (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

    and the key is bumped between rounds by the Weyl increments
    ``(k0, k1) += (0x9E3779B9, 0xBB67AE85) mod 2**32``.

    Parameters
    ----------
    c0, c1, c2, c3 : int
        Counter words; only the low 32 bits of each are used (any integer
        type; negative values are taken modulo 2**64 first).
    k0, k1 : int
        Key words; only the low 32 bits are used.

    Returns
    -------
    (r0, r1, r2, r3) : tuple of uint64
        The four output words, each in [0, 2**32).
    """
    # uint64 holding 32-bit values: products of two 32-bit words fit exactly.
    x0 = np.uint64(c0) & _MASK32
    x1 = np.uint64(c1) & _MASK32
    x2 = np.uint64(c2) & _MASK32
    x3 = np.uint64(c3) & _MASK32
    y0 = np.uint64(k0) & _MASK32
    y1 = np.uint64(k1) & _MASK32
    for _ in range(PHILOX_ROUNDS):
        p0 = PHILOX_M0 * x0
        p1 = PHILOX_M1 * x2
        n0 = (p1 >> _SH32) ^ x1 ^ y0
        n1 = p1 & _MASK32
        n2 = (p0 >> _SH32) ^ x3 ^ y1
        n3 = p0 & _MASK32
        x0 = n0
        x1 = n1
        x2 = n2
        x3 = n3
        # key schedule; the bump after the last round is unused (harmless)
        y0 = (y0 + PHILOX_W0) & _MASK32
        y1 = (y1 + PHILOX_W1) & _MASK32
    return x0, x1, x2, x3


@numba.njit
def u01_32(w):
    """Map one 32-bit word to a double in the open interval (0, 1).

    ``u = (2 w + 1) 2**-33``: the odd multiples of 2**-33, so
    ``2**-33 <= u <= 1 - 2**-33``; never 0 (``-log u <= 22.9`` is finite) and
    never 1.  Exact in float64, hence identical on every backend.

    Parameters
    ----------
    w : uint64
        Word in [0, 2**32) (higher bits are ignored).

    Returns
    -------
    float64
    """
    x = np.uint64(w) & _MASK32
    return np.float64(x * _TWO + _ONE) * _TWO_M33


@numba.njit
def u01_53(hi, lo):
    """Map two 32-bit words to one double in (0, 1) with 52 random bits.

    Takes the 52 bits ``j = hi * 2**20 + (lo >> 12)`` and returns
    ``u = (2 j + 1) 2**-53``, so ``2**-53 <= u <= 1 - 2**-53``.  ``2 j + 1`` is
    below 2**53, so the result is exact (no rounding can reach 0 or 1, which
    the common ``j * 2**-53 + 2**-54`` would at the top end) and identical on
    every backend.  The resolution is 2**-52, the float64 spacing just below 1.
    ``-log u <= 36.8``.

    Parameters
    ----------
    hi, lo : uint64
        Words in [0, 2**32) (higher bits are ignored).

    Returns
    -------
    float64
    """
    j = ((np.uint64(hi) & _MASK32) << _SH20) | ((np.uint64(lo) & _MASK32) >> _SH12)
    return np.float64(j * _TWO + _ONE) * _TWO_M53


@numba.njit
def _block(key0, key1, pid, counter):
    # the simulator's (key, counter) mapping, see the module docstring
    c = np.uint64(counter)
    p = np.uint64(pid)
    return philox4x32(c & _MASK32, c >> _SH32, p & _MASK32, p >> _SH32, key0, key1)


@numba.njit
def uniforms4(key0, key1, pid, counter):
    """Four uniforms in (0, 1) with 32 random bits each from one Philox block.

    Parameters
    ----------
    key0, key1 : int
        Key words from :func:`key_from_seed`.
    pid : int
        Packet id (reinterpreted as uint64).
    counter : int
        The packet's 64-bit event counter (reinterpreted as uint64); see
        :func:`stream_counter` for sub-streams.

    Returns
    -------
    (u0, u1, u2, u3) : tuple of float64
        ``u_i = u01_32(r_i)`` for the Philox words ``r_i`` of counter
        ``(counter_lo, counter_hi, pid_lo, pid_hi)`` and key ``(key0, key1)``.
    """
    r0, r1, r2, r3 = _block(key0, key1, pid, counter)
    return u01_32(r0), u01_32(r1), u01_32(r2), u01_32(r3)


@numba.njit
def uniforms2_53(key0, key1, pid, counter):
    """Two uniforms in (0, 1) with 52 random bits each from one Philox block.

    The default for event sampling (e.g. ``-log u`` thresholds of the
    integrated-hazard method, docs/scattering.md §3): fine resolution near 0 and 1.

    Parameters
    ----------
    key0, key1, pid, counter : int
        As in :func:`uniforms4`.

    Returns
    -------
    (u0, u1) : tuple of float64
        ``u0 = u01_53(r0, r1)``, ``u1 = u01_53(r2, r3)``.
    """
    r0, r1, r2, r3 = _block(key0, key1, pid, counter)
    return u01_53(r0, r1), u01_53(r2, r3)


@numba.njit
def normal2(u1, u2):
    """Box-Muller transform: two independent standard normals from two uniforms.

    ``z0 = r cos(2 pi u2)``, ``z1 = r sin(2 pi u2)`` with
    ``r = sqrt(-2 log u1)`` (Box and Muller, Ann. Math. Stat. 29, 610 (1958)).

    Parameters
    ----------
    u1, u2 : float64
        Uniforms in (0, 1); ``u1 > 0`` keeps ``r`` finite (with
        :func:`uniforms2_53`, ``r <= 8.58``: the tail beyond 8.58 sigma,
        probability ~1e-17, is cut).

    Returns
    -------
    (z0, z1) : tuple of float64
        Standard normals (mean 0, variance 1), dimensionless.
    """
    r = math.sqrt(-2.0 * math.log(u1))
    t = _TWO_PI * u2
    return r * math.cos(t), r * math.sin(t)


@numba.njit
def normals2(key0, key1, pid, counter):
    """Two standard normals from one Philox block: ``normal2(*uniforms2_53(...))``.

    Parameters
    ----------
    key0, key1, pid, counter : int
        As in :func:`uniforms4`.

    Returns
    -------
    (z0, z1) : tuple of float64
    """
    u1, u2 = uniforms2_53(key0, key1, pid, counter)
    return normal2(u1, u2)


@numba.njit
def stream_counter(stream, n):
    """Event counter ``n`` of sub-stream ``stream``: ``stream * 2**48 + n``.

    Parameters
    ----------
    stream : int
        Stream number in [0, 65535] (only the low 16 bits are used).
    n : int
        Index within the stream in [0, 2**48) (only the low 48 bits are used).

    Returns
    -------
    uint64
        Counter to pass to :func:`uniforms2_53` / :func:`uniforms4`.
    """
    return ((np.uint64(stream) & _MASK16) << _SHSTREAM) | (np.uint64(n) & _MASK48)


# --------------------------------------------------------------------------
# host-side helpers
# --------------------------------------------------------------------------
def key_from_seed(seed):
    """Philox key words from a user seed.

    Parameters
    ----------
    seed : int
        Non-negative integer (any size; it is hashed by NumPy's
        ``SeedSequence``, so nearby seeds give unrelated keys).

    Returns
    -------
    (k0, k1) : tuple of int
        ``SeedSequence(seed).generate_state(2, numpy.uint32)``, each in
        [0, 2**32): the low and high 32 bits of the 64-bit key.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}; "
                         "pass e.g. seed=1")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}; pass abs(seed) or another seed")
    state = np.random.SeedSequence(int(seed)).generate_state(2, np.uint32)
    return int(state[0]), int(state[1])


def _as_uint64(name, a):
    a = np.asarray(a)
    if a.dtype == np.uint64:
        return a
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be an array of integers, got dtype {a.dtype}; "
                         f"convert with np.asarray({name}, dtype=np.int64)")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {a.min()}")
    return a.astype(np.uint64)


@numba.njit
def _fill_u53(k0, k1, pids, counters, out):
    for i in range(pids.shape[0]):
        u0, u1 = uniforms2_53(k0, k1, pids[i], counters[i])
        out[i, 0] = u0
        out[i, 1] = u1


@numba.njit
def _fill_u32(k0, k1, pids, counters, out):
    for i in range(pids.shape[0]):
        u0, u1, u2, u3 = uniforms4(k0, k1, pids[i], counters[i])
        out[i, 0] = u0
        out[i, 1] = u1
        out[i, 2] = u2
        out[i, 3] = u3


@numba.njit
def _fill_normal(k0, k1, pids, counters, out):
    for i in range(pids.shape[0]):
        z0, z1 = normals2(k0, k1, pids[i], counters[i])
        out[i, 0] = z0
        out[i, 1] = z1


def _prepare(seed, pids, counters):
    k0, k1 = key_from_seed(seed)
    p = _as_uint64("pids", pids)
    c = _as_uint64("counters", counters)
    try:
        p, c = np.broadcast_arrays(p, c)
    except ValueError:
        raise ValueError(f"pids (shape {p.shape}) and counters (shape {c.shape}) "
                         "must broadcast against each other") from None
    shape = p.shape
    return (np.uint64(k0), np.uint64(k1), np.ascontiguousarray(p).reshape(-1),
            np.ascontiguousarray(c).reshape(-1), shape)


def uniforms_for(seed, pids, counters, bits=53):
    """Uniforms in (0, 1) for many (packet id, counter) pairs, on the CPU.

    The same numbers a kernel gets from :func:`uniforms2_53` (``bits=53``) or
    :func:`uniforms4` (``bits=32``) with ``key_from_seed(seed)``.

    Parameters
    ----------
    seed : int
        Non-negative user seed (see :func:`key_from_seed`).
    pids, counters : array_like of int
        Packet ids and event counters, non-negative, broadcast together.
    bits : {53, 32}
        53: two 52-random-bit doubles per (pid, counter); 32: four 32-bit ones.

    Returns
    -------
    ndarray of float64, shape ``broadcast_shape + (2,)`` or ``+ (4,)``
    """
    if bits not in (32, 53):
        raise ValueError(f"bits must be 53 (two doubles per block) or 32 (four), got {bits!r}")
    k0, k1, p, c, shape = _prepare(seed, pids, counters)
    m = 2 if bits == 53 else 4
    out = np.empty((p.shape[0], m))
    if bits == 53:
        _fill_u53(k0, k1, p, c, out)
    else:
        _fill_u32(k0, k1, p, c, out)
    return out.reshape(shape + (m,))


def normals_for(seed, pids, counters):
    """Standard normal pairs ``normals2`` for many (packet id, counter) pairs.

    Parameters
    ----------
    seed : int
        Non-negative user seed.
    pids, counters : array_like of int
        Non-negative, broadcast together.

    Returns
    -------
    ndarray of float64, shape ``broadcast_shape + (2,)``
        Box-Muller pairs :func:`normal2` of :func:`uniforms2_53`.
    """
    k0, k1, p, c, shape = _prepare(seed, pids, counters)
    out = np.empty((p.shape[0], 2))
    _fill_normal(k0, k1, p, c, out)
    return out.reshape(shape + (2,))
