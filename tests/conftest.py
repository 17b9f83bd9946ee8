"""Shared fixtures for the CUDA tests (kept import-light: nothing here imports numba.cuda at collection).

* ``cuda_ptx``      — skip unless a CUDA compiler (NVVM) is installed; returns
                      :func:`gpu.ptx.compile_kernel_ptx`, which compiles for sm_90 with no
                      GPU present (it stands in a cc-9.0 device for numba-cuda's
                      device-function compilation only while no GPU is usable; see gpu/ptx.py).
* ``run_in_cudasim`` — start a Python script in a subprocess with NUMBA_ENABLE_CUDASIM=1
                      (the simulator must be switched on before numba.cuda is imported,
                      so it cannot share the test process); it runs in the background
                      until ``.wait()``, so the PTX compilation of the same module overlaps it.
* ``real_gpu``      — skip, with the reason, unless a real GPU and compiler are usable.

It also orders the test files for pytest-xdist (the README's ``-n auto --dist loadfile``): the
files with the most cold-cache compilation first, so that the long files start at once on the
workers and the short ones fill in at the end.
"""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Test files by their wall time on two cores with an empty kernel cache, longest first (measured
# serially: gpu ~175 s on three processes, dynamics ~210 s, channels ~180 s, mc_vs_kinetic ~160 s,
# manifold 60 s, compile_cache 50 s, born 46 s, distributed 44 s, geometry 26 s, models 21 s); the
# others, each under 15 s, follow in their usual order.  Only the order of files changes; the
# tests of one file keep theirs.
LONGEST_FIRST = ("test_gpu.py", "test_dynamics.py", "test_channels.py", "test_mc_vs_kinetic.py", "test_manifold.py",
                 "test_compile_cache.py", "test_born.py", "test_distributed.py", "test_geometry.py", "test_models.py")


def pytest_configure(config):
    # pytest-xdist would hand out the files by their number of tests; keep the order made below
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order


@pytest.fixture(scope="session")
def cuda_ptx():
    from gpu.ptx import compiler_available, compile_kernel_ptx
    ok, why = compiler_available()
    if not ok:
        pytest.skip(f"cannot compile CUDA kernels to PTX: {why}")
    return compile_kernel_ptx


class CudasimRun:
    """A Python subprocess with NUMBA_ENABLE_CUDASIM=1, started at once; :meth:`wait` checks its exit."""

    def __init__(self, args, timeout=900):
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        self.timeout = timeout
        self.proc = subprocess.Popen([sys.executable] + list(args), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO)

    def wait(self):
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"simulator run timed out after {self.timeout} s:\n{err[-3000:]}")
        assert self.proc.returncode == 0, f"simulator run failed:\n{out[-2000:]}\n{err[-4000:]}"
        return out

    def close(self):
        """Stop the subprocess if nobody waited for it (e.g. its tests were deselected)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="session")
def run_in_cudasim():
    """``start(args) -> CudasimRun``: runs in the background (e.g. while PTX compiles); ``.wait()`` joins it."""
    def start(args, timeout=900):
        try:
            import numba.cuda  # noqa: F401  (the simulator lives in numba-cuda)
        except ImportError as exc:
            pytest.skip(f"numba-cuda is not installed: {exc}")
        return CudasimRun(args, timeout)
    return start


@pytest.fixture(scope="session")
def real_gpu():
    import gpu
    ok, why = gpu.available()
    if not ok:
        pytest.skip(f"no real GPU: {why}")
    return gpu.device_info()
