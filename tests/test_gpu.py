"""CUDA backend (gpu/): the GPU driver against the CPU driver, PTX compilation, availability.

* Under numba's CUDA simulator (subprocess with NUMBA_ENABLE_CUDASIM=1) the
  GPU driver advances small ensembles (coherent and adiabatic MassiveDirac in
  a field, a random-kick test channel with events and band changes) and must
  reproduce the CPU driver: states to 1e-12 relative, tallies to 1e-12 of
  their scale, status flags, event counts, packet counts and packet steps
  identical.  The simulator runs the CPU builds of the same per-packet
  functions, so only the tally summation order differs.  Local (scratch)
  arrays are filled with NaN in the simulator, so a kernel that reads scratch
  before writing it fails here deterministically instead of randomly on a GPU.
  Also exercised: device-resident runner over two intervals, grid-stride loop
  (more packets than threads), chunked upload (ensemble larger than the
  device budget) and the global-atomic tally path (accumulator larger than the
  shared-memory budget).
* Kernel variants covering every code path the library composes (two-band
  closed-form and N-band Jacobi exponentials, adiabatic dynamics with B, a
  textured model, the adaptive integrator, an event channel, every
  observable) compile to PTX for sm_90 with no GPU; registers and spills
  from ptxas are printed (pytest -s) and recorded.
* On a real GPU the same comparison runs with a round-off tolerance (FMA).
"""
import math
import os
import sys

import numba
import numpy as np
import pytest

import observables.basic as ob
import packets
from packets import Ensemble, Field, Simulation, models, rng
from packets import simulation as simulation_module
from packets import status as st
from packets.packet import event_counter
from packets.state import NAMES as STATE_NAMES

HERE = os.path.abspath(__file__)


# ---------------------------------------------------------------------------
# a tiny test channel (contract of packets.packet): random momentum kick
# ---------------------------------------------------------------------------
@numba.njit
def kick_apply(t, x, k, chi, band, P, S, pc, key0, key1, pid, ev):
    """Accept with probability pc[1]; kick k by pc[0] in a random direction; switch band with probability pc[2]."""
    u1, u2 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 0))
    u3, u4 = rng.uniforms2_53(key0, key1, pid, event_counter(ev, 1))
    if u1 >= pc[1]:
        return st.OK, False, band
    phi = 2.0 * math.pi * u2
    k[0] += pc[0] * math.cos(phi)
    k[1] += pc[0] * math.sin(phi)
    nb_new = band
    if u3 < pc[2]:
        nb_new = chi.shape[0] - 1 - band
    return st.OK, True, nb_new


class KickChannel:
    name = "kick"

    def __init__(self, q=0.05, accept=0.7, flip=0.0, rate=2.0):
        self.params = np.array([q, accept, flip])
        self.rate = rate

    def build(self, ctx):
        return {"apply": kick_apply, "params": self.params, "majorant": self.rate}

    def cache_key(self):
        return ("kick", 3)


# ---------------------------------------------------------------------------
# cases: Simulation-equivalent setups, composed by packets.Simulation itself
# ---------------------------------------------------------------------------
def _dirac():
    return models.MassiveDirac(mass=0.3)


def _textured():
    return models.TexturedDirac("domain_wall", m0=0.3, width=2.0)


