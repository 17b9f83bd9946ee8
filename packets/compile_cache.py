"""On-disk cache of compiled kernels, keyed by the content of everything they call.

Why not ``numba.njit(cache=True)``
----------------------------------
The engine composes its kernels in factories: the CPU driver closes over the
per-packet ``advance``, which closes over the step, the model's fillers, the
channels' ``apply`` kernels, the observables' tallies, and so on.  numba's
own cache keys a closure by ``pickle`` of its cell contents; a dispatcher
pickles with a fresh uuid in every process (numba issue 6264), so that key
never repeats and every process compiles everything again.  numba also
judges freshness by the time stamp of the one source file that defines the
function, so an edit in a function it *calls* goes unnoticed.

What this module does instead
-----------------------------
:func:`content_digest` hashes, recursively, what the machine code of a
dispatcher depends on: its bytecode and constants, the values it closes
over, the globals its code names (other dispatchers, numba intrinsics,
numbers, arrays, tuples) and the same for every function reached that way,
down to the user's own ``@njit`` fillers, spectra and channel kernels.  To
that it adds the numba and Python versions, the numba options that change
code generation, and a hash of this library's own source files.  Parameter
*values* are run-time arguments of the kernels, not part of any closure, so
they do not enter: a script rerun with other numbers hits the cache.

:func:`enable` installs a :class:`ContentCache` on a dispatcher.  Only the
entry points that Python calls need one (the CPU drivers, the clock and
ensemble kernels): a cached entry point carries the machine code of every
function it calls, so loading it compiles nothing else.

Limits (by construction, never a stale kernel)
----------------------------------------------
* An object the digest does not know how to hash (say a Python object
  captured by a user's closure) makes that kernel uncacheable: it is then
  compiled in memory as before, with a debug log line, never keyed loosely.
* Editing any function that a kernel reaches, upgrading numba or Python,
  or changing the library's source gives a new digest; stale entries stay
  on disk until the directory is cleared (``packets.compile_cache.clear()``).

Location: the environment variable ``PACKETS_CACHE_DIR``, else
``$XDG_CACHE_HOME/packets`` (``~/.cache/packets``).  ``PACKETS_CACHE_DIR=off``
(or ``0``, ``none``) switches the disk cache off.  A directory that cannot
be created or written degrades to in-memory compilation with one warning.
"""
import hashlib
import inspect
import logging
import os
import pickle
import sys
import types as pytypes
import warnings
from functools import lru_cache

import numba
import numpy as np
from numba.core import caching, config
from numba.core import types as nbtypes
from numba.core.dispatcher import Dispatcher
from numba.core.extending import _Intrinsic

__all__ = ["cache_dir", "clear", "content_digest", "enable", "Uncacheable"]

log = logging.getLogger(__name__)

ENV = "PACKETS_CACHE_DIR"
_OFF = ("off", "0", "none", "false", "")
_LIBRARY = ("packets", "scattering", "observables", "gpu")
# code of these packages is versioned by their version numbers (in the digest), not hashed
_THIRD_PARTY = ("numpy", "numba", "llvmlite", "math", "cmath", "builtins", "operator", "scipy", "numba_cuda")

_warned = False


class Uncacheable(Exception):
    """The digest met an object whose influence on the compiled code it cannot capture."""


def cache_dir():
    """The cache directory in use, or None when the disk cache is switched off."""
    v = os.environ.get(ENV)
    if v is not None:
        return None if v.strip().lower() in _OFF else os.path.abspath(os.path.expanduser(v))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "packets")


def clear():
    """Remove every cached kernel of this library from :func:`cache_dir`; returns the number of files."""
    d = cache_dir()
    n = 0
    if d and os.path.isdir(d):
        for name in os.listdir(d):
            if name.endswith((".nbi", ".nbc")):
                os.remove(os.path.join(d, name))
                n += 1
    return n


