"""Sharded runs: streaming tasks, EnsembleSource and Dask workers (packets.distributed).

What is verified, and against what:

* A run split into pid-range tasks — in this process (``stream=True``) or on a Dask
  LocalCluster of 2 processes — is bit-identical to the undivided in-memory run (per-batch
  sums, counts, record times, final packet state, packet-steps), for any task size, for
  1 or 2 workers, and when a worker process is SIGKILLed while it runs a task (Dask re-runs
  the lost task; the scheduler's transition log proves it ran twice).  Born scattering with side
  jump and its default, estimated majorant is included, so that per-packet random clocks and
  event counters are part of the state and the majorant must be the run's, not a task's.
* ``EnsembleSource`` gives the same result for any task size, any pid range of it is
  reproducible on its own, and its band densities agree with the closed-form Fermi-sea
  integral n_b = int_0^kw dk k/(2 pi) f(eps_b(k)) (and so with ``Ensemble.fermi_sea``,
  checked against the same integral) within 5 sigma, sigma from the sampled weights.
* ``task_size`` that is not a power-of-two multiple of ``shard`` is refused before work.
* The speedup of 2 local Dask workers over 1 is printed (not asserted).

Dask workers are separate processes.  The cluster starts after this process has compiled the
reference run, so its workers load those kernels from the on-disk cache (packets.compile_cache)
instead of compiling them again; with the cache switched off they compile them themselves.
"""
import os
import signal
import threading
import time

import numpy as np
import pytest
from scipy.integrate import quad

import packets.distributed as pdist
from observables import BandPopulation, Current
from packets import Ensemble, Field, Simulation
from packets.ensemble import fermi
from packets.models import MassiveDirac
from scattering import ElasticScattering, WhiteNoiseDisorder

from identity import assert_same_run, assert_same_state

MASS, MU, TEMP, KWIN = 0.5, 0.8, 0.1, 3.0
DT, SHARD = 0.04, 512
N, SEED = 4096, 21               # 8 shards
T_END, REC = 1.6, 0.4            # 4 record intervals of 10 steps


def model():
    return MassiveDirac(velocity=1.0, mass=MASS)


def ensemble(n=N, seed=SEED):
    # k_window = 3 keeps the band spread (2 sqrt(9 + m^2) ~ 6) small: dt * spread ~ 0.25
    return Ensemble.fermi_sea(model(), MU, TEMP, n, seed=seed, k_window=KWIN)


def make_sim(ens, channels=None, **kw):
    # Born scattering with side jump and the default, estimated majorant: it is estimated once for
    # the run and kept in the spec the tasks get, so every split gives the in-memory run's events
    channels = [ElasticScattering(WhiteNoiseDisorder(0.5), side_jump=True)] if channels is None else channels
    return Simulation(model(), ens, field=Field(E=(0.05, 0.0)), dynamics="coherent", channels=channels,
                      observables=[Current(), BandPopulation()], dt=DT, shard=SHARD, progress=False, **kw)


def band_density(band):
    """Closed form: int[dk] f(eps_b(k)) over the disc |k| < KWIN (eps = -/+ sqrt(k^2 + m^2), v = 1)."""
    sgn = -1.0 if band == 0 else 1.0

    def integrand(k):
        return k / (2 * np.pi) * fermi(np.array([sgn * np.hypot(k, MASS)]), MU, TEMP)[0]

    val, err = quad(integrand, 0.0, KWIN, epsabs=1e-13, epsrel=1e-12, limit=200)
    assert err < 1e-10
    return val


def weight_stats(ens_like, band):
    """Per-band Monte Carlo estimate sum w and its standard error sqrt(n_b) std(w) (i.i.d. samples)."""
    w = ens_like.weight[ens_like.band == band]
    return w.sum(), np.sqrt(w.size) * w.std(ddof=1)


# ----------------------------------------------------------------------------
# fixtures: the reference run first (it compiles the kernels and writes them to the disk
# cache), then the Dask cluster, whose workers load them from there
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref():
    sim = make_sim(ensemble())
    return sim, sim.run(T_END, REC)


