"""Compile CUDA kernels to PTX without a GPU and measure their resources with ptxas.

Two jobs, both possible on a machine with the CUDA compiler packages
(``numba-cuda[cu12]``: NVVM, and ``nvidia-cuda-nvcc-cu12``: ``ptxas``) but no
GPU and no driver:

* :func:`compile_kernel_ptx` — ``numba.cuda.compile_ptx`` for a given
  compute capability (default sm_90, the H100/H200 target).
* :func:`ptxas_resources` — assemble that PTX with ``ptxas -v`` and read back
  registers per thread, stack frame and spill stores/loads per kernel.

numba-cuda internals (read this before upgrading numba-cuda)
-----------------------------------------------------------
numba-cuda 0.30.4 asks the *current device* for its compute capability when
it compiles a plain ``@numba.njit`` function called from a kernel as a device
function (``numba.cuda.dispatcher.get_current_device``), even inside
``compile_ptx(..., cc=...)``.  With no driver that raises.  Only when
``numba.cuda.is_available()`` is False, :func:`standin_device` temporarily
replaces that module attribute by a stand-in device reporting the target
compute capability, and restores it afterwards.  On a machine with a GPU
nothing is patched.  This is the only place in the project that touches
numba-cuda internals.
"""
import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

#: default PTX target: Hopper (H100/H200)
DEFAULT_CC = (9, 0)


def compiler_available():
    """(ok, reason): whether numba-cuda can compile kernels to PTX (NVVM present).

    Never needs a GPU.  The reason says what to install when it cannot.
    """
    try:
        from numba import cuda
    except ImportError as exc:
        return False, f"numba-cuda is not installed (pip install 'numba-cuda[cu12]'): {exc}"
    from numba import config
    if config.ENABLE_CUDASIM:
        return False, "the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): no PTX compiler in this process"
    if not hasattr(cuda, "compile_ptx"):
        return False, "this numba.cuda has no compile_ptx"
    try:
        from numba.cuda.cudadrv import nvvm
        if not nvvm.is_available():
            return False, "NVVM (the CUDA compiler) is not installed: pip install 'numba-cuda[cu12]'"
    except Exception as exc:  # pragma: no cover - depends on the installation
        return False, f"NVVM could not be loaded ({exc!r}): pip install 'numba-cuda[cu12]'"
    return True, "NVVM found"


@contextlib.contextmanager
def standin_device(cc=DEFAULT_CC):
    """Context manager: let numba-cuda compile device functions with no GPU present.

    Patches ``numba.cuda.dispatcher.get_current_device`` (a numba-cuda 0.30
    internal, see the module docstring) by a stand-in reporting compute
    capability ``cc`` — only when no GPU is usable; restores it on exit.
    """
    from numba import cuda
    import numba.cuda.dispatcher as cuda_dispatcher
    if cuda.is_available() or not hasattr(cuda_dispatcher, "get_current_device"):
        yield False
        return
    saved = cuda_dispatcher.get_current_device
    cuda_dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=tuple(cc))
    try:
        yield True
    finally:
        cuda_dispatcher.get_current_device = saved


def compile_kernel_ptx(pyfunc, signature, cc=DEFAULT_CC):
    """Compile the Python function of a CUDA kernel to PTX for compute capability ``cc``.

    Parameters
    ----------
    pyfunc : function
        The kernel's Python function (``dispatcher.py_func`` of a ``cuda.jit`` kernel).
    signature : tuple of numba types or str
        Argument types.
    cc : tuple of int
        Target compute capability (default (9, 0), sm_90).

    Returns
    -------
    str
        The PTX text.  Raises ``RuntimeError`` with the reason when no CUDA
        compiler is installed.
    """
    ok, why = compiler_available()
    if not ok:
        raise RuntimeError(why)
    from numba import cuda
    with standin_device(cc):
        ptx, _ = cuda.compile_ptx(pyfunc, signature, cc=tuple(cc))
    return ptx


