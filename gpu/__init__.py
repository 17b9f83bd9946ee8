"""CUDA backend: device buffers, kernel drivers and launch configuration.

The GPU counterpart of :mod:`packets.driver_cpu`: it receives the per-packet
functions built by the kernel factories of ``packets`` and launches them; no
physics formula lives here, and ``gpu`` imports nothing from ``packets``
(docs/architecture.md, "Layout and dependency direction").  ``import
packets`` never imports this package; it is loaded when the CUDA backend is
asked for.  Importing ``gpu`` itself does not import
``numba.cuda`` either: that happens on first use, so :func:`available` can
report a missing installation instead of failing.

Public API
----------
available(allow_simulator=False) -> (bool, str)
    Whether a GPU and a CUDA compiler are usable, with the reason.
device_info() -> dict
    Device name, compute capability, numba-cuda version, SM count, memory.
build_cuda_advance(advance_packet, start, finish, alloc_scratch, alloc_context, schema, dim, nb, ncomp, nev, ...)
    The CUDA driver (:mod:`gpu.driver`); returns a :class:`gpu.driver.CudaAdvance`.
CudaAdvance, CudaRunner
    Kernel + launch logic; device-resident ensemble across record intervals.
ptx_report(drivers, cc=(9, 0)) / format_report(rows)
    Compile kernel variants to PTX (no GPU needed) and list registers and
    spills from ``ptxas -v`` (:mod:`gpu.ptx`).
compile_kernel_ptx(pyfunc, signature, cc=(9, 0))
    PTX of any kernel without a GPU (:mod:`gpu.ptx`).
"""

#: minimum compute capability: native float64 atomicAdd (sm_60) for the tally reduction
MIN_CC = (6, 0)

_LAZY = {"build_cuda_advance": "driver", "CudaAdvance": "driver", "CudaRunner": "driver",
         "ptx_report": "ptx", "format_report": "ptx", "compile_kernel_ptx": "ptx", "ptxas_resources": "ptx",
         "compiler_available": "ptx", "find_ptxas": "ptx"}

__all__ = ["available", "device_info", "MIN_CC"] + list(_LAZY)


def __getattr__(name):
    # lazy exports: numba.cuda is imported on first use, not at `import gpu`
    if name in _LAZY:
        import importlib
        mod = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module 'gpu' has no attribute {name!r}")


def available(allow_simulator=False):
    """Tell whether the CUDA backend can run here.

    Parameters
    ----------
    allow_simulator : bool
        Count numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) as available
        (it runs the kernels as Python threads: for tests only, very slow).

    Returns
    -------
    (bool, str)
        ``(True, device description)`` or ``(False, what is missing and how to fix it)``.
    """
    try:
        import numba
        from numba import cuda
    except ImportError as exc:
        return False, f"numba-cuda is not installed (pip install 'numba-cuda[cu12]'): {exc}"
    if numba.config.ENABLE_CUDASIM:
        if allow_simulator:
            return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): Python threads, for testing only"
        return False, "NUMBA_ENABLE_CUDASIM=1 is set: only the CUDA simulator is available, not a GPU"
    from .ptx import compiler_available
    ok, why = compiler_available()
    if not ok:
        return False, why
    try:
        if not cuda.is_available():
            return False, "no CUDA GPU or driver found (numba.cuda.is_available() is False)"
        dev = cuda.get_current_device()
        cc = tuple(dev.compute_capability)
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    except Exception as exc:  # driver present but unusable: report, do not crash the caller
        return False, f"CUDA device could not be opened: {exc!r}"
    if cc < MIN_CC:
        return False, f"{name} has compute capability {cc}; the CUDA backend needs >= {MIN_CC} (float64 atomics)"
    return True, f"{name} (compute capability {cc[0]}.{cc[1]})"


def device_info():
    """Properties of the current CUDA device.

    Returns
    -------
    dict
        ``name``, ``compute_capability``, ``numba_cuda`` (version),
        ``multiprocessors``, ``max_threads_per_block``,
        ``max_shared_memory_per_block`` (bytes), ``memory_total`` and
        ``memory_free`` (bytes), ``simulator`` (bool).  Raises RuntimeError
        with the reason when no device is usable.
    """
    import numba
    try:
        import numba_cuda
        version = getattr(numba_cuda, "__version__", "unknown")
    except ImportError:
        version = None
    from numba import cuda
    if numba.config.ENABLE_CUDASIM:
        return {"name": "CUDA simulator", "compute_capability": tuple(cuda.get_current_device().compute_capability),
                "numba_cuda": version, "multiprocessors": 1, "max_threads_per_block": 1024,
                "max_shared_memory_per_block": 48 * 1024, "memory_total": None, "memory_free": None,
                "simulator": True}
    ok, why = available()
    if not ok:
        raise RuntimeError(f"no usable CUDA device: {why}")
    dev = cuda.get_current_device()
    free, total = cuda.current_context().get_memory_info()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return {"name": name, "compute_capability": tuple(dev.compute_capability), "numba_cuda": version,
            "multiprocessors": int(dev.MULTIPROCESSOR_COUNT), "max_threads_per_block": int(dev.MAX_THREADS_PER_BLOCK),
            "max_shared_memory_per_block": int(dev.MAX_SHARED_MEMORY_PER_BLOCK), "memory_total": int(total),
            "memory_free": int(free), "simulator": False}