@pytest.fixture(scope="module")
def dask_env(ref):
    # dask comes with the test extra: a missing install fails here instead of skipping the Dask tests
    from dask.distributed import Client, LocalCluster

    # one numba thread per worker process (numba would otherwise start os.cpu_count() threads in
    # each worker): then "1 worker" uses one core and the 2-worker speedup measures Dask scaling.
    # The in-process reference runs with all cores, so thread-count independence is exercised too.
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           env={"NUMBA_NUM_THREADS": "1"})
    client = Client(cluster)
    addrs = sorted(client.scheduler_info()["workers"])
    # warm-up: one small task pinned to each worker loads (or compiles) its kernels
    warm = make_sim(ensemble(SHARD, seed=1))
    spec, state = warm.spec, warm.state
    plan = {"t_end": 2 * DT, "record_every": DT}
    futs = [client.submit(pdist.run_task, spec, state, 0.0, False, plan, False, workers=[a],
                          allow_other_workers=False, pure=False) for a in addrs]
    env = {"client": client, "cluster": cluster, "warm": futs}
    yield env
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def client(dask_env):
    c = dask_env["client"]
    c.gather(dask_env["warm"])
    return c


def executed(client):
    return client.run(lambda dask_worker: dask_worker.state.executed_count)


# ----------------------------------------------------------------------------
# streaming in this process
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("task_size", [2 * SHARD, 8 * SHARD, None])
def test_stream_equals_plain_run(ref, task_size):
    ref_sim, ref_res = ref
    sim = make_sim(ensemble())
    res = sim.run(T_END, REC, stream=True, task_size=task_size)
    assert_same_run(res, ref_res)
    assert_same_state(sim, ref_sim)
    assert sim.t == ref_sim.t
    assert np.sum(sim.ev) > 0  # events happened: the random streams are part of what must agree


def test_continue_in_memory_run_with_stream(ref):
    """Half the time in memory, the rest as stream tasks: clocks, counters and records carry over."""
    ref_sim, ref_res = ref
    sim = make_sim(ensemble())
    sim.run(2 * REC, REC)
    res = sim.run(T_END, REC, stream=True, task_size=2 * SHARD)
    assert_same_run(res, ref_res)
    assert_same_state(sim, ref_sim)