@lru_cache(maxsize=1)
def _environment_digest():
    """numba/Python versions, code-generation options and the library's own source files."""
    h = hashlib.sha256()
    import llvmlite

    h.update(repr((numba.__version__, llvmlite.__version__, np.__version__, sys.version, sys.platform,
                   config.OPT, config.BOUNDSCHECK, config.USING_SVML, config.DEBUGINFO_DEFAULT,
                   config.FASTMATH if hasattr(config, "FASTMATH") else None)).encode())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pkg in _LIBRARY:
        d = os.path.join(root, pkg)
        for dirpath, dirnames, filenames in sorted(os.walk(d)):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(".py"):
                    p = os.path.join(dirpath, f)
                    h.update(os.path.relpath(p, root).encode())
                    with open(p, "rb") as fh:
                        h.update(fh.read())
    return h.hexdigest()


def _third_party(obj):
    mod = getattr(obj, "__module__", None) or ""
    return mod.split(".")[0] in _THIRD_PARTY


def _code_names(code):
    """Every global/attribute name in ``code`` and in the code objects nested in it."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, pytypes.CodeType):
            names |= _code_names(c)
    return names


class _Digest:
    def __init__(self):
        self.h = hashlib.sha256()
        self.seen = {}

    def put(self, *tokens):
        for t in tokens:
            self.h.update(repr(t).encode())
            self.h.update(b"\x00")

    def code(self, code):
        self.put("code", code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_argcount,
                 code.co_kwonlyargcount, code.co_flags)
        for c in code.co_consts:
            if isinstance(c, pytypes.CodeType):
                self.code(c)
            else:
                self.value(c)

    def function(self, fn):
        key = id(fn)
        if key in self.seen:  # recursion (a function reaching itself): its content is being hashed
            self.put("again", fn.__qualname__)
            return
        self.seen[key] = fn
        self.put("function", fn.__module__, fn.__qualname__)
        self.code(fn.__code__)
        self.value(fn.__defaults__)
        if fn.__closure__:
            for cell in fn.__closure__:
                try:
                    self.value(cell.cell_contents)
                except ValueError:  # an empty cell
                    self.put("empty cell")
        g = fn.__globals__
        names = sorted(_code_names(fn.__code__))
        for name in names:
            if name not in g:
                continue
            v = g[name]
            self.put("global", name)
            if isinstance(v, pytypes.ModuleType):
                self.put("module", v.__name__)
                # attributes of that module named in the code (``linalg.eigh2``)
                for attr in names:
                    sub = getattr(v, attr, None) if attr != name else None
                    if sub is not None and not isinstance(sub, pytypes.ModuleType):
                        self.put("attr", attr)
                        self.value(sub, loose=True)
            else:
                self.value(v)

    def value(self, v, loose=False):
        """Hash a value the compiled code may depend on; ``loose``: an attribute that may be unused."""
        if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
            self.put(type(v).__name__, v)
        elif isinstance(v, np.ndarray):
            self.put("ndarray", v.dtype.str, v.shape)
            self.h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, np.generic):
            self.put("npscalar", v.dtype.str, v.tobytes())
        elif isinstance(v, (tuple, list)):
            self.put(type(v).__name__, len(v))
            for e in v:
                self.value(e, loose)
        elif isinstance(v, Dispatcher) or (type(v).__name__ == "CUDADispatcher" and hasattr(v, "py_func")):
            opts = getattr(v, "targetoptions", {})
            self.put("dispatcher", type(v).__name__, sorted((k, repr(o)) for k, o in opts.items()))
            self.function(v.py_func)
        elif isinstance(v, _Intrinsic):
            self.put("intrinsic", v._name)
            self.function(v._defn)
        elif isinstance(v, pytypes.FunctionType):
            if _third_party(v):
                self.put("library function", v.__module__, v.__qualname__)
            else:
                self.function(v)
        elif isinstance(v, (pytypes.BuiltinFunctionType, type, np.ufunc)):
            self.put("named", getattr(v, "__module__", None), getattr(v, "__qualname__", getattr(v, "__name__", "")))
        elif isinstance(v, pytypes.ModuleType):
            self.put("module", v.__name__)
        elif isinstance(v, nbtypes.Type):
            self.put("numba type", str(v))
        elif isinstance(v, np.dtype):
            self.put("dtype", v.str)
        elif isinstance(v, dict):
            self.put("dict", len(v))
            for k in sorted(v, key=repr):
                self.value(k, loose)
                self.value(v[k], loose)
        elif loose:
            # a module attribute the code only may name (``mod.attr`` where ``attr`` is also a local
            # name): its type and repr
            self.put("object", type(v).__module__, type(v).__qualname__, _safe_repr(v))
        else:
            raise Uncacheable(f"cannot hash {type(v).__module__}.{type(v).__qualname__} object {_safe_repr(v)}")


def _safe_repr(v):
    try:
        r = repr(v)
    except Exception:  # pragma: no cover - a broken __repr__
        r = type(v).__qualname__
    return r if " at 0x" not in r else type(v).__qualname__


def content_digest(dispatcher):
    """Hex digest of everything the compiled code of ``dispatcher`` depends on (module docstring).

    Raises :class:`Uncacheable` when a reached object cannot be hashed faithfully.
    """
    d = _Digest()
    d.put("environment", _environment_digest())
    d.value(dispatcher)
    return d.h.hexdigest()


class _Locator(caching._CacheLocator):
    """Every kernel in one flat directory; freshness is in the file name (the digest), not a time stamp."""

    def __init__(self, path, py_file):
        self._path = path
        self._py_file = py_file

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return "content-addressed"

    def get_disambiguator(self):
        return ""

    @classmethod
    def from_function(cls, py_func, py_file):  # pragma: no cover - never searched for
        return None


class _Impl(caching.CompileResultCacheImpl):
    def __init__(self, py_func, path, digest):
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = _Locator(path, py_func.__code__.co_filename)
        qual = py_func.__qualname__.replace("<locals>.", "").replace("<", "").replace(">", "")
        mod = (py_func.__module__ or "main").split(".")[-1]
        self._filename_base = f"{mod}.{qual}-{digest[:24]}.py{sys.version_info[0]}{sys.version_info[1]}"


class _IndexDataFile(caching.IndexDataCacheFile):
    """numba's index + data files, safe when several processes fill one cache at once.

    numba numbers the data files of one index in the order their entries were
    added, reading the index first.  Two processes that compile the same
    kernel for two signatures at the same time (two pytest-xdist workers, two
    Dask workers on one machine) can both pick data file 1; the index then
    names one signature and the file holds the other's machine code, which
    crashes when called.  Here the data file is named by a hash of its index
    key, and it stores the key, which :meth:`load` checks: a lost race costs
    a recompilation, never a kernel compiled for other argument types.
    """

    def save(self, key, data):
        overloads = self._load_index()
        name = f"{self._index_name[:-4]}.{hashlib.sha256(pickle.dumps(key, protocol=4)).hexdigest()[:16]}.nbc"
        self._save_data(name, (key, data))  # the data first: an index entry never names a missing file
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)

    def load(self, key):
        stored = super().load(key)
        if stored is None or not isinstance(stored, tuple) or len(stored) != 2 or stored[0] != key:
            return None
        return stored[1]


class ContentCache(caching.FunctionCache):
    """numba's per-function cache, keyed by :func:`content_digest` (computed at the first compile)."""

    def __init__(self, dispatcher, path):
        self._name = repr(dispatcher.py_func)
        self._py_func = dispatcher.py_func
        self._dispatcher = dispatcher
        self._path = path
        self._digest = None
        self._cache_file = None
        self._enabled = True

    @property
    def cache_path(self):
        return self._path

    def _ready(self):
        """Compute the digest and open the index once; False when this kernel cannot be cached."""
        if self._cache_file is not None:
            return True
        if not self._enabled:
            return False
        try:
            self._digest = content_digest(self._dispatcher)
        except Uncacheable as exc:
            log.debug("not caching %s on disk: %s", self._name, exc)
            self._enabled = False
            return False
        self._impl = _Impl(self._py_func, self._path, self._digest)
        self._cache_file = _IndexDataFile(cache_path=self._path, filename_base=self._impl.filename_base,
                                                      source_stamp=self._impl.locator.get_source_stamp())
        return True

    def _index_key(self, sig, codegen):
        return (sig, codegen.magic_tuple(), self._digest)

    def load_overload(self, sig, target_context):
        if not self._ready():
            return None
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # a truncated or foreign file: compile instead, and overwrite it
            log.debug("cache entry of %s unreadable (%r); compiling", self._name, exc)
            return None

    def save_overload(self, sig, data):
        global _warned
        if not self._ready():
            return
        try:
            os.makedirs(self._path, exist_ok=True)
            super().save_overload(sig, data)
        except Exception as exc:  # never let the cache break a compile that succeeded
            self._enabled = False
            if not isinstance(exc, OSError):
                log.debug("not caching %s on disk: %r", self._name, exc)
                return
            if not _warned:
                _warned = True
                warnings.warn(f"packets: cannot write the kernel cache in {self._path} ({exc}); kernels are "
                              f"compiled in memory only (set {ENV} to a writable directory, or to 'off')",
                              RuntimeWarning, stacklevel=2)

    def flush(self):  # pragma: no cover - numba API
        if self._ready():
            self._cache_file.flush()


