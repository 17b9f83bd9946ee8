"""Result files and checkpoints (HDF5 via h5py).

Result files
------------
``Result.save(path)`` writes one self-describing HDF5 file:

``/times``, ``/E``                record times and the field at them
``/sums`` (nt, nbatch, ncomp)     raw per-batch sums of every observable
``/counts`` (nt, nbatch)          packets tallied per batch
``/layout/<name>``                attrs offset, ncomp, labels, shape
``/series/<name>/mean, stderr``   the derived time series (for other tools)
attrs ``meta`` (JSON)             provenance: model, field, dynamics, seeds,
                                  backend, device, versions, git revision,
                                  start/end time, packet-steps ...
attrs ``status_counts`` (JSON)

All datasets are gzip-compressed with the shuffle filter.  The raw sums are
what make results from separate runs mergeable (``Result.__add__``), and a
loaded result equals the saved one exactly (float64 round trip; metadata is
kept as canonical JSON).

Checkpoints
-----------
A checkpoint holds the full packet state (x, k, chi, band, weight, status,
pid, event clock and counter), the simulation time and step count, every
record so far and the pickled configuration (model, field, channels,
observables, options) needed to rebuild the Simulation.  It is written to
``path + ".tmp"``, flushed and fsync'ed, and renamed over ``path``
(atomic on POSIX), so a crash never leaves a half-written checkpoint under
the final name.  A SHA-256 checksum over every dataset and the configuration
is stored and verified on load: a truncated or corrupted file raises
:class:`CheckpointError` and is never silently used.

The configuration is a Python pickle (it holds the model's and channels'
compiled functions, the user's own included), and unpickling a file from an
untrusted source can run arbitrary code.  So a checkpoint is also signed: an
HMAC-SHA256 of its checksum under a key private to the user who wrote it
(:func:`checkpoint_key_path`: ``$PACKETS_CHECKPOINT_KEY``, else
``$XDG_CONFIG_HOME/packets/checkpoint.key``, created with mode 0600 on first
use).  A checkpoint whose signature this user's key verifies is loaded as
before; any other (written by someone else, on another machine, or altered
and re-checksummed) is refused unless the caller passes ``trusted=True``.
"""
import hashlib
import hmac
import json
import os
import pickle
import shutil
import subprocess

import numpy as np

FORMAT_RESULT = "packets-result"
FORMAT_CHECKPOINT = "packets-checkpoint"
FORMAT_VERSION = 1
_COMP = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupted or of another format."""


def canonical_json(obj):
    """JSON text of ``obj`` with sorted keys; NumPy scalars/arrays become lists."""

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, (set, tuple)):
            return list(o)
        return str(o)

    return json.dumps(obj, sort_keys=True, default=default)


def canonical(obj):
    """``obj`` normalised through canonical JSON (what a file round trip returns)."""
    return json.loads(canonical_json(obj))


def git_revision(path=None):
    """The git revision of the package source tree, or None when not in a git checkout."""
    here = path or os.path.dirname(os.path.abspath(__file__))
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    rev = out.stdout.strip()
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5)
    return rev + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def check_writable(path):
    """Raise a clear error now if ``path`` cannot be written (before any work)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise OSError(f"cannot write {path}: it is a directory; give a file name")
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        raise OSError(f"cannot write {path}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise OSError(f"cannot write {path}: directory {d} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OSError(f"cannot write {path}: the file exists and is not writable")
    return path


def check_disk_space(path, nbytes, factor=2.0):
    """Raise if the file system of ``path`` has less than factor * nbytes free."""
    d = os.path.dirname(os.path.abspath(os.fspath(path)))
    free = shutil.disk_usage(d).free
    if free < factor * nbytes:
        raise OSError(f"not enough disk space for checkpoints in {d}: need about {factor * nbytes / 1e6:.1f} MB "
                      f"(two copies during the atomic replace), {free / 1e6:.1f} MB free")


def _atomic_write(path, writer):
    path = check_writable(path)
    tmp = path + ".tmp"
    import h5py

    try:
        with h5py.File(tmp, "w") as f:
            writer(f)
            f.flush()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------


def save_result(result, path):
    """Write a :class:`packets.result.Result` to an HDF5 file (atomically)."""

    def writer(f):
        f.attrs["format"] = FORMAT_RESULT
        f.attrs["format_version"] = FORMAT_VERSION
        f.create_dataset("times", data=result.times, **_COMP)
        f.create_dataset("E", data=result.E, **_COMP)
        f.create_dataset("sums", data=result._sums, **_COMP)
        f.create_dataset("counts", data=result.counts, **_COMP)
        lay = f.create_group("layout")
        ser = f.create_group("series")
        for name, (off, nc, labels, shape) in result.layout.items():
            g = lay.create_group(name)
            g.attrs["offset"] = int(off)
            g.attrs["ncomp"] = int(nc)
            g.attrs["labels"] = json.dumps(list(labels))
            g.attrs["shape"] = json.dumps([int(s) for s in shape])
            s = result[name]
            sg = ser.create_group(name)
            sg.create_dataset("mean", data=s.mean, **_COMP)
            sg.create_dataset("stderr", data=s.stderr, **_COMP)
        f.attrs["meta"] = canonical_json(result.meta)
        f.attrs["status_counts"] = canonical_json(result.status_counts)

    return _atomic_write(path, writer)


def load_result(path):
    """Read a result file written by :func:`save_result`."""
    import h5py

    from .result import Result

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT_RESULT:
            raise ValueError(f"{path} is not a packets result file (format {f.attrs.get('format')!r})")
        times = f["times"][...]
        E = f["E"][...]
        sums = f["sums"][...]
        counts = f["counts"][...]
        layout = {}
        for name in f["layout"]:
            g = f["layout"][name]
            layout[name] = (int(g.attrs["offset"]), int(g.attrs["ncomp"]), json.loads(g.attrs["labels"]),
                            tuple(json.loads(g.attrs["shape"])))
        layout = dict(sorted(layout.items(), key=lambda kv: kv[1][0]))
        meta = json.loads(f.attrs["meta"])
        sc = json.loads(f.attrs["status_counts"])
    return Result(times, E, sums, layout, counts, sc, meta)


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------



def _digest(arrays, config_bytes, scalars_json):
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(config_bytes)
    h.update(scalars_json.encode())
    return h.hexdigest()


ENV_KEY = "PACKETS_CHECKPOINT_KEY"


def checkpoint_key_path():
    """Path of this user's checkpoint signing key (``$PACKETS_CHECKPOINT_KEY`` or the config dir)."""
    v = os.environ.get(ENV_KEY)
    if v:
        return os.path.abspath(os.path.expanduser(v))
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "packets", "checkpoint.key")


