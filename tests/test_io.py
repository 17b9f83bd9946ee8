"""Result files, checkpoints and restarts (packets.io, Result.save/load/+, Simulation.checkpoint/resume).

What is verified, and against what:

* HDF5 round trip: a loaded result is bit-identical to the saved one (every array, the
  metadata), every dataset is gzip+shuffle compressed, provenance is present and true
  (numpy/numba versions equal the imported modules', git revision equals ``git rev-parse``).
* Exact merging: two half-runs split at a shard-aligned packet-id boundary add up
  (``Result.__add__``) to the undivided run bit for bit — the fixed binary tree of
  :func:`packets.driver_cpu.tree_reduce` over global shard indices makes the sum of an
  aligned half exactly the corresponding subtree.  Same for 1 vs 2 numba threads.
* Crash safety: a run in a subprocess is SIGKILLed mid-run; ``Simulation.resume`` of its
  last checkpoint finishes with results, times and final state bit-identical to an
  uninterrupted run (Born scattering with side jump and its default, estimated majorant is
  included, so that the restored random clocks, event counters and the run's majorant matter).
* Damaged checkpoints (flipped byte, valid-but-altered data, truncation, wrong format,
  missing file) raise :class:`packets.io.CheckpointError`, never resume silently.
* Bad input is refused before any kernel launch: unwritable/nonexistent output paths,
  too little disk space for checkpoints, an ensemble too large for memory.
* ``bytes_per_packet`` equals the real per-packet size of the Simulation's state arrays.
* ``Result.conductivity(reference=...)``: the E = 0 run of the same ensemble and seed removes
  its own equilibrium current exactly and shrinks the error bar (batch-wise differences).

Everything uses one model/field/channel/observable combination, so the numba kernels are
compiled once per process (the killed subprocess compiles its own copy in parallel).
"""
import collections
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numba
import numpy as np
import pytest

import packets.distributed as pdist
import packets.io as pio
from observables import BandPopulation, Current
from packets import Ensemble, Field, Result, Simulation
from packets.models import MassiveDirac
from scattering import ElasticScattering, WhiteNoiseDisorder

from identity import STATE, assert_same_run, assert_same_state
from kernels import recompiled_physics_kernels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# one configuration for the whole file (one numba compilation per process)
MASS, MU, TEMP, KWIN = 0.5, 0.8, 0.1, 3.0
DT, SHARD = 0.04, 512
N, SEED = 4096, 11              # 8 shards
T_END, REC = 0.8, 0.16          # 5 record intervals of 4 steps
# the run that is killed: 1024 packets (2 shards), 100 record intervals of 1 step
N_KILL, SEED_KILL = 1024, 12
T_KILL, REC_KILL = 4.0, 0.04


def model():
    return MassiveDirac(velocity=1.0, mass=MASS)


def ensemble(n=N, seed=SEED):
    # k_window = 3 keeps the band spread (2 sqrt(9 + m^2) ~ 6) small: dt * spread ~ 0.25
    return Ensemble.fermi_sea(model(), MU, TEMP, n, seed=seed, k_window=KWIN)


def make_parts():
    # Born scattering with side jump and the default, estimated majorant: the estimate is made once,
    # kept in the spec and checkpoint, and reused on resume (else the resumed events would differ)
    return {"model": model(), "field": Field(E=(0.05, 0.0)),
            "channels": [ElasticScattering(WhiteNoiseDisorder(0.5), side_jump=True)],
            "observables": [Current(), BandPopulation()]}


def make_sim(ens, parts=None, **kw):
    """The file's one Simulation configuration (also imported by the killed subprocess)."""
    p = parts or make_parts()
    return Simulation(p["model"], ens, field=p["field"], dynamics="coherent", channels=p["channels"],
                      observables=p["observables"], dt=DT, shard=SHARD, progress=False, **kw)


def spy_kernel(sim):
    """Replace the sim's compiled advance by a counting wrapper; returns the call list."""
    calls = []
    orig = sim._advance

    def spy(*args):
        calls.append(1)
        return orig(*args)

    sim._advance = spy
    return calls