CASES = {
    # name: (model, field kwargs, dynamics, observables, channels, Simulation kwargs, ensemble kwargs)
    "dirac_coherent": (_dirac, dict(E=(0.02, 0.01)), "coherent",
                       lambda: [ob.Current(), ob.BandPopulation()], lambda: [], {}, dict(chi=(1.0, 0.6j))),
    "dirac_coherent_kick": (_dirac, dict(E=(0.02, 0.0)), "coherent",
                            lambda: [ob.Current(), ob.BandPopulation()], lambda: [KickChannel(flip=0.3)], {},
                            dict(chi=(1.0, 0.6j))),
    "dirac_adiabatic_kick": (_dirac, dict(E=(0.02, 0.0)), "adiabatic",
                             lambda: [ob.Current(per_band=True), ob.BandPopulation(), ob.Energy()],
                             lambda: [KickChannel(flip=0.5)], {}, dict(band=1)),
    # PTX-only variants
    "dirac_adiabatic_B": (_dirac, dict(E=(0.02, 0.0), B=0.05), "adiabatic",
                          lambda: [ob.Current(per_band=True), ob.BandPopulation(), ob.Energy()], lambda: [], {},
                          dict(band=1)),
    "bhz_coherent": (lambda: models.BHZ(), dict(E=(0.02, 0.0)), "coherent",
                     lambda: [ob.DensityMatrix(), ob.BandPopulation()], lambda: [], dict(dt=0.02), dict(band=0)),
    "textured_coherent_adaptive": (_textured, dict(E=(0.02, 0.0)), "coherent",
                                   lambda: [ob.Density([np.linspace(-4, 4, 9), np.linspace(-4, 4, 5)]), ob.Current()],
                                   lambda: [], dict(integrator="adaptive"), dict(band=1)),
}
# The simulator cases run in two subprocesses started together; with the PTX compilation in this
# process that is three compile jobs for CI's two cores, none longer than the PTX job (measured
# on two cores: PTX ~110 s, file ~115 s; one simulator subprocess alone took ~240 s under load).
SIM_GROUPS = (["dirac_coherent_kick"], ["dirac_coherent", "dirac_adiabatic_kick"])
SIM_CASES = ["dirac_coherent", "dirac_adiabatic_kick", "dirac_coherent_kick"]
# PTX variants: each kernel compiles for ~20-60 s, so they are chosen to cover every code path
# with as few kernels as possible: two-band closed-form exponential with rk4 and an event
# channel (dirac_coherent_kick), adiabatic dynamics with B (dirac_adiabatic_B), the N-band
# Jacobi exponential (bhz_coherent), a textured model with the adaptive integrator
# (textured_coherent_adaptive); three of them without channels (no event loop); observables
# Current (also per band), BandPopulation, Energy, DensityMatrix and Density.
PTX_CASES = ["dirac_coherent_kick", "dirac_adiabatic_B", "bhz_coherent", "textured_coherent_adaptive"]
NBATCH = 4
DT = 0.05


def build_case(name, n=64, seed=11):
    """(Simulation on the CPU backend, dict of the per-packet functions it composed).

    The functions are captured from the Simulation's own call to
    ``packets.driver_cpu.build_advance`` (kernel cache bypassed), so the GPU
    driver receives exactly what the CPU driver does; no composition is
    repeated here.
    """
    mk_model, fkw, dyn, mk_obs, mk_ch, skw, ekw = CASES[name]
    model = mk_model()
    ekw = dict(ekw)
    x0 = (0.3, -0.2)
    ens = Ensemble.gaussian_packet(model, x0, (0.25, -0.15), n, 1.0, 0.3, seed=seed, **ekw)
    captured = {}
    real_build = simulation_module.build_advance

    def spy(*args, **kw):
        captured["args"] = args
        return real_build(*args, **kw)

    saved_cache = simulation_module._KERNEL_CACHE
    simulation_module.build_advance = spy
    simulation_module._KERNEL_CACHE = {}
    try:
        kw = dict(dt=DT, nbatch=NBATCH)
        kw.update(skw)
        sim = Simulation(model, ens, Field(**fkw), dynamics=dyn, observables=mk_obs(), channels=mk_ch(), seed=5,
                         **kw)
    finally:
        simulation_module.build_advance = real_build
        simulation_module._KERNEL_CACHE = saved_cache
    names = ("advance_packet", "start", "finish", "scratch_layout", "context_layout", "dim", "nb", "ncomp", "nev")
    return sim, dict(zip(names, captured["args"][:9]))


