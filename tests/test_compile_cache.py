"""The on-disk kernel cache (packets.compile_cache): keyed by content, reused across processes, never stale.

* the digest changes with every thing the machine code depends on (bytecode, constants, closure
  values, called functions) and not with anything else (a second definition of the same code);
* an object the digest cannot hash makes the kernel uncacheable instead of keying it loosely;
* a second process running the same Simulation compiles nothing and gives the same bits;
* editing a user's @njit filler gives a new kernel (never a stale one);
* an unwritable cache directory degrades to in-memory compilation with one warning.
"""
import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from packets import compile_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digest(fn):
    return compile_cache.content_digest(numba.njit(fn))


def test_digest_follows_code_constants_closures_and_callees():
    def make(c):
        def f(x):
            return x * c
        return f

    def g1(x):
        return x + 1.0

    def g2(x):
        return x + 2.0

    same = [_digest(make(2.0)), _digest(make(2.0))]
    assert same[0] == same[1]  # two definitions of the same code and values
    assert _digest(make(3.0)) != same[0]  # a closure value
    assert _digest(g1) != _digest(g2)  # a constant in the bytecode

    def caller_of(callee):
        inner = numba.njit(callee)

        def outer(x):
            return inner(x) * 2.0
        return numba.njit(outer)

    a, b = caller_of(g1), caller_of(g2)
    assert compile_cache.content_digest(a) != compile_cache.content_digest(b)  # an edit in a called function
    arr1 = np.arange(3.0)
    arr2 = arr1.copy()
    arr2[2] += 1e-12
    assert _digest(make(arr1)) != _digest(make(arr2))  # a captured array, to the last bit


def test_unhashable_closure_value_is_uncacheable_not_loose():
    class Opaque:
        pass

    obj = Opaque()

    def with_obj():
        o = obj

        def h(x):
            return x if o is None else x
        return h

    with pytest.raises(compile_cache.Uncacheable, match="Opaque"):
        _digest(with_obj())


def test_builtin_plugins_keyed_by_content_not_id():
    """Observables without cache_key() are keyed by the content of their kernel (no id() reuse)."""
    from observables import Current, Density
    from packets.models import MassiveDirac
    from packets.plugins import BuildContext, plugin_key

    m = MassiveDirac(1.0, 0.1)

    def key(nb):
        d = Density(edges=[np.linspace(-1, 1, nb), np.linspace(-1, 1, 5)])
        return plugin_key(d, d.build(BuildContext(m, None, "coherent"))[3])

    k1, k2, k3 = key(5), key(5), key(7)
    assert k1 == k2 and k1 != k3 and k1[0] == "content"
    assert plugin_key(Current(), Current().build(BuildContext(m, None, "coherent"))[3])[0] == "content"


def test_two_processes_racing_on_one_index_never_load_the_other_signature(tmp_path):
    """Two processes that compile one kernel for two signatures at once must not swap machine code.

    The race replayed: both read the empty index; A writes its index entry; B writes its own
    (overwriting A's); then both write their data.  numba's own file numbers both entries 1, so the
    index says "signature B: file 1" while file 1 may hold A's code.  Ours names the data file by
    its key and checks the key on load: B's entry gives B's data, A's lost entry gives None.
    """
    base = "mod.kernel-0123456789abcdef01234567.py311"
    a = compile_cache._IndexDataFile(cache_path=str(tmp_path), filename_base=base, source_stamp="s")
    b = compile_cache._IndexDataFile(cache_path=str(tmp_path), filename_base=base, source_stamp="s")
    key_a, key_b = ("sig A", "magic", "digest"), ("sig B", "magic", "digest")
    b._load_index = lambda: {}  # B read the index before A wrote it
    a.save(key_a, "code for A")
    b.save(key_b, "code for B")
    assert a.load(key_b) == "code for B"
    assert a.load(key_a) in (None, "code for A")
    # an index that names the wrong file (numba's numbering after the race) is refused, not loaded
    index = a._load_index()
    index[key_a] = index[key_b]
    a._save_index(index)
    assert a.load(key_a) is None and a.load(key_b) == "code for B"