def _checkpoint_key(create):
    """The key bytes, created (32 random bytes, mode 0600) when ``create`` and missing; None if unavailable."""
    path = checkpoint_key_path()
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    if not create:
        return None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    except FileExistsError:  # another process created it meanwhile
        pass
    except OSError:
        return None
    return _checkpoint_key(create=False)


def _signature(key, digest):
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def write_checkpoint(path, arrays, config, scalars):
    """Write a checkpoint atomically with a SHA-256 checksum.

    ``arrays``: name -> ndarray (state and records); ``config``: any picklable
    object; ``scalars``: JSON-able dict (time, steps, run plan).
    """
    config_bytes = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    sj = canonical_json(scalars)
    digest = _digest(arrays, config_bytes, sj)

    def writer(f):
        f.attrs["format"] = FORMAT_CHECKPOINT
        f.attrs["format_version"] = FORMAT_VERSION
        g = f.create_group("arrays")
        for name, a in arrays.items():
            g.create_dataset(name, data=np.ascontiguousarray(a), **_COMP)
        f.create_dataset("config", data=np.frombuffer(config_bytes, dtype=np.uint8), **_COMP)
        f.attrs["scalars"] = sj
        f.attrs["sha256"] = digest
        if key is not None:
            f.attrs["hmac_sha256"] = _signature(key, digest)

    key = _checkpoint_key(create=True)
    return _atomic_write(path, writer)


def read_checkpoint(path, trusted=False):
    """Read and verify a checkpoint; returns (arrays, config, scalars).

    ``trusted``: unpickle the configuration even when this user's key does not
    verify the file's signature (module docstring: only for files you trust).

    Raises
    ------
    CheckpointError
        Missing, unreadable (e.g. truncated), wrong format, checksum mismatch,
        or (unless ``trusted``) a signature this user's key does not verify.
    """
    import h5py

    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT_CHECKPOINT:
                raise CheckpointError(f"{path} is not a packets checkpoint (format {f.attrs.get('format')!r})")
            arrays = {name: f["arrays"][name][...] for name in f["arrays"]}
            config_bytes = f["config"][...].tobytes()
            sj = f.attrs["scalars"]
            digest = f.attrs["sha256"]
            signature = f.attrs.get("hmac_sha256")
    except CheckpointError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/ValueError on damaged files
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted): {exc}") from exc
    if _digest(arrays, config_bytes, sj) != digest:
        raise CheckpointError(f"checkpoint {path} fails its SHA-256 checksum: the file is corrupted; "
                              "do not resume from it (use an earlier checkpoint or restart the run)")
    if not trusted:
        key = _checkpoint_key(create=False)
        if key is None or signature is None or not hmac.compare_digest(_signature(key, digest), str(signature)):
            raise CheckpointError(
                f"checkpoint {path} is not signed by this user's checkpoint key ({checkpoint_key_path()}): it was "
                "written by someone else, on another machine, or altered. Its configuration is a Python pickle, and "
                "unpickling a file from an untrusted source can run arbitrary code; if you trust this file, resume "
                "with Simulation.resume(path, trusted=True)")
    try:
        config = pickle.loads(config_bytes)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path}: the stored configuration cannot be unpickled ({exc}); "
                              "the model/channel code it refers to must be importable") from exc
    return arrays, config, json.loads(sj)