def cuda_driver(parts, **kw):
    """The GPU driver for captured parts, with CUDA allocators of the layouts the CPU driver got."""
    import gpu
    from packets.scratch import make_allocator
    from packets.state import gpu_schema
    return gpu.build_cuda_advance(parts["advance_packet"], parts["start"], parts["finish"],
                                  make_allocator(parts["scratch_layout"], "cuda"),
                                  make_allocator(parts["context_layout"], "cuda"), gpu_schema(), parts["dim"],
                                  parts["nb"], parts["ncomp"], parts["nev"], **kw)


def state(sim):
    return [getattr(sim, name).copy() for name in STATE_NAMES]
INTERVALS = (0, 3, 2)  # steps per record interval (0: tally the initial state)


def run_cpu(sim):
    """The CPU reference: the Simulation's own record intervals (packets.driver_cpu + tree_reduce)."""
    assert not sim._records
    outs, cnts, steps = [], [], []
    for ns in INTERVALS:
        before = sim.packet_steps
        sim._interval(ns)
        outs.append(np.asarray(sim._records[-1][1]))
        cnts.append(np.asarray(sim._records[-1][2]))
        steps.append(sim.packet_steps - before)
    return state(sim), np.array(outs), np.array(cnts), np.array(steps)


def run_gpu_runner(sim, adv, init, max_packets=None):
    s = [a.copy() for a in init]
    runner = adv.runner(dict(zip(STATE_NAMES, s)), sim._params(), max_packets=max_packets)
    outs, cnts, steps = [], [], []
    t = 0.0
    for ns in INTERVALS:
        out = np.zeros((NBATCH, sim.ncomp))
        cnt = np.zeros(NBATCH, dtype=np.int64)
        steps.append(runner.advance(t, sim.dt, ns, sim.tol, sim.key[0], sim.key[1], NBATCH, out, cnt,
                                    P=sim._params()))
        outs.append(out)
        cnts.append(cnt)
        t += ns * sim.dt
    runner.download()
    return s, np.array(outs), np.array(cnts), np.array(steps), runner.resident


def run_gpu_call(sim, adv, init):
    """The CPU-compatible call with the CPU driver's per-shard tally arrays, then tree_reduce."""
    from packets.driver_cpu import tree_reduce
    s = [a.copy() for a in init]
    outs, cnts, steps = [], [], []
    t = 0.0
    for ns in INTERVALS:
        rows = np.zeros((3, NBATCH, sim.ncomp))
        crows = np.zeros((3, NBATCH), dtype=np.int64)
        steps.append(adv(*s, t, sim.dt, ns, sim.tol, sim._params(), sim.key[0], sim.key[1], NBATCH, 16, rows,
                         crows))
        outs.append(tree_reduce(rows, 0))
        cnts.append(tree_reduce(crows, 0))
        t += ns * sim.dt
    return s, np.array(outs), np.array(cnts), np.array(steps)


def _poison_simulator_local_arrays():
    """Simulator only: cuda.local.array returns NaN-filled (ints: -2**62) arrays instead of np.empty."""
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    def array(self, shape, dtype, alignment=None):
        if isinstance(dtype, numba.types.Type):
            dtype = numpy_support.as_dtype(dtype)
        dtype = np.dtype(dtype)
        fill = np.nan if dtype.kind in "fc" else -(2 ** 62)
        return np.full(shape, fill, dtype=dtype)

    kernelapi.FakeCUDALocal.array = array