# records the qualified name of every function numba compiles in the child process
_RECORD_COMPILES = textwrap.dedent("""
    import json
    from numba.core import event

    compiled = []

    class Listener(event.Listener):
        def on_start(self, ev):
            pass

        def on_end(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    event.register("numba:compile", Listener())
""")

_SIM_SCRIPT = _RECORD_COMPILES + textwrap.dedent("""
    from observables import Current
    from packets import Ensemble, Field, Simulation, models

    model = models.MassiveDirac(velocity=1.0, mass=0.1, valley=+1)
    ens = Ensemble.fermi_sea(model, mu=0.3, temperature=0.01, n=300, seed=1, bands=[1], k_window=1.0)
    sim = Simulation(model, ens, field=Field(E=(1e-3, 0.0)), dynamics="coherent", observables=[Current()],
                     dt=0.05, progress=False)
    r = sim.run(t_end=0.5, record_every=0.25)
    print(json.dumps({"compiled": compiled, "sums": r["current"].mean.tobytes().hex(), "x": sim.x.tobytes().hex()}))
""")


def _run(script, env=None, cwd=None):
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900,
                          cwd=cwd or REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_second_process_compiles_nothing_and_gives_the_same_bits():
    if compile_cache.cache_dir() is None:
        pytest.skip("the kernel cache is switched off (PACKETS_CACHE_DIR=off)")
    first, _ = _run(_SIM_SCRIPT)   # compiles what this cache does not hold yet
    second, _ = _run(_SIM_SCRIPT)  # a new process: everything from the disk cache
    assert second["compiled"] == [], f"recompiled in a new process: {second['compiled']}"
    assert second["sums"] == first["sums"] and second["x"] == first["x"]


_USER_SCRIPT = _RECORD_COMPILES + textwrap.dedent("""
    import numba
    import numpy as np
    from packets.models import UserModel

    @numba.njit
    def h(x, k, p, out):
        out[0, 0] = p[0] + MASS
        out[1, 1] = -p[0] - MASS
        out[0, 1] = k[0] - 1j * k[1]
        out[1, 0] = k[0] + 1j * k[1]

    model = UserModel(h, dim=2, nbands=2, params=[0.1], k_window=2.0)
    w, v = model.bands(np.array([[0.3, 0.1], [0.0, 0.2]]))
    print(json.dumps({"compiled": compiled, "w": w.tolist()}))
""")


def test_edited_user_filler_is_recompiled_never_stale(tmp_path):
    cache = str(tmp_path / "cache")
    env = {"PACKETS_CACHE_DIR": cache}
    a1, _ = _run("MASS = 0.0\n" + _USER_SCRIPT, env)
    a2, _ = _run("MASS = 0.0\n" + _USER_SCRIPT, env)
    b, _ = _run("MASS = 0.5\n" + _USER_SCRIPT, env)  # the user edits a global their filler reads
    assert "_bands_many" in a1["compiled"] and "_bands_many" not in a2["compiled"]
    assert a2["w"] == a1["w"]
    assert "_bands_many" in b["compiled"]  # a new digest: compiled again
    assert b["w"][0][1] == pytest.approx(np.hypot(0.6, np.hypot(0.3, 0.1)), rel=1e-12)
    assert a1["w"][0][1] == pytest.approx(np.hypot(0.1, np.hypot(0.3, 0.1)), rel=1e-12)
    assert any(f.endswith(".nbi") for f in os.listdir(cache))


def test_unwritable_cache_directory_warns_once_and_still_computes(tmp_path):
    # /proc/sys cannot be written even by root; a file as the parent works everywhere
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out, err = _run("import warnings\nwarnings.simplefilter('always')\nMASS = 0.0\n" + _USER_SCRIPT,
                    {"PACKETS_CACHE_DIR": str(blocker / "cache")})
    assert out["w"][0][1] == pytest.approx(np.hypot(0.1, np.hypot(0.3, 0.1)), rel=1e-12)
    assert err.count("cannot write the kernel cache") == 1, err[-3000:]


def test_cache_off_compiles_in_memory(tmp_path):
    out, err = _run("MASS = 0.0\n" + _USER_SCRIPT, {"PACKETS_CACHE_DIR": "off"})
    assert "_bands_many" in out["compiled"] and "kernel cache" not in err