# ----------------------------------------------------------------------------
# the subprocess that is SIGKILLed mid-run (started first, so that its numba
# compilation overlaps the test process's own)
# ----------------------------------------------------------------------------

KILL_SCRIPT = """
import importlib.util, os, pickle, sys, time
sys.path.insert(0, os.path.dirname({test_file!r}))  # the tests' helper modules (identity)
spec = importlib.util.spec_from_file_location("_packets_test_io_child", {test_file!r})
T = importlib.util.module_from_spec(spec)
spec.loader.exec_module(T)
ckpt, ready, go, parts_file = sys.argv[1:5]
with open(parts_file, "rb") as f:
    parts = pickle.load(f)
# compile the kernels on a few packets first, so that the run itself starts when told
T.make_sim(T.ensemble(T.N_KILL, T.SEED_KILL).subset(slice(0, 64)), parts).run(2 * T.DT, T.DT)
open(ready, "w").close()
while not os.path.exists(go):  # (the test script waits; the library never sleeps)
    time.sleep(0.01)
T.make_sim(T.ensemble(T.N_KILL, T.SEED_KILL), parts).run(T.T_KILL, T.REC_KILL, checkpoint=ckpt,
                                                          checkpoint_every=1)
print("run finished without being killed", flush=True)
"""


@pytest.fixture(scope="module")
def killer(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill")
    script = d / "child.py"
    script.write_text(KILL_SCRIPT.format(test_file=os.path.abspath(__file__)))
    paths = {"ckpt": str(d / "run.ckpt.h5"), "ready": str(d / "ready"), "go": str(d / "go"),
             "out": str(d / "child.out"), "parts": str(d / "parts.pkl")}
    # The child builds its Simulation from this process's pickled model, field, channel and
    # observables.  numba pickles a jitted function with its id and maps it back to the
    # original object when unpickled in the process that owns it, so the Simulation that
    # resume() rebuilds here hits this process's kernel cache instead of recompiling.  The
    # configuration is identical either way (pickling is exact).
    with open(paths["parts"], "wb") as f:
        pickle.dump(make_parts(), f)
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    with open(paths["out"], "w") as out:
        proc = subprocess.Popen([sys.executable, str(script), paths["ckpt"], paths["ready"], paths["go"],
                                 paths["parts"]],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    paths["proc"] = proc
    yield paths
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def base(killer):
    """The reference run (compiles the kernels of this process)."""
    sim = make_sim(ensemble())
    res = sim.run(T_END, REC)
    # compile hygiene: the lane driver with an event channel compiles each physics kernel once
    assert not recompiled_physics_kernels(sim)
    return sim, res


# ----------------------------------------------------------------------------
# result files
# ----------------------------------------------------------------------------


def test_save_load_round_trip_exact(base, tmp_path):
    sim, res = base
    path = tmp_path / "result.h5"
    assert res.save(path) == str(path)
    loaded = Result.load(path)
    assert res.equals(loaded) and loaded.equals(res)
    for name in ("times", "E", "_sums", "counts"):
        a, b = getattr(res, name), getattr(loaded, name)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert loaded.meta == res.meta and loaded.status_counts == res.status_counts
    assert loaded.layout == res.layout and list(loaded.layout) == list(res.layout)
    for name in res.names:  # derived series agree exactly (same sums, same arithmetic)
        assert np.array_equal(loaded[name].mean, res[name].mean)
        assert np.array_equal(loaded[name].stderr, res[name].stderr)
    # the check can fail: another result is not "equal"
    other = Result(res.times, res.E, 2 * res._sums, res.layout, res.counts, res.status_counts, res.meta)
    assert not res.equals(other)
    with pytest.raises(ValueError, match="share packet ids"):
        res + res  # a run added to itself would count every packet twice
    # every dataset is compressed (gzip + shuffle) and the stored series are the result's
    with h5py.File(path, "r") as f:
        dsets = []
        f.visititems(lambda n, o: dsets.append(n) if isinstance(o, h5py.Dataset) else None)
        assert {"times", "E", "sums", "counts", "series/current/mean", "series/populations/stderr"} <= set(dsets)
        for n in dsets:
            assert f[n].compression == "gzip", n
            assert f[n].shuffle, n
        assert np.array_equal(f["series/current/mean"][...], res["current"].mean)
        assert np.array_equal(f["sums"][...], res._sums)
    # no temporary file left behind by the atomic write
    assert not os.path.exists(str(path) + ".tmp")


def test_provenance(base):
    sim, res = base
    meta = res.meta
    assert meta["seed"] == SEED
    assert meta["backend"] == "cpu" and meta["device"] == "cpu"
    assert meta["n_packets"] == N and meta["shard"] == SHARD and meta["dt"] == DT
    assert meta["versions"]["numpy"] == np.__version__
    assert meta["versions"]["numba"] == numba.__version__
    assert "h5py" in meta["versions"] and "packets" in meta["versions"]
    t0 = time.strptime(meta["started"], "%Y-%m-%dT%H:%M:%S%z")
    t1 = time.strptime(meta["finished"], "%Y-%m-%dT%H:%M:%S%z")
    assert time.mktime(t0) <= time.mktime(t1)
    assert "git_revision" in meta
    # where git and a checkout exist, the recorded revision is the checkout's HEAD
    head = None
    if shutil.which("git"):
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True)
        head = out.stdout.strip() if out.returncode == 0 else None
    if head:
        assert meta["git_revision"] in (head, head + "+dirty")
    assert meta["packet_steps"] == sim.packet_steps > 0


def test_load_rejects_other_format(base, tmp_path):
    sim = make_sim(ensemble(SHARD))
    p = tmp_path / "c.h5"
    sim.checkpoint(str(p))
    with pytest.raises(ValueError, match="not a packets result file"):
        Result.load(p)


# ----------------------------------------------------------------------------
# exact merging and thread independence
# ----------------------------------------------------------------------------


def test_half_runs_merge_exactly(base):
    sim, full = base
    ens = ensemble()
    half = N // 2  # 4 shards of 512: a power-of-two multiple of the shard, aligned to itself
    # the halves are parts of the full run: they take its spec's channels, which carry the majorant
    # estimated for the whole ensemble (a half estimating its own would draw other events)
    parts = dict(make_parts(), channels=list(sim.spec.channels))
    assert parts["channels"][0].majorant_value is None  # the user's setting: estimated
    assert parts["channels"][0]._majorant_fixed == full.meta["majorants"][0]
    r1 = make_sim(ens.subset(slice(0, half)), parts).run(T_END, REC)
    r2 = make_sim(ens.subset(slice(half, N)), parts).run(T_END, REC)
    assert r1.meta["majorants"] == r2.meta["majorants"] == full.meta["majorants"]
    merged = r1 + r2
    assert np.array_equal(merged._sums, full._sums)
    assert np.array_equal(merged.counts, full.counts)
    assert np.array_equal(merged.times, full.times) and np.array_equal(merged.E, full.E)
    assert merged.status_counts == full.status_counts
    assert merged.meta["merged"] == 2
    for name in full.names:
        assert np.array_equal(merged[name].mean, full[name].mean)
    # the halves are genuinely different partial sums (neither alone is the total)
    assert not np.array_equal(r1._sums, full._sums) and not np.array_equal(r2._sums, full._sums)
    # results with other record times cannot be merged
    r4 = make_sim(ens.subset(slice(half, N)), parts).run(T_END, 2 * DT)
    with pytest.raises(ValueError):
        r1 + r4


def test_from_state_continues_the_run_exactly(base):
    """spec + state -> Simulation.from_state (the path of resume and of distributed tasks): bit-identical."""
    import dataclasses

    from packets.state import PacketState

    sim0, full = base
    sim = make_sim(ensemble())
    sim.run(2 * REC, REC)
    spec, state = sim.spec, sim.state.copy()
    assert isinstance(state, PacketState) and set(state.as_dict()) == set(STATE)
    # the spec is frozen and hashable, and it (with the state) pickles as a checkpoint or a task stores it
    assert hash(spec) == hash(sim.spec) and spec == sim.spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dt = 1.0
    spec, state = pickle.loads(pickle.dumps((spec, state)))
    again = Simulation.from_state(spec, state, t=sim.t, packet_steps=sim.packet_steps)
    tail = again.run(T_END, REC)
    sim.run(T_END, REC)
    assert_same_state(again, sim)
    assert_same_state(again, sim0)
    # the continued interval sums are those of the uninterrupted run from 2 REC on
    assert np.array_equal(tail._sums[1:], full._sums[3:])
    # the dict configuration of earlier checkpoints is accepted, and one lacking an entry refused
    old = {f.name: getattr(sim.spec, f.name) for f in dataclasses.fields(spec)}
    assert Simulation.from_state(old, sim.state.copy()).spec.dt == sim.dt
    with pytest.raises(ValueError, match="lacks"):
        Simulation.from_state({k: v for k, v in old.items() if k != "dt"}, state)
    bad = state.as_dict()
    bad["chi"] = bad["chi"][:, :1]
    with pytest.raises(ValueError, match="chi"):
        Simulation.from_state(spec, bad)


def test_thread_count_does_not_change_results(base):
    sim, full = base
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba can only use one thread here")
    old = numba.get_num_threads()
    out = {}
    try:
        for nt in (1, 2):
            numba.set_num_threads(nt)
            s = make_sim(ensemble())
            out[nt] = (s, s.run(T_END, REC))
            assert out[nt][1].meta["threads"] == nt
    finally:
        numba.set_num_threads(old)
    assert_same_run(out[1][1], out[2][1])
    assert_same_run(out[1][1], full)
    assert_same_state(out[1][0], out[2][0])


def test_conductivity_with_reference_run(base):
    """Correlated sampling: the same ensemble and seed at E = 0 removes the equilibrium fluctuations."""
    _, res = base
    ref0 = make_sim(ensemble(), parts=dict(make_parts(), field=Field(E=(0.0, 0.0)))).run(T_END, REC)
    s_plain, se_plain, b = res.conductivity(t_min=REC)
    s_ref, se_ref, b2 = res.conductivity(t_min=REC, reference=ref0)
    assert b == b2 == 0
    # the E = 0 run carries a current of its own (finite-sample fluctuation) that the reference removes
    j0, j0_se = ref0["current"].time_average(t_min=REC)
    assert np.allclose(s_plain - s_ref, j0[:2] / 0.05, rtol=1e-10, atol=1e-10 * np.max(np.abs(j0)) / 0.05)
    assert np.all(se_ref[:2] < 0.2 * se_plain[:2]), (se_ref, se_plain)
    # a reference with other record times is refused
    other = make_sim(ensemble(SHARD)).run(T_END, T_END / 2)
    with pytest.raises(ValueError, match="same record times"):
        res.conductivity(reference=other)


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------


def test_sigkill_mid_run_then_resume_is_bit_identical(killer, base):
    proc = killer["proc"]
    deadline = time.time() + 900
    while not os.path.exists(killer["ready"]):
        if proc.poll() is not None:
            pytest.fail("the child exited before starting its run:\n" + open(killer["out"]).read()[-3000:])
        assert time.time() < deadline, "the child did not compile within 900 s"
        time.sleep(0.05)
    open(killer["go"], "w").close()
    # wait for a checkpoint that holds at least two records beyond the initial one
    while True:
        if proc.poll() is not None:
            pytest.fail("the child finished before it could be killed:\n" + open(killer["out"]).read()[-3000:])
        assert time.time() < deadline, "no checkpoint appeared"
        try:
            arrays, _, scalars = pio.read_checkpoint(killer["ckpt"])
        except pio.CheckpointError:  # not written yet
            time.sleep(0.005)
            continue
        if len(arrays["rec_times"]) >= 3:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    arrays, _, scalars = pio.read_checkpoint(killer["ckpt"])
    t_ckpt = scalars["t"]
    assert 2 * REC_KILL - 1e-12 <= t_ckpt < T_KILL - 1e-9, f"not killed mid-run (checkpoint at t = {t_ckpt})"
    assert arrays["rec_times"][-1] == t_ckpt

    ref_sim = make_sim(ensemble(N_KILL, SEED_KILL))
    ref = ref_sim.run(T_KILL, REC_KILL)
    sim = Simulation.resume(killer["ckpt"], progress=False)
    assert sim.t == t_ckpt
    res = sim.run()
    assert_same_run(res, ref)
    assert_same_state(sim, ref_sim)
    assert np.sum(ref_sim.ev) > 0  # scattering events happened, so the restored clocks mattered
    assert res.meta["seed"] == ref.meta["seed"] == SEED_KILL
    # the resumed run kept writing its checkpoint: the last one is at t_end
    t_last = pio.read_checkpoint(killer["ckpt"])[2]["t"]
    assert t_last == res.times[-1] == ref_sim.t and abs(t_last - T_KILL) < 1e-9


def test_resume_in_process_continue_and_checkpoint_every(base, tmp_path, monkeypatch):
    sim_full, full = base
    p = str(tmp_path / "mid.h5")
    written = []
    real = pio.write_checkpoint
    monkeypatch.setattr(pio, "write_checkpoint", lambda *a, **k: written.append(a[2]) or real(*a, **k))
    s = make_sim(ensemble())
    s.run(3 * REC, REC, checkpoint=p, checkpoint_every=2)
    # every 2nd of 3 record intervals, plus the end
    assert len(written) == 2
    monkeypatch.setattr(pio, "write_checkpoint", real)
    r = Simulation.resume(p, progress=False)
    assert r.t == s.t and r.packet_steps == s.packet_steps
    res = r.run(T_END, REC)
    assert_same_run(res, full)
    assert_same_state(r, sim_full)
    # resuming a finished run returns its result unchanged
    p2 = str(tmp_path / "end.h5")
    r.checkpoint(p2)
    again = Simulation.resume(p2, progress=False).run()
    assert_same_run(again, full)


@pytest.fixture(scope="module")
def good_checkpoint(base, tmp_path_factory):
    p = str(tmp_path_factory.mktemp("ck") / "good.h5")
    s = make_sim(ensemble(2 * SHARD))
    s.run(2 * REC, REC, checkpoint=p)
    return p, s


def _copy_with(tmp_path, src, name, edit):
    data = bytearray(open(src, "rb").read())
    data = edit(data)
    dst = tmp_path / name
    dst.write_bytes(bytes(data))
    return str(dst)


def test_good_checkpoint_resumes(good_checkpoint):
    p, s = good_checkpoint
    r = Simulation.resume(p, progress=False)
    assert r.t == s.t
    assert_same_state(r, s)


def test_flipped_byte_is_detected(good_checkpoint, tmp_path):
    p, _ = good_checkpoint

    def flip_middle(d):
        d[len(d) // 2] ^= 0xFF
        return d

    bad = _copy_with(tmp_path, p, "mid.h5", flip_middle)
    with pytest.raises(pio.CheckpointError, match="corrupt|unreadable|checksum"):
        Simulation.resume(bad)
    # a flipped byte inside the stored (compressed) data of every dataset
    with h5py.File(p, "r") as f:
        offsets = {}
        for name in ["arrays/" + n for n in f["arrays"]] + ["config"]:
            ds = f[name]
            info = ds.id.get_chunk_info(0) if ds.chunks else None
            off, size = (info.byte_offset, info.size) if info else (ds.id.get_offset(), ds.id.get_storage_size())
            offsets[name] = off + size // 2
    for name, off in offsets.items():
        def flip(d, off=off):
            d[off] ^= 0x5A
            return d

        bad = _copy_with(tmp_path, p, name.replace("/", "_") + ".h5", flip)
        with pytest.raises(pio.CheckpointError):
            pio.read_checkpoint(bad)


def test_checksum_catches_valid_but_altered_data(good_checkpoint, tmp_path):
    """Data changed through HDF5 itself (readable file, stale checksum) fails the SHA-256."""
    p, _ = good_checkpoint
    q = tmp_path / "edited.h5"
    shutil.copy(p, q)
    with h5py.File(q, "r+") as f:
        k = f["arrays/k"][...]
        k[7, 1] = np.nextafter(k[7, 1], np.inf)  # one ulp
        f["arrays/k"][...] = k
    with pytest.raises(pio.CheckpointError, match="SHA-256"):
        Simulation.resume(str(q))
    q2 = tmp_path / "edited_t.h5"
    shutil.copy(p, q2)
    with h5py.File(q2, "r+") as f:
        f.attrs["scalars"] = f.attrs["scalars"].replace('"t": ', '"t": 1')
    with pytest.raises(pio.CheckpointError, match="SHA-256"):
        Simulation.resume(str(q2))


def test_checkpoint_not_signed_by_this_user_needs_trusted(good_checkpoint, tmp_path, monkeypatch):
    """The configuration is a pickle: a checkpoint this user's key did not sign is refused before it is
    unpickled (another user's file, or one altered and given a fresh checksum); trusted=True loads it."""
    p, s = good_checkpoint
    # altered, with a valid new checksum: only the signature can tell
    q = tmp_path / "rechecksummed.h5"
    shutil.copy(p, q)
    with h5py.File(q, "r+") as f:
        k = f["arrays/k"][...]
        k[7, 1] = np.nextafter(k[7, 1], np.inf)
        f["arrays/k"][...] = k
        arrays = {name: f["arrays"][name][...] for name in f["arrays"]}
        f.attrs["sha256"] = pio._digest(arrays, f["config"][...].tobytes(), f.attrs["scalars"])
    with pytest.raises(pio.CheckpointError, match="not signed by this user's checkpoint key"):
        Simulation.resume(str(q), progress=False)
    # another user: their key is not ours
    monkeypatch.setenv(pio.ENV_KEY, str(tmp_path / "another_user.key"))
    with pytest.raises(pio.CheckpointError, match=r"not signed .*arbitrary code.*trusted=True"):
        Simulation.resume(p, progress=False)
    r = Simulation.resume(p, progress=False, trusted=True)
    assert r.t == s.t
    assert_same_state(r, s)
    # a checkpoint written under that key is theirs to load without the opt-in
    q2 = str(tmp_path / "theirs.h5")
    r.checkpoint(q2)
    assert os.stat(pio.checkpoint_key_path()).st_mode & 0o777 == 0o600
    assert_same_state(Simulation.resume(q2, progress=False), s)


def test_truncated_wrong_format_missing(good_checkpoint, base, tmp_path):
    p, _ = good_checkpoint
    bad = _copy_with(tmp_path, p, "trunc.h5", lambda d: d[: len(d) // 2])
    with pytest.raises(pio.CheckpointError, match="truncated|unreadable"):
        Simulation.resume(bad)
    bad = _copy_with(tmp_path, p, "trunc_end.h5", lambda d: d[: len(d) - 100])
    with pytest.raises(pio.CheckpointError):
        Simulation.resume(bad)
    rp = tmp_path / "a_result.h5"
    base[1].save(rp)
    with pytest.raises(pio.CheckpointError, match="not a packets checkpoint"):
        Simulation.resume(str(rp))
    with pytest.raises(pio.CheckpointError, match="does not exist"):
        Simulation.resume(str(tmp_path / "nothing.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(pio.CheckpointError):
        Simulation.resume(str(junk))


def test_failed_write_leaves_previous_checkpoint_intact(good_checkpoint, tmp_path):
    p, s = good_checkpoint
    q = str(tmp_path / "keep.h5")
    shutil.copy(p, q)
    before = open(q, "rb").read()
    with pytest.raises(TypeError):  # h5py cannot store object arrays: the writer fails midway
        pio.write_checkpoint(q, {"x": s.x, "bad": np.array([object()], dtype=object)}, {"a": 1}, {"t": 0.0})
    assert open(q, "rb").read() == before
    assert not os.path.exists(q + ".tmp")
    pio.read_checkpoint(q)


# ----------------------------------------------------------------------------
# bad input refused before any work
# ----------------------------------------------------------------------------


def test_output_in_missing_directory(base, tmp_path):
    sim = make_sim(ensemble(SHARD))
    calls = spy_kernel(sim)
    x0 = sim.x.copy()
    bad = tmp_path / "no" / "such" / "dir" / "c.h5"
    with pytest.raises(OSError, match="does not exist"):
        sim.run(T_END, REC, checkpoint=str(bad))
    assert calls == [] and sim.t == 0.0 and sim.packet_steps == 0 and np.array_equal(sim.x, x0)
    with pytest.raises(OSError, match="does not exist"):
        base[1].save(bad)
    assert not (tmp_path / "no").exists()
    # the same Simulation still runs normally afterwards
    sim.run(REC, REC)
    assert calls == [1, 1]


def _unwritable_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    if not os.access(d, os.W_OK):
        return d
    d.chmod(0o700)  # running as root: permissions are not enforced; use a read-only file system
    for cand in ("/proc/sys",):
        if os.path.isdir(cand) and not os.access(cand, os.W_OK):
            return cand
    pytest.skip("no unwritable directory available (running as root without a read-only file system)")


def test_output_in_unwritable_directory(base, tmp_path):
    d = _unwritable_dir(tmp_path)
    target = os.path.join(str(d), "packets_test_c.h5")
    sim = make_sim(ensemble(SHARD))
    calls = spy_kernel(sim)
    with pytest.raises(OSError, match="not writable"):
        sim.run(T_END, REC, checkpoint=target)
    assert calls == [] and sim.t == 0.0
    with pytest.raises(OSError, match="not writable"):
        base[1].save(target)
    assert not os.path.exists(target)


def test_output_path_that_is_a_directory(tmp_path):
    sim = make_sim(ensemble(SHARD))
    calls = spy_kernel(sim)
    with pytest.raises(OSError):
        sim.run(T_END, REC, checkpoint=str(tmp_path))
    assert calls == []


def test_too_little_disk_space(base, tmp_path, monkeypatch):
    sim = make_sim(ensemble(SHARD))
    calls = spy_kernel(sim)
    Usage = collections.namedtuple("Usage", "total used free")
    seen = []

    def tiny(path):
        seen.append(path)
        return Usage(10 ** 12, 10 ** 12 - 1000, 1000)

    monkeypatch.setattr(pio.shutil, "disk_usage", tiny)
    target = tmp_path / "c.h5"
    with pytest.raises(OSError, match="not enough disk space"):
        sim.run(T_END, REC, checkpoint=str(target))
    assert seen and calls == [] and sim.t == 0.0 and not target.exists()
    # enough space (2 copies of the state fit): the same call goes through
    need = sim.state_nbytes()
    monkeypatch.setattr(pio.shutil, "disk_usage", lambda p: Usage(10 ** 12, 0, 4 * need + 10 ** 6))
    sim.run(REC, REC, checkpoint=str(target))
    assert target.exists() and calls == [1, 1]


def test_ensemble_too_large_for_memory(monkeypatch):
    ens = ensemble(SHARD)
    bpp = pdist.bytes_per_packet(2, 2)
    monkeypatch.setattr(pdist, "available_memory", lambda: SHARD * bpp // 2)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError) as err:
        make_sim(ens)
    msg = str(err.value)
    assert f"{bpp} bytes per packet" in msg
    assert "stream=True" in msg and "EnsembleSource" in msg and "Dask" in msg
    assert time.perf_counter() - t0 < 5.0  # refused up front, nothing compiled or run
    monkeypatch.setattr(pdist, "available_memory", lambda: 2 * SHARD * bpp)
    make_sim(ens)  # fits: accepted
    monkeypatch.setattr(pdist, "available_memory", lambda: None)  # unknown: no refusal
    make_sim(ens)


def test_bytes_per_packet_matches_state(base):
    sim, _ = base
    n = sim.x.shape[0]
    assert sim.state_nbytes() % n == 0
    assert pdist.bytes_per_packet(sim.model.dim, sim.model.nbands) == sim.state_nbytes() // n
    # the ensemble holds everything except the event clock and counter (8 + 8 bytes)
    assert ensemble(SHARD).nbytes_per_packet == pdist.bytes_per_packet(2, 2) - 16
    # other dimensions and band numbers: the state a real Simulation allocates
    from packets.models import BHZ, Weyl

    for m in (BHZ(), Weyl(k_window=1.0)):
        s = Simulation(m, Ensemble.fermi_sea(m, 0.0, 0.1, 64, seed=1), progress=False, check_dt=False)
        assert pdist.bytes_per_packet(m.dim, m.nbands) * 64 == s.state_nbytes(), type(m).__name__