def simulator_main(outfile, names=None):
    """Runs in a NUMBA_ENABLE_CUDASIM=1 subprocess: CPU and GPU-driver results for ``names`` (default SIM_CASES)."""
    from numba import config
    assert config.ENABLE_CUDASIM
    import gpu
    _poison_simulator_local_arrays()
    res = {}
    ok, why = gpu.available(allow_simulator=True)
    res["available_sim"] = np.array([ok])
    res["available_nosim"] = np.array([gpu.available()[0]])
    res["device_info_sim"] = np.array([gpu.device_info()["simulator"]])
    for name in (SIM_CASES if names is None else names):
        sim, parts = build_case(name)
        init = state(sim)
        cpu = run_cpu(sim)
        for a, arr in zip(STATE_NAMES, init):
            res[f"{name}/init/{a}"] = arr
        for a, arr in zip(STATE_NAMES, cpu[0]):
            res[f"{name}/cpu/{a}"] = arr
        res[f"{name}/cpu/out"], res[f"{name}/cpu/counts"], res[f"{name}/cpu/steps"] = cpu[1:]
        res[f"{name}/nev"] = np.array([parts["nev"]])
        variants = {"runner": (cuda_driver(parts), None)}
        if name == "dirac_coherent_kick":
            # 16 threads x 2 blocks for 64 packets: every thread runs the grid-stride loop twice; the
            # ensemble is processed in device chunks of 24; tallies go straight to global atomics
            variants["chunked"] = (cuda_driver(parts, threads_per_block=16, blocks=2, shared_limit=0), 24)
            res["launch_config"] = np.array(cuda_driver(parts).launch_config(64))
        if name == "dirac_adiabatic_kick":
            variants["call"] = (cuda_driver(parts, threads_per_block=8, blocks=3), None)
        for vname, (adv, maxp) in variants.items():
            if vname == "call":
                g = run_gpu_call(sim, adv, init)
                res[f"{name}/{vname}/resident"] = np.array([True])
            else:
                g = run_gpu_runner(sim, adv, init, max_packets=maxp)
                res[f"{name}/{vname}/resident"] = np.array([g[4]])
            for a, arr in zip(STATE_NAMES, g[0]):
                res[f"{name}/{vname}/{a}"] = arr
            res[f"{name}/{vname}/out"], res[f"{name}/{vname}/counts"], res[f"{name}/{vname}/steps"] = g[1:4]
    np.savez(outfile, **res)


# ---------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------
def assert_same_run(res, name, variant, state_rtol=1e-12, tally_rtol=1e-12):
    cpu = {a: res[f"{name}/cpu/{a}"] for a in STATE_NAMES}
    gpu_ = {a: res[f"{name}/{variant}/{a}"] for a in STATE_NAMES}
    tag = f"{name}/{variant}"
    np.testing.assert_array_equal(gpu_["status"], cpu["status"], err_msg=f"{tag}: status flags")
    # the run must be non-trivial: packets stayed good and moved
    assert np.all(cpu["status"] == st.OK), f"{tag}: CPU reference flagged packets {np.unique(cpu['status'])}"
    assert np.max(np.abs(cpu["k"] - res[f"{name}/init/k"])) > 1e-4, f"{tag}: nothing moved"
    for a in ("band", "ev", "pid"):
        np.testing.assert_array_equal(gpu_[a], cpu[a], err_msg=f"{tag}: {a}")
    for a in ("x", "k", "chi", "clock"):
        c, g = cpu[a], gpu_[a]
        fin = np.isfinite(c)
        np.testing.assert_array_equal(np.isfinite(g), fin, err_msg=f"{tag}: {a} finiteness")
        scale = np.max(np.abs(c[fin])) if np.any(fin) else 1.0
        np.testing.assert_allclose(g[fin], c[fin], rtol=state_rtol, atol=state_rtol * scale, err_msg=f"{tag}: {a}")
    np.testing.assert_array_equal(res[f"{tag}/steps"], res[f"{name}/cpu/steps"], err_msg=f"{tag}: packet steps")
    np.testing.assert_array_equal(res[f"{tag}/counts"], res[f"{name}/cpu/counts"], err_msg=f"{tag}: counts")
    oc, og = res[f"{name}/cpu/out"], res[f"{tag}/out"]
    nev = int(res[f"{name}/nev"][0])
    if nev:
        # event counts are integers: exact
        np.testing.assert_array_equal(og[..., -nev:], oc[..., -nev:], err_msg=f"{tag}: event counts")
        oc, og = oc[..., :-nev], og[..., :-nev]
    # tallies: the same per-packet terms summed in another order -> round-off of the summed magnitudes
    scale = np.max(np.abs(oc), axis=(0, 1), keepdims=True)
    assert np.all(np.abs(og - oc) <= tally_rtol * (np.abs(oc) + scale)), \
        f"{tag}: tallies differ by {np.max(np.abs(og - oc) / (np.abs(oc) + scale))} relative"


