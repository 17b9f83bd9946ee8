"""CUDA backend: device buffers, kernel drivers and launch configuration for
the per-packet functions built by the kernel factories of ``packets``.  No
physics formula lives here.  Imported only when the CUDA backend is requested.

Not yet implemented: this package is filled by the CUDA-backend issue.
"""
