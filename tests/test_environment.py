"""The README's test command installs everything the suite imports.

A package missing from the ``test`` (or ``cuda12``/``cuda13``) extra would otherwise show up only as
skipped tests (Dask, CUDA simulator, PTX) or as import errors on a user's fresh machine; here it is a
failure that names the install command.
"""
import importlib

import pytest

INSTALL = "pip install -e \".[test,cuda12]\" (or cuda13 on a CUDA 13 machine)"


@pytest.mark.parametrize("module", ["pytest", "xdist", "matplotlib", "dask", "dask.distributed", "h5py", "scipy",
                                    "tqdm", "numba.cuda"])
def test_test_dependencies_installed(module):
    try:
        importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"{module} is not installed, but tests import it: {INSTALL} ({exc})")


def test_cuda_compiler_installed():
    """The CUDA compiler packages of the cuda12/cuda13 extra: every GPU kernel is compiled to PTX in the suite."""
    from gpu.ptx import compiler_available

    ok, why = compiler_available()
    assert ok, f"cannot compile CUDA kernels to PTX ({why}): {INSTALL}"