# ---------------------------------------------------------------------------
# PTX for sm_90 without a GPU: every kernel variant, registers and spills
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ptx_table(cuda_ptx):
    from gpu.ptx import find_ptxas, ptx_report
    drivers = {}
    layouts = {}
    for name in PTX_CASES:
        sim, parts = build_case(name, n=8)
        drivers[name] = cuda_driver(parts)
        layouts[name] = parts["scratch_layout"]
    rows = ptx_report(drivers, cc=(9, 0))
    for r in rows:
        r["layout"] = layouts[r["name"]]
    return {r["name"]: r for r in rows}, find_ptxas()


@pytest.mark.parametrize("name", PTX_CASES)
def test_kernel_compiles_to_ptx_sm90(ptx_table, name, record_property):
    rows, ptxas = ptx_table
    row = rows[name]
    assert "error" not in row, row.get("error")
    assert row["ptx_lines"] > 100
    if ptxas is not None:
        assert isinstance(row["registers"], int) and 0 < row["registers"] <= 255
        for key in ("registers", "stack_bytes", "spill_stores", "spill_loads"):
            record_property(key, row[key])
    print(f"\n[ptx sm_90] {name}: registers={row.get('registers')} stack={row.get('stack_bytes')}B "
          f"spill_stores={row.get('spill_stores')}B spill_loads={row.get('spill_loads')}B "
          f"local_ld_st={row.get('local_ld_st')}")


def test_kernels_allocate_only_the_scratch_groups_they_declare(ptx_table):
    """The PTX variants compile with the Simulation's own layout: no event scratch without channels."""
    from packets.scratch import SCRATCH_GROUP_OF
    rows, _ptxas = ptx_table
    for name in PTX_CASES:
        allocated = {SCRATCH_GROUP_OF[n] for n, shape, _d in rows[name]["layout"] if shape is not None}
        expect = {"stepper", "bands", "work"}
        if CASES[name][4]():
            expect.add("events")
        if CASES[name][5].get("integrator") == "adaptive":
            expect.add("adaptive")
        assert allocated == expect, name


def test_ptx_report_table(ptx_table):
    from gpu.ptx import format_report
    rows, ptxas = ptx_table
    print("\n" + format_report(list(rows.values())))
    if ptxas is None:
        pytest.skip("ptxas not found (pip install nvidia-cuda-nvcc-cu12): registers/spills not measured")


# ---------------------------------------------------------------------------
# CUDA simulator vs CPU driver
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _cudasim_run(run_in_cudasim, tmp_path_factory):
    # started before the first test of the module and joined by sim_results, so the simulator
    # subprocesses (mostly CPU-driver compilation) overlap the PTX compilation in this process
    d = tmp_path_factory.mktemp("cudasim")
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('tg', sys.argv[1]);"
            " m = importlib.util.module_from_spec(s); s.loader.exec_module(m);"
            " m.simulator_main(sys.argv[2], sys.argv[3].split(','))")
    runs = []
    for i, names in enumerate(SIM_GROUPS):
        out = d / f"res{i}.npz"
        runs.append((run_in_cudasim(["-c", code, HERE, str(out), ",".join(names)]), out))
    yield runs
    for run, _ in runs:
        run.close()