def find_ptxas():
    """Path of a ``ptxas`` executable, or None.

    Looks first in the ``nvidia-cuda-nvcc-cu12`` wheel (site-packages
    ``nvidia/cuda_nvcc/bin``, the same CUDA release as NVVM), then ``$PATH``.
    """
    cands = []
    for p in sys.path:
        cands += glob.glob(os.path.join(p, "nvidia", "cuda_nvcc", "bin", "ptxas"))
        cands += glob.glob(os.path.join(p, "nvidia", "cu*", "bin", "ptxas"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("ptxas")


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_REGS = re.compile(r"Used (\d+) registers")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_SMEM = re.compile(r"(\d+) bytes smem")


def ptxas_resources(ptx, arch="sm_90", ptxas=None):
    """Assemble PTX with ``ptxas -v`` and return its resource usage per entry function.

    Returns
    -------
    dict
        ``{entry_name: {"registers", "stack_bytes", "spill_stores", "spill_loads", "smem_bytes"}}``
        (bytes per thread for stack and spills, static shared memory per block).
        Raises ``RuntimeError`` if ptxas is missing or fails.
    """
    ptxas = ptxas or find_ptxas()
    if ptxas is None:
        raise RuntimeError("ptxas not found: pip install nvidia-cuda-nvcc-cu12 (or put CUDA's bin on PATH)")
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        proc = subprocess.run([ptxas, f"-arch={arch}", "-v", "-o", os.path.join(d, "k.cubin"), src],
                              capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{log[-3000:]}")
    out = {}
    cur = None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            cur = m.group(1)
            out[cur] = {"registers": None, "stack_bytes": 0, "spill_stores": 0, "spill_loads": 0, "smem_bytes": 0}
            continue
        if cur is None:
            continue
        m = _SPILL.search(line)
        if m:
            out[cur].update(stack_bytes=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = _REGS.search(line)
        if m:
            out[cur]["registers"] = int(m.group(1))
            m2 = _SMEM.search(line)
            if m2:
                out[cur]["smem_bytes"] = int(m2.group(1))
    return out


def ptx_report(drivers, cc=DEFAULT_CC, ptxas=True):
    """Compile kernels to PTX and report registers and spills for each.

    Parameters
    ----------
    drivers : dict
        ``{name: CudaAdvance}`` (objects from :func:`gpu.driver.build_cuda_advance`),
        one per kernel variant.
    cc : tuple of int
        Target compute capability (default sm_90).
    ptxas : bool
        Also assemble with ``ptxas -v`` for registers/spills (if found).

    Returns
    -------
    list of dict
        One row per variant: name, ``ptx_lines``, ``local_ld_st`` (ld/st.local
        instructions in the PTX) and, with ptxas, registers, stack_bytes,
        spill_stores, spill_loads; ``error`` holds the message if a stage failed.
    """
    exe = find_ptxas() if ptxas else None
    rows = []
    for name, drv in drivers.items():
        row = {"name": name}
        try:
            ptx = drv.ptx(cc=cc)
        except Exception as exc:  # reported, not swallowed: the caller checks row["error"]
            row["error"] = f"PTX compile failed: {exc!r}"
            rows.append(row)
            continue
        row["ptx_lines"] = ptx.count("\n")
        row["local_ld_st"] = len(re.findall(r"\b(?:ld|st)\.local\b", ptx))
        if exe is not None:
            try:
                res = ptxas_resources(ptx, arch=f"sm_{cc[0]}{cc[1]}", ptxas=exe)
                # one entry per kernel module
                r = next(iter(res.values())) if res else {}
                row.update(r)
            except RuntimeError as exc:
                row["error"] = str(exc)
        rows.append(row)
    return rows


def format_report(rows):
    """Plain-text table of :func:`ptx_report` rows."""
    head = f"{'kernel':40s} {'regs':>5s} {'stack':>6s} {'spill_st':>9s} {'spill_ld':>9s} {'ld/st.local':>11s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:40s} ERROR {r['error'][:200]}")
            continue
        lines.append(f"{r['name']:40s} {str(r.get('registers', '?')):>5s} {r.get('stack_bytes', 0):6d} "
                     f"{r.get('spill_stores', 0):9d} {r.get('spill_loads', 0):9d} {r.get('local_ld_st', 0):11d}")
    return "\n".join(lines)