def enable(dispatcher):
    """Give a CPU dispatcher the on-disk content cache (no-op when the cache is off); returns it."""
    path = cache_dir()
    if path is None or not isinstance(dispatcher, Dispatcher):
        return dispatcher
    if not isinstance(dispatcher._cache, ContentCache):
        dispatcher._cache = ContentCache(dispatcher, path)
    return dispatcher



def host_kernel(fn=None, **options):
    """``numba.njit(**options)`` for a function that Python calls directly, with the on-disk content cache."""
    if fn is None:
        return lambda f: enable(numba.njit(**options)(f))
    return enable(numba.njit(**options)(fn))


_SPECIALISED = {}


def specialise(template, **functions):
    """``template`` compiled with some parameters fixed to kernel functions, cached on disk (memoised).

    ``template`` is a loop written as an ordinary ``@njit`` function whose
    parameters include kernel functions (a model's filler, a disorder
    spectrum).  Called from Python with a dispatcher argument, numba cannot
    cache it across processes (the signature holds the dispatcher, which
    pickles differently in every process).  Here those parameters are
    removed and the functions become globals of a fresh copy of the
    template's code, so :func:`content_digest` hashes them by content::

        loop = specialise(_spectrum_many, spectrum=disorder.spectrum)
        loop(qs, p, out)   # was _spectrum_many(disorder.spectrum, qs, p, out)
    """
    import ast
    import textwrap

    py = getattr(template, "py_func", template)
    options = {k: v for k, v in getattr(template, "targetoptions", {}).items() if k != "nopython"}
    key = (py,) + tuple(sorted(functions.items(), key=lambda kv: kv[0]))
    got = _SPECIALISED.get(key)
    if got is not None:
        return got
    lines, first = inspect.getsourcelines(py)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    ast.increment_lineno(tree, first - 1)
    fdef = tree.body[0]
    fdef.decorator_list = []
    names = [a.arg for a in fdef.args.args]
    missing = set(functions) - set(names)
    if missing:
        raise TypeError(f"{py.__qualname__} has no parameters {sorted(missing)}")
    fdef.args.args = [a for a in fdef.args.args if a.arg not in functions]
    ns = dict(py.__globals__)
    ns.update(functions)
    exec(compile(tree, py.__code__.co_filename, "exec"), ns)
    got = _SPECIALISED[key] = enable(numba.njit(**options)(ns[fdef.name]))
    return got