@pytest.fixture(scope="module")
def sim_results(_cudasim_run):
    res = {}
    for run, out in _cudasim_run:
        run.wait()
        res.update(np.load(out))
    assert all(f"{name}/cpu/out" in res for name in SIM_CASES)
    return res


@pytest.mark.parametrize("name", SIM_CASES)
def test_simulator_matches_cpu(sim_results, name):
    res = sim_results
    assert_same_run(res, name, "runner")
    assert bool(res[f"{name}/runner/resident"][0])
    # at least the nontrivial observables: current and populations are nonzero
    assert np.max(np.abs(res[f"{name}/cpu/out"][1])) > 0


def test_simulator_events_exercised(sim_results):
    res = sim_results
    for name in ("dirac_coherent_kick", "dirac_adiabatic_kick"):
        nev = int(res[f"{name}/nev"][0])
        assert nev == 3  # accepted, band-changing, tentative
        ev_tot = res[f"{name}/cpu/out"][..., -nev:].sum(axis=(0, 1))
        # accepted and band-changing events happened, and fewer than tentative ones
        assert 0 < ev_tot[1] < ev_tot[0] < ev_tot[2], ev_tot
        np.testing.assert_array_equal(res[f"{name}/runner/ev"], res[f"{name}/cpu/ev"])
        assert np.sum(res[f"{name}/cpu/band"] != res[f"{name}/init/band"]) > 0


def test_simulator_grid_stride_chunked_global_atomics(sim_results):
    res = sim_results
    assert not bool(res["dirac_coherent_kick/chunked/resident"][0])
    assert_same_run(res, "dirac_coherent_kick", "chunked")


def test_simulator_cpu_compatible_call(sim_results):
    assert_same_run(sim_results, "dirac_adiabatic_kick", "call")


def test_simulator_availability_and_launch(sim_results):
    res = sim_results
    assert bool(res["available_sim"][0]) and not bool(res["available_nosim"][0])
    assert bool(res["device_info_sim"][0])
    blocks, threads = res["launch_config"]
    assert threads == 32 and blocks * threads >= 64 and (blocks - 1) * threads < 64


# ---------------------------------------------------------------------------
# availability in this (non-simulator) process
# ---------------------------------------------------------------------------
def test_available_reports_reason():
    import gpu
    ok, why = gpu.available()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    if not ok:
        with pytest.raises(RuntimeError, match="no usable CUDA device"):
            gpu.device_info()
    else:
        info = gpu.device_info()
        assert info["multiprocessors"] > 0 and len(info["compute_capability"]) == 2


def test_import_packets_does_not_import_cuda():
    import subprocess
    code = ("import sys, packets; import gpu; "
            "bad = [m for m in sys.modules if m.startswith('numba.cuda') or m.startswith('numba_cuda')]; "
            "assert not bad, bad[:5]")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ---------------------------------------------------------------------------
# real GPU (skipped without one)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", SIM_CASES)
def test_real_gpu_matches_cpu(real_gpu, name):
    sim, parts = build_case(name, n=4096)
    init = state(sim)
    cpu = run_cpu(sim)
    adv = cuda_driver(parts)
    g = run_gpu_runner(sim, adv, init)
    res = {f"{name}/init/{a}": v for a, v in zip(STATE_NAMES, init)}
    for tag, r in (("cpu", cpu), ("runner", g)):
        for a, v in zip(STATE_NAMES, r[0]):
            res[f"{name}/{tag}/{a}"] = v
        res[f"{name}/{tag}/out"], res[f"{name}/{tag}/counts"], res[f"{name}/{tag}/steps"] = r[1:4]
    res[f"{name}/nev"] = np.array([parts["nev"]])
    # FMA contraction and libdevice transcendental functions: round-off, not bits (docs/architecture.md)
    assert_same_run(res, name, "runner", state_rtol=1e-9, tally_rtol=1e-9)