def test_aligned_half_streamed_merges_exactly(ref):
    """Upper half of the pids streamed (tasks start at a global task index > 0) + lower half in memory."""
    ref_sim, ref_res = ref
    ens = ensemble()
    chans = list(ref_sim.spec.channels)  # the halves are parts of the reference run: its majorant
    r1 = make_sim(ens.subset(slice(0, N // 2)), chans).run(T_END, REC)
    r2 = make_sim(ens.subset(slice(N // 2, N)), chans).run(T_END, REC, stream=True, task_size=SHARD)
    merged = r1 + r2
    assert np.array_equal(merged._sums, ref_res._sums)
    assert np.array_equal(merged.counts, ref_res.counts)


def test_checkpoint_with_stream_is_honoured_or_refused(ref, tmp_path):
    sim = make_sim(ensemble(2 * SHARD))
    p = tmp_path / "c.h5"
    try:
        sim.run(T_END, REC, checkpoint=str(p), stream=True, task_size=SHARD)
    except ValueError:
        return  # a clear refusal is acceptable
    assert p.exists(), "checkpoint= was accepted but no checkpoint was written"


# ----------------------------------------------------------------------------
# task size validation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("task_size", [3 * SHARD, 6 * SHARD, SHARD // 2, SHARD + 1, 0])
def test_bad_task_size_refused_before_work(task_size):
    sim = make_sim(ensemble(2 * SHARD))
    with pytest.raises(ValueError, match="power-of-two multiple of shard") as err:
        sim.run(T_END, REC, stream=True, task_size=task_size)
    assert f"shard = {SHARD}" in str(err.value)
    assert sim.t == 0.0 and sim.packet_steps == 0


def test_noncontiguous_ids_refused():
    sim = make_sim(ensemble(2 * SHARD).subset(slice(0, None, 2)))
    with pytest.raises(ValueError, match="contiguous packet ids"):
        sim.run(T_END, REC, stream=True, task_size=SHARD)


# ----------------------------------------------------------------------------
# EnsembleSource
# ----------------------------------------------------------------------------

N_SRC, SEED_SRC = 4096, 5


def source():
    return pdist.EnsembleSource(model(), MU, TEMP, N_SRC, seed=SEED_SRC, k_window=KWIN)


def test_source_ranges_reproducible():
    src = source()
    whole = src.load(0, N_SRC)
    for lo, hi in ((0, 512), (1536, 2048), (3000, 4096)):
        part = src.load(lo, hi)
        for name in ("x", "k", "chi", "band", "weight", "status", "pid"):
            assert np.array_equal(getattr(part, name), getattr(whole, name)[lo:hi]), name
    # k uniform in the disc |k| < KWIN: <|k|^2> = KWIN^2 / 2, within 5 sigma
    k2 = np.sum(whole.k ** 2, axis=1)
    assert k2.max() < KWIN ** 2
    se = k2.std(ddof=1) / np.sqrt(k2.size)
    assert abs(k2.mean() - KWIN ** 2 / 2) < 5 * se
    # chi is the band's eigenvector: <chi|H|chi> = eps_band
    H = model().hamiltonian(whole.k)
    e = np.einsum("pi,pij,pj->p", whole.chi.conj(), H, whole.chi).real
    eps = model().bands(whole.k)[0][np.arange(N_SRC), whole.band]
    assert np.allclose(e, eps, atol=1e-12)


def test_source_task_sizes_identical(ref):
    r = {}
    for ts in (SHARD, 4 * SHARD):
        sim = make_sim(source())
        r[ts] = sim.run(2 * REC, REC, stream=True, task_size=ts)
    assert_same_run(r[SHARD], r[4 * SHARD])
    assert r[SHARD]["events"].mean[-1][0] > 0  # scattering events were accepted (weighted count)
    # without stream=True a source-built Simulation is still run task by task
    again = make_sim(source()).run(2 * REC, REC, task_size=2 * SHARD)
    assert_same_run(again, r[SHARD])


def test_source_densities_match_fermi_sea_closed_form(ref):
    src = source()
    res = make_sim(src).run(REC, REC, stream=True, task_size=2 * SHARD)
    pop0 = res["populations"].mean[0]  # t = 0: chi = u_band, so N_b = sum of band-b weights
    loaded = src.load(0, N_SRC)
    ens = ensemble(N_SRC, seed=SEED_SRC)
    for b in (0, 1):
        exact = band_density(b)
        mc, sigma = weight_stats(loaded, b)
        assert abs(pop0[b] - mc) <= 1e-12 * abs(mc)
        assert abs(mc - exact) < 5 * sigma + 1e-10, (b, mc, exact, sigma)
        # Ensemble.fermi_sea samples the same physics
        mc2, sigma2 = weight_stats(ens, b)
        assert abs(mc2 - exact) < 5 * sigma2 + 1e-10, (b, mc2, exact, sigma2)
    # the estimator is not trivially exact: the conduction band has a real statistical error
    assert weight_stats(loaded, 1)[1] > 1e-4


def test_fermi_sea_batch_stderr_is_honest(ref):
    """Control: for Ensemble.fermi_sea the batch-means stderr matches the i.i.d. error of the weights."""
    ens = ensemble(N_SRC, seed=SEED_SRC)
    res = make_sim(ens).run(REC, REC)
    se = res["populations"].stderr[0]
    for b in (0, 1):
        sigma = weight_stats(ens, b)[1]
        assert 0.5 < se[b] / sigma < 2.0, (b, se[b], sigma)  # 32 batches: stderr known to ~13 %


def test_source_batch_stderr_is_honest(ref):
    src = source()
    res = make_sim(src).run(REC, REC, stream=True, task_size=2 * SHARD)
    se = res["populations"].stderr[0]
    loaded = src.load(0, N_SRC)
    for b in (0, 1):
        sigma = weight_stats(loaded, b)[1]
        assert 0.5 < se[b] / sigma < 2.0, (b, se[b], sigma)


def test_source_status_counts_cover_all_packets(ref):
    res = make_sim(source()).run(REC, REC, stream=True, task_size=2 * SHARD)
    assert sum(res.status_counts.values()) == N_SRC
    assert res.meta["n_packets"] == N_SRC


def test_source_runs_when_ensemble_would_not_fit(ref, monkeypatch):
    """The alternative named by the MemoryError works: memory for two tasks' state but not the ensemble's."""
    task = 2 * SHARD
    monkeypatch.setattr(pdist, "available_memory", lambda: 2 * task * pdist.bytes_per_packet(2, 2))
    with pytest.raises(MemoryError, match="EnsembleSource"):
        make_sim(ensemble(N_SRC, seed=SEED_SRC))
    res = make_sim(source()).run(REC, REC, stream=True, task_size=task)
    assert np.all(np.isfinite(res._sums))
    # a task that itself does not fit is refused too (each task checks its own state)
    with pytest.raises(MemoryError):
        make_sim(source()).run(REC, REC, stream=True, task_size=4 * task)


# ----------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------


def test_dask_equals_plain_and_one_vs_two_workers(client, ref, capsys):
    import dask

    ref_sim, ref_res = ref
    addrs = sorted(client.scheduler_info()["workers"])
    assert len(addrs) == 2
    times = {1: [], 2: []}
    for rep in range(2):
        for nw in (1, 2):
            sim = make_sim(ensemble())
            before = executed(client)
            t0 = time.perf_counter()
            if nw == 1:  # every task pinned to one worker process
                with dask.annotate(workers=[addrs[0]], allow_other_workers=False):
                    res = sim.run(T_END, REC, client=client, task_size=SHARD)
            else:
                res = sim.run(T_END, REC, client=client, task_size=SHARD)
            times[nw].append(time.perf_counter() - t0)
            after = executed(client)
            ran = {a: after[a] - before[a] for a in addrs}
            assert sum(ran.values()) == N // SHARD
            if nw == 1:
                assert ran[addrs[1]] == 0, ran
            assert_same_run(res, ref_res)
            assert_same_state(sim, ref_sim)
    t1, t2 = min(times[1]), min(times[2])
    nthreads = client.run(lambda: __import__("numba").get_num_threads())
    with capsys.disabled():
        print(f"\n[dask speedup] {N} packets x {int(round(T_END / DT))} steps, {N // SHARD} tasks: "
              f"1 worker {t1:.2f} s, 2 workers {t2:.2f} s, speedup {t1 / t2:.2f} "
              f"(os.cpu_count() = {os.cpu_count()}, numba threads per worker {sorted(set(nthreads.values()))})")


def test_dask_worker_killed_mid_run(client, ref):
    """SIGKILL one worker process while it runs a task: the task is re-run elsewhere, the result is unchanged.

    Runs last in this file: the victim's nanny is told not to restart it (a restarted worker
    would recompile the kernels, ~30 s, without changing what is tested).
    """
    ref_sim, ref_res = ref
    pids = client.run(os.getpid)
    victim = sorted(pids)[1]
    client.run(lambda dask_worker: dask_worker.close_gracefully(reason="test: do not restart"), nanny=True,
               workers=[victim])
    sim = make_sim(ensemble())
    out = {}

    def work():
        try:
            out["res"] = sim.run(T_END, REC, client=client, task_size=SHARD)
        except BaseException as exc:  # reported by the main thread
            out["exc"] = exc

    th = threading.Thread(target=work)
    th.start()
    key = None
    deadline = time.time() + 120
    while key is None:
        assert th.is_alive(), f"the run ended before a task was seen on the victim: {out}"
        assert time.time() < deadline, "no task reached the victim worker"
        keys = [k for k in client.processing().get(victim, ()) if str(k).startswith("packets-task")]
        if keys:
            key = keys[0]
        else:
            time.sleep(0.002)
    assert th.is_alive()
    os.kill(pids[victim], signal.SIGKILL)
    th.join(timeout=300)
    assert not th.is_alive(), "the run did not finish after the worker was killed"
    assert "exc" not in out, repr(out.get("exc"))
    assert victim not in client.scheduler_info()["workers"]
    # the scheduler's log: the victim's task was sent out for processing twice
    story = client.run_on_scheduler(lambda dask_scheduler, key=key: [(s[1], s[2]) for s in
                                                                     dask_scheduler.story(key)])
    assert sum(1 for start, finish in story if finish == "processing") >= 2, story
    assert_same_run(out["res"], ref_res)
    assert_same_state(sim, ref_sim)
